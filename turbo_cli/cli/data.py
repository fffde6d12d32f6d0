"""`turbo data ...`: datasets. `turbo data synth DIR` makes the synthetic day/night street dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from turbo_cli.errors import InputError


def synth(
    dir: Annotated[Path, typer.Argument(help="Folder to write the dataset into (created if missing).")],
    size: Annotated[int, typer.Option(help="Image side in pixels (multiple of 8).")] = 64,
    n_train: Annotated[int, typer.Option("--n-train", help="Training images per domain.")] = 200,
    n_test: Annotated[int, typer.Option("--n-test", help="Test images per domain.")] = 24,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")] = 0,
    clip: Annotated[bool, typer.Option("--clip/--no-clip", help="Also write day_clip.mp4 (48 frames, AAC audio).")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace a dataset already in DIR.")] = False,
) -> None:
    """Make a seeded synthetic unpaired dataset: street scenes by day (A) and by night (B), plus a day clip."""
    from rich.markup import escape

    from turbo_cli.cli.ui import console

    from turbo_cli.io import synth as S

    S.check_size(size)
    params = {"size": size, "n_train": n_train, "n_test": n_test, "seed": seed}
    manifest = dir / S.MANIFEST
    if dir.exists() and not dir.is_dir():
        raise InputError(f"{dir}: exists and is not a folder")
    if dir.is_dir() and any(dir.iterdir()) and not overwrite:
        # Re-running the same command (e.g. from `make demo`) is a no-op, not an error.
        try:
            same = {k: json.loads(manifest.read_text()).get(k) for k in params} == params
        except (OSError, ValueError):
            same = False
        if same:
            if clip and not (dir / S.CLIP_NAME).is_file():
                S.make_day_clip(dir / S.CLIP_NAME, seed=seed)
                console.print(f"{escape(str(dir))}: dataset already there; wrote {S.CLIP_NAME}")
            else:
                console.print(f"{escape(str(dir))}: dataset already there (same parameters); nothing to do")
            return
        raise InputError(f"{dir}: folder is not empty (pass --overwrite to replace a dataset there)")
    if overwrite:
        S.clear_dataset(dir)

    with console.status(f"rendering {2 * (n_train + n_test)} images ({size}x{size}) ..."):
        counts = S.make_dataset(dir, size=size, n_train=n_train, n_test=n_test, seed=seed)
        if clip:
            S.make_day_clip(dir / S.CLIP_NAME, seed=seed)
    console.print(
        f"wrote {counts['train_A']}+{counts['train_B']} train and {counts['test_A']}+{counts['test_B']} test "
        f"images (A = day, B = night, {size}x{size})" + (f" and {S.CLIP_NAME}" if clip else "") + f" to {escape(str(dir))}"
    )


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Datasets: make the synthetic day/night demo dataset.", no_args_is_help=True)
    data_app.command("synth")(synth)
    app.add_typer(data_app, name="data")
