"""`turbo train RECIPE.toml`: CycleGAN-turbo / pix2pix-turbo training from a recipe (resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def train(
    recipe: Annotated[Path, typer.Argument(
        help="Recipe TOML (see recipes/): model, data, loss, optim, train, eval, log.")],
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override a recipe value: section.key=value (the value is read as TOML). Repeatable.")] = None,
    resume: Annotated[bool, typer.Option(
        help="Continue from the newest checkpoint in the output folder; an error if there is none. "
             "(A re-run into a folder with checkpoints resumes anyway.)")] = False,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o",
        help="Output folder (checkpoints, grids, TensorBoard); default: the recipe's train.output_dir.")] = None,
) -> None:
    """Train a one-step translation model. Multi-GPU: `accelerate launch -m turbo_cli train RECIPE`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    from turbo_cli.cli.ui import console
    from turbo_cli.train.recipe import load_recipe

    overrides = list(set_ or [])
    if output is not None:
        overrides.append(f"train.output_dir={str(output)!r}")
    cfg = load_recipe(recipe, overrides)

    import os

    from turbo_cli.train.loop import Trainer

    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    show = cfg.log.progress and rank == 0
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
                        console=console, disable=not show, transient=False)
    task = progress.add_task(cfg.name, total=cfg.train.max_steps, losses="")

    def on_step(step: int, total: int, logs: dict) -> None:
        text = " ".join(f"{k} {v:.3f}" for k, v in logs.items() if k != "sec")
        progress.update(task, completed=step, losses=text)

    def on_message(text: str) -> None:
        if rank == 0:
            console.print(text)

    trainer = Trainer(cfg, resume=resume, on_step=on_step, on_message=on_message)
    with progress:
        result = trainer.run()
    if rank == 0:
        console.print(f"done: step {result.step}; checkpoint {result.checkpoint}")
        if result.checkpoint is not None:
            console.print(f"translate with: turbo translate --model {result.checkpoint / 'model.safetensors'} IN OUT")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
