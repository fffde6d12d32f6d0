"""Benchmark: turbo's batched runner vs an original-style loop (one image: load, model at batch 1 fp32, save).

The original-style loop runs the peft model (adapters as separate matmuls, as the original); turbo's runner runs
the merged model (engine/merge.py), and once unmerged to show what merging alone gives.

Both use the same weights and the same generated images, measured side by side in one run.

    python benchmarks/translate.py                 # tiny model on CPU, 200 images at 64x64 and 128x128
    python benchmarks/translate.py --full-size     # SD-Turbo-sized random weights at 512x512 (GPU):
                                                   # fp32 vs bf16 vs bf16+compile, images/s and peak memory
Prints a table and writes JSON (benchmarks/results/translate*.json).
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
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from turbo_cli.engine.tiny import build_tiny_base, make_random_checkpoint  # noqa: E402
from turbo_cli.jobs.translate import translate_folder  # noqa: E402
from turbo_cli.jobs.loading import ModelOptions, build_translator  # noqa: E402


def make_images(folder: Path, n: int, size: int, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")


def original_style(folder: Path, out: Path, checkpoint: Path, device: str) -> float:
    """The original's inference script, per image: open, ToTensor+Normalize, model(batch 1, fp32), ToPILImage, save."""
    import torchvision.transforms.functional as TF

    translator = build_translator(ModelOptions(model=str(checkpoint), device=device, dtype="fp32", compile=False,
                                               batch_size=1, merged=False))  # the original runs peft's adapters
    g, emb = translator.generator, translator.prompt_emb
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(folder.glob("*.png"))
    start = time.perf_counter()
    for p in paths:
        x = TF.normalize(TF.to_tensor(Image.open(p).convert("RGB")), [0.5], [0.5])[None].to(device)
        with torch.no_grad():
            y = g(x, emb, direction="a2b")
        TF.to_pil_image(y[0].cpu() * 0.5 + 0.5).save(out / p.name)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return len(paths) / (time.perf_counter() - start)


def turbo_runner(folder: Path, out: Path, checkpoint: Path, device: str, **options) -> tuple[float, float]:
    translator = build_translator(ModelOptions(model=str(checkpoint), device=device, **options))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        # Warm-up (compilation, cuDNN autotune) is excluded: it is paid once per run, not per image.
        warm = np.zeros((translator.batch_size_for(512, 512), 512, 512, 3), np.uint8)
        translator.translate_frames(warm)
    summary = translate_folder(folder, out, translator, overwrite=True)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    return summary.images_per_second, peak


def resize_costs(device: str, repeats: int = 5) -> list[dict]:
    """The model-size resize of a 1080p frame to 512x512 and back: PIL Lanczos on 8-bit (the original's, and
    turbo's default since it reproduces the original bit for bit) vs the torch bicubic turbo used before."""
    import torch.nn.functional as F

    from turbo_cli.io.frames import lanczos

    rgb = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    rows = []

    def timed(fn) -> float:
        fn()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / repeats * 1e3

    rows.append(dict(variant="PIL Lanczos, CPU thread (default)", ms_per_frame=timed(
        lambda: lanczos(lanczos(rgb, 512, 512), 1080, 1920))))
    for dev in sorted({"cpu", device}):
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().to(dev) / 255

        def bicubic():
            y = F.interpolate(x, size=(512, 512), mode="bicubic", antialias=True)
            return F.interpolate(y, size=(1080, 1920), mode="bicubic", antialias=True)

        rows.append(dict(variant=f"torch bicubic (antialias), {dev}", ms_per_frame=timed(bicubic)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--full-size", action="store_true", help="SD-Turbo-sized random weights at 512x512 (GPU)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="turbo-bench-"))
    base = build_tiny_base(work / "base", full_size=args.full_size)
    checkpoint = make_random_checkpoint(base, work / "model.safetensors", "cyclegan",
                                        rank_unet=128 if args.full_size else 4)
    rows = []
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    sizes = [512] if args.full_size else args.sizes
    for size in sizes:
        src = work / f"in{size}"
        make_images(src, args.images, size)
        if args.full_size:
            base_ips = original_style(src, work / "orig", checkpoint, args.device)
            rows.append(dict(size=size, variant="original-style loop (batch 1, fp32)", images_per_s=base_ips))
            for name, opts in [("turbo fp32", dict(dtype="fp32", compile=False)),
                               ("turbo bf16, adapters unmerged (peft)", dict(dtype="bf16", compile=False, merged=False)),
                               ("turbo bf16", dict(dtype="bf16", compile=False)),
                               ("turbo bf16 + compile", dict(dtype="bf16", compile=True))]:
                ips, peak = turbo_runner(src, work / name.replace(" ", "_"), checkpoint, args.device, **opts)
                rows.append(dict(size=size, variant=name, images_per_s=ips, peak_gib=peak, speedup=ips / base_ips))
        else:
            base_ips = original_style(src, work / "orig", checkpoint, args.device)
            unmerged, _ = turbo_runner(src, work / "turbo_peft", checkpoint, args.device, merged=False)
            ips, _ = turbo_runner(src, work / "turbo", checkpoint, args.device)
            rows.append(dict(size=size, variant="original-style loop (batch 1, fp32)", images_per_s=base_ips))
            rows.append(dict(size=size, variant="turbo runner, adapters unmerged (peft)", images_per_s=unmerged,
                             speedup=unmerged / base_ips))
            rows.append(dict(size=size, variant="turbo runner (defaults: merged)", images_per_s=ips,
                             speedup=ips / base_ips))

    resize = resize_costs(args.device)
    print("\n1080p frame -> 512x512 -> 1080p, ms per frame (one thread for PIL):")
    for r in resize:
        print(f"  {r['variant']:40s} {r['ms_per_frame']:8.1f}")
    print(f"\nturbo translate benchmark — {args.images} images, device: {device_name}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    print(f"{'size':>5}  {'variant':40s} {'images/s':>9} {'speedup':>8} {'peak GiB':>9}")
    for r in rows:
        print(f"{r['size']:>5}  {r['variant']:40s} {r['images_per_s']:9.2f} "
              f"{r.get('speedup', 1.0):7.2f}x {r.get('peak_gib', float('nan')):9.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    name = "translate_full.json" if args.full_size else "translate.json"
    (args.out / name).write_text(json.dumps(dict(device=device_name, torch=torch.__version__, images=args.images,
                                                 rows=rows, resize_1080p_to_512_and_back=resize), indent=2))
    print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
