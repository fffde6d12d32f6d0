"""benchmarks/fake_memory.py (memory.py --fake): peak memory computed on the CPU under FakeTensorMode. On the tiny
shapes: it runs turbo's real objective end to end, and its live-bytes accounting adds up."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fm():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_fake_memory", ROOT / "benchmarks" / "fake_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_live_bytes_counts_storages_once_and_frees(fm):
    tracker = fm.LiveBytes()
    with tracker:
        a = torch.ones(256, 256)  # 256 KiB
        view = a[:10]  # same storage: not counted again
        b = a * 2  # another 256 KiB
        del b
        c = torch.zeros(128, dtype=torch.float64)
    assert tracker.peak == 2 * 256 * 256 * 4
    assert tracker.total == 256 * 256 * 4 + 128 * 8
    del a, view, c
    assert tracker.total == 0


def test_fake_train_step_and_inference_tiny(fm, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    row = fm.train_step(32, bf16=True, gradient_checkpointing=True, tiny=True)
    parts = row["at_peak_gib"]
    assert row["peak_gib"] == pytest.approx(sum(parts.values()), rel=1e-6)
    assert parts["frozen weights"] > 0 and parts["trained weights"] > 0
    assert row["peak_phase"] in fm.PHASES
    assert row["generator_trained_params_m"] > 0 and row["disc_head_params_m"] > 0
    # AdamW's two moments per trained parameter, made in the step (all fp32): 2 x 4 bytes each
    n_trained = (row["generator_trained_params_m"] + row["disc_head_params_m"]) * 1e6
    if parts["optimizer state"] > 0:
        assert parts["optimizer state"] * 2**30 <= 8 * n_trained * 1.01
    inf = fm.inference(64, 64, 2, tiny=True)
    assert inf["peak_gib"] > inf["at_peak_gib"]["frozen weights"] > 0
    assert inf["at_peak_gib"]["gradients"] == 0 and inf["at_peak_gib"]["optimizer state"] == 0
