"""Translate one video: decode, model and encode overlapped, memory flat, OUTPUT replaced atomically.

Three stages, two bounded queues:

    decode thread               --frames--> caller's thread: model --frames--> encode thread
    (PyAV, FramePrep.to_model)              (Translator.pipelined)           (FramePrep.from_model, VideoWriter)

The model runs on the caller's thread so Ctrl-C lands where the work is, and only the model runs there: the
engine's PIL resize and conditioning run on the decode thread, the resize back on the encode thread (PIL and
FFmpeg release the GIL), and the engine keeps one batch in flight (on CUDA the copy back of batch k overlaps the
model on batch k+1). A translator with only `translate_frames` runs it, prep and all, on the caller's thread.
Queues hold a few batches, so memory does not grow with the video's length. The output goes to a hidden temp
file beside OUTPUT (`turbo_cli.atomic.atomic_path`) that replaces OUTPUT only when complete. A trimmed OUTPUT
(--start) starts at 0 and records where it began in the input as the container tag `turbo_source_start`
(seconds), so `turbo eval` pairs its frames with the right ones.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Protocol, runtime_checkable

import numpy as np

from turbo_cli.atomic import atomic_path
from turbo_cli.errors import InputError, TurboError
from turbo_cli.io.images import resize_rgb
from turbo_cli.io.video import SOURCE_END_TAG, SOURCE_START_TAG, VideoInfo, probe, read_frames
from turbo_cli.io.video_errors import TruncatedVideoError
from turbo_cli.io.video_writer import EncodeSettings, VideoWriter, check_output
from turbo_cli.progress import QUIET, Bar, Progress


@runtime_checkable
class FrameTranslator(Protocol):
    """What the pipeline needs from a model (turbo_cli.engine.translator.Translator provides it). A translator that
    also has the engine's `frame_prep`, `pipelined` and `stats` has its prep and restore moved off the model's
    thread and runs one batch in flight."""

    batch_size: int

    def translate_frames(self, frames: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 -> (B, H, W, 3) uint8, same H and W."""
        ...


class _WholeFrames:
    """A translator with only `translate_frames` in the engine's shape: no prep to move (it is inside), one batch
    at a time, timed here."""

    frame_prep = None

    def __init__(self, translator: FrameTranslator):
        self.translator = translator
        self.stats = SimpleNamespace(model_seconds=0.0)

    def pipelined(self, batches):
        for tag, frames in batches:
            start = time.perf_counter()
            out = self.translator.translate_frames(frames)
            self.stats.model_seconds += time.perf_counter() - start
            yield tag, out


def _engine(translator: FrameTranslator):
    """The engine's Translator as is; anything else wrapped in its shape."""
    if getattr(translator, "frame_prep", None) is not None and hasattr(translator, "pipelined"):
        return translator
    return _WholeFrames(translator)


@dataclass
class VideoJobOptions:
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    start: float | None = None  # seconds into the input; output timestamps then start at 0
    end: float | None = None  # seconds into the input, exclusive
    max_frames: int | None = None
    size: tuple[int, int] | None = None  # output (width, height); None keeps the input's size
    overwrite: bool = False
    batch_size: int | None = None  # None: the translator's own batch_size
    queue_batches: int = 2  # batches buffered per queue: enough to hide jitter, small enough to stay flat
    codec_threads: int = 0  # decoder/encoder threads; 0: FFmpeg's choice (run_video uses 1 when the model is on CPU)


