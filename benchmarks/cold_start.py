"""Benchmark: cold start. Every number is a WHOLE process (`subprocess.run`, wall clock around it), as a user
running the CLI pays it: interpreter start, imports, model load, the work, exit.

    python benchmarks/cold_start.py                           # this checkout, 600 images at 64x64, best of 3
    python benchmarks/cold_start.py --baseline /tmp/old       # and an older checkout, side by side in one run
                                                              # (git -C . worktree add /tmp/old <rev>)
    python benchmarks/cold_start.py --dry-run --out DIR       # 1 repeat, 10 images, no warm-up (a smoke test)

Measured, each best and median of --repeats (variants interleaved, so a change in the machine's load hits all):
  1. time to first image: `python -m turbo_cli translate IN OUT --model demo` on ONE image;
  2. `python -X importtime` of that same command: import seconds in total and the 10 costliest packages;
  3. `python -m turbo_cli --help` and `python -m turbo_cli translate --help`;
  4. N images: benchmarks/original_loop.py (the original's inference script looped in one process) vs
     `turbo translate` on the same folder, images/s whole process (N / wall).
Goals (issue 13): the first image in under a third of the baseline's time; turbo translate >= 3x the original loop.

Every run gets a fresh output folder, HF_HUB_OFFLINE=1 and one TURBO_CACHE shared by the whole benchmark: one
untimed warm-up run per variant first fills the prompt-embedding cache (and writes .pyc files), so the timed runs
see what a user's second run sees. Subprocesses run in the work folder with PYTHONPATH set to the checkout under
test, so the editable install cannot swap in another copy (each variant's imported turbo_cli is checked). Every
turbo command passes --image-prep (default: no_resize, so the tiny model runs at the images' 64x64 as the issue's
figures do; the demo's own is resize_128x128), so an older revision with another demo default does the same work
as the current one and the original loop.
Prints a table and writes JSON (benchmarks/results/cold_start.json; cold_start_dry_run.json for --dry-run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from turbo_cli.engine.registry import DEMO_IMAGE_PREP  # noqa: E402  (light: no torch)

ORIGINAL_LOOP = Path(__file__).resolve().parent / "original_loop.py"
FIRST_IMAGE_GOAL = 3.0  # baseline time / current time
THROUGHPUT_GOAL = 3.0  # turbo translate images/s / original loop images/s
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (.+)$")


def make_images(folder: Path, n: int, size: int, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return folder


class Runner:
    """Runs commands as whole processes in the work folder, with the benchmark's environment."""

    def __init__(self, work: Path, cache: Path):
        self.work, self.cache = work, cache
        self.outputs = 0

    def env(self, pythonpath: Path) -> dict:
        return dict(os.environ, HF_HUB_OFFLINE="1", TURBO_CACHE=str(self.cache), PYTHONPATH=str(pythonpath))

    def run(self, args: list[str], pythonpath: Path) -> tuple[float, subprocess.CompletedProcess]:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, *args], cwd=self.work, env=self.env(pythonpath), capture_output=True,
                              text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"failed ({done.returncode}): {' '.join(args)}\n{done.stderr[-3000:]}")
        return wall, done

    def fresh_out(self, label: str) -> Path:
        """A new output folder per run: nothing is skipped as already translated."""
        self.outputs += 1
        return self.work / "out" / f"{self.outputs:03d}-{label}"


def stats(runs: list[float]) -> dict:
    return dict(runs_s=runs, best_s=min(runs), median_s=statistics.median(runs))


def import_profile(stderr: str, top: int = 10) -> dict:
    """Sum of `-X importtime` self times: in total, per top-level package, and the costliest `top` packages."""
    per_package: dict[str, float] = {}
    modules = 0
    for line in stderr.splitlines():
        if m := IMPORT_LINE.match(line):
            package = m.group(3).strip().split(".")[0]
            per_package[package] = per_package.get(package, 0.0) + int(m.group(1)) / 1e6
            modules += 1
    ranked = sorted(per_package.items(), key=lambda kv: -kv[1])
    return dict(total_s=sum(per_package.values()), modules=modules,
                top=[dict(package=k, self_s=v) for k, v in ranked[:top]], by_package=dict(ranked))


def git_rev(root: Path) -> str:
    """Short revision of a checkout, '+' when its tracked files have changes (others may be editing this one)."""
    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    return rev + ("+" if git("status", "--porcelain", "--untracked-files=no") else "")


