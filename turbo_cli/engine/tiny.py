"""Tiny, seeded, randomly initialised SD-Turbo-shaped base models (for tests, benchmarks and the demo).

`build_tiny_base(dir)` writes the five parts with `save_pretrained` in the SD-Turbo folder layout, so everything
downstream runs the real `from_pretrained` path offline. `make_random_checkpoint` adds a random-init turbo
checkpoint (paired or unpaired) on top.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from turbo_cli.engine import lora
from turbo_cli.engine.base import load_base
from turbo_cli.engine.checkpoint import ModelInfo, save_turbo
from turbo_cli.engine.families import Kind
from turbo_cli.engine.generator import TurboGenerator, build_cyclegan, build_pix2pix

# Shapes follow SD-Turbo's structure (4-block VAE with 8x downsampling, cross-attention UNet, CLIP text encoder)
# at a width that runs a 64x64 image in ~20 ms on a laptop CPU.
TINY_UNET = dict(
    sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32, attention_head_dim=8, use_linear_projection=True, norm_num_groups=32,
)
TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32, 64, 64), layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8,
    sample_size=64, scaling_factor=0.18215,
)
TINY_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 max_position_embeddings=77, hidden_act="gelu", projection_dim=32)
# SD-Turbo's scheduler config (trailing spacing: one step is t=999).
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                 prediction_type="epsilon", timestep_spacing="trailing", steps_offset=1, clip_sample=False,
                 set_alpha_to_one=False)


# Full SD-Turbo architecture (SD 2.1 UNet, SD VAE, OpenCLIP-H text tower), for benchmarks with random weights.
SD_TURBO_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=1024,
    attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, norm_num_groups=32,
)
SD_TURBO_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
    sample_size=768, scaling_factor=0.18215,
)
SD_TURBO_TEXT = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                     max_position_embeddings=77, hidden_act="gelu", projection_dim=1024)


def _bytes_to_unicode() -> list[str]:
    """CLIP's byte -> printable-unicode table (the alphabet of its BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def write_tiny_tokenizer(folder: Path) -> None:
    """A character-level CLIP BPE tokenizer (no merges): every byte, alone and word-final, plus bos/eos."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "!", "do_lower_case": True}))
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "!"}))


def build_tiny_base(folder: str | Path, seed: int = 0, full_size: bool = False,
                    text_layers: int | None = None) -> Path:
    """Save a tiny random SD-Turbo-shaped model in the SD-Turbo folder layout. Same seed, same weights.

    `full_size=True` saves the real SD-Turbo architecture with random weights instead (benchmarks; ~5 GB).
    `text_layers` overrides the text encoder's depth (its width, which the UNet's cross-attention sees, stays):
    checkpoints never touch the text encoder, so tests of the full shapes can skip most of its 340M parameters.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    write_tiny_tokenizer(folder / "tokenizer")
    vocab = len(json.loads((folder / "tokenizer" / "vocab.json").read_text()))
    torch.manual_seed(seed)
    UNet2DConditionModel(**(SD_TURBO_UNET if full_size else TINY_UNET)).save_pretrained(folder / "unet")
    AutoencoderKL(**(SD_TURBO_VAE if full_size else TINY_VAE)).save_pretrained(folder / "vae")
    text = dict(SD_TURBO_TEXT if full_size else TINY_TEXT)
    if text_layers is not None:
        text["num_hidden_layers"] = text_layers
    text_cfg = CLIPTextConfig(vocab_size=vocab, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=0,
                              **text)
    CLIPTextModel(text_cfg).save_pretrained(folder / "text_encoder")
    DDPMScheduler.from_config(SCHEDULER).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_note": "tiny random SD-Turbo-shaped model (turbo tests)",
        "scheduler": ["diffusers", "DDPMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]}, indent=2))
    return folder


def randomize_adapters(generator: TurboGenerator, seed: int = 0, lora_std: float = 0.05) -> None:
    """Give the adapters that start at zero or near it (LoRA B, the skip convs: `lora.is_adapter`) random values,
    so the model visibly differs from its base."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(generator.named_parameters()):
            if lora.is_adapter(name) and ("lora_B" in name or "skip_conv_" in name and "lora_" not in name):
                p.copy_(torch.randn(p.shape, generator=gen) * lora_std)


def make_random_checkpoint(base_dir: str | Path, path: str | Path, kind: str = "cyclegan", seed: int = 0,
                           rank_unet: int = 4, rank_vae: int = 4, captions: dict | None = None,
                           prompt: str | None = None, lora_std: float = 0.05) -> Path:
    """A random-init turbo checkpoint on the base in `base_dir` (kind: "cyclegan" | "pix2pix" | "pix2pix_stochastic")."""
    torch.manual_seed(seed)
    base = load_base(base_dir, with_text_encoder=False)
    if kind == "cyclegan":
        generator = build_cyclegan(base, rank_unet, rank_vae)
        info = ModelInfo.for_family(Kind.CYCLEGAN, generator.spec, str(base_dir), name=Path(path).stem,
                                    image_prep="no_resize",  # tiny models: tests run them at the inputs' size
                                    captions=captions or {"a2b": "a street at night", "b2a": "a street by day"})
    else:
        stochastic = kind == "pix2pix_stochastic"
        generator = build_pix2pix(base, rank_unet, rank_vae, twin_conv=stochastic)
        # preprocess "none": the tiny sketch model takes the image as given (its tests feed binary maps)
        info = ModelInfo.for_family(Kind.PIX2PIX, generator.spec, str(base_dir), stochastic=stochastic,
                                    name=Path(path).stem, prompt=prompt, preprocess="none")
    randomize_adapters(generator, seed, lora_std)
    return save_turbo(generator, info, Path(path))
