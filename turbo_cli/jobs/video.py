"""`turbo video` as a job: check the paths before a model loads, load it once, then translate one file or a folder
of videos (mirrored into an OUTPUT folder, a re-run resuming), in this process or spread over several processes
(a whole video per process). Each video goes through `video_pipeline.translate_video`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from turbo_cli.errors import InputError, TurboError
from turbo_cli.io.video import VIDEO_SUFFIXES, is_video_path, probe
from turbo_cli.io.video_errors import TruncatedVideoError
from turbo_cli.io.video_writer import check_settings
from turbo_cli.jobs.distributed import NoticesOnly, OutputMonitor, current_rank, device_for, gather, relaunch
from turbo_cli.jobs.loading import build_translator
from turbo_cli.jobs.video_pipeline import FrameTranslator, VideoJobOptions, VideoResult, translate_video
from turbo_cli.progress import QUIET, Progress


def discover_videos(folder: Path) -> list[Path]:
    """Video files under a folder (recursive, sorted), skipping hidden files such as our temp files."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and is_video_path(path):
            found.append(path)
    return found


def translate_videos(
    input: str | Path,
    output: str | Path,
    translator: FrameTranslator,
    options: VideoJobOptions | None = None,
    *,
    progress: Progress = QUIET,
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
            result = translate_video(input, output, translator, options, progress=progress)
        except TruncatedVideoError as e:
            if on_result is not None and e.result is not None:
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
            progress.notice(f"skipped {dst}: exists (use --overwrite to redo it)")
            continue
        try:
            result = translate_video(src, dst, translator, options, progress=progress)
        except InputError as e:  # one bad video does not stop the folder
            failures.append(str(e))
            result = getattr(e, "result", None)  # a truncated video was still written
            if result is None:
                progress.notice(f"skipped: {e}")
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
              progress: Progress = QUIET, on_result: Callable[[VideoResult], None] | None = None,
              num_processes: int = 1) -> list[VideoResult]:
    """The whole `turbo video`: check paths and settings, load the model once, translate file or folder;
    or spread a folder over processes (`--num-processes N`, or a run started by `accelerate launch`).

    Returns every video's result on rank 0 (merged across processes), nothing on the other ranks.
    """
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
        translator = build_translator(model_options, progress)
        fit_codec_threads(options, translator)
        return translate_videos(input, output, translator, options, progress=progress, on_result=on_result)
    # One process of a launched run: a whole video per process, one GPU each; rank 0 reports the totals.
    if not input.is_dir():
        raise InputError(f"{input}: a multi-process run needs a folder of videos as INPUT")
    model_options.device = device_for(rank, model_options.device)
    translator = build_translator(model_options, progress if rank.is_main else QUIET)
    fit_codec_threads(options, translator)
    failures: list[str] = []
    monitor = None
    if rank.is_main:  # one bar (videos done) for all processes
        todo = [output / v.relative_to(input) for v in discover_videos(input) if not _is_inside(v, output)]
        monitor = OutputMonitor([p for p in todo if options.overwrite or not p.exists()], "video",
                                "translating videos (all processes)", progress)
    try:
        # The merged bar stands for every video; rank 0 still passes on its notices, the other ranks stay quiet.
        results = translate_videos(input, output, translator, options,
                                   progress=NoticesOnly(progress) if rank.is_main else QUIET,
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
