"""`turbo export SOURCE FOLDER`: a model as a Hub-ready folder (checkpoint + model card); `--push` uploads it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def export(
    source: Annotated[str, typer.Argument(
        help="A training run folder (its newest checkpoint), a checkpoint folder or .safetensors, an original .pkl, "
             "a published name or 'demo'.")],
    folder: Annotated[Path, typer.Argument(help="The folder to write (model.safetensors, README.md model card, "
                                                "recipe.toml and samples when the source is a training run).")],
    push: Annotated[Optional[str], typer.Option(
        help="Upload the folder to this Hub repo (owner/name; created if missing) with your Hugging Face token.")]
    = None,
    private: Annotated[bool, typer.Option(help="With --push: create the repo private.")] = False,
    base_model: Annotated[Optional[str], typer.Option(
        help="An original .pkl's base model (hub id or local folder); default stabilityai/sd-turbo.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing FOLDER.")] = False,
) -> None:
    """Export a model for sharing: `--model FOLDER` (or `--model owner/name` after --push) loads it anywhere.

    \b
    turbo export runs/horse2zebra horse2zebra-turbo
    turbo export runs/horse2zebra horse2zebra-turbo --push me/horse2zebra-turbo
    """
    from rich.markup import escape

    from turbo_cli.cli.ui import RichProgress, console
    from turbo_cli.jobs.export import export_model

    result = export_model(source, folder, base_model=base_model, overwrite=overwrite, push=push, private=private,
                          progress=RichProgress())
    files = ", ".join(sorted(p.name for p in result.folder.iterdir()))
    console.print(f"wrote {escape(str(result.folder))} ({escape(files)}) from {escape(str(result.checkpoint))}")
    if result.pushed_to:
        console.print(f"uploaded to {escape(result.pushed_to)}; load it with --model {escape(push)}")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
