"""The batched inference engine: a loaded model on a device, its prompt embedding cached, optionally compiled.

`Translator.pipelined` takes batches of same-sized uint8 RGB frames already at the model's size (what the original
scripts feed their model) and yields the model's 8-bit outputs with one batch in flight: uint8 goes to the device
from reused (on CUDA pinned) host buffers, is converted and normalised there, and the 8-bit result comes back on a
copy stream while the next batch runs. `translate_prepared` is one batch of it. `translate_frames` takes frames at
any size and runs the whole path around the model through the injected `frame_prep` (an `io.frames.FramePrep`:
PIL Lanczos resize, Canny/sketch conditioning, the way back), so its results are the original scripts' results;
the jobs run `frame_prep` on their own threads instead. The engine never imports `io`: jobs/loading.py composes
the two.
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Callable, Protocol, TypeVar

import numpy as np
import torch

from turbo_cli.device import pick_device, pick_dtype
from turbo_cli.engine.checkpoint import LoadedModel
from turbo_cli.errors import InputError


COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune")  # torch.compile's modes (None: its default)
Tag = TypeVar("Tag")


class FramePrep(Protocol):
    """What the Translator needs of `turbo_cli.io.frames.FramePrep`."""

    def model_size(self, height: int, width: int) -> tuple[int, int]: ...

    def to_model(self, rgb: np.ndarray) -> np.ndarray: ...

    def from_model(self, rgb: np.ndarray, height: int, width: int) -> np.ndarray: ...


@dataclass
class RunStats:
    frames: int = 0
    # The batches' time on the device, from upload to 8-bit output (CUDA: events on the compute stream, so time a
    # batch waited for the one before, or the caller waited for input, is not counted; the copy back overlaps the
    # next batch and is not counted either. CPU: the wall time of the model calls). An fp32 redo adds its wall time.
    model_seconds: float = 0.0

    @property
    def model_fps(self) -> float:
        return self.frames / self.model_seconds if self.model_seconds else 0.0


class _DeviceSync:
    """The CUDA side of the overlap: a copy stream for the copies back, events to wait on and to time with. On the
    CPU every operation has finished when it returns, so the same calls copy at once and wait for nothing."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.copy_stream = torch.cuda.Stream(device) if self.cuda else None

    def mark(self):
        """A point in the compute stream's work, for `seconds`."""
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(self.device))
        return event

    def seconds(self, start, end) -> float:
        """Time between two marks (on CUDA both must have completed: after `wait`)."""
        return start.elapsed_time(end) / 1000 if self.cuda else end - start

    def copy_back(self, copies: list[tuple[torch.Tensor, torch.Tensor]]):
        """Copy each (host, device) pair once the compute stream's work so far is done, on the copy stream, so the
        next batch's upload and model start meanwhile. Returns what `wait` waits on."""
        if not self.cuda:
            for host, device in copies:
                host.copy_(device)
            return None
        self.copy_stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.copy_stream):
            for host, device in copies:
                host.copy_(device, non_blocking=True)
            done = torch.cuda.Event(blocking=True)  # waited on asleep: the decode/encode threads want the CPU
            done.record(self.copy_stream)
        return done

    @staticmethod
    def wait(done) -> None:
        if done is not None:
            done.synchronize()


