"""One command for a GPU machine: turbo's GPU figures in under 5 minutes, no downloads (random full-size weights).

    python benchmarks/gpu.py                 # or: sh benchmarks/gpu.sh ; JSON in benchmarks/results/gpu.json
    python benchmarks/gpu.py --dry-run       # CPU, tiny model, tiny sizes, a few iterations (proves it starts)

Sections, in this order (each one's failure is recorded in the JSON and the exit code, the rest still run):
1. system: card, memory, driver, torch, CUDA, cuDNN, diffusers, peft, transformers.
2. translate: images/s at 512x512 through `Translator.translate_prepared` (uint8 in, uint8 out: the host copies
   included, the resize not), fp32 and bf16 at batch 1/4/8/16, peak memory per row; warm-up (compile, autotune,
   CUDA graph capture) excluded and reported apart.
3. compiled, batch 8: bf16 + `torch.compile`, and + CUDA graphs (`compile_mode="reduce-overhead"`).
4. train: one unpaired CycleGAN-turbo step at 256x256 (benchmarks/memory.py's `measure`: the real Trainer), bf16,
   gradient checkpointing off and on: seconds per step (the second step) and peak memory.
5. video: `turbo video` end to end vs the model alone on a 90-frame 1080p clip (benchmarks/video.py's pieces),
   bf16, not compiled.
6. compiled, batch 16, 4, 1: while the time budget (--budget-s) allows; rows left out are listed as skipped.
The dry run traces the compiled rows with the "eager" backend (inductor would take minutes on a CPU).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

GOAL_IMAGES_PER_S = 60  # at 512x512 on an H100 (issue 13); the original: ~9 on an A100, one image per call


def system_info(device: str) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "device": device, "cpu": platform.processor() or platform.machine(), "cpu_threads": torch.get_num_threads()}
    for pkg in ("diffusers", "peft", "transformers", "accelerate", "av", "numpy"):
        try:
            info[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            info[pkg] = None
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=props.total_memory / 2**30,
                    capability=f"{props.major}.{props.minor}",
                    bf16_supported=torch.cuda.is_bf16_supported())
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20).stdout.strip()
            info["driver"] = out.splitlines()[0] if out else None
        except (OSError, subprocess.SubprocessError):
            info["driver"] = None
    return info


def build_model(work: Path, full_size: bool) -> Path:
    from turbo_cli.engine.tiny import build_tiny_base, make_random_checkpoint

    ckpt = work / "model.safetensors"
    if not ckpt.exists():
        base = build_tiny_base(work / "base", full_size=full_size)
        make_random_checkpoint(base, ckpt, "cyclegan", rank_unet=128 if full_size else 4)
    return ckpt


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


_TRANSLATORS: dict = {}


def _translator(ckpt: Path, device: str, dtype: str, compiled: bool, compile_mode: str | None, merged: bool = True):
    """One Translator per variant (loading a full-size model takes seconds); the batch size is set per row."""
    from turbo_cli.jobs.loading import ModelOptions, build_translator

    key = (str(ckpt), device, dtype, compiled, compile_mode, merged)
    if key not in _TRANSLATORS:
        _TRANSLATORS.clear()  # one model on the card at a time
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        _TRANSLATORS[key] = build_translator(ModelOptions(model=str(ckpt), device=device, dtype=dtype,
                                                          compile=compiled, compile_mode=compile_mode,
                                                          merged=merged))
    return _TRANSLATORS[key]


def translate_row(ckpt: Path, device: str, dtype: str, batch: int, size: int, compile_mode: str | None,
                  compiled: bool, min_iters: int, min_seconds: float, merged: bool = True) -> dict:
    cuda = device.startswith("cuda")
    translator = _translator(ckpt, device, dtype, compiled, compile_mode, merged)
    translator.fixed_batch_size = batch  # what --batch-size sets (a compiled run pads to it)
    frames = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(2):  # warm-up: compilation of this shape, CUDA graph capture, cuDNN autotune
        translator.translate_prepared(frames)
    _sync(device)
    warm = time.perf_counter() - start
    iters, start = 0, time.perf_counter()
    while iters < min_iters or time.perf_counter() - start < min_seconds:
        translator.translate_prepared(frames)
        iters += 1
    _sync(device)
    sec = time.perf_counter() - start
    graphs = compile_mode == "reduce-overhead"
    variant = dtype + (" + compile" if compiled else "") + (" + CUDA graphs" if graphs else "") + \
        ("" if merged else ", adapters unmerged (peft)")
    return dict(variant=variant, batch=batch, size=f"{size}x{size}", images_per_s=iters * batch / sec,
                ms_per_batch=sec / iters * 1e3, iterations=iters, warmup_s=warm,
                peak_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None)


def _release() -> None:
    _TRANSLATORS.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def train_rows(device: str, tiny: bool, size: int) -> list[dict]:
    from memory import measure

    rows = []
    for gc in (False, True):
        r = measure(size=size, mixed_precision="bf16", gradient_checkpointing=gc, tiny=tiny, device=device, steps=2)
        rows.append(dict(size=f"{size}x{size}", mixed_precision="bf16", gradient_checkpointing=gc,
                         sec_per_step=r["steps"][-1]["sec"], first_step_sec=r["steps"][0]["sec"],
                         peak_gib=r["peak_gib"], weights_gib=r["weights_gib"], rank_unet=r["rank_unet"]))
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return rows


def video_row(ckpt: Path, device: str, dtype: str, work: Path, size: tuple[int, int], frames: int) -> dict:
    from video import batch_for, make_clip, model_only

    from turbo_cli.io.video import iter_rgb
    from turbo_cli.io.video_writer import EncodeSettings
    from turbo_cli.jobs.loading import ModelOptions, build_translator
    from turbo_cli.jobs.video import fit_codec_threads
    from turbo_cli.jobs.video_pipeline import VideoJobOptions, translate_video

    w, h = size
    clip = make_clip(work / f"clip_{w}x{h}.mp4", frames, (w, h))
    decoded = list(iter_rgb(clip))
    translator = build_translator(ModelOptions(model=str(ckpt), device=device, dtype=dtype, compile=False))
    batch = batch_for(translator, (w, h))
    translator.translate_frames(np.stack(decoded[:batch]))  # warm-up
    _sync(device)
    job = VideoJobOptions(encode=EncodeSettings(), batch_size=batch, overwrite=True)
    fit_codec_threads(job, translator)  # what `turbo video` does
    result = translate_video(clip, work / "out.mp4", translator, job)
    model_s = model_only(translator, decoded, batch)
    n = len(decoded)
    return dict(size=f"{w}x{h}", frames=n, batch=batch, dtype=dtype, model_size="x".join(
        map(str, translator.model_size(h, w)[::-1])), e2e_fps=n / result.wall_s, model_fps=n / model_s,
        ratio=result.wall_s / model_s, frames_out=result.frames_out)


def main(argv: list[str] | None = None) -> int:
    from turbo_cli.atomic import write_text

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny model, tiny sizes, a few iterations")
    ap.add_argument("--budget-s", type=float, default=270, help="stop starting compiled rows after this (seconds)")
    ap.add_argument("--work", type=Path, default=None, help="keep the random model here (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None, help="default: benchmarks/results/gpu[_dryrun].json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    dry = args.dry_run
    device = "cpu" if dry else "cuda"
    if not dry and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU machine, or use --dry-run", file=sys.stderr)
        return 2
    size, batches = (64, [1, 2]) if dry else (512, [1, 4, 8, 16])
    first_compiled, more_compiled = ([2], []) if dry else ([8], [16, 4, 1])
    min_iters, min_seconds = (1, 0.0) if dry else (5, 3.0)
    work = args.work or Path(tempfile.mkdtemp(prefix="turbo-gpu-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    out = dict(dry_run=dry, goal_images_per_s_512=GOAL_IMAGES_PER_S, errors={}, skipped=[], section_s={})
    out["system"] = system_info(device)

    def section(name, fn):
        start = time.perf_counter()
        try:
            result = fn()
            if result is not None:
                out[name] = result
        except Exception as e:  # noqa: BLE001 - one broken section must not lose the others' figures
            out["errors"][name] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        out["section_s"][name] = time.perf_counter() - start
        print(f"[{time.perf_counter() - t0:6.1f}s] {name} done in {out['section_s'][name]:.1f}s", flush=True)

    section("model", lambda: str(build_model(work, full_size=not dry)))
    ckpt = Path(out.get("model", work / "model.safetensors"))
    rows: list[dict] = []
    out["translate"] = rows

    def eager_rows():
        for dtype in ("fp32", "bf16"):
            for b in batches:
                rows.append(translate_row(ckpt, device, dtype, b, size, None, False, min_iters, min_seconds))
        _release()
        # what merging the adapters into the weights gives (engine/merge.py): the same row with peft's adapters
        b = 8 if 8 in batches else batches[0]
        rows.append(translate_row(ckpt, device, "bf16", b, size, None, False, min_iters, min_seconds, merged=False))
        _release()

    section("translate", eager_rows)

    def compiled_rows(batches_):
        compile_fn = torch.compile
        if dry:  # tracing only (backend "eager"): the CPU would take minutes to compile with inductor
            torch.compile = lambda model, **kw: compile_fn(model, backend="eager", fullgraph=kw.get("fullgraph"),
                                                           dynamic=kw.get("dynamic"))
        try:
            for mode in (None, "reduce-overhead"):
                for b in batches_:
                    if time.perf_counter() - t0 > args.budget_s:
                        out["skipped"].append(f"bf16 + compile{' + CUDA graphs' if mode else ''}, batch {b}: "
                                              f"time budget ({args.budget_s:.0f} s) spent")
                        continue
                    rows.append(translate_row(ckpt, device, "bf16", b, size, mode, True, min_iters, min_seconds))
        finally:
            torch.compile = compile_fn
            _release()

    # the figure the goal is about first (bf16 + compile at batch 8), then the rest, then more compiled batches
    section("translate_compiled", lambda: compiled_rows(first_compiled))
    section("train", lambda: train_rows(device, dry, 32 if dry else 256))
    section("video", lambda: video_row(ckpt, device, "bf16", work, (64, 48) if dry else (1920, 1080),
                                       6 if dry else 90))
    if more_compiled:
        section("translate_compiled_more", lambda: compiled_rows(more_compiled))
    out["total_s"] = time.perf_counter() - t0
    print_tables(out)
    dest = args.json or HERE / "results" / ("gpu_dryrun.json" if dry else "gpu.json")
    write_text(dest, json.dumps(out, indent=2, default=str) + "\n")
    print(f"wrote {dest}")
    return 1 if out["errors"] else 0


def print_tables(out: dict) -> None:
    s = out["system"]
    print(f"\nturbo GPU benchmark{' (DRY RUN: CPU, tiny model)' if out['dry_run'] else ''} — "
          f"{s.get('gpu', s['cpu'])}, driver {s.get('driver')}, torch {s['torch']}, CUDA {s['cuda']}, "
          f"diffusers {s['diffusers']}, total {out['total_s']:.0f} s")
    print(f"\n{'variant':32} {'batch':>5} {'images/s':>9} {'ms/batch':>9} {'warm-up s':>9} {'peak GiB':>9}")
    for r in sorted(out.get("translate", []), key=lambda r: (r["variant"], r["batch"])):
        peak = f"{r['peak_gib']:9.2f}" if r["peak_gib"] is not None else f"{'n/a':>9}"
        print(f"{r['variant']:32} {r['batch']:>5} {r['images_per_s']:9.2f} {r['ms_per_batch']:9.1f} "
              f"{r['warmup_s']:9.1f} {peak}")
    for r in out.get("train") or []:
        peak = f"{r['peak_gib']:.2f} GiB" if r["peak_gib"] is not None else "n/a"
        print(f"train step {r['size']} bf16, grad ckpt {'on' if r['gradient_checkpointing'] else 'off'}: "
              f"{r['sec_per_step']:.2f} s/step, peak {peak}")
    v = out.get("video")
    if v:
        print(f"video {v['size']} ({v['frames']} frames, model at {v['model_size']}, batch {v['batch']}): "
              f"end to end {v['e2e_fps']:.1f} f/s, model only {v['model_fps']:.1f} f/s, ratio {v['ratio']:.2f}x")
    for line in out["skipped"]:
        print(f"skipped: {line}")
    for name, err in out["errors"].items():
        print(f"ERROR in {name}: {err}")


if __name__ == "__main__":
    sys.exit(main())
