"""`turbo train RECIPE.toml`: CycleGAN-turbo / pix2pix-turbo training from a recipe (resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from turbo_cli.cli.options import ThreadsOption, use_threads


def train(
    recipe: Annotated[Path, typer.Argument(
        help="Recipe TOML (see recipes/): model, data, loss, optim, train, eval, log.")],
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override a recipe value: section.key=value (the value is read as TOML). Repeatable.")] = None,
    resume: Annotated[bool, typer.Option(
        help="Continue from the newest checkpoint in the output folder; an error if there is none. "
             "(A re-run into a folder with checkpoints resumes anyway.)")] = False,
    threads: ThreadsOption = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o",
        help="Output folder (checkpoints, grids, TensorBoard); default: the recipe's train.output_dir.")] = None,
) -> None:
    """Train a one-step translation model. Multi-GPU: `accelerate launch -m turbo_cli train RECIPE`."""
    use_threads(threads)
    from rich.text import Text

    from turbo_cli.cli.ui import RichProgress, console
    from turbo_cli.progress import NoticesOnly
    from turbo_cli.train.loop import Trainer
    from turbo_cli.train.recipe import load_recipe

    overrides = list(set_ or [])
    if output is not None:
        overrides.append(f"train.output_dir={str(output)!r}")
    cfg = load_recipe(recipe, overrides)

    def show_losses(step: int, total: int, logs: dict) -> None:
        """Every [log] every steps, the step's losses as a line above the bar (main process only)."""
        if trainer.main and (step % cfg.log.every == 0 or step == total):
            losses = "  ".join(f"{k} {v:.3f}" for k, v in logs.items() if k != "sec")
            console.print(Text(f"step {step}/{total}  {losses}"))

    trainer = Trainer(cfg, resume=resume, progress=RichProgress() if cfg.log.progress else NoticesOnly(RichProgress()),
                      on_step=show_losses if cfg.log.progress else None)
    result = trainer.run()
    if result.main_process:
        console.print(Text(f"done: step {result.step}; checkpoint {result.checkpoint}"))
        if result.checkpoint is not None:
            console.print(Text(f"translate with: turbo translate --model {result.checkpoint} IN OUT"))


def register(app: typer.Typer) -> None:
    app.command("train")(train)