def system_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return dict(cpu=cpu, cores=os.cpu_count(), python=platform.python_version(), torch=version("torch"),
                date=datetime.now(timezone.utc).isoformat(timespec="seconds"), load_avg_start=os.getloadavg(),
                omp_num_threads=os.environ.get("OMP_NUM_THREADS"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=600, help="images for the throughput comparison")
    ap.add_argument("--size", type=int, default=64, help="input images are SIZE x SIZE")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--image-prep", default="no_resize",
                    help=f"passed to every turbo command and the original loop (the demo's own: {DEMO_IMAGE_PREP})")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a checkout of an older revision, run with the same venv and measured alongside")
    ap.add_argument("--work", type=Path, default=None, help="work folder, kept (default: a temporary one, removed)")
    ap.add_argument("--dry-run", action="store_true", help="1 repeat, 10 images, no warm-up: quick, numbers rough")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    if args.dry_run:
        args.repeats, args.images = 1, min(args.images, 10)

    work = args.work or Path(tempfile.mkdtemp(prefix="turbo-bench-cold-"))
    work.mkdir(parents=True, exist_ok=True)
    runner = Runner(work, Path(tempfile.mkdtemp(prefix="cache-", dir=work)))
    one = make_images(work / "one", 1, args.size)
    many = make_images(work / "many", args.images, args.size)
    system = system_info()

    variants = {"current": ROOT}
    if args.baseline is not None:
        variants["baseline"] = args.baseline.resolve()
    info = {}
    for name, root in variants.items():
        _, done = runner.run(["-c", "import turbo_cli; print(turbo_cli.__file__)"], root)
        imported = Path(done.stdout.strip()).resolve()
        if not imported.is_relative_to(root):
            raise SystemExit(f"{name}: PYTHONPATH={root} imports turbo_cli from {imported}, not the checkout")
        info[name] = dict(root=str(root), rev=git_rev(root), turbo_cli=str(imported))
    labels = {name: f"{name} ({v['rev']})" for name, v in info.items()}

    def translate(folder: Path, out: Path, importtime: bool = False) -> list[str]:
        flags = ["-X", "importtime"] if importtime else []
        return [*flags, "-m", "turbo_cli", "translate", str(folder), str(out), "--model", "demo", "--image-prep",
                args.image_prep]

    def original(folder: Path, out: Path) -> list[str]:
        return [str(ORIGINAL_LOOP), str(folder), str(out), "--model", "demo", "--image-prep", args.image_prep]

    if not args.dry_run:
        print("warm-up: one untimed run per variant (fills the prompt-embedding cache, writes .pyc files)")
        for name, root in variants.items():
            runner.run(translate(one, runner.fresh_out(name)), root)
        runner.run(original(one, runner.fresh_out("original")), ROOT)

    print(f"time to first image ({args.size}x{args.size}), {args.repeats} repeats")
    first = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, root in variants.items():
            first[name].append(runner.run(translate(one, runner.fresh_out(name)), root)[0])
    first = {name: stats(runs) for name, runs in first.items()}

    print("imports (-X importtime)")
    imports = {}
    for name, root in variants.items():
        wall, done = runner.run(translate(one, runner.fresh_out(name), importtime=True), root)
        imports[name] = dict(import_profile(done.stderr), wall_s=wall)

    print("--help")
    helps = {name: {} for name in variants}
    for command in (["--help"], ["translate", "--help"]):
        key = " ".join(["turbo", *command])
        runs = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, root in variants.items():
                runs[name].append(runner.run(["-m", "turbo_cli", *command], root)[0])
        for name in variants:
            helps[name][key] = stats(runs[name])

    print(f"{args.images} images at {args.size}x{args.size}: original loop vs turbo translate")
    runs = {"original": [], **{name: [] for name in variants}}
    last_out = {}
    for _ in range(args.repeats):
        last_out["original"] = runner.fresh_out("original")
        runs["original"].append(runner.run(original(many, last_out["original"]), ROOT)[0])
        for name, root in variants.items():
            last_out[name] = runner.fresh_out(name)
            runs[name].append(runner.run(translate(many, last_out[name]), root)[0])
    throughput = {}
    for name, times in runs.items():
        s = stats(times)
        throughput[name] = dict(s, best_images_per_s=args.images / s["best_s"],
                                median_images_per_s=args.images / s["median_s"], out_dir=str(last_out[name]))
    for name in variants:
        throughput[name]["vs_original"] = (throughput[name]["best_images_per_s"]
                                           / throughput["original"]["best_images_per_s"])

    system["load_avg_end"] = os.getloadavg()
    goals = dict(throughput=dict(goal=THROUGHPUT_GOAL, ratio=throughput["current"]["vs_original"],
                                 met=throughput["current"]["vs_original"] >= THROUGHPUT_GOAL))
    if "baseline" in variants:
        speedup = first["baseline"]["best_s"] / first["current"]["best_s"]
        goals["first_image"] = dict(goal=FIRST_IMAGE_GOAL, speedup=speedup, met=speedup >= FIRST_IMAGE_GOAL)

    print_tables(args, system, labels, first, imports, helps, throughput, goals)
    result = dict(system=system, dry_run=args.dry_run, warm_up=not args.dry_run, images=args.images, size=args.size,
                  repeats=args.repeats, image_prep=args.image_prep, variants=info, first_image=first,
                  imports=imports, help=helps, throughput=throughput, goals=goals, work=str(work),
                  work_kept=args.work is not None)
    args.out.mkdir(parents=True, exist_ok=True)
    dest = args.out / ("cold_start_dry_run.json" if args.dry_run else "cold_start.json")
    dest.write_text(json.dumps(result, indent=2))
    print(f"wrote {dest}")
    if args.work is None:
        shutil.rmtree(work)
    return 0