class _HostBuffers:
    """Reused host staging buffers, pinned on CUDA (only pinned memory copies asynchronously, and pinning is slow).
    A batch takes its buffers at launch and gives them back once collected, so batch k+1 never writes into batch k's;
    with one batch in flight the pool holds two of each. A buffer too small for a batch is replaced by a bigger one."""

    def __init__(self, pin: bool):
        self.pin = pin
        self.free: list[torch.Tensor] = []  # flat uint8 buffers, smallest first

    def take(self, shape: tuple[int, ...], dtype: torch.dtype = torch.uint8) -> tuple[torch.Tensor, torch.Tensor]:
        """(the flat buffer to give back, a `shape` view of it)."""
        nbytes = math.prod(shape) * dtype.itemsize
        fits = [i for i, flat in enumerate(self.free) if flat.numel() >= nbytes]
        if fits:
            flat = self.free.pop(fits[0])  # the smallest that fits: a 1-byte flag does not take a frame buffer
        else:
            if self.free:  # the smallest goes, so the pool holds no more buffers than were ever in flight at once
                self.free.pop(0)
            flat = torch.empty(max(nbytes, 1), dtype=torch.uint8, pin_memory=self.pin)
        return flat, flat[:nbytes].view(dtype).view(shape)

    def give(self, flat: torch.Tensor) -> None:
        self.free.append(flat)
        self.free.sort(key=torch.Tensor.numel)