@dataclass
class VideoResult:
    input: Path
    output: Path
    frames_in: int  # decoded (within --start/--end/--max-frames)
    frames_out: int  # encoded into OUTPUT
    duration: float  # seconds of video written (last timestamp - first + one frame)
    wall_s: float  # end to end, including opening files and flushing the encoder
    model_s: float  # the model's time: the engine's RunStats.model_seconds (else time inside translate_frames)
    expected_frames: int | None = None  # what the input's index counts for the same range; None: not known exactly
    notices: list[str] = field(default_factory=list)
    truncated: TruncatedVideoError | None = None

    @property
    def fps(self) -> float:
        return self.frames_out / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def model_fps(self) -> float:
        return self.frames_in / self.model_s if self.model_s > 0 else 0.0

    def summary(self) -> str:
        lost = f", {self.frames_in - self.frames_out} frames NOT written" if self.frames_out != self.frames_in else ""
        return (f"{self.output}: {self.frames_out} frames, {self.duration:.2f} s of video{lost}; "
                f"end-to-end {self.fps:.1f} frames/s, model-only {self.model_fps:.1f} frames/s "
                f"({self.wall_s:.1f} s total, {self.model_s:.1f} s in the model)")


@dataclass
class _Counts:
    """What the pipeline saw: frames through the model, time inside it, the first and last frame times."""

    frames_in: int = 0
    model_s: float = 0.0
    first_t: float = 0.0
    last_t: float = 0.0
    truncated: TruncatedVideoError | None = None  # the input ended early; everything before it was written


# ---------------------------------------------------------------------------------------- plumbing

_END = object()


@dataclass
class _Failed:
    error: BaseException


class _Stage(threading.Thread):
    """A worker thread whose exception is kept for the main thread to re-raise."""

    def __init__(self, name: str, target: Callable[[], None]):
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self.error = e


def _put(q: queue.Queue, item, stop: threading.Event, consumer: threading.Thread | None = None) -> bool:
    """Blocking put that gives up when `stop` is set or the consumer died (nobody waits on a dead thread)."""
    while not stop.is_set() and (consumer is None or consumer.is_alive()):
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event, worker: _Stage | None = None):
    while True:
        try:
            return q.get(timeout=0.05)
        except queue.Empty:
            if stop.is_set():
                return _END
            if worker is not None and not worker.is_alive() and q.empty():
                return _END


def _batch_size(translator: FrameTranslator, wanted: int | None, width: int, height: int) -> int:
    # The engine picks a batch by pixels (batching hurts big frames on CPU); a plain translator has one number.
    if wanted:
        return max(1, int(wanted))
    by_size = getattr(translator, "batch_size_for", None)
    n = by_size(height, width) if callable(by_size) else getattr(translator, "batch_size", 1)
    return max(1, int(n or 1))


def _expected(info: VideoInfo, o: VideoJobOptions) -> tuple[int | None, int | None]:
    """(estimate for the progress bar, exact count or None): only the exact one may back a "frames lost" claim."""
    estimate, exact = info.expected_frames(o.start, o.end), info.exact_frames(o.start, o.end)
    if o.max_frames is not None:
        estimate = o.max_frames if estimate is None else min(estimate, o.max_frames)
        exact = None if exact is None else min(exact, o.max_frames)
    return estimate, exact


# -------------------------------------------------------------------------------------------- one video


