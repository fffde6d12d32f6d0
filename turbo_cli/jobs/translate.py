"""Translate a folder of images: decode and prepare on worker threads, batch by size on the model (one batch in
flight: `Translator.pipelined`), restore and write on a writer thread.

Every output is written atomically, so an interrupted run leaves no partial image and a re-run skips what is done.
A file that cannot be read or written is reported with its path; the run goes on and ends non-zero.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from turbo_cli.atomic import remove_stale
from turbo_cli.errors import InputError, TurboError
from turbo_cli.io.frames import lanczos
from turbo_cli.io.images import (DecodedImage, ImageJob, discover_images, is_complete_output, normalize_format,
                                 output_file, output_path, read_image, write_image_atomic)
from turbo_cli.progress import QUIET, Progress


@dataclass
class TranslateSummary:
    total: int = 0  # inputs found (this process's share)
    done: int = 0
    skipped: int = 0  # outputs already there (resume)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0
    model_seconds: float = 0.0
    processes: int = 1

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    @property
    def model_images_per_second(self) -> float:
        return self.done / self.model_seconds if self.model_seconds else 0.0

    def merge(self, other: "TranslateSummary") -> "TranslateSummary":
        """Totals across processes; wall time is the slowest process's."""
        return TranslateSummary(self.total + other.total, self.done + other.done, self.skipped + other.skipped,
                                self.failed + other.failed, max(self.seconds, other.seconds),
                                max(self.model_seconds, other.model_seconds), self.processes + other.processes)


def check_paths(input: str | Path, output: str | Path) -> None:
    """Refuse what `turbo translate` cannot do, in one line and before a model is loaded: a video in or out."""
    from turbo_cli.io.video import is_video_path

    if is_video_path(input):
        raise InputError(f"{input}: is a video; translate it with `turbo video {input} OUT.mp4` (same model options)")
    if is_video_path(output) and not Path(output).is_dir():
        raise InputError(f"{output}: names a video; `turbo translate` writes images (an output folder or, for one "
                         f"image, an image file); for videos use `turbo video`")


def plan(input: str | Path, output_dir: str | Path, fmt: str | None = None, overwrite: bool = False,
         rank: int = 0, world_size: int = 1) -> tuple[list[tuple[ImageJob, Path]], int, int]:
    """(jobs to run with their output paths, total inputs, skipped) for this process's shard.

    Sharding is by position in the sorted input list (rank::world_size), computed before the skip check, so every
    input belongs to exactly one process whatever is already done.
    """
    check_paths(input, output_dir)
    target = output_file(input, output_dir, fmt)  # OUTPUT names a file: the single input image goes there
    fmt = normalize_format(fmt)
    jobs = discover_images(input, exclude=None if target else output_dir)[rank::world_size]
    todo = [(job, target or output_path(job, output_dir, fmt)) for job in jobs]
    if not overwrite:
        todo = [(job, out) for job, out in todo if not is_complete_output(out)]
    return todo, len(jobs), len(jobs) - len(todo)


def _decoded_in_order(jobs: list[tuple[ImageJob, Path]], workers: int, lookahead: int, prepare):
    """Yield (job, out, (DecodedImage, model input) | TurboError) in input order, decoding and preparing (the
    model-size resize and conditioning, `FramePrep.to_model`) up to `lookahead` ahead on threads."""
    def read(job):
        try:
            img = read_image(job.src)
            return img, prepare(img.rgb)
        except TurboError as e:  # unreadable, too small, ...: reported by path, the others go on
            return TurboError(f"{job.src}: {e}" if str(job.src) not in str(e) else str(e))

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="turbo-decode") as pool:
        pending: "OrderedDict[int, tuple]" = OrderedDict()
        it = iter(enumerate(jobs))
        for i, (job, out) in it:
            pending[i] = (job, out, pool.submit(read, job))
            if len(pending) >= lookahead:
                break
        while pending:
            _, (job, out, future) = pending.popitem(last=False)
            for i, (next_job, next_out) in it:
                pending[i] = (next_job, next_out, pool.submit(read, next_job))
                break
            yield job, out, future.result()


class _Writer:
    """A writer thread with a bounded queue: brings each output back to its input's size (`FramePrep.from_model`,
    PIL, off the model's thread) and writes it atomically; write failures are collected, not raised."""

    def __init__(self, failed: list, on_done, restore, maxsize: int = 64):
        self.queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self.failed = failed
        self.on_done = on_done
        self.restore = restore
        self.thread = threading.Thread(target=self._run, name="turbo-write", daemon=True)
        self.thread.start()

    def _run(self):
        while (item := self.queue.get()) is not None:
            out, rgb, alpha, src, (height, width) = item
            try:
                rgb = self.restore(rgb, height, width)
                if alpha is not None and alpha.shape != rgb.shape[:2]:  # --keep-model-size: alpha follows
                    alpha = lanczos(alpha, *rgb.shape[:2])
                write_image_atomic(out, rgb, alpha)
                self.on_done(True)
            except TurboError as e:
                self.failed.append((str(src), str(e)))
                self.on_done(False)
            except Exception as e:  # never let the writer die: the model thread would block on a full queue
                self.failed.append((str(src), f"{src}: cannot write the output ({type(e).__name__}: {e})"))
                self.on_done(False)

    def put(self, out: Path, rgb: np.ndarray, alpha, src: Path, size: tuple[int, int]):
        self.queue.put((out, rgb, alpha, src, size))

    def close(self):
        self.queue.put(None)
        self.thread.join()


