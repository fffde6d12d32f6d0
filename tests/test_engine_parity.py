"""Numerical parity with the original img2img-turbo on the shared fixtures (docs/design.md §1-2).

Each case is loaded through the paths a user's checkpoint takes (`turbo_cli.jobs.loading.load_model`: the trainable
peft model; `load_inference_model`: the merged one `turbo translate` runs) on the original .pkl with a local base
folder, and must reproduce the original's float32 output within 1e-4.
"""

from __future__ import annotations

import json

import pytest
import torch

from turbo_cli.engine.checkpoint import load_turbo, save_turbo
from turbo_cli.engine.base import load_base
from turbo_cli.jobs.loading import load_inference_model, load_model

CASES = ["pix2pix_det_b1", "pix2pix_det_b2", "pix2pix_stoch_plain_b2", "pix2pix_stoch_twinconv_b2",
         "cyclegan_a2b_b1", "cyclegan_a2b_b2", "cyclegan_b2a_b1", "cyclegan_b2a_b2"]


def run_case(generator, prompt_encoder, case, dtype=torch.float32):
    prompt = case["prompt"] if isinstance(case["prompt"], list) else [case["prompt"]]
    emb = prompt_encoder(prompt)
    noise = None
    if case["deterministic"] is False:  # stochastic pix2pix: r and the noise map are part of the case
        generator.set_r(case["r"])
        noise = case["noise_map"].to(dtype)
    generator.to(dtype)
    with torch.no_grad():
        return generator(case["inputs"].to(dtype), emb.to(dtype), direction=case["direction"], noise=noise)


@pytest.fixture(scope="module")
def manifest(fixtures_dir):
    return json.loads((fixtures_dir / "cases" / "manifest.json").read_text())


def test_manifest_lists_every_case(fixtures_dir):
    on_disk = sorted(p.stem for p in (fixtures_dir / "cases").glob("*.pt"))
    assert on_disk == sorted(CASES)


@pytest.mark.parametrize("name", CASES)
def test_matches_original_output(fixtures_dir, name):
    case = torch.load(fixtures_dir / "cases" / f"{name}.pt", weights_only=True)
    loaded, prompts = load_model(str(fixtures_dir / "checkpoints" / case["checkpoint"]), str(fixtures_dir / "base"))
    # The text embedding is the original's too.
    emb = prompts(case["prompt"] if isinstance(case["prompt"], list) else [case["prompt"]])
    torch.testing.assert_close(emb, case["caption_enc"][: len(emb)], atol=1e-5, rtol=0)
    out = run_case(loaded.generator, prompts, case)
    err = (out - case["output"]).abs().max().item()
    assert err < 1e-4, f"{name}: max abs error {err:.2e} vs the original"
    # In float64 we agree with the original's float64 run far more tightly (the fp32 gap is rounding).
    out64 = run_case(loaded.generator, prompts, case, torch.float64)
    assert (out64 - case["output_fp64"]).abs().max().item() < 1e-6


@pytest.mark.parametrize("name", CASES)
def test_inference_model_matches_original_output(fixtures_dir, name):
    """The model `turbo translate` runs: adapters merged into plain modules (engine/merge.py) at the case's r."""
    case = torch.load(fixtures_dir / "cases" / f"{name}.pt", weights_only=True)
    r = case["r"] if case["deterministic"] is False else None
    loaded, prompts = load_inference_model(str(fixtures_dir / "checkpoints" / case["checkpoint"]),
                                           str(fixtures_dir / "base"), r)
    if r is not None and not loaded.info.stochastic:
        pytest.skip("r on a deterministic checkpoint is the original's option only (turbo refuses --gamma there)")
    assert type(loaded.generator).__name__ == "MergedGenerator"
    err = (run_case(loaded.generator, prompts, case) - case["output"]).abs().max().item()
    assert err < 1e-4, f"{name}: max abs error {err:.2e} vs the original"


def test_intermediates_match(fixtures_dir):
    """The pieces, not only the end: posterior mean, UNet input, x0 fed to the decoder."""
    case = torch.load(fixtures_dir / "cases" / "cyclegan_a2b_b2.pt", weights_only=True)
    loaded, prompts = load_model(str(fixtures_dir / "checkpoints" / case["checkpoint"]), str(fixtures_dir / "base"))
    g, inter = loaded.generator, case["intermediates"]
    with torch.no_grad():
        z, skips = g.encode(case["inputs"], "a2b")
        x0 = g.denoise(z, prompts([case["prompt"]]).expand(2, -1, -1))
    def rel(a, b):
        return ((a - b).abs().max() / b.abs().max()).item()
    assert rel(z, inter["unet_in"]) < 1e-4
    assert rel(x0 / g.scaling_factor, inter["decoder_latent_in"]) < 1e-4
    assert len(skips) == 4


def test_skip_convs_derived_from_vae_config(fixtures_dir):
    loaded, _ = load_model(str(fixtures_dir / "checkpoints" / "pix2pix_ref.pkl"), str(fixtures_dir / "base"))
    dec = loaded.generator.vae.decoder
    shapes = [tuple(c.base_layer.weight.shape) for c in dec.skip_convs()]
    assert shapes == [(64, 64, 1, 1), (64, 32, 1, 1), (64, 16, 1, 1), (32, 16, 1, 1)]


def test_zeroing_a_skip_conv_changes_output(fixtures_dir):
    case = torch.load(fixtures_dir / "cases" / "pix2pix_det_b1.pt", weights_only=True)
    loaded, prompts = load_model(str(fixtures_dir / "checkpoints" / case["checkpoint"]), str(fixtures_dir / "base"))
    with torch.no_grad():
        loaded.generator.vae.decoder.skip_conv_3.base_layer.weight.zero_()
    out = run_case(loaded.generator, prompts, case)
    assert (out - case["output"]).abs().max().item() > 1e-3


@pytest.mark.parametrize("name", ["pix2pix_det_b2", "pix2pix_stoch_twinconv_b2", "cyclegan_b2a_b2"])
def test_own_format_round_trip_is_identical(fixtures_dir, tmp_path, name):
    case = torch.load(fixtures_dir / "cases" / f"{name}.pt", weights_only=True)
    base_dir = str(fixtures_dir / "base")
    loaded, prompts = load_model(str(fixtures_dir / "checkpoints" / case["checkpoint"]), base_dir)
    path = save_turbo(loaded.generator, loaded.info, tmp_path / "m.safetensors")
    again = load_turbo(path, load_base(base_dir))
    assert again.info.kind == loaded.info.kind and again.info.spec == loaded.info.spec
    a = run_case(loaded.generator, prompts, case)
    b = run_case(again.generator, prompts, case)
    assert torch.equal(a, b)
    # Much smaller than the original pickle when the checkpoint carries whole VAEs (CycleGAN).
    if name.startswith("cyclegan"):
        original = (fixtures_dir / "checkpoints" / case["checkpoint"]).stat().st_size
        assert path.stat().st_size < original / 2


def test_cyclegan_vae_base_weights_come_from_checkpoint(fixtures_dir):
    """The CycleGAN pickle carries whole VAEs whose encoder.conv_in differs from the base: they must be used."""
    loaded, _ = load_model(str(fixtures_dir / "checkpoints" / "cyclegan_ref.pkl"), str(fixtures_dir / "base"))
    overrides = loaded.generator.base_overrides
    assert "vae.encoder.conv_in.base_layer.weight" in overrides
    assert "vae_b2a.encoder.conv_in.base_layer.weight" in overrides
    assert loaded.info.directions == ["a2b", "b2a"]