def print_tables(args, system, labels, first, imports, helps, throughput, goals) -> None:
    names = list(labels)
    baseline = "baseline" in labels

    def row(what: str, values: dict, key: str, text: str, higher_is_better: bool = False) -> None:
        """One table row: each variant's `text`, then the speedup of current over baseline on `key`."""
        cells = [text.format(**values[n]) for n in names]
        if baseline:
            b, c = values["baseline"][key], values["current"][key]
            cells.append(f"{c / b if higher_is_better else b / c:.2f}x")
        print(f"| {what} | {' | '.join(cells)} |")

    print(f"\ncold start - {system['cpu']}, {system['cores']} cores, torch {system['torch']}, python "
          f"{system['python']}, {system['date']}; load average {system['load_avg_start'][0]:.2f} at start, "
          f"{system['load_avg_end'][0]:.2f} at end")
    print(f"whole processes, best / median of {args.repeats}"
          + ("; no warm-up (dry run)" if args.dry_run else "; after one untimed warm-up run per variant")
          + f"; --image-prep {args.image_prep}")
    print(f"\n| what | {' | '.join(labels[n] for n in names)}{' | speedup' if baseline else ''} |")
    print("|---" * (len(names) + 1 + baseline) + "|")
    row("first image, whole process (s)", first, "best_s", "{best_s:.2f} / {median_s:.2f}")
    row("imports (s, -X importtime, one run)", imports, "total_s", "{total_s:.2f}")
    for key in helps[names[0]]:
        row(f"`{key}` (s)", {n: helps[n][key] for n in names}, "best_s", "{best_s:.2f} / {median_s:.2f}")
    row(f"{args.images} images at {args.size}x{args.size}, turbo translate (images/s)", throughput,
        "best_images_per_s", "{best_images_per_s:.2f} / {median_images_per_s:.2f}", higher_is_better=True)

    print(f"\n| {args.images} images at {args.size}x{args.size}, whole process | images/s (best / median) | "
          f"wall s (best) | vs original loop |")
    print("|---|---|---|---|")
    o = throughput["original"]
    print(f"| original loop (benchmarks/original_loop.py) | {o['best_images_per_s']:.2f} / "
          f"{o['median_images_per_s']:.2f} | {o['best_s']:.1f} | 1.00x |")
    for n in names:
        t = throughput[n]
        print(f"| turbo translate, {labels[n]} | {t['best_images_per_s']:.2f} / {t['median_images_per_s']:.2f} | "
              f"{t['best_s']:.1f} | {t['vs_original']:.2f}x |")

    print(f"\n| top packages by import self-time (s) | {' | '.join(labels[n] for n in names)} |")
    print("|---" * (len(names) + 1) + "|")
    # The union of every variant's top packages: what one revision stopped importing shows as well.
    top = {r["package"] for n in names for r in imports[n]["top"]}
    for p in sorted(top, key=lambda p: -max(imports[n]["by_package"].get(p, 0.0) for n in names)):
        print(f"| {p} | " + " | ".join(f"{imports[n]['by_package'].get(p, 0.0):.2f}" for n in names) + " |")

    t = goals["throughput"]
    print(f"\ngoal: turbo translate >= {t['goal']:.0f}x the original loop: {t['ratio']:.2f}x "
          f"({'met' if t['met'] else 'not met'})")
    if "first_image" in goals:
        f = goals["first_image"]
        print(f"goal: first image >= {f['goal']:.0f}x faster than the baseline: {f['speedup']:.2f}x "
              f"({'met' if f['met'] else 'not met'})")


if __name__ == "__main__":
    sys.exit(main())
