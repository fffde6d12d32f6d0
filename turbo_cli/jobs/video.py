"""Translate videos: decode, model and encode overlapped, memory flat, output replaced atomically.

Three stages, two bounded queues:

    decode thread --frames--> caller's thread: model in batches --frames--> encode thread
    (PyAV, threads "AUTO")    (FrameTranslator.translate_frames)            (VideoWriter -> temp file)

The model runs on the caller's thread so Ctrl-C lands where the work is; decoding and encoding (FFmpeg
releases the GIL) run while the model computes. Queues hold a few batches, so memory does not grow with the
video's length. The output goes to a hidden temp file beside OUTPUT and is os.replace'd only when complete.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from turbo_cli.errors import InputError, TurboError
from turbo_cli.io.video import (
    VIDEO_SUFFIXES,
    EncodeSettings,
    TruncatedVideoError,
    VideoInfo,
    VideoWriter,
    probe,
    read_frames,
    resize_rgb,
)


@runtime_checkable
class FrameTranslator(Protocol):
    """What the pipeline needs from a model (turbo_cli.engine.translator.Translator provides it)."""

    batch_size: int

    def translate_frames(self, frames: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 -> (B, H, W, 3) uint8, same H and W."""
        ...


class Progress(Protocol):
    """Progress sink; the CLI passes a rich progress bar, tests and benchmarks pass nothing."""

    def start(self, name: str, total: int | None) -> None: ...

    def advance(self, frames: int) -> None: ...

    def finish(self) -> None: ...


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
    model_s: float  # time inside translate_frames only
    expected_frames: int | None = None  # what the input announced for the same range
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


def temp_path_for(output: Path) -> Path:
    """Hidden temp file beside OUTPUT, keeping the suffix so FFmpeg picks the same container."""
    return output.with_name(f".{output.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{output.suffix}")


def _batch_size(translator: FrameTranslator, wanted: int | None, width: int, height: int) -> int:
    # The engine picks a batch by pixels (batching hurts big frames on CPU); a plain translator has one number.
    if wanted:
        return max(1, int(wanted))
    by_size = getattr(translator, "batch_size_for", None)
    n = by_size(height, width) if callable(by_size) else getattr(translator, "batch_size", 1)
    return max(1, int(n or 1))


def _expected(info: VideoInfo, o: VideoJobOptions) -> int | None:
    n = info.expected_frames(o.start, o.end)
    if o.max_frames is not None:
        n = o.max_frames if n is None else min(n, o.max_frames)
    return n


# -------------------------------------------------------------------------------------------- one video


