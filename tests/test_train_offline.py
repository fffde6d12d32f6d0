"""Offline, every pretrained network a recipe needs and lacks is reported in ONE message, before any setup."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._train_helpers import RECIPE, make_paired, tiny_models, tiny_overrides
from turbo_cli.errors import OfflineError
from turbo_cli.train.loop import Trainer
from turbo_cli.train.pretrained import missing_weights
from turbo_cli.train.recipe import load_recipe

FILL50K = Path(RECIPE).parent / "fill50k.toml"


@pytest.fixture()
def empty_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))


def test_all_missing_networks_in_one_line_before_setup(tmp_path, empty_caches):
    data = make_paired(tmp_path / "data")
    r = load_recipe(FILL50K, [f"data.dataset={str(data)!r}", f"train.output_dir={str(tmp_path / 'out')!r}"])
    t = Trainer(r)
    with pytest.raises(OfflineError) as e:
        t.setup()
    msg = str(e.value)
    assert "\n" not in msg and "4 pretrained network(s)" in msg
    for key in ("[model] base_model", "[loss] disc_backbone", "[loss] clip_model", "[loss] lpips_weights"):
        assert key in msg, key
    assert not hasattr(t, "accelerator")  # nothing was started or loaded


def test_what_is_needed_depends_on_the_recipe(tmp_path, empty_caches):
    data = make_paired(tmp_path / "data")
    # unpaired: no CLIP-sim model; lambda_gan = 0: no discriminator
    r = load_recipe(FILL50K, [f"data.dataset={str(data)!r}", "model.kind='unpaired'", "loss.lambda_gan=0"])
    keys = [m.split(" = ")[0] for m in missing_weights(r)]
    assert keys[0] == "[model] base_model" and len(keys) == 2 and "lpips_weights" in keys[1]
    # local folders and a local trunk file: nothing is missing
    models = tiny_models(tmp_path / "models")
    r = load_recipe(RECIPE, tiny_overrides(models, data, tmp_path / "out", model__kind="paired",
                                           loss__lambda_clipsim=5.0))
    assert missing_weights(r) == []


def test_no_network_without_the_offline_flag_is_the_same_one_line(tmp_path, empty_caches, monkeypatch):
    """HF_HUB_OFFLINE unset and the Hub unreachable (a closed port here): one quick request finds it out, and the
    missing networks are reported together, instead of a minute of hub retries and then the first of them."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    data = make_paired(tmp_path / "data")
    r = load_recipe(FILL50K, [f"data.dataset={str(data)!r}", f"train.output_dir={str(tmp_path / 'out')!r}"])
    with pytest.raises(OfflineError, match=r"the Hugging Face Hub does not answer .* 4 pretrained network\(s\)"):
        Trainer(r).setup()
