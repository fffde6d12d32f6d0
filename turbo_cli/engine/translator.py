"""The batched inference engine: a loaded model on a device, its prompt embedding cached, optionally compiled.

`Translator.translate_frames` takes a batch of same-sized uint8 RGB frames (B, H, W, 3) and returns translated
frames of the same size: the model's image prep (resize to the model's size, multiple of 8) and the way back run
on the device. Image files and videos are the callers' business (jobs/, io/).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from turbo_cli.engine.checkpoint import LoadedModel
from turbo_cli.device import pick_device, pick_dtype
from turbo_cli.errors import InputError

INFERENCE_PREPS = "no_resize, resize_N, resize_WxH (e.g. resize_512x512)"


def model_size(height: int, width: int, image_prep: str) -> tuple[int, int]:
    """The (H, W) the model runs at for an input of (height, width) under an inference image prep."""
    if image_prep == "no_resize":  # the original resizes down to multiples of 8
        if height < 8 or width < 8:
            raise InputError(f"image of {width}x{height} is smaller than 8x8")
        return height - height % 8, width - width % 8
    if m := re.fullmatch(r"resize_(\d+)", image_prep):
        n = int(m.group(1))
        return n, n
    if m := re.fullmatch(r"resize_(\d+)x(\d+)", image_prep):
        return int(m.group(2)), int(m.group(1))
    raise InputError(f"--image-prep {image_prep}: not usable for inference; use {INFERENCE_PREPS}")


def check_image_prep(image_prep: str) -> str:
    h, w = model_size(64, 64, image_prep)
    if h % 8 or w % 8:
        raise InputError(f"--image-prep {image_prep}: sizes must be multiples of 8")
    return image_prep


@dataclass
class RunStats:
    frames: int = 0
    model_seconds: float = 0.0  # time inside translate_frames, device-synchronised

    @property
    def model_fps(self) -> float:
        return self.frames / self.model_seconds if self.model_seconds else 0.0


class Translator:
    """A loaded model ready to translate batches of frames. Built once per run; thread-compatible (one caller)."""

    def __init__(self, loaded: LoadedModel, prompt_emb: torch.Tensor, *, direction: str | None = None,
                 device: str | torch.device = "auto", dtype: str = "auto", compile: bool | None = None,
                 image_prep: str | None = None, r: float | None = None, seed: int = 42,
                 batch_size: int | None = None,
                 preprocess: Callable[[np.ndarray], np.ndarray] | None = None):
        info = loaded.info
        self.info = info
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.direction = direction
        self.image_prep = check_image_prep(image_prep or info.image_prep)
        self.input_range = info.input_range
        self.seed = seed
        self.fixed_batch_size = batch_size
        self.preprocess = preprocess
        self.stats = RunStats()
        self.generator = loaded.generator.to(self.device, self.dtype).eval()
        if self.device.type == "cuda":
            self.generator.to(memory_format=torch.channels_last)
        if info.stochastic:
            self.generator.set_r(info.r if r is None else r)
        elif r is not None and r != 1.0:
            raise InputError(f"--gamma {r}: '{info.name}' is not a stochastic model")
        self.prompt_emb = prompt_emb.to(self.device, self.dtype)
        # Compiling pays off on CUDA; on CPU each new shape costs ~1 min for a 1.2-1.8x steady-state gain.
        self.compiled = self.device.type == "cuda" if compile is None else compile
        self._forward = torch.compile(self.generator, dynamic=False) if self.compiled else self.generator

    # ---- batching policy ----------------------------------------------------------------------------------------
    def batch_size_for(self, height: int, width: int) -> int:
        """Images per batch for frames of this size: user's choice, else by pixels (CPU batching stops helping
        past ~64k pixels per batch; a GPU wants ~2M pixels in flight)."""
        if self.fixed_batch_size:
            return self.fixed_batch_size
        mh, mw = model_size(height, width, self.image_prep)
        budget = 2**16 if self.device.type == "cpu" else 8 * 512 * 512
        return max(1, min(32, budget // (mh * mw)))

    @property
    def batch_size(self) -> int:
        """Batch size at 512x512 (or the user's): for callers that need one number before seeing a frame."""
        return self.batch_size_for(512, 512)

    # ---- translation --------------------------------------------------------------------------------------------
    def _noise(self, batch: int, height: int, width: int) -> torch.Tensor | None:
        """Per-image noise drawn exactly as the original (torch.manual_seed(seed); randn(1,4,H/8,W/8) on the CPU),
        so each image gets the original's output for a seed whatever the batch."""
        if not self.info.stochastic:
            return None
        one = torch.randn((1, 4, height // 8, width // 8), generator=torch.Generator().manual_seed(self.seed))
        return one.expand(batch, -1, -1, -1).to(self.device, self.dtype)

    @torch.inference_mode()
    def translate_tensor(self, x01: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [0,1] at any size -> (B,3,H,W) in [0,1], same size."""
        height, width = x01.shape[-2:]
        mh, mw = model_size(height, width, self.image_prep)
        x = x01.to(self.device, self.dtype)
        if (mh, mw) != (height, width):
            x = F.interpolate(x.float(), size=(mh, mw), mode="bicubic", antialias=True, align_corners=False)
            x = x.clamp(0, 1).to(self.dtype)
        x = self.input_range.from_unit(x)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        out = self._forward(x, self.prompt_emb, direction=self.direction, noise=self._noise(len(x), mh, mw))
        out = (out.float() * 0.5 + 0.5).clamp(0, 1)
        if (mh, mw) != (height, width):
            out = F.interpolate(out, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
        return out.clamp(0, 1)

    def translate_frames(self, frames: np.ndarray) -> np.ndarray:
        """(B,H,W,3) uint8 RGB -> (B,H,W,3) uint8 RGB, translated."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected (B,H,W,3) uint8 frames, got {frames.shape} {frames.dtype}")
        start = time.perf_counter()
        if self.preprocess is not None:
            frames = np.stack([self.preprocess(f) for f in frames])
        x = torch.from_numpy(np.ascontiguousarray(frames))
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        # contiguous NCHW: a permuted (channels_last-strided) batch makes CPU GroupNorm depend on a frame's position
        # in the batch (±1 level), which would flicker a still scene.
        x = x.permute(0, 3, 1, 2).contiguous().to(torch.float32) / 255
        out = self.translate_tensor(x)
        # x * 255 truncated, as the original's ToPILImage does, so saved images match it.
        result = (out * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        self.stats.frames += len(frames)
        self.stats.model_seconds += time.perf_counter() - start
        return result
