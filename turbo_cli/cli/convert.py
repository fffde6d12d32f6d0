"""`turbo convert IN.pkl OUT.safetensors`: an original img2img-turbo checkpoint into turbo's format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rich.markup import escape

from turbo_cli.cli.ui import console


def convert(
    checkpoint: Annotated[str, typer.Argument(help="Original .pkl (pix2pix or CycleGAN format) or a published name.")],
    output: Annotated[Path, typer.Argument(help="The turbo .safetensors file to write.")],
    base_model: Annotated[Optional[str], typer.Option(help="Base model hub id or SD-Turbo-layout folder.")] = None,
    caption_a: Annotated[Optional[str], typer.Option(help="CycleGAN: caption of domain A (used for b2a).")] = None,
    caption_b: Annotated[Optional[str], typer.Option(help="CycleGAN: caption of domain B (used for a2b).")] = None,
    prompt: Annotated[Optional[str], typer.Option(help="pix2pix: default prompt.")] = None,
    image_prep: Annotated[Optional[str], typer.Option(help="The image prep the model was trained with.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Convert an original checkpoint to turbo's safetensors + JSON format (same outputs, smaller file)."""
    from turbo_cli.engine.checkpoint import save_turbo
    from turbo_cli.errors import InputError
    from turbo_cli.jobs.loading import load_model

    if output.exists() and not overwrite:
        raise InputError(f"{output}: exists (pass --overwrite to replace it)")
    if output.suffix != ".safetensors":
        raise InputError(f"{output}: the output must end in .safetensors")
    loaded, _ = load_model(checkpoint, base_model)
    info = loaded.info
    if caption_a or caption_b:
        info.captions = {**info.captions, **({"b2a": caption_a} if caption_a else {}),
                         **({"a2b": caption_b} if caption_b else {})}
    info.prompt = prompt or info.prompt
    info.image_prep = image_prep or info.image_prep
    if base_model:
        info.base_model = base_model
    save_turbo(loaded.generator, info, output)
    size = output.stat().st_size / 2**20
    console.print(f"wrote {escape(str(output))} ({size:.1f} MiB, {info.kind}, base {escape(info.base_model)})")


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
