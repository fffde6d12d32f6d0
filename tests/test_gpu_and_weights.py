"""What only a GPU machine or the real weights can check; skipped with the reason elsewhere (conftest.py).

Run on a GPU machine with `pytest -m gpu`; with SD-Turbo and day2night.pkl in the caches, `pytest -m weights`.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from turbo_cli.jobs.loading import ModelOptions, build_translator


def _scene(seed: int, w: int, h: int) -> np.ndarray:
    from turbo_cli.io import synth

    return synth.render_scene(np.random.default_rng(seed), max(w, h), night=False)[:h, :w]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype, compile", [("fp32", False), ("bf16", False), ("bf16", True)])
def test_cuda_matches_the_cpu(tiny_cyclegan, dtype, compile):
    """The CUDA path (bf16, channels_last, torch.compile) gives the CPU fp32 result within a precision budget."""
    frames = np.stack([_scene(i, 64, 64) for i in range(4)])
    cpu = build_translator(ModelOptions(model=str(tiny_cyclegan), device="cpu")).translate_frames(frames)
    gpu = build_translator(ModelOptions(model=str(tiny_cyclegan), device="cuda", dtype=dtype,
                                        compile=compile)).translate_frames(frames)
    diff = np.abs(cpu.astype(int) - gpu.astype(int))
    budget = (2, 0.5) if dtype == "fp32" else (40, 4.0)  # max, mean levels (the tiny random model amplifies)
    assert diff.max() <= budget[0] and diff.mean() <= budget[1], (diff.max(), diff.mean())


@pytest.mark.weights
def test_day_to_night_on_the_real_weights(tmp_path):
    """The published day_to_night on SD-Turbo: a daylight scene comes out darker, at the input's size."""
    day = _scene(0, 320, 200)
    translator = build_translator(ModelOptions(direction="night"))
    night = translator.translate_frames(day[None])[0]
    assert night.shape == day.shape
    assert night.mean() < 0.8 * day.mean()
    Image.fromarray(night).save(tmp_path / "night.png")


@pytest.mark.gpu
def test_seeded_noise_is_the_originals_on_cuda(tiny_sketch):
    """The original: `torch.manual_seed(seed); torch.randn((1, 4, H/8, W/8), device="cuda")`."""
    import torch

    translator = build_translator(ModelOptions(model=str(tiny_sketch), device="cuda", dtype="fp32", seed=2024))
    ours = translator._noise(3, 64, 96)
    torch.manual_seed(2024)
    original = torch.randn((1, 4, 8, 12), device="cuda")
    assert ours.device.type == "cuda" and ours.shape == (3, 4, 8, 12)
    assert torch.equal(ours[0:1], original) and torch.equal(ours[2:3], original)
