"""Original-format checkpoints on the REAL SD-Turbo architecture load through the user's path and translate.

The shared fixtures use a tiny base; these tests build a randomly initialised full-size SD-Turbo (UNet
320/640/1280/1280 with heads 5/10/20/20 and cross-attention 1024, the SD VAE 128/256/512/512) and write CycleGAN
(rank-128 LoRA, three adapters with target lists from the real module names), pix2pix (rank 8) and the twin-conv
sketch model in the original formats with `tests/_original_format.py` — which the first test proves against the
original's own files. About 3 minutes and 10 GB of RAM on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import gc

import numpy as np
import pytest
import torch

from tests._original_format import original_cyclegan, original_pix2pix, save_original
from turbo_cli.jobs.loading import ModelOptions, build_translator, load_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _same(a, b, where=""):
    if isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys differ: {sorted(set(a) ^ set(b))[:4]}"
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b.to(a.dtype)), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.parametrize("name", ["pix2pix_ref.pkl", "pix2pix_twinconv_ref.pkl", "cyclegan_ref.pkl"])
def test_the_writer_reproduces_the_original_files(fixtures_dir, name):
    path = fixtures_dir / "checkpoints" / name
    original = torch.load(path, map_location="cpu", weights_only=True)
    loaded, _ = load_model(str(path), str(fixtures_dir / "base"))
    written = (original_cyclegan if "cyclegan" in name else original_pix2pix)(loaded.generator)
    _same(original, written, name)


@pytest.fixture(scope="module")
def full_base(tmp_path_factory):
    from turbo_cli.engine.tiny import build_tiny_base

    return build_tiny_base(tmp_path_factory.mktemp("sd-turbo-full") / "base", full_size=True, text_layers=1)


@pytest.mark.parametrize("family", ["cyclegan", "pix2pix", "sketch"])
def test_full_size_original_checkpoints_translate(full_base, family, tmp_path):
    from turbo_cli.engine.base import load_base
    from turbo_cli.engine.generator import build_cyclegan, build_pix2pix
    from turbo_cli.engine.tiny import randomize_adapters

    torch.manual_seed(0)
    base = load_base(full_base, with_text_encoder=False)
    made = build_cyclegan(base) if family == "cyclegan" else build_pix2pix(base, twin_conv=family == "sketch")
    randomize_adapters(made, seed=1, lora_std=0.01)
    if family == "cyclegan":  # the real module names: 3 adapters, rank 128, targets in every part of the UNet
        targets = made.spec.unet_targets
        assert made.spec.rank_unet == 128 and all(targets.values()) and sum(map(len, targets.values())) > 250, \
            {k: len(v) for k, v in targets.items()}
    else:
        assert made.spec.rank_unet == 8
    path = save_original(made, tmp_path / f"{family}.pkl")
    expected = {k: v for k, v in made.state_dict().items() if "lora_" in k or "skip_conv_" in k}
    del made, base
    gc.collect()

    options = ModelOptions(model=str(path), base_model=str(full_base), device="cpu", image_prep="no_resize",
                           prompt="a test", direction="a2b" if family == "cyclegan" else None, merged=False)
    translator = build_translator(options)
    assert translator.info.kind == ("cyclegan" if family == "cyclegan" else "pix2pix")
    assert translator.info.stochastic == (family == "sketch")
    state = translator.generator.state_dict()
    for key, value in expected.items():  # every adapter tensor arrived where the architecture expects it
        assert torch.equal(state[key], value), key
    # The inference model (adapters merged into plain modules, engine/sd.py) against the peft model, in fp32, on a
    # size whose latent (8x9) is odd all the way down the UNet's three downsamplings.
    x = torch.rand(1, 3, 64, 72, generator=torch.Generator().manual_seed(0)) * 2 - 1
    noise = torch.randn(1, 4, 8, 9, generator=torch.Generator().manual_seed(1)) if family == "sketch" else None
    with torch.no_grad():
        reference = translator.generator(x, translator.prompt_emb, direction=options.direction, noise=noise)
    del translator, state
    gc.collect()
    translator = build_translator(dataclasses.replace(options, merged=True))
    assert type(translator.generator).__name__ == "MergedGenerator"
    with torch.no_grad():
        merged = translator.generator(x, translator.prompt_emb, direction=options.direction, noise=noise)
    assert (merged - reference).abs().max() < 1e-4, (merged - reference).abs().max()
    frames = np.random.default_rng(0).integers(0, 256, (1, 61, 70, 3), dtype=np.uint8)
    out = translator.translate_frames(frames)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert 2 < out.std() and not np.array_equal(out, frames)
