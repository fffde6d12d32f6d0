"""Training datasets: unpaired (CycleGAN-turbo) and paired (pix2pix-turbo) folders (docs/design.md §3).

Layouts (under the recipe's `data.dataset` folder):
    unpaired: train_A/ train_B/ test_A/ test_B/ + fixed_prompt_a.txt, fixed_prompt_b.txt
              (CycleGAN's trainA/ trainB/ testA/ testB/ are accepted too)
    paired:   the same folders, the same file names in A (condition) and B (target),
              + train_prompts.json / test_prompts.json (file name -> caption)

Data order is a pure function of (seed, global sample number): sample n of the run is image
perm_epoch[n % N] with perm_epoch a seeded permutation for epoch n // N, and its random crop/flip
uses an RNG seeded by (seed, n). So a run resumed at step k sees exactly the batches an
uninterrupted run would, with any number of loader workers, and each process of a multi-process
run reads its own samples (StepBatches hands out disjoint sample numbers per rank).

Tensors: unpaired a, b in [-1, 1]; paired condition in [0, 1] (what the released pix2pix models
take) and target in [-1, 1], as the original.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from turbo_cli.errors import InputError, TurboError
from turbo_cli.io.datasets import read_fixed_prompt, read_prompts, split_dirs
from turbo_cli.io.images import IMAGE_EXTS, read_image
from turbo_cli.io.preps import build_transform

log = logging.getLogger("turbo.train")

SPLITS = ("train", "test")
MAX_BAD_IN_A_ROW = 50  # after this many unreadable images in a row, the folder is broken: stop


# ----------------------------------------------------------------------------- folders


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name (hidden files skipped)."""
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not p.name.startswith("."))
    if not files:
        raise InputError(f"{folder}: no images (looked for {', '.join(sorted(IMAGE_EXTS))})")
    return files


# ----------------------------------------------------------------------------- tensors


def to_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    """uint8 image -> (3, H, W) float in [0, 1], cropped down to multiples of 8 (the VAE needs them)."""
    arr = np.asarray(img.convert("RGB") if isinstance(img, Image.Image) else img)
    h, w = arr.shape[0] // 8 * 8, arr.shape[1] // 8 * 8
    if h == 0 or w == 0:
        raise InputError(f"image of {arr.shape[1]}x{arr.shape[0]} is smaller than 8x8")
    return torch.from_numpy(np.array(arr[:h, :w])).permute(2, 0, 1).float().div_(255.0)


def _rng(seed: int, n: int, tag: str) -> random.Random:
    # A string seed is hashed with SHA-512 by random.Random: stable across processes and Python runs.
    return random.Random(f"{seed}:{n}:{tag}")


class _Domain:
    """One folder of images, read in a seeded per-epoch order, unreadable files skipped with a warning."""

    def __init__(self, files: list[Path], seed: int, tag: str):
        self.files = files
        self.seed = seed
        self.tag = tag
        self.bad: set[Path] = set()
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.files)

    def position(self, n: int) -> int:
        """File index for global sample number n: a fresh seeded permutation each epoch."""
        epoch, i = divmod(n, len(self.files))
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            rng = np.random.default_rng([self.seed, epoch, sum(map(ord, self.tag))])
            self._perms[epoch] = rng.permutation(len(self.files))
        return int(self._perms[epoch][i])

    def read(self, index: int) -> tuple[Image.Image, Path] | None:
        path = self.files[index]
        if path in self.bad:
            return None
        try:
            return Image.fromarray(read_image(path).rgb), path
        except TurboError as e:
            self.bad.add(path)
            log.warning("skipping unreadable image (%d so far): %s", len(self.bad), e)
            return None


def _first_readable(domain: _Domain, start: int, read) -> tuple:
    """read(index) at `start`, or at the next indices when files are unreadable (deterministic)."""
    for k in range(min(len(domain), MAX_BAD_IN_A_ROW)):
        out = read((start + k) % len(domain))
        if out is not None:
            return out
    raise InputError(f"{domain.files[start].parent}: {MAX_BAD_IN_A_ROW} unreadable images in a row")


# ----------------------------------------------------------------------------- datasets


class UnpairedDataset(Dataset):
    """Item n (a global sample number) -> {"a", "b"} in [-1, 1]; A and B are drawn independently.

    Train split: index with any n >= 0 (epochs wrap). Test split: item i is the i-th image of each folder
    in name order (no shuffling), the val prep applied without randomness.
    """

    paired = False

    def __init__(self, root: Path, split: str, prep: str, seed: int = 0):
        self.root, self.split = Path(root), split
        dir_a, dir_b = split_dirs(self.root, split)
        self.a = _Domain(list_images(dir_a), seed, "A")
        self.b = _Domain(list_images(dir_b), seed, "B")
        self.prep = build_transform(prep)
        self.seed = seed
        self.shuffle = split == "train"

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def _load(self, domain: _Domain, n: int) -> torch.Tensor:
        start = domain.position(n) if self.shuffle else n % len(domain)
        rng = _rng(self.seed, n, domain.tag)

        def read(i):
            got = domain.read(i)
            return None if got is None else self.prep(got[0], rng=rng)

        return to_tensor(_first_readable(domain, start, read)) * 2 - 1

    def __getitem__(self, n: int) -> dict[str, torch.Tensor]:
        return {"a": self._load(self.a, n), "b": self._load(self.b, n)}

    @property
    def num_bad(self) -> int:
        return len(self.a.bad) + len(self.b.bad)


