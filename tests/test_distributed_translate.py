"""`turbo translate` over several processes with accelerate (gloo on CPU): each input exactly once, same pixels,
and a run killed mid-way resumes with a different number of processes, leaving no partial file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _images(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = folder / ("odd" if i % 3 == 0 else "even")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(sub / f"{i:03d}.png")


def _turbo(*args) -> list[str]:
    return [sys.executable, "-m", "turbo_cli", "translate", *map(str, args)]


def _outputs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def test_two_processes_match_one(tmp_path, tiny_cyclegan):
    src = tmp_path / "in"
    _images(src, 10)
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["--model", tiny_cyclegan, "--batch-size", "1", "--device", "cpu"]
    subprocess.run(_turbo(src, one, *common), env=ENV, check=True, capture_output=True)
    done = subprocess.run(_turbo(src, two, *common, "--num-processes", "2"), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = _outputs(one), _outputs(two)
    assert len(a) == 10 and sorted(a) == sorted(b)
    for rel in a:  # every output exactly once and pixel-identical to the single-process run
        assert np.array_equal(np.asarray(Image.open(one / rel)), np.asarray(Image.open(two / rel))), rel
    # Rank 0's merged summary: two processes really ran and their totals add up.
    summary = done.stderr.replace("│", "|")
    assert re.search(r"processes\s*\|\s*2", summary), summary[-1500:]
    assert re.search(r"translated\s*\|\s*10", summary), summary[-1500:]


def test_killed_rank_then_resume_with_one_process(tmp_path, tiny_cyclegan):
    src, out = tmp_path / "in", tmp_path / "out"
    _images(src, 60)
    # --multi_gpu goes through torchrun: two real processes; with no visible GPU they run on the CPU (gloo).
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--multi_gpu",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "turbo_cli", "translate", str(src), str(out), "--model", str(tiny_cyclegan),
               "--batch-size", "1", "--device", "cpu"]
    launcher = subprocess.Popen(command, env={**ENV, "CUDA_VISIBLE_DEVICES": ""}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and len(list(out.rglob("*.png"))) < 4:
            time.sleep(0.2)
        ranks = [pid for child in _children(launcher.pid) for pid in [child, *_children(child)]]
        ranks = [pid for pid in ranks if "turbo_cli" in Path(f"/proc/{pid}/cmdline").read_text(errors="ignore")]
        assert len(ranks) >= 2, "expected two rank processes"
        os.kill(ranks[0], signal.SIGKILL)  # one process dies mid-run
        launcher.wait(timeout=120)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    partial = len(list(out.rglob("*.png")))
    assert 0 < partial < 60
    result = subprocess.run(_turbo(src, out, "--model", tiny_cyclegan, "--batch-size", "1", "--device", "cpu"),
                            env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) == 60 and not [p for p in files if p.name.startswith(".") or p.suffix == ".tmp"]
    for p in files:  # every file is a complete, decodable image
        assert np.asarray(Image.open(p)).shape == (32, 32, 3)


def test_folder_of_videos_over_two_processes(tmp_path, tiny_cyclegan):
    """A whole video per process; every video once; a re-run skips what exists."""
    from tests._video_helpers import make_video
    from turbo_cli.io.video import probe

    src, out = tmp_path / "videos", tmp_path / "out"
    (src / "b").mkdir(parents=True)
    names = ["a.mp4", "b/c.mp4", "d.mp4"]
    for i, name in enumerate(names):
        make_video(src / name, frames=4 + i, size=(32, 32))
    command = [sys.executable, "-m", "turbo_cli", "video", str(src), str(out), "--model", str(tiny_cyclegan),
               "--device", "cpu", "--num-processes", "2"]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    for i, name in enumerate(names):
        assert probe(out / name).frames == 4 + i
    stamps = {n: (out / n).stat().st_mtime_ns for n in names}
    again = subprocess.run(command, env=ENV, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert {n: (out / n).stat().st_mtime_ns for n in names} == stamps  # resumed: nothing redone