def translate_video(
    input: str | Path,
    output: str | Path,
    translator: FrameTranslator,
    options: VideoJobOptions | None = None,
    *,
    progress: Progress = QUIET,
) -> VideoResult:
    """Translate one video file into OUTPUT: a bar of frames named after INPUT, notices to `progress.notice`
    (and kept in the result's `notices`).

    A truncated INPUT is still translated as far as it decodes and OUTPUT is written; then TruncatedVideoError
    is raised (its `.result` holds the VideoResult) so the caller exits non-zero.
    """
    o = options or VideoJobOptions()
    input, output = Path(input), Path(output)

    info = probe(input)  # raises the one-line errors: no such file, not a video, no video stream
    if output.exists() and output.resolve() == input.resolve():
        raise InputError(f"{output}: OUTPUT is the INPUT file; write somewhere else")
    if output.is_dir():
        raise InputError(f"{output}: is a folder; give a file name (or a folder of videos as INPUT)")
    # Container, codec, per-frame timestamps and audio, checked before a frame is decoded.
    check_output(output, o.encode, info.audio_codec, name=output)
    if output.exists() and not o.overwrite:
        raise InputError(f"{output}: already exists (use --overwrite to replace it)")
    if o.start is not None and o.end is not None and o.end <= o.start:
        raise InputError(f"--end {o.end}: must be after --start {o.start}")
    width, height = o.size or (info.width, info.height)
    batch = _batch_size(translator, o.batch_size, width, height)
    estimate, expected = _expected(info, o)

    t0 = time.perf_counter()
    # The temp file ends in OUTPUT's suffix so FFmpeg picks the same container for it. Leaving the `with`s: the
    # writer flushes the encoder, then the temp file replaces OUTPUT; on any error (Ctrl-C too) the writer aborts
    # and the temp file is removed, so OUTPUT is either complete or untouched.
    with atomic_path(output, suffix=f".tmp{output.suffix}") as tmp:
        with VideoWriter(
            tmp,
            width=width,
            height=height,
            time_base=info.time_base,
            rate=info.average_rate,
            rotation=info.rotation,
            settings=dataclasses.replace(o.encode, threads=o.codec_threads) if o.codec_threads else o.encode,
            audio_source=input,
            # --start/--end are seconds from the stream's start; the writer works on the file's own clock.
            audio_start=None if o.start is None else o.start + info.start_time,
            audio_end=None if o.end is None else o.end + info.start_time,
            time_offset=0.0 if o.start is None else o.start + info.start_time,
            progress=progress,
            name=output,
            metadata=_range_tags(o),
        ) as writer:
            with progress.bar(estimate, "frames", input.name) as bar:
                counts = _run_pipeline(input, writer, translator, o, batch, (width, height), bar, info)
                # The bar ends on the frames really written, whatever the estimate said (and whatever count the
                # renderer reached from the encoder thread's advances).
                bar.update(completed=writer.frames_written)
                if estimate != writer.frames_written:
                    bar.update(total=writer.frames_written)
            if o.max_frames is not None and counts.frames_in >= o.max_frames:
                # The video stopped early: end the audio with the last frame, not at the end of the input.
                writer.limit_audio(info.start_time + counts.last_t + _last_frame_s(counts, info))
            if counts.frames_in == 0 and counts.truncated is None:
                raise InputError(f"{input}: no frames between --start {o.start or 0} and --end "
                                 f"{o.end or 'the end'} (the video is {info.duration or 0:.2f} s long)")
    frame_s = 1 / float(info.average_rate) if info.average_rate else 0.0
    result = VideoResult(
        input=input,
        output=output,
        frames_in=counts.frames_in,
        frames_out=writer.frames_written,
        duration=(counts.last_t - counts.first_t + frame_s) if counts.frames_in else 0.0,
        wall_s=time.perf_counter() - t0,
        model_s=counts.model_s,
        expected_frames=expected,
        notices=list(writer.notices),
        truncated=counts.truncated,
    )

    def say(message: str) -> None:
        result.notices.append(message)
        progress.notice(message)

    whole = o.start is None and o.end is None and o.max_frames is None
    if whole and counts.truncated is None and expected is not None and counts.frames_in != expected:
        say(f"{input.name}: the container announces {expected} frames; {counts.frames_in} decoded, "
            f"all {counts.frames_in} written")
    if writer.retimed:
        say(f"{input.name}: {writer.retimed} frame(s) had repeated timestamps and were moved by one tick")
    if result.frames_out != result.frames_in:
        raise TurboError(f"{output}: {result.frames_in} frames decoded but {result.frames_out} written")
    if counts.truncated is not None:
        error = TruncatedVideoError(f"{counts.truncated}; wrote the {result.frames_out} decoded frames to {output}",
                                    decoded=counts.truncated.decoded, expected=counts.truncated.expected)
        error.result = result
        raise error
    return result


def _range_tags(o: VideoJobOptions) -> dict[str, str] | None:
    """The input range a trimmed OUTPUT covers, as container tags (read back by `io.video.source_range`)."""
    tags = {}
    if o.start:
        tags[SOURCE_START_TAG] = f"{o.start:.6f}"
    if o.end is not None:
        tags[SOURCE_END_TAG] = f"{o.end:.6f}"
    return tags or None