def translate_video(
    input: str | Path,
    output: str | Path,
    translator: FrameTranslator,
    options: VideoJobOptions | None = None,
    *,
    progress: Progress | None = None,
    notice: Callable[[str], None] | None = None,
) -> VideoResult:
    """Translate one video file into OUTPUT.

    A truncated INPUT is still translated as far as it decodes and OUTPUT is written; then TruncatedVideoError
    is raised (its `.result` holds the VideoResult) so the caller exits non-zero.
    """
    o = options or VideoJobOptions()
    input, output = Path(input), Path(output)
    notices: list[str] = []

    def say(message: str) -> None:
        notices.append(message)
        if notice is not None:
            notice(message)

    info = probe(input)  # raises the one-line errors: no such file, not a video, no video stream
    if output.exists() and output.resolve() == input.resolve():
        raise InputError(f"{output}: OUTPUT is the INPUT file; write somewhere else")
    if output.is_dir():
        raise InputError(f"{output}: is a folder; give a file name (or a folder of videos as INPUT)")
    if output.exists() and not o.overwrite:
        raise InputError(f"{output}: already exists (use --overwrite to replace it)")
    if o.start is not None and o.end is not None and o.end <= o.start:
        raise InputError(f"--end {o.end}: must be after --start {o.start}")
    width, height = o.size or (info.width, info.height)
    batch = _batch_size(translator, o.batch_size, width, height)
    expected = _expected(info, o)

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(output)
    t0 = time.perf_counter()
    writer = None
    try:
        writer = VideoWriter(
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
            notice=say,
            name=output,
        )
        counts = _run_pipeline(input, writer, translator, o, batch, (width, height), expected, progress, info)
        if counts[0] == 0 and counts[-1] is None:
            raise InputError(f"{input}: no frames between --start {o.start or 0} and --end {o.end or 'the end'} "
                             f"(the video is {info.duration or 0:.2f} s long)")
        writer.close()
        os.replace(tmp, output)
    except BaseException:
        if writer is not None:
            writer.abort()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if progress is not None:
            progress.finish()
    frames_in, model_s, first_t, last_t, truncated = counts
    frame_s = 1 / float(info.average_rate) if info.average_rate else 0.0
    result = VideoResult(
        input=input,
        output=output,
        frames_in=frames_in,
        frames_out=writer.frames_written,
        duration=(last_t - first_t + frame_s) if frames_in else 0.0,
        wall_s=time.perf_counter() - t0,
        model_s=model_s,
        expected_frames=expected,
        notices=notices,
        truncated=truncated,
    )
    whole = o.start is None and o.end is None and o.max_frames is None
    if whole and truncated is None and expected is not None and frames_in != expected:
        say(f"{input.name}: the container announces {expected} frames; {frames_in} decoded, all {frames_in} written")
    if writer.retimed:
        say(f"{input.name}: {writer.retimed} frame(s) had repeated timestamps and were moved by one tick")
    if result.frames_out != result.frames_in:
        raise TurboError(f"{output}: {result.frames_in} frames decoded but {result.frames_out} written")
    if truncated is not None:
        error = TruncatedVideoError(f"{truncated}; wrote the {result.frames_out} decoded frames to {output}",
                                    decoded=truncated.decoded, expected=truncated.expected)
        error.result = result
        raise error
    return result


def _run_pipeline(input: Path, writer: VideoWriter, translator: FrameTranslator, o: VideoJobOptions, batch: int,
                  size: tuple[int, int], expected: int | None, progress: Progress | None, info: VideoInfo):
    stop = threading.Event()
    decoded_q: queue.Queue = queue.Queue(maxsize=o.queue_batches * batch)
    encode_q: queue.Queue = queue.Queue(maxsize=o.queue_batches * batch)
    resize = o.size is not None and o.size != (info.width, info.height)

    def decode() -> None:
        try:
            for frame in read_frames(input, start=o.start, end=o.end, max_frames=o.max_frames, threads=o.codec_threads):
                rgb = resize_rgb(frame.rgb, size) if resize else frame.rgb
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
            writer.write(rgb, pts)
            if progress is not None:
                progress.advance(1)

    if progress is not None:
        progress.start(input.name, expected)
    decoder = _Stage("turbo-decode", decode)
    encoder = _Stage("turbo-encode", encode)
    decoder.start()
    encoder.start()
    frames_in, model_s = 0, 0.0
    first_t = last_t = 0.0
    truncated: TruncatedVideoError | None = None
    try:
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
                        truncated = item.error  # write what decoded, report after
                        done = True
                        break
                    raise item.error
                items.append(item)
            if not items:
                break
            frames = np.stack([rgb for rgb, _, _ in items])
            if len(items) < batch and frames_in > 0:
                # Every frame of a video goes through the same batch shape: CPU/GPU kernels may pick another
                # algorithm for another batch size, and a 1-level difference on the last frames is flicker.
                frames = np.concatenate([frames, np.repeat(frames[-1:], batch - len(items), axis=0)])
            t = time.perf_counter()
            out = translator.translate_frames(frames)
            model_s += time.perf_counter() - t
            if out.shape != frames.shape or out.dtype != np.uint8:
                raise TurboError(f"translator returned {out.shape} {out.dtype} for {frames.shape} uint8 frames")
            out = out[: len(items)]
            if frames_in == 0:
                first_t = items[0][2]
            frames_in += len(items)
            last_t = items[-1][2]
            for rgb, (_, pts, _) in zip(out, items):
                if not _put(encode_q, (rgb, pts), stop, encoder):
                    break
            if encoder.error is not None:
                raise encoder.error
        _put(encode_q, _END, stop, encoder)
        encoder.join()  # drains the queue; it stops early only by failing
        if encoder.error is not None:
            raise encoder.error
    finally:
        stop.set()
        decoder.join()
        encoder.join()
    return frames_in, model_s, first_t, last_t, truncated


