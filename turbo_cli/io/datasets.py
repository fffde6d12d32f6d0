"""The dataset folder layout, the one home for it: `train_A/ train_B/ test_A/ test_B/` (or CycleGAN's `trainA/...`),
and its caption files: `fixed_prompt_a.txt` / `fixed_prompt_b.txt` (unpaired), `{split}_prompts.json` (paired).

`turbo train` reads the train split, its validation and `turbo eval --dataset` the test split; both find the
folders here, and an error names the option the user set (`[data] dataset` or `--dataset`).
"""

from __future__ import annotations

import json
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


def read_fixed_prompt(root: Path, domain: str) -> str:
    path = Path(root) / f"fixed_prompt_{domain.lower()}.txt"
    if not path.is_file():
        raise InputError(f"{path}: missing (the caption of domain {domain}; or set model.caption_{domain.lower()})")
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        raise InputError(f"{path}: empty caption")
    return text


def read_prompts(root: Path, split: str) -> dict[str, str]:
    path = Path(root) / f"{split}_prompts.json"
    if not path.is_file():
        raise InputError(f"{path}: missing (paired datasets need file name -> caption)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise InputError(f"{path}: expected an object mapping file names to caption strings")
    return data
