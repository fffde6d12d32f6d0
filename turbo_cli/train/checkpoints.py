"""A training run's checkpoints on disk: OUTPUT/checkpoints/step_NNNNNN/ holding the generator in turbo's format
(`model.safetensors`: `turbo translate --model` loads the folder), the resolved `recipe.toml`, and accelerate's
`save_state` of the rest (`training_state/`: optimizers, LR schedulers, each process's RNG streams, the
discriminators' heads). A folder is written whole under a temp name and renamed into place, so a listed checkpoint
is complete; the newest `keep_last` are kept.

turbo names and rotates the folders itself: accelerate's ProjectConfiguration would call them `checkpoint_<i>`
(a save counter, not the step) and write them in place, and tools and users rely on `step_NNNNNN`.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Callable

import torch

from turbo_cli.atomic import atomic_dir
from turbo_cli.config import to_dict
from turbo_cli.errors import ConfigError, InputError
from turbo_cli.train.discriminator import VisionAidedDiscriminator
from turbo_cli.train.recipe import Recipe, load_recipe

CKPT_DIR = "checkpoints"
MODEL_FILE = "model.safetensors"
RECIPE_FILE = "recipe.toml"
STATE_DIR = "training_state"  # accelerate's save_state: optimizer.bin, optimizer_1.bin, scheduler*.bin, RNG, heads
LOG_FILE = "train_log.jsonl"  # beside the checkpoints: one JSON line per logged step (and per validation)


def step_dir(out: Path, step: int) -> Path:
    return Path(out) / CKPT_DIR / f"step_{step:06d}"


def list_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (step, folder), oldest first. Temp folders (".step_...tmp") never count."""
    root = Path(out) / CKPT_DIR
    found = []
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and p.name.startswith("step_") and p.name[5:].isdigit() and (p / MODEL_FILE).is_file():
                found.append((int(p.name[5:]), p))
    return sorted(found)


def newest_checkpoint(folder: Path) -> Path | None:
    """`--model RUN_FOLDER`: the model file of a training output folder's newest complete checkpoint
    (RUN/checkpoints/step_N/model.safetensors), or None when `folder` holds no training checkpoints."""
    found = list_checkpoints(Path(folder))
    return found[-1][1] / MODEL_FILE if found else None


def remove_old(out: Path, keep_last: int) -> None:
    for _, old in list_checkpoints(out)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


class DiscriminatorHeads:
    """The trained part of the discriminators (their heads; the CLIP towers are frozen) as one object that
    accelerate's save_state/load_state checkpoint (`register_for_checkpointing`)."""

    def __init__(self, discs: dict[str, VisionAidedDiscriminator]):
        self.discs = discs

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: {k: v.detach().cpu() for k, v in d.head_state_dict().items()} for name, d in self.discs.items()}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        for name, d in self.discs.items():
            d.load_head_state_dict(state[name])


def write_checkpoint(accelerator, target: Path, write_model: Callable[[Path], None]) -> bool:
    """Write `target` (a step folder); every process calls this. The main process writes the model and recipe
    (`write_model(folder)`), every process its part of accelerate's state, all into one temp folder that becomes
    `target` once complete. False when `target` exists already (nothing written)."""
    from accelerate.utils import broadcast_object_list

    with contextlib.ExitStack() as stack:
        tmp = None
        if accelerator.is_main_process and not target.exists():
            tmp = stack.enter_context(atomic_dir(target))
        # the other processes write their RNG streams into the main process's temp folder
        tmp = broadcast_object_list([None if tmp is None else str(tmp)])[0]
        if tmp is None:
            return False
        if accelerator.is_main_process:
            write_model(Path(tmp))
        accelerator.save_state(str(Path(tmp) / STATE_DIR))
        accelerator.wait_for_everyone()  # every process's part is in before the folder is renamed into place
    return True


def read_checkpoint(accelerator, folder: Path) -> None:
    """Load accelerate's state of `folder` (optimizers, schedulers, RNG, registered objects) into the prepared run."""
    if not (folder / STATE_DIR).is_dir():
        raise InputError(f"{folder}: no {STATE_DIR}/ to resume from (written by an older turbo?); "
                         f"train into another --output")
    accelerator.load_state(str(folder / STATE_DIR))


def check_resumable(folder: Path, recipe: Recipe) -> list[str]:
    """The saved run must have the same model (gradient checkpointing may change); returns the other settings
    that changed ("[optim] lr", ...), which are allowed."""
    saved = load_recipe(folder / RECIPE_FILE)
    now, before = to_dict(recipe.model), to_dict(saved.model)
    for key in now:
        if now[key] != before[key] and key != "gradient_checkpointing":
            raise ConfigError(f"{folder / RECIPE_FILE}: [model] {key} was {before[key]!r}, the recipe now says "
                              f"{now[key]!r}; resume with the same model or use another --output")
    saved_dict = to_dict(saved)
    return [f"[{section}] {k}" for section, values in to_dict(recipe).items() if isinstance(values, dict)
            for k, v in values.items() if section != "model" and saved_dict.get(section, {}).get(k) != v]
