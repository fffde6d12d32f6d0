"""`turbo video` as a job: check the paths before a model loads, load it once, then translate one file or a folder
of videos (mirrored into an OUTPUT folder, a re-run resuming), in this process or spread over several processes
(a whole video per process). Each video goes through `video_pipeline.translate_video`. A single video to an existing
folder is written into it under the input's name; a folder of videos never goes to a name with a video suffix.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from turbo_cli.atomic import remove_stale
from turbo_cli.errors import InputError, TurboError
from turbo_cli.io.video import VIDEO_SUFFIXES, is_video_path, probe
from turbo_cli.io.video_errors import TruncatedVideoError
from turbo_cli.io.video_writer import check_output, check_settings, keeps_timestamps
from turbo_cli.jobs.distributed import OutputMonitor, current_rank, device_for, gather, relaunch
from turbo_cli.jobs.loading import build_translator
from turbo_cli.jobs.video_pipeline import FrameTranslator, VideoJobOptions, VideoResult, translate_video
from turbo_cli.progress import QUIET, NoticesOnly, Progress


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
        output = single_output(input, output)
        remove_stale(output.parent, recursive=False)  # a killed earlier run's temp file (SIGKILL runs no cleanup)
        try:
            result = translate_video(input, output, translator, options, progress=progress)
        except TruncatedVideoError as e:
            if on_result is not None and e.result is not None:
                on_result(e.result)
            raise
        if on_result is not None:
            on_result(result)
        return [result]

    _check_folder_output(output)
    remove_stale(output)
    videos = [p for p in discover_videos(input) if not _is_inside(p, output)]
    if not videos:
        raise InputError(f"{input}: no videos found ({', '.join(VIDEO_SUFFIXES)})")
    raise_at_end = failures is None
    results, failures = [], ([] if failures is None else failures)
    o = options or VideoJobOptions()
    for src in videos[rank::world_size]:
        dst = mirrored_output(src, input, output)
        if dst.suffix != src.suffix:
            progress.notice(f"{src.name}: its {src.suffix} container cannot keep per-frame timestamps; "
                            f"writing {dst.name} instead")
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


def single_output(input: Path, output: Path) -> Path:
    """OUTPUT for one INPUT video: an existing folder means the input's name inside it."""
    return output / input.name if output.is_dir() else output


def mirrored_output(src: Path, input: Path, output: Path) -> Path:
    """Where a video of an INPUT folder goes: the same relative name under OUTPUT, except that a container
    which cannot keep per-frame timestamps (avi, mpeg-ps) becomes .mkv, so a folder of .avi clips still works."""
    dst = output / src.relative_to(input)
    return dst if keeps_timestamps(dst.suffix.lower()) else dst.with_suffix(".mkv")


def _check_folder_output(output: Path) -> None:
    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: INPUT is a folder, so OUTPUT must be a folder too")
    if not output.exists() and is_video_path(output):
        # Creating a folder called out.mp4 is never what was meant.
        raise InputError(f"{output}: INPUT is a folder of videos, so OUTPUT must be a folder, not a "
                         f"{output.suffix} file name")


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
        _check_folder_output(output)
        return
    info = probe(input)  # also refuses a still image (pointing to `turbo translate`)
    output = single_output(input, output)
    if output.exists() and output.resolve() == input.resolve():
        raise InputError(f"{output}: OUTPUT is the INPUT file; write somewhere else")
    if output.exists() and not options.overwrite:
        raise InputError(f"{output}: already exists (use --overwrite to replace it)")
    # Container, video codec, per-frame timestamps and this input's audio: refused before a model loads.
    check_output(output, options.encode, info.audio_codec, name=output)


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
        todo = [mirrored_output(v, input, output) for v in discover_videos(input) if not _is_inside(v, output)]
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
