"""`turbo translate INPUT OUTPUT`: translate an image, a folder or a glob into a folder (one image: into a file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from turbo_cli.cli.options import with_model_options
from rich.text import Text

from turbo_cli.cli.ui import console, print_summary_table


@with_model_options
def translate(
    input: Annotated[str, typer.Argument(help="An image, a folder (searched recursively) or a glob ('shots/*.jpg').")],
    output: Annotated[Path, typer.Argument(
        help="Output folder (mirrors the inputs' relative paths), or, for a single input image, an image file "
             "(out.png, out.jpg, ...: the suffix picks the format).")],
    format: Annotated[Optional[str], typer.Option(
        "--format", help="Output format (png, jpg, webp, ...); default: each input's own.")] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Translate again even when an output exists (default: skip it, so a re-run resumes).")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Image decoding threads.")] = 4,
    num_processes: Annotated[int, typer.Option(
        min=1, help="Spread the work over N processes on this machine (accelerate launch); one GPU each.")] = 1,
    *, model_options,
) -> None:
    """Batch-translate images with a pix2pix-turbo / CycleGAN-turbo model (videos: `turbo video`).

    \b
    turbo translate photo.jpg night.jpg --model demo   # one image, one file
    turbo translate photos/ night/ --direction night   # a folder, day_to_night
    turbo translate 'shots/*.png' out/ --model my.safetensors -d b2a
    turbo translate edges/ out/ --model edge_to_image --prompt "a red car"
    """
    from turbo_cli.cli.ui import RichProgress
    from turbo_cli.jobs.translate import run_translate

    summary = run_translate(input, output, model_options, fmt=format, overwrite=overwrite, workers=workers,
                            num_processes=num_processes, progress=RichProgress())
    if summary is None:  # a worker process of a distributed run: rank 0 reports
        return
    print_summary_table("translate", [
        ("images found", summary.total), ("translated", summary.done), ("skipped (already done)", summary.skipped),
        ("failed", len(summary.failed)), ("images/s (end to end)", f"{summary.images_per_second:.2f}"),
        ("images/s (model only)", f"{summary.model_images_per_second:.2f}"), ("processes", summary.processes),
        ("output", str(output))])
    for path, reason in summary.failed[:20]:
        console.print(Text.assemble(("failed ", "red"), reason if path in reason else f"{path}: {reason}"))
    if summary.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("translate")(translate)
