"""Checkpoint formats: turbo's safetensors + JSON, the converter, and refusing what is not safe or does not fit."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

from turbo_cli.cli.main import app
from turbo_cli.engine.checkpoint import read_turbo_info
from turbo_cli.errors import ModelError
from turbo_cli.jobs.loading import load_model


class Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pickles_with_code_are_refused(tmp_path):
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(ModelError, match="evil.pkl: not a readable img2img-turbo checkpoint"):
        load_model(str(bad))


def test_unknown_layout_named(tmp_path, tiny_base):
    odd = tmp_path / "odd.pt"
    torch.save({"weights": torch.zeros(2)}, odd)
    with pytest.raises(ModelError, match="odd.pt: unrecognised checkpoint layout"):
        load_model(str(odd), str(tiny_base))


def test_safetensors_without_metadata(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"a": torch.zeros(1)}, str(plain))
    with pytest.raises(ModelError, match="without turbo metadata"):
        read_turbo_info(plain)


def test_checkpoint_that_does_not_fit_the_base(fixtures_dir, tiny_base, tmp_path):
    """The fixtures' pix2pix checkpoint on a base whose VAE is narrower: the mismatching tensor is named."""
    import shutil

    from diffusers import AutoencoderKL

    from turbo_cli.engine.tiny import TINY_VAE

    narrow = tmp_path / "narrow"
    shutil.copytree(tiny_base, narrow)
    shutil.rmtree(narrow / "vae")
    AutoencoderKL(**{**TINY_VAE, "block_out_channels": (8, 16, 32, 32)}).save_pretrained(narrow / "vae")
    with pytest.raises(ModelError, match=r"pix2pix_ref.pkl: checkpoint does not fit the base model: vae\..* has shape"):
        load_model(str(fixtures_dir / "checkpoints" / "pix2pix_ref.pkl"), str(narrow))


def test_metadata_is_complete(tiny_cyclegan):
    with safe_open(str(tiny_cyclegan), framework="pt") as f:
        meta = json.loads(f.metadata()["turbo"])
        keys = list(f.keys())
    assert meta["format"] == "turbo" and meta["kind"] == "cyclegan"
    for field in ("base_model", "captions", "direction", "image_prep", "spec"):
        assert field in meta
    assert meta["spec"]["rank_unet"] == 4 and set(meta["spec"]["unet_targets"]) == {
        "default_encoder", "default_decoder", "default_others"}
    assert not any(k.startswith("_orig_mod") for k in keys)
    assert any(".skip_conv_1." in k for k in keys) and any(k.startswith("vae_b2a.") for k in keys)


def test_convert_command(fixtures_dir, tmp_path):
    out = tmp_path / "cyc.safetensors"
    args = ["convert", str(fixtures_dir / "checkpoints" / "cyclegan_ref.pkl"), str(out), "--base-model",
            str(fixtures_dir / "base"), "--caption-a", "driving in the day", "--caption-b", "driving in the night"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    info = read_turbo_info(out)
    assert info.captions == {"a2b": "driving in the night", "b2a": "driving in the day"}
    assert info.directions == ["a2b", "b2a"] and info.base_model == str(fixtures_dir / "base")
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "exists" in again.output
    # The converted model translates through the CLI with its stored captions.
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), 50, np.uint8)).save(tmp_path / "x.png")
    result = CliRunner().invoke(app, ["translate", str(tmp_path / "x.png"), str(tmp_path / "o"), "--model", str(out),
                                      "-d", "b2a"])
    assert result.exit_code == 0, result.output