class PairedDataset(Dataset):
    """Item n -> {"condition" [0, 1], "target" [-1, 1], "caption"}; both images get the same random crop/flip."""

    paired = True

    def __init__(self, root: Path, split: str, prep: str, seed: int = 0):
        self.root, self.split = Path(root), split
        dir_a, dir_b = split_dirs(self.root, split)
        prompts = read_prompts(self.root, split)
        files = list_images(dir_a)
        for f in files:
            if not (dir_b / f.name).is_file():
                raise InputError(f"{dir_b / f.name}: missing (the partner of {f}; paired folders need the same names)")
            if f.name not in prompts:
                raise InputError(f"{self.root / f'{split}_prompts.json'}: no caption for {f.name}")
        self.dir_b = dir_b
        self.captions = prompts
        self.a = _Domain(files, seed, "pair")
        self.prep = build_transform(prep)
        self.seed = seed
        self.shuffle = split == "train"

    def __len__(self) -> int:
        return len(self.a)

    def _read_pair(self, i: int, n: int):
        got = self.a.read(i)
        if got is None:
            return None
        cond, path = got
        partner = self.dir_b / path.name
        if partner in self.a.bad:
            return None
        try:
            target = Image.fromarray(read_image(partner).rgb)
        except TurboError as e:
            self.a.bad.add(partner)
            log.warning("skipping unreadable image (%d so far): %s", len(self.a.bad), e)
            return None
        if cond.size != target.size:
            # A random crop could not line the two up; resizing the condition keeps the pair usable.
            cond = cond.resize(target.size, Image.Resampling.LANCZOS)
        # The same seed for both images: the same crop offsets and the same flip.
        cond = self.prep(cond, rng=_rng(self.seed, n, "pair"))
        target = self.prep(target, rng=_rng(self.seed, n, "pair"))
        return to_tensor(cond), to_tensor(target) * 2 - 1, self.captions[path.name]

    def __getitem__(self, n: int) -> dict:
        start = self.a.position(n) if self.shuffle else n % len(self.a)
        cond, target, caption = _first_readable(self.a, start, lambda i: self._read_pair(i, n))
        return {"condition": cond, "target": target, "caption": caption}

    @property
    def num_bad(self) -> int:
        return len(self.a.bad)


def build_dataset(root: Path, paired: bool, split: str, prep: str, seed: int = 0) -> UnpairedDataset | PairedDataset:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    cls = PairedDataset if paired else UnpairedDataset
    return cls(root, split, prep, seed)


# ----------------------------------------------------------------------------- order


class StepBatches(Sampler):
    """Batches of global sample numbers for optimizer steps [start_step, max_steps) of one process.

    Micro-batch m = step * accumulation + k holds samples ((m * world + rank) * batch_size + j): every
    process gets different samples, and the numbers depend only on the step, so resuming is exact.
    """

    def __init__(self, start_step: int, max_steps: int, batch_size: int, accumulation: int = 1,
                 world: int = 1, rank: int = 0):
        self.start_step, self.max_steps = start_step, max_steps
        self.batch_size, self.accumulation = batch_size, accumulation
        self.world, self.rank = world, rank

    def __len__(self) -> int:
        return max(0, self.max_steps - self.start_step) * self.accumulation

    def batch(self, step: int, micro: int = 0) -> list[int]:
        m = step * self.accumulation + micro
        first = (m * self.world + self.rank) * self.batch_size
        return list(range(first, first + self.batch_size))

    def __iter__(self):
        for step in range(self.start_step, self.max_steps):
            for micro in range(self.accumulation):
                yield self.batch(step, micro)


def collate(items: list[dict]) -> dict:
    """Stack tensors; keep strings as lists. Images of one batch must share a size (use a resizing prep)."""
    out = {}
    for key in items[0]:
        values = [it[key] for it in items]
        if isinstance(values[0], torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise InputError(f"images of different sizes in one batch {sorted(shapes)}: "
                                 "use a resizing [data] train_prep or train.batch_size = 1")
            out[key] = torch.stack(values)
        else:
            out[key] = values
    return out


@dataclass
class Captions:
    """The two fixed captions of an unpaired run: a2b translates toward B, so it is conditioned on caption_b."""

    a: str
    b: str


def unpaired_captions(root: Path, caption_a: str | None, caption_b: str | None) -> Captions:
    return Captions(caption_a or read_fixed_prompt(root, "A"), caption_b or read_fixed_prompt(root, "B"))