@dataclass
class _InFlight:
    """A launched batch: what collecting it needs, and what must stay alive until its copies back have finished."""

    real: int  # frames the caller gave (the rest is padding)
    x01: torch.Tensor  # the model input, kept for an fp32 redo
    host_out: torch.Tensor  # (real, h, w, 3) uint8, filled by the copy back
    host_finite: torch.Tensor | None  # False: the half-precision output was non-finite (None: fp32, not checked)
    start: object  # _DeviceSync marks around the batch's device work
    end: object
    done: object  # the copy back's event (None on the CPU)
    held: list[torch.Tensor]  # staging buffers, given back to the pool when collected
    device_out: tuple  # the device tensors being copied back: freed only after the copy finished


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
        self._sync = _DeviceSync(self.device)
        self._pool = _HostBuffers(pin=self.device.type == "cuda")
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

    def _model(self, x01: torch.Tensor) -> torch.Tensor:
        """(B,3,h,w) in [0,1] at the model's size -> the model's raw output (queued on the device, not waited for)."""
        height, width = x01.shape[-2:]
        x = self.input_range.from_unit(x01.to(self.device, self.dtype))
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return self._forward(x, self.prompt_emb, direction=self.direction, noise=self._noise(len(x), height, width))

    @staticmethod
    def _to_uint8(raw: torch.Tensor, real: int) -> torch.Tensor:
        """The model's raw output -> (real, h, w, 3) uint8 on its device: x * 255 truncated, as the original's
        ToPILImage does, so saved images match it; contiguous, so the copy back is one plain copy."""
        out = (raw.float() * 0.5 + 0.5).clamp(0, 1)[:real]
        return (out * 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()

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

    def _take(self, held: list[torch.Tensor], shape: tuple[int, ...], dtype: torch.dtype = torch.uint8):
        flat, view = self._pool.take(shape, dtype)
        held.append(flat)
        return view

    @torch.inference_mode()
    def _launch(self, frames: np.ndarray) -> _InFlight:
        """Start one batch: upload, model, 8-bit conversion and the copy back, none of it waited for on CUDA."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected (B,H,W,3) uint8 frames, got {frames.shape} {frames.dtype}")
        height, width = frames.shape[1:3]
        if height % 8 or width % 8:
            raise ValueError(f"model input {width}x{height}: sides must be multiples of 8 (use translate_frames)")
        start = self._sync.mark()
        held: list[torch.Tensor] = []
        staged = self._take(held, frames.shape)
        staged.numpy()[...] = frames
        # uint8 goes to the device (4x fewer bytes than floats); conversion and normalisation happen there.
        # Contiguous NCHW: a permuted (channels_last-strided) batch makes CPU GroupNorm depend on a frame's position
        # in the batch (±1 level), which would flicker a still scene.
        x = staged.to(self.device, non_blocking=True)
        x01 = x.permute(0, 3, 1, 2).contiguous().to(torch.float32) / 255
        real = len(x01)
        if self.compiled and real < (full := self.batch_size_for(height, width)):
            # The last, partial batch of a run: pad it to the full size, so the compiled graph (and its CUDA
            # graph) is reused instead of compiling a new shape. Outputs do not depend on batch neighbours.
            x01 = torch.cat([x01, x01[-1:].expand(full - real, -1, -1, -1)])
        raw = self._model(x01)
        # Checked on the device and read with the outputs: reading it now would wait for this batch's model.
        finite = None if self.dtype == torch.float32 else torch.isfinite(raw).all()
        out = self._to_uint8(raw, real)
        end = self._sync.mark()
        host_out = self._take(held, tuple(out.shape))
        copies = [(host_out, out)]
        host_finite = None
        if finite is not None:
            host_finite = self._take(held, (), torch.bool)
            copies.append((host_finite, finite))
        done = self._sync.copy_back(copies)
        return _InFlight(real, x01, host_out, host_finite, start, end, done, held, (out, finite))

    @torch.inference_mode()
    def _collect(self, job: _InFlight) -> np.ndarray:
        """Wait for a launched batch's copy back: its (real, h, w, 3) uint8 outputs (a non-finite half-precision
        batch redone in fp32)."""
        try:
            self._sync.wait(job.done)
            self.stats.model_seconds += self._sync.seconds(job.start, job.end)
            if job.host_finite is not None and not bool(job.host_finite):
                start = time.perf_counter()
                raw = self._redo_in_fp32(job.x01, *job.x01.shape[-2:])
                result = self._to_uint8(raw, job.real).cpu().numpy()
                self.stats.model_seconds += time.perf_counter() - start
            else:
                result = job.host_out.numpy().copy()  # the staging buffer goes back to the pool
        finally:
            self._release(job)
        self.stats.frames += job.real
        return result

    def _release(self, job: _InFlight) -> None:
        """Give a batch's staging buffers back once its copies have finished."""
        self._sync.wait(job.done)
        for flat in job.held:
            self._pool.give(flat)

    def _collect_first(self, inflight: deque) -> tuple:
        tag, job = inflight.popleft()
        return tag, self._collect(job)

    def pipelined(self, batches: Iterable[tuple[Tag, np.ndarray]]) -> Iterator[tuple[Tag, np.ndarray]]:
        """(tag, (B,h,w,3) uint8 model inputs) -> (tag, (B,h,w,3) uint8 model outputs), in order, one batch in
        flight: batch k is collected only after batch k+1 was launched, so on CUDA its copy back (and the caller's
        work on it) overlaps batch k+1's upload and model. On the CPU the model has run when `_launch` returns, so
        the same steps simply run one after the other.

        An error (Ctrl-C too) while the next batch is read or launched still hands over the batches already
        launched, then propagates: finished work gets written, not lost."""
        inflight: deque = deque()
        try:
            for tag, frames in batches:
                inflight.append((tag, self._launch(frames)))
                if len(inflight) > 1:
                    yield self._collect_first(inflight)
            while inflight:
                yield self._collect_first(inflight)
        except GeneratorExit:  # the caller stopped listening: nothing more may be yielded
            raise
        except BaseException:
            while inflight:
                yield self._collect_first(inflight)
            raise
        finally:
            for _, job in inflight:  # abandoned by the caller
                self._release(job)

    def translate_prepared(self, frames: np.ndarray) -> np.ndarray:
        """(B,h,w,3) uint8 model inputs (from `frame_prep.to_model`) -> (B,h,w,3) uint8 model outputs: one batch
        of `pipelined`."""
        [(_, outputs)] = self.pipelined([(None, frames)])
        return outputs

    def translate_frames(self, frames: np.ndarray) -> np.ndarray:
        """(B,H,W,3) uint8 RGB at any one size -> (B,H,W,3) uint8 RGB, translated (the model's size with
        `keep_model_size`), through the whole original path: resize in, condition, model, resize back."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected (B,H,W,3) uint8 frames, got {frames.shape} {frames.dtype}")
        height, width = frames.shape[1:3]
        outputs = self.translate_prepared(np.stack([self.frame_prep.to_model(f) for f in frames]))
        return np.stack([self.frame_prep.from_model(o, height, width) for o in outputs])
