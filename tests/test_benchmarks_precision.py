"""benchmarks/precision.py on the tiny shapes: the accuracy-budget table runs end to end and measures something
real (fp16, with 3 more mantissa bits than bf16, lands closer to fp32). The full-size figures are in
docs/benchmarks.md."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def test_precision_benchmark_on_tiny_shapes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = importlib.util.spec_from_file_location("bench_precision", ROOT / "benchmarks" / "precision.py")
    precision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(precision)
    assert precision.main(["--tiny", "--size", "64", "--images", "2", "--device", "cpu", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "precision_tiny.json").read_text())
    rows = {r["dtype"]: r for r in result["rows"]}
    assert set(rows) == {"bf16", "fp16"} and result["fp32_output_std"] > 5
    assert 0 < rows["fp16"]["mean_levels"] < rows["bf16"]["mean_levels"] < 10
    assert rows["bf16"]["max_levels"] >= rows["bf16"]["mean_levels"]
    assert "half precision vs fp32" in capsys.readouterr().out
