"""The SD-Turbo base model: tokenizer, CLIP text encoder, UNet, VAE, scheduler — from a hub id or a local folder."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from turbo_cli.errors import ModelError
from turbo_cli.hub import parse_repo_id, snapshot

DEFAULT_BASE = "stabilityai/sd-turbo"
BASE_SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
TIMESTEP = 999  # SD-Turbo's single step with trailing spacing


def one_step_x0(sample: torch.Tensor, eps: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """One DDPM step at t=999 in closed form: x0 = (z - sqrt(1 - abar) * eps) / sqrt(abar).

    With a single step the previous alpha-bar is 1, so DDPM's step returns exactly this x0 (its variance term is
    ~1e-10 * noise and is left out)."""
    return ((sample - math.sqrt(1 - alpha_bar) * eps) / math.sqrt(alpha_bar)).to(eps.dtype)


@dataclass
class BaseModel:
    """The pretrained parts turbo builds on. `source` is the hub id or folder they came from."""

    source: str
    tokenizer: object
    text_encoder: nn.Module
    unet: nn.Module
    vae: nn.Module
    scheduler: object
    root: Path | None = None  # the local folder the parts came from (a hub snapshot or the user's folder)

    @property
    def alpha_bar(self) -> float:
        """abar_999 as the scheduler stores it (float32), so the one-step x0 matches the original bit for bit."""
        return float(self.scheduler.alphas_cumprod[TIMESTEP])


def resolve_base_dir(source: str | os.PathLike) -> Path:
    """A local folder in the SD-Turbo layout for `source`: the folder itself, or the hub snapshot (cached/downloaded)."""
    path = Path(source).expanduser()
    if path.exists():
        missing = [s for s in BASE_SUBFOLDERS if not (path / s).is_dir()]
        if missing:
            raise ModelError(f"{path}: not an SD-Turbo-layout folder (missing {', '.join(missing)}/)")
        return path
    text = str(source)
    if text.startswith((".", "/", "~")) or "\\" in text or parse_repo_id(text) is None:  # hub ids: "owner/name"
        raise ModelError(f"{source}: no such base-model folder")
    repo, revision = parse_repo_id(text)
    # Prefer single-file safetensors in full precision; skip the fp16 variants and .bin duplicates.
    return snapshot(repo, revision=revision, option="--base-model",
                    instead="pass --base-model DIR (a folder in the SD-Turbo layout)",
                    allow_patterns=[f"{s}/*" for s in BASE_SUBFOLDERS] + ["model_index.json"],
                    ignore_patterns=["*.fp16.*", "*.bin", "*.ckpt", "*.onnx*", "*.msgpack"])


def load_base(source: str | os.PathLike = DEFAULT_BASE, *, with_text_encoder: bool = True) -> BaseModel:
    """Load the five parts from `source` (hub id or folder) in fp32 on the CPU."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    root = resolve_base_dir(source)
    quiet_libraries()
    try:
        scheduler = DDPMScheduler.from_pretrained(root, subfolder="scheduler")
        unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", torch_dtype=torch.float32)
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae", torch_dtype=torch.float32)
        tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer")
        text_encoder = (CLIPTextModel.from_pretrained(root, subfolder="text_encoder", torch_dtype=torch.float32)
                        if with_text_encoder else None)
    except (OSError, ValueError) as e:
        raise ModelError(f"{root}: cannot load the base model: {str(e).splitlines()[0]}") from None
    if scheduler.config.get("timestep_spacing") != "trailing":
        # SD-Turbo needs trailing spacing, else one inference step is t=1 instead of 999.
        scheduler = DDPMScheduler.from_config(scheduler.config, timestep_spacing="trailing")
    for part in (unet, vae, text_encoder):
        if part is not None:
            part.requires_grad_(False).eval()
    return BaseModel(str(source), tokenizer, text_encoder, unet, vae, scheduler, root)


def quiet_libraries() -> None:
    """Progress bars and warnings of diffusers/transformers/peft are noise in a CLI; turbo shows its own."""
    import warnings

    import diffusers
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    # CycleGAN-turbo adds three named adapters to one UNet on purpose.
    warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")


class PromptEncoder:
    """CLIP text embeddings for prompts, computed once per prompt and cached (they are constant)."""

    def __init__(self, tokenizer, text_encoder: nn.Module):
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, prompts: str | list[str], device=None, dtype=None) -> torch.Tensor:
        """(B, 77, D) embeddings; `text_encoder(tokens)[0]` (last hidden state), as the original."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        todo = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        if todo:
            tokens = self.tokenizer(todo, max_length=self.tokenizer.model_max_length, padding="max_length",
                                    truncation=True, return_tensors="pt").input_ids
            param = next(self.text_encoder.parameters())
            emb = self.text_encoder(tokens.to(param.device))[0]
            for p, e in zip(todo, emb):
                self._cache[p] = e
        out = torch.stack([self._cache[p] for p in prompts])
        return out.to(device=device or out.device, dtype=dtype or out.dtype)


class CachedPromptEncoder:
    """Prompt embeddings cached on disk, keyed by the text encoder's files and the prompt: a repeat run never loads
    the text encoder (SD-Turbo's is 1.3 GB in fp32; loading and running it took 1-15 s + 9 s on a CPU, measured
    with the full-size architecture). The encoder is loaded from `root` on the first prompt not in the cache."""

    def __init__(self, root: Path, cache: Path):
        self.root, self.cache = Path(root), Path(cache)
        self._encoder: PromptEncoder | None = None
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        """What identifies the text encoder: its and the tokenizer's file names, sizes and modification times."""
        if self._fingerprint is None:
            import hashlib

            h = hashlib.sha256()
            for sub in ("text_encoder", "tokenizer"):
                for f in sorted((self.root / sub).rglob("*")):
                    if f.is_file():
                        st = f.stat()
                        h.update(f"{f.relative_to(self.root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def _path(self, prompt: str) -> Path:
        import hashlib

        return self.cache / f"{hashlib.sha256((self.fingerprint() + prompt).encode()).hexdigest()[:32]}.safetensors"

    def encoder(self) -> PromptEncoder:
        if self._encoder is None:
            from transformers import CLIPTextModel, CLIPTokenizer

            quiet_libraries()
            tokenizer = CLIPTokenizer.from_pretrained(self.root, subfolder="tokenizer")
            text = CLIPTextModel.from_pretrained(self.root, subfolder="text_encoder", torch_dtype=torch.float32)
            self._encoder = PromptEncoder(tokenizer, text.requires_grad_(False).eval())
        return self._encoder

    def __call__(self, prompts: str | list[str], device=None, dtype=None) -> torch.Tensor:
        from safetensors.torch import load_file, save_file

        from turbo_cli.atomic import atomic_path

        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        rows = []
        for prompt in prompts:
            path = self._path(prompt)
            try:
                rows.append(load_file(str(path))["embedding"])
                continue
            except Exception:  # not cached yet (or unreadable): compute and store it
                pass
            emb = self.encoder()(prompt)[0].detach().float().cpu().contiguous()
            try:
                with atomic_path(path) as tmp:
                    save_file({"embedding": emb}, str(tmp), metadata={"prompt": prompt[:500]})
            except OSError:  # a read-only cache costs only the time
                pass
            rows.append(emb)
        out = torch.stack(rows)
        return out.to(device=device or out.device, dtype=dtype or out.dtype)
