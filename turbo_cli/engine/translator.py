"""The batched inference engine: a loaded model on a device, its prompt embedding cached, optionally compiled.

`Translator.translate_prepared` takes a batch of same-sized uint8 RGB frames already at the model's size (what the
original scripts feed their model) and returns the model's 8-bit outputs. `translate_frames` takes frames at any
size and runs the whole path around the model through the injected `frame_prep` (an `io.frames.FramePrep`: PIL
Lanczos resize, Canny/sketch conditioning, the way back), so its results are the original scripts' results. The
engine never imports `io`: jobs/loading.py composes the two.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch

from turbo_cli.device import pick_device, pick_dtype
from turbo_cli.engine.checkpoint import LoadedModel
from turbo_cli.errors import InputError


COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune")  # torch.compile's modes (None: its default)


class FramePrep(Protocol):
    """What the Translator needs of `turbo_cli.io.frames.FramePrep`."""

    def model_size(self, height: int, width: int) -> tuple[int, int]: ...

    def to_model(self, rgb: np.ndarray) -> np.ndarray: ...

    def from_model(self, rgb: np.ndarray, height: int, width: int) -> np.ndarray: ...


@dataclass
class RunStats:
    frames: int = 0
    model_seconds: float = 0.0  # time inside translate_frames, device-synchronised

    @property
    def model_fps(self) -> float:
        return self.frames / self.model_seconds if self.model_seconds else 0.0


class Translator:
    """A loaded model ready to translate batches of frames. Built once per run; thread-compatible (one caller)."""

    def __init__(self, loaded: LoadedModel, prompt_emb: torch.Tensor, frame_prep: FramePrep, *,
                 direction: str | None = None, device: str | torch.device = "auto", dtype: str = "auto",
                 compile: bool | None = None, compile_mode: str | None = None, r: float | None = None,
                 seed: int = 42, batch_size: int | None = None, notice: Callable[[str], None] | None = None):
        info = loaded.info
        self.info = info
        self.frame_prep = frame_prep
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.direction = direction
        self.input_range = info.input_range
        self.seed = seed
        self.fixed_batch_size = batch_size
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
        if compile_mode not in COMPILE_MODES:
            raise InputError(f"--compile-mode {compile_mode}: valid values are {', '.join(map(str, COMPILE_MODES))}")
        # One graph per model shape (the forward has no graph break and no host sync: tests/test_compile.py), and
        # batches padded to one size, so a run compiles once per shape; "reduce-overhead" adds CUDA graphs.
        self._forward = (torch.compile(self.generator, dynamic=False, fullgraph=True, mode=compile_mode)
                         if self.compiled else self.generator)
        self._fp32_forward = None  # built on the first non-finite half-precision batch
        self.notice = notice or (lambda message: None)

    # ---- batching policy ----------------------------------------------------------------------------------------
    def model_size(self, height: int, width: int) -> tuple[int, int]:
        """The (H, W) the model runs at for an input of (height, width)."""
        return self.frame_prep.model_size(height, width)

    def batch_size_for(self, height: int, width: int) -> int:
        """Images per batch for inputs of this size: user's choice, else by the model's pixels (CPU batching stops
        helping past ~64k pixels per batch; a GPU wants ~2M pixels in flight)."""
        if self.fixed_batch_size:
            return self.fixed_batch_size
        mh, mw = self.model_size(height, width)
        budget = 2**16 if self.device.type == "cpu" else 8 * 512 * 512
        return max(1, min(32, budget // (mh * mw)))

    @property
    def batch_size(self) -> int:
        """Batch size at 512x512 (or the user's): for callers that need one number before seeing a frame."""
        return self.batch_size_for(512, 512)

    # ---- translation --------------------------------------------------------------------------------------------
    def _noise(self, batch: int, height: int, width: int) -> torch.Tensor | None:
        """The stochastic model's noise as the original draws it: `torch.manual_seed(seed)` then
        `randn((1, 4, H/8, W/8))` on the model's device (a fresh generator seeded the same way gives the same
        numbers), in fp32; every image of a batch gets it, as when the script runs once per image."""
        if not self.info.stochastic:
            return None
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        one = torch.randn((1, 4, height // 8, width // 8), generator=generator, device=self.device)
        return one.expand(batch, -1, -1, -1).to(self.dtype)

    @torch.inference_mode()
    def _run(self, x01: torch.Tensor) -> torch.Tensor:
        """(B,3,h,w) in [0,1] at the model's size -> the model's output in [0,1], same size."""
        height, width = x01.shape[-2:]
        if height % 8 or width % 8:
            raise ValueError(f"model input {width}x{height}: sides must be multiples of 8 (use translate_frames)")
        x = self.input_range.from_unit(x01.to(self.device, self.dtype))
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        out = self._forward(x, self.prompt_emb, direction=self.direction, noise=self._noise(len(x), height, width))
        if self.dtype != torch.float32 and not torch.isfinite(out).all():
            out = self._redo_in_fp32(x01, height, width)
        return (out.float() * 0.5 + 0.5).clamp(0, 1)

    def _redo_in_fp32(self, x01: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Half precision overflowed (inf/NaN in the output): this batch again in fp32, with a one-line notice.
        The fp32 copy of the generator is made on first need and kept for the rest of the run."""
        name = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.dtype, str(self.dtype))
        self.notice(f"a batch of {len(x01)} at {width}x{height} came out non-finite in {name}; redone in fp32")
        if self._fp32_forward is None:
            self._fp32_forward = copy.deepcopy(self.generator).float()
        x = self.input_range.from_unit(x01.to(self.device, torch.float32))
        noise = self._noise(len(x), height, width)
        return self._fp32_forward(x, self.prompt_emb.float(), direction=self.direction,
                                  noise=None if noise is None else noise.float())

    def translate_prepared(self, frames: np.ndarray) -> np.ndarray:
        """(B,h,w,3) uint8 model inputs (from `frame_prep.to_model`) -> (B,h,w,3) uint8 model outputs."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected (B,H,W,3) uint8 frames, got {frames.shape} {frames.dtype}")
        start = time.perf_counter()
        x = torch.from_numpy(np.ascontiguousarray(frames))
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        # contiguous NCHW: a permuted (channels_last-strided) batch makes CPU GroupNorm depend on a frame's position
        # in the batch (±1 level), which would flicker a still scene.
        x = x.permute(0, 3, 1, 2).contiguous().to(torch.float32) / 255
        real = len(x)
        if self.compiled and real < (full := self.batch_size_for(*x.shape[-2:])):
            # The last, partial batch of a run: pad it to the full size, so the compiled graph (and its CUDA
            # graph) is reused instead of compiling a new shape. Outputs do not depend on batch neighbours.
            x = torch.cat([x, x[-1:].expand(full - real, -1, -1, -1)])
        out = self._run(x)[:real]
        # x * 255 truncated, as the original's ToPILImage does, so saved images match it.
        result = (out * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        self.stats.frames += len(frames)
        self.stats.model_seconds += time.perf_counter() - start
        return result

    def translate_frames(self, frames: np.ndarray) -> np.ndarray:
        """(B,H,W,3) uint8 RGB at any one size -> (B,H,W,3) uint8 RGB, translated (the model's size with
        `keep_model_size`), through the whole original path: resize in, condition, model, resize back."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected (B,H,W,3) uint8 frames, got {frames.shape} {frames.dtype}")
        height, width = frames.shape[1:3]
        outputs = self.translate_prepared(np.stack([self.frame_prep.to_model(f) for f in frames]))
        return np.stack([self.frame_prep.from_model(o, height, width) for o in outputs])
