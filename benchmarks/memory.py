"""Benchmark: peak GPU memory of training steps on the FULL SD-Turbo architecture with random weights (no download).

    python benchmarks/memory.py                        # unpaired 256x256: fp32 / bf16 x grad checkpointing off/on
    python benchmarks/memory.py --size 512 --json mem.json
    python benchmarks/memory.py --tiny --device cpu    # the same code path on tiny models (a smoke test)
    python benchmarks/memory.py --fake [--fp32]        # no GPU: computed on the CPU under FakeTensorMode
                                                       # (benchmarks/fake_memory.py: train 256x256 + inference)

Goal (issue 4): one unpaired CycleGAN-turbo step at 256x256 in <= 20 GB, so it fits a 24 GB card; the original
needs ~48 GB. The model shapes are SD-Turbo's (UNet 866M, VAE 84M, OpenCLIP-H text encoder 340M), the
discriminator backbone is CLIP ViT-B/32's image tower, LPIPS is VGG16 with a random trunk (the same memory).
Prints a table and writes JSON (benchmarks/results/memory*.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from turbo_cli.atomic import write_text  # noqa: E402
from turbo_cli.engine.tiny import SD_TURBO_TEXT, SD_TURBO_UNET, SD_TURBO_VAE  # noqa: E402  (one source of shapes)

CLIP_B32_VISION = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       image_size=224, patch_size=32, projection_dim=512)
TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=8, num_attention_heads=2, image_size=32,
                   patch_size=8, projection_dim=16)


def random_base(tiny: bool, workdir: Path):
    """A BaseModel with random weights in SD-Turbo's shapes (or the tiny test shapes)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from turbo_cli.engine import tiny as T
    from turbo_cli.engine.base import BaseModel

    T.write_tiny_tokenizer(workdir / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(workdir / "tokenizer")
    vocab = len(tokenizer)
    text = dict(T.TINY_TEXT) if tiny else dict(SD_TURBO_TEXT)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=max(vocab, 49408 if not tiny else vocab),
                                                bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=0, **text))
    unet = UNet2DConditionModel(**(T.TINY_UNET if tiny else SD_TURBO_UNET))
    vae = AutoencoderKL(**(T.TINY_VAE if tiny else SD_TURBO_VAE))
    for m in (unet, vae, text_encoder):
        m.requires_grad_(False).eval()
    return BaseModel("random", tokenizer, text_encoder, unet, vae, DDPMScheduler.from_config(T.SCHEDULER))


def random_vgg16_trunk(path: Path) -> Path:
    """torchvision's VGG16 `features` with random weights, in its file format: what `[loss] lpips_weights` reads."""
    import torchvision

    torch.manual_seed(0)
    features = torchvision.models.vgg16(weights=None).features
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path


def _dataset(root: Path, size: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for folder in ("train_A", "train_B", "test_A", "test_B"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / folder / f"{i}.png")
    return root


def measure(size: int = 256, mixed_precision: str = "no", gradient_checkpointing: bool = False, tiny: bool = False,
            device: str = "cuda", steps: int = 2, rank_unet: int = 128) -> dict:
    """Peak memory (GiB) and time of `steps` unpaired optimizer steps; the first includes AdamW state allocation."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from turbo_cli.train.loop import Trainer
    from turbo_cli.train.recipe import load_recipe

    cuda = device.startswith("cuda")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = _dataset(tmp / "data", size)
        recipe = load_recipe(None, [
            f"data.dataset={json.dumps(str(data))}", "data.train_prep=no_resize", "data.val_prep=no_resize",
            f"model.rank_unet={4 if tiny else rank_unet}",
            f"model.gradient_checkpointing={str(gradient_checkpointing).lower()}",
            "model.caption_a=a", "model.caption_b=b", "eval.every=0",
            f"loss.lpips_weights={json.dumps(str(random_vgg16_trunk(tmp / 'vgg16.pth')))}",
            f"train.mixed_precision={json.dumps(mixed_precision)}", f"train.max_steps={steps}",
            f"train.checkpoint_every={steps + 1}", f"train.output_dir={json.dumps(str(tmp / 'out'))}",
            "log.tensorboard=false", "log.progress=false"])
        torch.manual_seed(0)
        base = random_base(tiny, tmp)
        disc = CLIPVisionModelWithProjection(CLIPVisionConfig(**(TINY_VISION if tiny else CLIP_B32_VISION)))
        per_step: list[dict] = []

        def on_step(step, total, logs):
            if cuda:
                torch.cuda.synchronize()
                per_step.append({"step": step, "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
                                 "sec": logs["sec"]})
                torch.cuda.reset_peak_memory_stats()
            else:
                per_step.append({"step": step, "sec": logs["sec"]})

        trainer = Trainer(recipe, on_step=on_step, base=base, disc_backbone=disc)
        trainer.setup()
        if cuda:
            torch.cuda.synchronize()
            static = torch.cuda.memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        trainer.run()
        wall = time.perf_counter() - t0
    return {
        "size": size, "mixed_precision": mixed_precision, "gradient_checkpointing": gradient_checkpointing,
        "rank_unet": 4 if tiny else rank_unet, "tiny": tiny, "device": device,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "weights_gib": static if cuda else None,
        "peak_gib": max((s["peak_gib"] for s in per_step), default=None) if cuda else None,
        "steps": per_step, "wall_sec": wall,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny random models (smoke test of this script)")
    ap.add_argument("--json", type=Path, help="write the results here (default: benchmarks/results/memory*.json)")
    ap.add_argument("--configs", default="no:off,no:on,bf16:off,bf16:on",
                    help="mixed_precision:checkpointing list (default: all four)")
    ap.add_argument("--fake", action="store_true",
                    help="no GPU: peak memory computed on the CPU from live tensor bytes under FakeTensorMode "
                         "(benchmarks/fake_memory.py)")
    ap.add_argument("--fp32", action="store_true", help="with --fake: also fp32 training rows")
    args = ap.parse_args(argv)
    if args.fake:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import fake_memory

        fake_memory.main(["--size", str(args.size)] + ["--tiny"] * args.tiny + ["--fp32"] * args.fp32
                         + (["--json", str(args.json)] if args.json else []))
        return
    results = []
    for item in args.configs.split(","):
        mp, gc = item.split(":")
        results.append(measure(args.size, mp, gc == "on", args.tiny, args.device))
    gpu = results[0]["gpu"] or "CPU"
    print(f"\nturbo train memory — unpaired CycleGAN-turbo at {args.size}x{args.size}, "
          f"{'tiny' if args.tiny else 'SD-Turbo-sized'} random weights, {gpu}, torch {torch.__version__}")
    print(f"{'mixed_precision':>15} {'grad_ckpt':>9} {'weights GiB':>11} {'peak GiB':>9} {'s/step':>7}")
    for r in results:
        weights = f"{r['weights_gib']:.2f}" if r["weights_gib"] is not None else "n/a"
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "n/a"
        print(f"{r['mixed_precision']:>15} {'on' if r['gradient_checkpointing'] else 'off':>9} {weights:>11} "
              f"{peak:>9} {r['steps'][-1]['sec']:7.2f}")
    out = args.json or Path(__file__).parent / "results" / f"memory{'_tiny' if args.tiny else ''}_{args.size}.json"
    write_text(out, json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
