"""benchmarks/gpu.py's CPU dry run: the one-command GPU benchmark starts, runs every section on a tiny model and
writes its JSON (so the first GPU machine gives numbers, not a traceback). Speed itself is not asserted here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_gpu_benchmark_dry_run(tmp_path):
    gpu = _load("gpu")
    dest = tmp_path / "gpu.json"
    rc = gpu.main(["--dry-run", "--work", str(tmp_path / "work"), "--json", str(dest)])
    out = json.loads(dest.read_text())
    assert out["errors"] == {} and rc == 0, out["errors"]
    assert out["dry_run"] is True and out["system"]["torch"] and out["system"]["diffusers"]
    variants = {(r["variant"], r["batch"]) for r in out["translate"]}
    assert {("fp32", 1), ("fp32", 2), ("bf16", 1), ("bf16", 2), ("bf16, adapters unmerged (peft)", 1)} <= variants
    # the compiled rows went through the Translator's torch.compile path (traced with the eager backend here)
    assert {("bf16 + compile", 2), ("bf16 + compile + CUDA graphs", 2)} <= variants
    assert all(r["images_per_s"] > 0 for r in out["translate"])
    assert [r["gradient_checkpointing"] for r in out["train"]] == [False, True]
    assert all(r["sec_per_step"] > 0 for r in out["train"])
    v = out["video"]
    assert v["frames_out"] == v["frames"] == 6 and v["e2e_fps"] > 0 and v["model_fps"] > 0


def test_gpu_benchmark_refuses_without_cuda_unless_dry(capsys):
    gpu = _load("gpu")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert gpu.main([]) == 2
    assert "--dry-run" in capsys.readouterr().err