def _last_frame_s(counts: _Counts, info: VideoInfo) -> float:
    """How long the last written frame shows: the mean step of the frames written (variable rates too)."""
    if counts.frames_in > 1:
        return (counts.last_t - counts.first_t) / (counts.frames_in - 1)
    return 1 / float(info.average_rate) if info.average_rate else 0.04


def _run_pipeline(input: Path, writer: VideoWriter, translator: FrameTranslator, o: VideoJobOptions, batch: int,
                  size: tuple[int, int], bar: Bar, info: VideoInfo) -> _Counts:
    stop = threading.Event()
    decoded_q: queue.Queue = queue.Queue(maxsize=o.queue_batches * batch)
    encode_q: queue.Queue = queue.Queue(maxsize=o.queue_batches * batch)
    resize = o.size is not None and o.size != (info.width, info.height)
    engine = _engine(translator)
    prep = engine.frame_prep
    width, height = size

    def decode() -> None:
        try:
            for frame in read_frames(input, start=o.start, end=o.end, max_frames=o.max_frames, threads=o.codec_threads):
                rgb = resize_rgb(frame.rgb, size) if resize else frame.rgb
                if prep is not None:
                    rgb = prep.to_model(rgb)
                if not _put(decoded_q, (rgb, frame.pts, frame.time), stop):
                    return
        except BaseException as e:  # noqa: BLE001 - the main thread decides (truncated: finish, then report)
            _put(decoded_q, _Failed(e), stop)
            return
        _put(decoded_q, _END, stop)

    def encode() -> None:
        while True:
            item = _get(encode_q, stop)
            if item is _END:
                return
            rgb, pts = item
            if prep is not None:
                rgb = prep.from_model(rgb, height, width)
                if rgb.shape != (height, width, 3):
                    raise TurboError(f"the model's output comes back at {rgb.shape[1]}x{rgb.shape[0]}, not the "
                                     f"video's {width}x{height} (--keep-model-size is for images)")
            writer.write(rgb, pts)
            bar.advance(1)

    counts = _Counts()

    def batches():
        """(decoded items, model input) per batch, from the decode thread's queue, until the input ends."""
        sent = 0
        done = False
        while not done:
            items = []
            while len(items) < batch:
                item = _get(decoded_q, stop, decoder)
                if item is _END:
                    done = True
                    break
                if isinstance(item, _Failed):
                    if isinstance(item.error, TruncatedVideoError):
                        counts.truncated = item.error  # write what decoded, report after
                        done = True
                        break
                    raise item.error
                items.append(item)
            if not items:
                return
            frames = np.stack([rgb for rgb, _, _ in items])
            if len(items) < batch and sent > 0:
                # Every frame of a video goes through the same batch shape: CPU/GPU kernels may pick another
                # algorithm for another batch size, and a 1-level difference on the last frames is flicker.
                frames = np.concatenate([frames, np.repeat(frames[-1:], batch - len(items), axis=0)])
            sent += len(items)
            yield (items, frames.shape), frames

    decoder = _Stage("turbo-decode", decode)
    encoder = _Stage("turbo-encode", encode)
    decoder.start()
    encoder.start()
    model_s = engine.stats.model_seconds
    try:
        for (items, shape), out in engine.pipelined(batches()):
            if out.shape != shape or out.dtype != np.uint8:
                raise TurboError(f"translator returned {out.shape} {out.dtype} for {shape} uint8 frames")
            if counts.frames_in == 0:
                counts.first_t = items[0][2]
            counts.frames_in += len(items)
            counts.last_t = items[-1][2]
            for rgb, (_, pts, _) in zip(out, items):  # a padded batch's extra outputs are dropped
                if not _put(encode_q, (rgb, pts), stop, encoder):
                    break
            if encoder.error is not None:
                raise encoder.error
        _put(encode_q, _END, stop, encoder)
        encoder.join()  # drains the queue; it stops early only by failing
        if encoder.error is not None:
            raise encoder.error
    finally:
        counts.model_s = engine.stats.model_seconds - model_s
        stop.set()
        decoder.join()
        encoder.join()
    return counts
