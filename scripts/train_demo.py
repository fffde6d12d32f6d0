#!/usr/bin/env python
"""Reproduce the bundled demo model (`--model demo`) from nothing: data -> tiny base -> `turbo train` -> assets.

    .venv/bin/python scripts/train_demo.py            # all stages (17 minutes measured on a 2-core CPU)
    .venv/bin/python scripts/train_demo.py prepare    # only: synthetic data, tiny base, tiny CLIP image tower,
                                                      #       random LPIPS trunk
    .venv/bin/python scripts/train_demo.py train      # only: `turbo train recipes/demo-day2night.toml`
    .venv/bin/python scripts/train_demo.py export     # only: newest checkpoint -> turbo_cli/assets/demo/
    .venv/bin/python scripts/train_demo.py evaluate   # only: the evidence numbers -> metrics.json, docs/img/
                                                      # (= scripts/demo_evidence.py)

Everything is seeded, works offline, and lives under runs/demo-day2night/ until `export` copies the result:

    turbo_cli/assets/demo/day2night.safetensors   the trained generator (fp16), base_model "./base"
    turbo_cli/assets/demo/base/                   the tiny random SD-Turbo-shaped base it was trained on (fp16)
    turbo_cli/assets/demo/recipe.toml             the resolved recipe of the run
    turbo_cli/assets/demo/train_log.jsonl         the run's per-step losses
    turbo_cli/assets/demo/metrics.json            training time + the evidence numbers (`evaluate`)

It is a tiny model (a few MB) trained on synthetic 64x64 street scenes: it shows turbo's pipeline working end to
end on a CPU, not SD-Turbo quality.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECIPE = ROOT / "recipes" / "demo-day2night.toml"
WORK = ROOT / "runs" / "demo-day2night"  # what the recipe's relative paths point at
ASSETS = ROOT / "turbo_cli" / "assets" / "demo"
DOC_IMG = ROOT / "docs" / "img"
SYNTH = dict(size=64, n_train=200, n_test=24, seed=0)  # `turbo data synth`'s defaults
BASE_SEED = 0
CLIP_SEED = 0
LPIPS_SEED = 0
LPIPS_TRUNK = WORK / "lpips_alexnet_random.pth"  # the recipe's loss.lpips_weights


def tiny_clip_vision_config():
    """The discriminator's CLIP image tower: the real class at toy width, RANDOM weights (nothing downloads here).

    8 blocks, because the vision-aided discriminator taps blocks 4 and 8; 64 px / patch 8 = an 8x8 token map.
    """
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=8, num_attention_heads=2,
                            image_size=64, patch_size=8, projection_dim=16)


def prepare() -> None:
    import torch
    from transformers import CLIPVisionModelWithProjection

    from turbo_cli.engine.tiny import build_tiny_base
    from turbo_cli.io import synth

    data = WORK / "data"
    if not (data / synth.MANIFEST).is_file():
        print(f"synthetic dataset -> {data}")
        synth.make_dataset(data, **SYNTH)
    if not (WORK / "base" / "model_index.json").is_file():
        print(f"tiny random base (seed {BASE_SEED}) -> {WORK / 'base'}")
        build_tiny_base(WORK / "base", seed=BASE_SEED)
    if not (WORK / "clip_vision" / "config.json").is_file():
        print(f"tiny random CLIP image tower (seed {CLIP_SEED}) -> {WORK / 'clip_vision'}")
        torch.manual_seed(CLIP_SEED)
        CLIPVisionModelWithProjection(tiny_clip_vision_config()).save_pretrained(WORK / "clip_vision")
    if not LPIPS_TRUNK.is_file():
        print(f"random AlexNet trunk for LPIPS (seed {LPIPS_SEED}) -> {LPIPS_TRUNK}")
        write_random_alexnet_trunk(LPIPS_TRUNK, LPIPS_SEED)


def write_random_alexnet_trunk(path: Path, seed: int) -> None:
    """LPIPS's trunk with RANDOM weights in torchvision's file format (`features.N.*`, what loss.lpips_weights
    reads): the demo cannot download torchvision's ImageNet AlexNet. The lpips package's calibrated linear heads
    still weight the random features."""
    import torch
    import torchvision

    from turbo_cli.atomic import atomic_path

    torch.manual_seed(seed)
    features = torchvision.models.alexnet(weights=None).features
    with atomic_path(path) as tmp:
        torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp)


def train(threads: int) -> float:
    """Run `turbo train` on the recipe (from the repository root, where its relative paths resolve)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "turbo_cli", "train", str(RECIPE.relative_to(ROOT))]
    print("$ OMP_NUM_THREADS=%d %s" % (threads, " ".join(cmd[1:])))
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    seconds = time.perf_counter() - t0
    (WORK / "train_seconds.json").write_text(json.dumps({
        "seconds": seconds, "threads": threads, "load_average_at_start": load_start,
        "load_average_at_end": os.getloadavg(), "cpus": os.cpu_count()}, indent=2) + "\n")
    return seconds


