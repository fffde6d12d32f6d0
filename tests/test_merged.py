"""The inference model: adapters merged into plain-torch modules (engine/merge.py, engine/sd.py).

References from outside: diffusers' own UNet2DConditionModel / AutoencoderKL / DDPMScheduler and peft's adapter
forward (the trainable TurboGenerator), on the same weights. The full SD-Turbo shapes are checked in
tests/test_full_size.py; the original's outputs through this path in tests/test_engine_parity.py and
tests/test_parity_e2e.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from turbo_cli.engine import merge, sd
from turbo_cli.errors import ModelError
from turbo_cli.jobs.loading import ModelOptions, build_translator, load_inference_model, load_model

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


def _both(model: str, base: str | None = None, r: float | None = None):
    merged, _ = load_inference_model(model, base, r)
    peft, _ = load_model(model, base)
    if merged.info.stochastic:
        peft.generator.set_r(merged.generator.r)
    return merged.generator, peft.generator, merged.info


@pytest.mark.parametrize("family", ["cyclegan", "pix2pix", "sketch"])
def test_merged_model_equals_the_peft_model(family, tiny_cyclegan, tiny_pix2pix, tiny_sketch):
    path = {"cyclegan": tiny_cyclegan, "pix2pix": tiny_pix2pix, "sketch": tiny_sketch}[family]
    for r in ([0.4, 0.75] if family == "sketch" else [None]):
        merged, peft, info = _both(str(path), r=r)
        assert isinstance(merged, sd.MergedGenerator) and merged.r == (r or 1.0)
        assert not any("lora_" in k or "base_layer" in k for k in merged.state_dict())
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(2, 3, 48, 72, generator=gen) * 2 - 1  # latent 6x9: odd on the way down the UNet
        emb = torch.randn(1, 77, 32, generator=gen)
        noise = torch.randn(1, 4, 6, 9, generator=gen).expand(2, -1, -1, -1) if info.stochastic else None
        for direction in info.directions:
            with torch.no_grad():
                a = merged(x, emb, direction=direction, noise=noise)
                b = peft(x, emb, direction=direction, noise=noise)
            assert b.std() > 0.05  # a real output, not a constant
            # fp32 rounding of W + BA vs W x + B(A x), carried through ~50 layers: < 1/80 of an 8-bit level
            assert (a - b).abs().max() < 1e-4, (family, r, direction, (a - b).abs().max())


def test_original_checkpoints_merge(fixtures_dir):
    for name in ("cyclegan_ref.pkl", "pix2pix_ref.pkl", "pix2pix_twinconv_ref.pkl"):
        merged, peft, info = _both(str(fixtures_dir / "checkpoints" / name), str(fixtures_dir / "base"))
        x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
        emb = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))
        noise = torch.randn(1, 4, 8, 8) if info.stochastic else None
        for direction in info.directions:
            with torch.no_grad():
                diff = (merged(x, emb, direction=direction, noise=noise) - peft(x, emb, direction=direction,
                                                                                  noise=noise)).abs().max()
            assert diff < 1e-4, (name, direction, diff)


def _sd_shaped_configs() -> tuple[dict, dict]:
    """SD-Turbo's block structure (4 UNet blocks, 3 with cross-attention, 2 layers each, heads 5/10/20/20, linear
    projections; the 4-block VAE with 2 layers) at a narrow width."""
    from turbo_cli.engine.tiny import SD_TURBO_UNET, SD_TURBO_VAE

    unet = dict(SD_TURBO_UNET, block_out_channels=(40, 80, 160, 160), cross_attention_dim=24, norm_num_groups=8)
    vae = dict(SD_TURBO_VAE, block_out_channels=(8, 16, 32, 32), norm_num_groups=8)
    return unet, vae


@pytest.mark.parametrize("linear", [True, False])
def test_unet_equals_diffusers_on_sd_turbo_structure(linear):
    from diffusers import UNet2DConditionModel

    cfg, _ = _sd_shaped_configs()
    cfg["use_linear_projection"] = linear  # SD 2.x projects with linears, SD 1.x with 1x1 convs
    torch.manual_seed(0)
    reference = UNet2DConditionModel(**cfg).eval()
    config = dict(reference.config)
    assert sd.unsupported(config, dict(_sd_shaped_configs()[1], down_block_types=["DownEncoderBlock2D"] * 4,
                                       up_block_types=["UpDecoderBlock2D"] * 4)) is None
    ours = sd.UNet(config)
    ours.load_state_dict(reference.state_dict())  # strict: every diffusers name has its place
    gen = torch.Generator().manual_seed(1)
    for h, w in ((8, 8), (9, 13)):  # 9x13 rounds up at each of the three downsamplings
        z, ctx = torch.randn(2, 4, h, w, generator=gen), torch.randn(2, 77, 24, generator=gen)
        t = torch.full((2,), 999)
        with torch.no_grad():
            expected = reference(z, t, encoder_hidden_states=ctx).sample
            got = ours(z, t, ctx)
        assert got.shape == expected.shape and (got - expected).abs().max() < 1e-5


def test_vae_equals_diffusers_with_skips():
    from diffusers import AutoencoderKL

    from turbo_cli.engine.vae import add_skip_connections

    _, cfg = _sd_shaped_configs()
    torch.manual_seed(0)
    reference = add_skip_connections(AutoencoderKL(**cfg)).eval()
    for conv in reference.decoder.skip_convs():
        torch.nn.init.normal_(conv.weight, std=0.1)
    ours = sd.SkipVAE(dict(reference.config))
    ours.load_state_dict(reference.state_dict())
    x = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        h, skips = reference.encoder(x)
        expected = reference.decoder(reference.post_quant_conv(reference.quant_conv(h)[:, :4]), skips)
        h2, skips2 = ours.encoder(x)
        got = ours.decoder(ours.post_quant_conv(ours.quant_conv(h2)[:, :4]), skips2)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(skips, skips2))
    assert (got - expected).abs().max() < 1e-5


@pytest.mark.parametrize("schedule", [dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
                                      dict(beta_schedule="linear", beta_start=0.0001, beta_end=0.02)])
def test_alpha_bar_is_ddpm_schedulers(schedule, tmp_path):
    from diffusers import DDPMScheduler

    (tmp_path / "scheduler").mkdir()
    (tmp_path / "scheduler" / "scheduler_config.json").write_text(json.dumps(dict(num_train_timesteps=1000, **schedule)))
    assert merge.alpha_bar(tmp_path) == float(DDPMScheduler(**schedule).alphas_cumprod[999])


def test_an_unsupported_base_runs_the_diffusers_model(tiny_base, tiny_cyclegan, tmp_path):
    base = shutil.copytree(tiny_base, tmp_path / "base")
    cfg_path = base / "unet" / "config.json"
    cfg_path.write_text(json.dumps(dict(json.loads(cfg_path.read_text()), upcast_attention=False,
                                        center_input_sample=True)))
    notices = []

    class Collect:
        def notice(self, message):
            notices.append(message)

    loaded, _ = load_inference_model(str(tiny_cyclegan), str(base), progress=Collect())
    assert type(loaded.generator).__name__ == "TurboGenerator"
    assert notices == [f"{base}: unet center_input_sample=True is not in turbo's merged inference model; running "
                       f"the diffusers model"]


def test_a_checkpoint_on_the_wrong_base_is_refused(tiny_cyclegan, tmp_path):
    from turbo_cli.engine.tiny import build_tiny_base

    other = build_tiny_base(tmp_path / "other", seed=0)
    cfg_path = other / "vae" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    # a VAE one block narrower at the top: same names, other shapes
    shutil.rmtree(other / "vae")
    from diffusers import AutoencoderKL

    AutoencoderKL(**{k: v for k, v in cfg.items() if not k.startswith("_")} | {"block_out_channels": (16, 32, 64, 32)}
                  ).save_pretrained(other / "vae")
    with pytest.raises(ModelError, match=rf"{tiny_cyclegan.name}: checkpoint does not fit the base model: .* has "
                                         r"shape"):
        load_inference_model(str(tiny_cyclegan), str(other))


def test_r_is_fixed_when_merged(tiny_sketch):
    translator = build_translator(ModelOptions(model=str(tiny_sketch), device="cpu", r=0.6))
    assert translator.generator.r == 0.6
    with pytest.raises(ValueError, match="merged at r=0.6; load the model again for r=0.3"):
        translator.generator.set_r(0.3)


def test_inference_imports_neither_diffusers_nor_peft(tiny_cyclegan):
    """The cold-start claim: translating through the merged model never imports diffusers, peft or transformers
    (their import is most of a small job's start-up: docs/benchmarks.md). The prompt is in the disk cache (this
    process puts it there); a cache miss loads transformers' text encoder, as it must."""
    build_translator(ModelOptions(model=str(tiny_cyclegan), device="cpu"))
    code = (
        "import sys, numpy as np\n"
        "from turbo_cli.jobs.loading import ModelOptions, build_translator\n"
        f"t = build_translator(ModelOptions(model={str(tiny_cyclegan)!r}, device='cpu'))\n"
        "out = t.translate_frames(np.zeros((1, 40, 48, 3), np.uint8))\n"
        "assert out.shape == (1, 40, 48, 3)\n"
        "print(sorted(m for m in ('diffusers', 'peft', 'transformers', 'scipy') if m in sys.modules))\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("shapes", ["tiny", "sd-turbo"])
def test_merged_model_is_one_graph(shapes):
    """What the Translator compiles: no graph break, no host sync (fullgraph), both directions and the noise input,
    on the tiny shapes and the full SD-Turbo ones (random weights; tracing needs shapes, not trained values)."""
    from turbo_cli.engine import tiny

    unet, vae = (tiny.TINY_UNET, tiny.TINY_VAE) if shapes == "tiny" else (tiny.SD_TURBO_UNET, tiny.SD_TURBO_VAE)
    with torch.device("meta"):
        model = sd.MergedGenerator(dict(unet), dict(vae), alpha_bar=0.0047, r=0.4, directions=["a2b", "b2a"])
    model = model.to_empty(device="cpu").eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.02, 0.02, generator=gen)
    x = torch.rand(1, 3, 64, 72, generator=gen) * 2 - 1
    emb = torch.randn(1, 77, unet["cross_attention_dim"], generator=gen)
    noise = torch.randn(1, 4, 8, 9, generator=gen)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager", dynamic=False)  # raises on any graph break
    with torch.inference_mode():
        for direction in ("a2b", "b2a"):
            torch.testing.assert_close(compiled(x, emb, direction=direction, noise=noise),
                                       model(x, emb, direction=direction, noise=noise))
    torch._dynamo.reset()


def test_a_corrupt_base_weights_file_is_one_line(tiny_base, tiny_cyclegan, tmp_path):
    base = shutil.copytree(tiny_base, tmp_path / "base")
    weights = base / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a download cut short
    with pytest.raises(ModelError, match=rf"^{weights}: cannot load the base model: "):
        load_inference_model(str(tiny_cyclegan), str(base))
