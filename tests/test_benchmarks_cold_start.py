"""benchmarks/cold_start.py's dry run: every section runs as whole processes on the bundled demo model, the JSON
holds positive numbers, the original loop translates every image at its input's size, and the table is printed.
Speed itself is not asserted here (the machine may be shared)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_cold_start_dry_run(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cold_start.py"), "--dry-run", "--out",
                           str(tmp_path), "--work", str(tmp_path / "work")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads((tmp_path / "cold_start_dry_run.json").read_text())

    assert out["dry_run"] is True and out["system"]["cores"] > 0 and out["system"]["torch"]
    assert Path(out["variants"]["current"]["turbo_cli"]).is_relative_to(ROOT)  # the checkout under test, no other copy
    assert out["first_image"]["current"]["best_s"] > 0
    imports = out["imports"]["current"]
    assert imports["total_s"] > 0 and imports["modules"] > 0
    assert len(imports["top"]) == 10 and all(r["self_s"] > 0 for r in imports["top"])
    assert imports["top"][0]["self_s"] >= imports["top"][-1]["self_s"]
    assert {"turbo --help", "turbo translate --help"} == set(out["help"]["current"])
    assert all(h["best_s"] > 0 for h in out["help"]["current"].values())
    for variant in ("original", "current"):
        t = out["throughput"][variant]
        assert t["best_images_per_s"] > 0 and t["median_images_per_s"] > 0
        outputs = sorted(Path(t["out_dir"]).glob("*.png"))
        assert len(outputs) == out["images"] == 10
        assert all(Image.open(p).size == (out["size"], out["size"]) for p in outputs)
    assert out["throughput"]["current"]["vs_original"] > 0 and out["goals"]["throughput"]["ratio"] > 0

    assert "| first image, whole process (s) |" in done.stdout
    assert "| original loop (benchmarks/original_loop.py) |" in done.stdout
    assert "| turbo translate, current" in done.stdout