def translate_folder(input: str | Path, output_dir: str | Path, translator, *, fmt: str | None = None,
                     overwrite: bool = False, workers: int = 4, progress: Progress = QUIET, rank: int = 0,
                     world_size: int = 1, on_progress=None) -> TranslateSummary:
    """Translate every image under `input` into `output_dir` (mirroring relative paths)."""
    start = time.perf_counter()
    remove_stale(output_dir)  # temp files of an earlier run that was killed (SIGKILL runs no cleanup)
    todo, total, skipped = plan(input, output_dir, fmt, overwrite, rank, world_size)
    summary = TranslateSummary(total=total, skipped=skipped)
    lock = threading.Lock()

    bar = (progress if rank == 0 else QUIET).bar(len(todo), "img", "translating")
    done_count = [0]

    def on_done(ok: bool):
        with lock:
            if ok:
                done_count[0] += 1
            bar.advance()
            if on_progress is not None:
                on_progress(1)

    frame_prep = getattr(translator, "frame_prep", None)
    writer = _Writer(summary.failed, on_done, frame_prep.from_model if frame_prep else None)
    # Batches are keyed by the size the MODEL runs at, not the input's: under resize_512x512 a folder of mixed
    # photo sizes still runs in full batches.
    groups: dict[tuple[int, int], list[tuple[ImageJob, Path, DecodedImage, np.ndarray]]] = {}

    def full(key):
        batch = groups.pop(key)
        return batch, np.stack([prepared for *_, prepared in batch])

    def batches():
        for job, out, item in _decoded_in_order(todo, workers, lookahead=64,
                                                prepare=frame_prep.to_model if frame_prep else None):
            if isinstance(item, TurboError):
                summary.failed.append((str(job.src), str(item)))
                on_done(False)
                continue
            img, prepared = item
            key = prepared.shape[:2]
            groups.setdefault(key, []).append((job, out, img, prepared))
            if len(groups[key]) >= translator.batch_size_for(*key):
                yield full(key)
            elif sum(len(g) for g in groups.values()) > 64:  # many sizes: don't hold images forever
                yield full(max(groups, key=lambda k: len(groups[k])))
        for key in list(groups):
            yield full(key)

    try:
        with bar:
            # One batch in flight: batch k's outputs go to the writer while batch k+1 runs.
            for batch, outputs in translator.pipelined(batches()):
                for (job, out, img, _), rgb in zip(batch, outputs):
                    writer.put(out, rgb, img.alpha, job.src, (img.height, img.width))
    finally:
        writer.close()
    summary.done = done_count[0]
    summary.seconds = time.perf_counter() - start
    summary.model_seconds = translator.stats.model_seconds
    return summary


def run_translate(input, output, model_options, *, fmt=None, overwrite=False, workers=4, num_processes=1,
                  progress: Progress = QUIET) -> TranslateSummary | None:
    """The whole `turbo translate`: single process, one process of a launched run, or a relaunch with N processes.

    Returns the summary (merged across processes) on rank 0, None on other ranks.
    """
    from turbo_cli.jobs.distributed import OutputMonitor, current_rank, device_for, gather, relaunch
    from turbo_cli.jobs.loading import build_translator

    check_paths(input, output)  # one-line refusals before processes are launched or a model is loaded
    output_file(input, output, fmt)
    rank = current_rank()
    if num_processes > 1 and rank.world_size == 1:
        code = relaunch(num_processes, "translate", model_options.device)
        if code != 0:  # rank 0 has printed the merged summary and the failures
            raise TurboError(f"the {num_processes} translate processes ended with exit code {code}")
        return None
    model_options.device = device_for(rank, model_options.device)
    if not plan(input, output, fmt, overwrite, rank.rank, rank.world_size)[0]:
        translator = _NothingToDo()  # everything is done already: don't spend seconds loading the model
    else:
        translator = build_translator(model_options, progress)
    monitor = None
    if rank.world_size > 1 and rank.is_main:  # one bar for all processes, on rank 0
        every_shard = [out for r in range(rank.world_size)
                       for _, out in plan(input, output, fmt, overwrite, r, rank.world_size)[0]]
        monitor = OutputMonitor(every_shard, "img", "translating (all processes)", progress)
    try:
        summary = translate_folder(input, output, translator, fmt=fmt, overwrite=overwrite, workers=workers,
                                   progress=progress if monitor is None else QUIET, rank=rank.rank,
                                   world_size=rank.world_size)
    finally:
        if monitor is not None:
            monitor.stop()
    summaries = gather(summary, rank)
    if not rank.is_main:
        return None
    merged = summaries[0]
    for other in summaries[1:]:
        merged = merged.merge(other)
    return merged


class _NothingToDo:
    """Stands in for the Translator when every output of this shard exists."""

    class stats:
        model_seconds = 0.0

    @staticmethod
    def pipelined(batches):
        return iter(())  # nothing planned: no batch comes