def _save_fp16(state: dict, path: Path, metadata: dict | None) -> None:
    from safetensors.torch import save_file

    from turbo_cli.atomic import atomic_path

    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(half, str(tmp), metadata=metadata)


def export() -> Path:
    """Newest checkpoint -> assets: fp16 tensors, base_model "./base" (resolved beside the file by models.py)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from turbo_cli.engine.checkpoint import ModelInfo
    from turbo_cli.train.checkpoints import LOG_FILE, MODEL_FILE, RECIPE_FILE, list_checkpoints

    out = WORK / "train"
    ckpts = list_checkpoints(out)
    if not ckpts:
        raise SystemExit(f"no checkpoint in {out}: run the train stage first")
    step, folder = ckpts[-1]
    ASSETS.mkdir(parents=True, exist_ok=True)

    # the base: every part copied, the two weight files halved (load_base reads them back as fp32)
    base_dst = ASSETS / "base"
    if base_dst.exists():
        shutil.rmtree(base_dst)
    shutil.copytree(WORK / "base", base_dst)
    for part in ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                 "text_encoder/model.safetensors"):
        f = base_dst / part
        with safe_open(str(f), framework="pt") as g:
            meta = g.metadata()
        _save_fp16(load_file(str(f)), f, meta)

    with safe_open(str(folder / MODEL_FILE), framework="pt") as g:
        info = ModelInfo.from_json(g.metadata()["turbo"])
    info.base_model = "./base"
    info.name = "demo"
    info.extra |= {"note": "tiny model trained by turbo on synthetic 64x64 street scenes (scripts/train_demo.py)",
                   "storage": "fp16"}
    target = ASSETS / "day2night.safetensors"
    _save_fp16(load_file(str(folder / MODEL_FILE)), target, {"turbo": info.to_json()})
    shutil.copy2(folder / RECIPE_FILE, ASSETS / "recipe.toml")
    if (out / LOG_FILE).is_file():
        shutil.copy2(out / LOG_FILE, ASSETS / "train_log.jsonl")
    print(f"step {step} checkpoint -> {target} ({target.stat().st_size / 1e6:.1f} MB) + {base_dst}")
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stages", nargs="*", default=["prepare", "train", "export", "evaluate"],
                    choices=["prepare", "train", "export", "evaluate"])
    # One intra-op thread: on a shared 2-core CPU two OpenMP threads spin-wait against other work (with another
    # process busy, 2 threads did not reach step 10 in 160 s; 1 thread: 2.3 s/step); idle, 2 were only ~10% faster.
    ap.add_argument("--threads", type=int, default=1, help="OMP threads for training (default 1)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if "prepare" in args.stages:
        prepare()
    if "train" in args.stages:
        print(f"training took {train(args.threads):.0f} s")
    if "export" in args.stages:
        export()
    if "evaluate" in args.stages:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from demo_evidence import write_evidence

        write_evidence(WORK, ASSETS, DOC_IMG)


if __name__ == "__main__":
    main()
