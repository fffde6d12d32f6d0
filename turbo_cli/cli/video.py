"""`turbo video INPUT OUTPUT`: translate a video (or a folder of videos) frame by frame, audio and timing kept."""

# No `from __future__ import annotations`: typer reads these Annotated options through the
# with_model_options wrapper, whose globals are options.py's, so string annotations would lose their help.
import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from turbo_cli.cli.options import with_model_options
from turbo_cli.cli.ui import RichProgress, print_summary_table
from turbo_cli.errors import InputError

PANEL = "Video"


def parse_time(text: str | None, option: str) -> float | None:
    """Seconds from '90', '90.5', '1:30' or '00:01:30.5'."""
    if text is None:
        return None
    if not re.fullmatch(r"(\d+:){0,2}\d+(\.\d*)?", text.strip()):
        raise InputError(f"{option} {text}: expected seconds (90.5) or [HH:]MM:SS[.ms]")
    seconds = 0.0
    for part in text.strip().split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def parse_size(text: str) -> tuple[int, int] | None:
    """None for 'keep', else (width, height) from 'WxH'."""
    if text.lower() == "keep":
        return None
    m = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not m or int(m.group(1)) < 2 or int(m.group(2)) < 2:
        raise InputError(f"--size {text}: expected keep or WIDTHxHEIGHT (e.g. 1280x720)")
    return int(m.group(1)), int(m.group(2))


@with_model_options
def video(
    input: Annotated[Path, typer.Argument(help="A video file, or a folder of videos (searched recursively).")],
    output: Annotated[Path, typer.Argument(
        help="Output video file (its suffix picks the container: .mp4, .mkv, .mov, .webm; not .avi, which loses "
        "per-frame timestamps), an existing folder to write INPUT's name into, or a folder when INPUT is one.")],
    codec: Annotated[str, typer.Option(
        rich_help_panel=PANEL, help="Video encoder: libx264, libx265, libvpx-vp9, libsvtav1, or a hardware one "
        "(h264_nvenc, hevc_nvenc, ...) when FFmpeg and the machine have it.")] = "libx264",
    crf: Annotated[int, typer.Option(
        min=0, max=63, rich_help_panel=PANEL, help="Constant quality (lower = better, bigger); 18 is visually "
        "lossless for libx264.")] = 18,
    pix_fmt: Annotated[str, typer.Option(
        "--pix-fmt", rich_help_panel=PANEL, help="Output pixel format; yuv420p plays everywhere (odd sizes are "
        "padded by one pixel), yuv444p keeps full colour and exact odd sizes.")] = "yuv420p",
    preset: Annotated[Optional[str], typer.Option(
        rich_help_panel=PANEL, help="Encoder speed preset (libx264: ultrafast ... veryslow; default medium).")] = None,
    audio: Annotated[str, typer.Option(
        rich_help_panel=PANEL, help="copy: keep the input's audio (remuxed untouched, or re-encoded if the output "
        "container refuses its codec: Opus for .webm, AAC otherwise) | drop.")] = "copy",
    start: Annotated[Optional[str], typer.Option(
        rich_help_panel=PANEL, help="Start time in the input (seconds or [HH:]MM:SS[.ms]).")] = None,
    end: Annotated[Optional[str], typer.Option(
        rich_help_panel=PANEL, help="End time in the input, exclusive.")] = None,
    max_frames: Annotated[Optional[int], typer.Option(
        min=1, rich_help_panel=PANEL, help="Stop after this many frames.")] = None,
    size: Annotated[str, typer.Option(
        rich_help_panel=PANEL, help="Output size WxH, or keep (the input's; the model still runs at its own size "
        "and the result is resized back).")] = "keep",
    overwrite: Annotated[bool, typer.Option(rich_help_panel=PANEL, help="Replace an existing OUTPUT.")] = False,
    num_processes: Annotated[int, typer.Option(
        min=1, rich_help_panel=PANEL, help="Folder of videos: spread them over N processes on this machine "
        "(accelerate launch; a whole video per process, one GPU each).")] = 1,
    *, model_options,
) -> None:
    """Translate videos: decoding, the model and encoding run overlapped; frames, timestamps, audio, rotation kept.

    \b
    turbo video dashcam.mp4 night.mp4 --direction night
    turbo video clip.mov out.mkv --model demo --start 0:05 --end 0:10
    turbo video clips/ out/ --model my.safetensors --num-processes 2
    """
    from turbo_cli.io.video_writer import EncodeSettings
    from turbo_cli.jobs.video import run_video
    from turbo_cli.jobs.video_pipeline import VideoJobOptions

    options = VideoJobOptions(
        encode=EncodeSettings(codec=codec, crf=crf, pix_fmt=pix_fmt, preset=preset, audio=audio),
        start=parse_time(start, "--start"),
        end=parse_time(end, "--end"),
        max_frames=max_frames,
        size=parse_size(size),
        overwrite=overwrite,
        batch_size=model_options.batch_size,
    )

    def report(r) -> None:
        print_summary_table(f"video: {r.input.name}", [
            ("frames", f"{r.frames_out}" + (f" of {r.expected_frames} expected" if r.expected_frames
                                            and r.expected_frames != r.frames_out else "")),
            ("duration", f"{r.duration:.2f} s"),
            ("frames/s (end to end)", f"{r.fps:.2f}"),
            ("frames/s (model only)", f"{r.model_fps:.2f}"),
            ("output", str(r.output)),
        ])

    run_video(input, output, model_options, options, progress=RichProgress(), on_result=report,
              num_processes=num_processes)


def register(app: typer.Typer) -> None:
    app.command("video")(video)