# --------------------------------------------------------------------------------------- folders / entry


def discover_videos(folder: Path) -> list[Path]:
    """Video files under a folder (recursive, sorted), skipping hidden files such as our temp files."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            found.append(path)
    return found


def translate_videos(
    input: str | Path,
    output: str | Path,
    translator: FrameTranslator,
    options: VideoJobOptions | None = None,
    *,
    progress: Progress | None = None,
    notice: Callable[[str], None] | None = None,
    on_result: Callable[[VideoResult], None] | None = None,
    rank: int = 0,
    world_size: int = 1,
    failures: list[str] | None = None,
) -> list[VideoResult]:
    """INPUT file -> OUTPUT file, or INPUT folder -> OUTPUT folder mirroring relative names.

    In folder mode a bad or truncated video does not stop the others; the failures are raised together at the
    end (one line each, first line summarising) — or, when a `failures` list is given, appended to it. Outputs
    that exist are skipped unless overwrite (so a re-run resumes); with several processes each takes the videos
    at positions rank, rank + world_size, ... of the sorted list (a whole video per process).
    """
    input, output = Path(input), Path(output)
    if not input.exists():
        raise InputError(f"{input}: no such file or folder")
    if not input.is_dir():
        try:
            result = translate_video(input, output, translator, options, progress=progress, notice=notice)
        except TruncatedVideoError as e:
            if on_result is not None and getattr(e, "result", None) is not None:
                on_result(e.result)
            raise
        if on_result is not None:
            on_result(result)
        return [result]

    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: INPUT is a folder, so OUTPUT must be a folder too")
    videos = [p for p in discover_videos(input) if not _is_inside(p, output)]
    if not videos:
        raise InputError(f"{input}: no videos found ({', '.join(VIDEO_SUFFIXES)})")
    raise_at_end = failures is None
    results, failures = [], ([] if failures is None else failures)
    o = options or VideoJobOptions()
    for src in videos[rank::world_size]:
        dst = output / src.relative_to(input)
        if dst.exists() and not o.overwrite:  # written atomically: an existing output is complete
            if notice is not None:
                notice(f"skipped {dst}: exists (use --overwrite to redo it)")
            continue
        try:
            result = translate_video(src, dst, translator, options, progress=progress, notice=notice)
        except InputError as e:  # one bad video does not stop the folder
            failures.append(str(e))
            result = getattr(e, "result", None)  # a truncated video was still written
            if result is None:
                if notice is not None:
                    notice(f"skipped: {e}")
                continue
        results.append(result)
        if on_result is not None:
            on_result(result)
    if failures and raise_at_end:
        raise InputError(f"{len(failures)} of {len(videos)} videos failed: " + " | ".join(failures))
    return results


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------- the command


class RichProgress:
    """A progress bar per video (turbo's one bar style): frames done/total, frames/s, elapsed, ETA."""

    def __init__(self, console=None):
        self.console = console
        self.bar = None

    def start(self, name: str, total: int | None) -> None:
        from turbo_cli.progress import Bar

        self.bar = Bar(total, "frames", name, console=self.console).__enter__()

    def advance(self, frames: int) -> None:
        if self.bar is not None:
            self.bar.advance(frames)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.settle()
            self.bar.__exit__(None, None, None)
            self.bar = None


def check_paths(input: Path, output: Path, options: VideoJobOptions) -> None:
    """The cheap checks, done before a model is loaded: INPUT readable, OUTPUT free (or --overwrite)."""
    if not input.exists():
        raise InputError(f"{input}: no such file or folder")
    if input.is_dir():
        if output.exists() and not output.is_dir():
            raise InputError(f"{output}: INPUT is a folder, so OUTPUT must be a folder too")
        return
    probe(input)
    if output.is_dir():
        raise InputError(f"{output}: is a folder; give an output file name like {output / input.name}")
    if output.exists() and not options.overwrite:
        raise InputError(f"{output}: already exists (use --overwrite to replace it)")


def fit_codec_threads(options: VideoJobOptions, translator) -> None:
    """A model on the CPU already uses every core: one thread per codec keeps FFmpeg's threads from stalling it
    (measured on 2 cores: end-to-end/model-only 1.18x with FFmpeg's automatic threads, 1.02x with one)."""
    device = getattr(translator, "device", None)
    if options.codec_threads == 0 and device is not None and device.type == "cpu":
        options.codec_threads = 1


def run_video(input: str | Path, output: str | Path, model_options, options: VideoJobOptions, *,
              console=None, notice: Callable[[str], None] | None = None,
              on_result: Callable[[VideoResult], None] | None = None, num_processes: int = 1) -> list[VideoResult]:
    """The whole `turbo video`: check paths and settings, load the model once, translate file or folder;
    or spread a folder over processes (`--num-processes N`, or a run started by `accelerate launch`)."""
    from turbo_cli.io.video import check_settings
    from turbo_cli.jobs.loading import build_translator

    from turbo_cli.jobs.distributed import OutputMonitor, current_rank, device_for, gather, relaunch

    input, output = Path(input), Path(output)
    check_settings(options.encode)
    check_paths(input, output, options)
    rank = current_rank()
    if num_processes > 1 and rank.world_size == 1:
        if not input.is_dir():
            raise InputError("--num-processes: spreading work over processes needs a folder of videos as INPUT")
        code = relaunch(num_processes, "video", model_options.device)
        if code != 0:
            raise TurboError(f"the {num_processes} video processes ended with exit code {code}")
        return []
    if rank.world_size == 1:
        translator = build_translator(model_options)
        fit_codec_threads(options, translator)
        return translate_videos(input, output, translator, options, progress=RichProgress(console), notice=notice,
                                on_result=on_result)
    # One process of a launched run: a whole video per process, one GPU each; rank 0 reports the totals.
    if not input.is_dir():
        raise InputError(f"{input}: a multi-process run needs a folder of videos as INPUT")
    model_options.device = device_for(rank, model_options.device)
    translator = build_translator(model_options)
    fit_codec_threads(options, translator)
    failures: list[str] = []
    monitor = None
    if rank.is_main:  # one bar (videos done) for all processes
        todo = [output / v.relative_to(input) for v in discover_videos(input) if not _is_inside(v, output)]
        monitor = OutputMonitor([p for p in todo if options.overwrite or not p.exists()], "video",
                                "translating videos (all processes)")
    try:
        results = translate_videos(input, output, translator, options, notice=notice if rank.is_main else None,
                                   rank=rank.rank, world_size=rank.world_size, failures=failures)
    finally:
        if monitor is not None:
            monitor.stop()
    everything = gather((results, failures), rank)
    if not rank.is_main:
        return []
    all_results = [r for rs, _ in everything for r in rs]
    all_failures = [f for _, fs in everything for f in fs]
    for result in all_results:
        if on_result is not None:
            on_result(result)
    if all_failures:
        raise InputError(f"{len(all_failures)} videos failed: " + " | ".join(all_failures))
    return all_results
