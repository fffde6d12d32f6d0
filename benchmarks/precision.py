"""Benchmark: the accuracy budget of half precision on the FULL SD-Turbo shapes (random weights), in 8-bit levels.

The same frames through `Translator` (the merged inference model, what `turbo translate` runs) in fp32, bf16 and
fp16; each half-precision output is compared with fp32's: max and mean |difference| in levels (0-255) per image,
and how many pixels move by more than 2 and 8 levels. Runs anywhere; on a CPU fp16 has no fast kernels (on this
2-core machine the full shapes took over 9 minutes per 128x128 image: measure it at 64x64 there, or on a GPU).

    python benchmarks/precision.py                 # CycleGAN-turbo (rank-128 adapters), 4 street scenes 256x256
    python benchmarks/precision.py --size 512 --device cuda
    python benchmarks/precision.py --tiny          # the tiny shapes, seconds (a smoke test)

A random model is a harsh test: no training has made it smooth, so it amplifies rounding more than a trained one
does. Prints a table and writes JSON (benchmarks/results/precision*.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from turbo_cli.atomic import write_text  # noqa: E402
from turbo_cli.engine.tiny import build_tiny_base, make_random_checkpoint  # noqa: E402
from turbo_cli.io.synth import render_scene  # noqa: E402
from turbo_cli.jobs.loading import ModelOptions, build_translator  # noqa: E402

DTYPES = ("fp32", "bf16", "fp16")


def measure(work: Path, size: int, images: int, device: str, tiny: bool, dtypes: tuple[str, ...] = DTYPES) -> dict:
    base = build_tiny_base(work / "base", full_size=not tiny, text_layers=None if tiny else 1)
    checkpoint = make_random_checkpoint(base, work / "model.safetensors", "cyclegan",
                                        rank_unet=4 if tiny else 128, lora_std=0.05 if tiny else 0.01)
    rng = np.random.default_rng(0)
    frames = np.stack([render_scene(rng, size, night=False) for _ in range(images)])
    outputs, seconds = {}, {}
    for dtype in ("fp32", *[d for d in dtypes if d != "fp32"]):
        translator = build_translator(ModelOptions(model=str(checkpoint), device=device, dtype=dtype, compile=False,
                                                   image_prep="no_resize", batch_size=1))
        start = time.perf_counter()
        outputs[dtype] = np.concatenate([translator.translate_frames(f[None]) for f in frames])
        seconds[dtype] = (time.perf_counter() - start) / images
        print(f"{dtype}: {seconds[dtype]:.1f} s/image", flush=True)
        del translator
    rows = []
    for dtype in [d for d in outputs if d != "fp32"]:
        diff = np.abs(outputs[dtype].astype(int) - outputs["fp32"].astype(int))
        per_image = diff.reshape(images, -1)
        rows.append(dict(dtype=dtype, max_levels=int(diff.max()), mean_levels=float(diff.mean()),
                         worst_image_mean=float(per_image.mean(1).max()),
                         over_2_levels=float((diff > 2).mean()), over_8_levels=float((diff > 8).mean()),
                         sec_per_image=seconds[dtype]))
    return dict(fp32_sec_per_image=seconds["fp32"], fp32_output_std=float(outputs["fp32"].std()), rows=rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="the tiny shapes instead of SD-Turbo's (a smoke test)")
    ap.add_argument("--dtypes", default="bf16,fp16", help="compared with fp32 (fp16 is very slow on a CPU)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="turbo-precision-") as tmp:
        result = measure(Path(tmp), args.size, args.images, args.device, args.tiny, tuple(args.dtypes.split(",")))
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    result.update(device=device, torch=torch.__version__, size=args.size, images=args.images,
                  shapes="tiny" if args.tiny else "SD-Turbo (random weights)", model="CycleGAN-turbo a2b, merged",
                  date=time.strftime("%Y-%m-%d"))
    print(f"\nhalf precision vs fp32 — {result['shapes']}, {args.images} images {args.size}x{args.size}, "
          f"{device}, torch {torch.__version__} (fp32: {result['fp32_sec_per_image']:.2f} s/image, output std "
          f"{result['fp32_output_std']:.1f} levels)")
    print(f"{'dtype':6} {'max':>5} {'mean':>7} {'worst image mean':>17} {'> 2 levels':>11} {'> 8 levels':>11} "
          f"{'s/image':>8}")
    for r in result["rows"]:
        print(f"{r['dtype']:6} {r['max_levels']:5d} {r['mean_levels']:7.3f} {r['worst_image_mean']:17.3f} "
              f"{r['over_2_levels']:10.2%} {r['over_8_levels']:10.2%} {r['sec_per_image']:8.2f}")
    dest = args.out / ("precision_tiny.json" if args.tiny else f"precision_{args.size}.json")
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(dest, json.dumps(result, indent=2) + "\n")
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
