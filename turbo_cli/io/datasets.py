"""The dataset folder layout, the one home for it: `train_A/ train_B/ test_A/ test_B/` (or CycleGAN's `trainA/...`).

`turbo train` reads the train split, its validation and `turbo eval --dataset` the test split; both find the
folders here, and an error names the option the user set (`[data] dataset` or `--dataset`).
"""

from __future__ import annotations

from pathlib import Path

from turbo_cli.errors import InputError


def split_dirs(root: str | Path, split: str, option: str = "[data] dataset") -> tuple[Path, Path]:
    """(A folder, B folder) of `split` ("train" | "test") in turbo's layout (test_A/) or CycleGAN's (testA/)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found, no such folder ({option})")
    found = []
    for domain in ("A", "B"):
        hit = next((c for c in (root / f"{split}_{domain}", root / f"{split}{domain}") if c.is_dir()), None)
        if hit is None:
            raise InputError(f"{root}: no {split}_{domain}/ (or {split}{domain}/) folder ({option})")
        found.append(hit)
    return found[0], found[1]
