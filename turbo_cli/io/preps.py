"""The original img2img-turbo image preps (`--image-prep` / recipe `train_prep`), on PIL images with Lanczos.

The named preps behave like the original's torchvision pipelines (same resize rounding, same centre-crop
offsets); general forms such as `resize_64` let small recipes use the same vocabulary.

Random preps draw from an explicit `random.Random`, so augmentation can be seeded and resumed: pass one
when building the prep, or per call (`prep(img, rng=random.Random(hash_of(seed, step, index)))`) so that a
sample's augmentation depends only on where it is in the run, not on how many samples came before.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from PIL import Image

from turbo_cli.errors import ConfigError

# The names the original code accepts (plus `resize_512x512`, which its docs use).
PREP_NAMES = (
    "resized_crop_512",
    "resize_286_randomcrop_256x256_hflip",
    "resize_256",
    "resize_512",
    "resize_512x512",
    "no_resize",
)

GENERAL_FORMS = (
    "no_resize",
    "resize_N (NxN)",
    "resize_WxH",
    "resized_crop_N (short side N, centre crop NxN)",
    "resize_A_randomcrop_WxH[_hflip] (AxA, random WxH crop, random flip)",
)

_LANCZOS = Image.Resampling.LANCZOS

_RE_SQUARE = re.compile(r"resize_(\d+)")
_RE_RECT = re.compile(r"resize_(\d+)x(\d+)")
_RE_RESIZED_CROP = re.compile(r"resized_crop_(\d+)")
_RE_RANDOM = re.compile(r"resize_(\d+)_randomcrop_(\d+)x(\d+)(_hflip)?")


@dataclass(frozen=True)
class Prep:
    """One image prep. Call it on a PIL image; random ones use `rng` (call argument, else the one built in)."""

    name: str
    resize: tuple[int, int] | None = None  # (W, H) exact resize
    short_side: int | None = None  # resize the short side to this, keep aspect
    center_crop: int | None = None  # square centre crop after `short_side`
    random_crop: tuple[int, int] | None = None  # (W, H) random crop after `resize`
    hflip: bool = False  # random horizontal flip with p = 0.5
    rng: random.Random | None = None

    @property
    def is_random(self) -> bool:
        return self.random_crop is not None or self.hflip

    @property
    def size(self) -> tuple[int, int] | None:
        """Output (W, H) for every input, or None when it follows the input (no_resize)."""
        if self.random_crop is not None:
            return self.random_crop
        if self.center_crop is not None:
            return (self.center_crop, self.center_crop)
        return self.resize

    def __call__(self, img: Image.Image, rng: random.Random | None = None) -> Image.Image:
        rng = rng or self.rng or random
        if self.short_side is not None:
            img = _resize_short_side(img, self.short_side)
        if self.center_crop is not None:
            img = _center_crop(img, self.center_crop, self.center_crop)
        if self.resize is not None:
            img = img.resize(self.resize, _LANCZOS)
        if self.random_crop is not None:
            w, h = img.size
            cw, ch = self.random_crop
            # Same order as torchvision's RandomCrop: top, then left.
            top = rng.randint(0, h - ch)
            left = rng.randint(0, w - cw)
            img = img.crop((left, top, left + cw, top + ch))
        if self.hflip and rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return img


def _resize_short_side(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    # torchvision's rounding: the long side is truncated, not rounded.
    if w <= h:
        new = (size, int(size * h / w))
    else:
        new = (int(size * w / h), size)
    return img if new == (w, h) else img.resize(new, _LANCZOS)


def _center_crop(img: Image.Image, cw: int, ch: int) -> Image.Image:
    w, h = img.size
    top = int(round((h - ch) / 2.0))
    left = int(round((w - cw) / 2.0))
    return img.crop((left, top, left + cw, top + ch))


def _positive(name: str, *values: str) -> list[int]:
    nums = [int(v) for v in values]
    if any(n <= 0 for n in nums):
        raise ConfigError(f"image prep {name!r}: sizes must be positive")
    return nums


def build_transform(name: str, rng: random.Random | None = None) -> Prep:
    """Image prep by name: the original's names or a general form (see GENERAL_FORMS)."""
    if name == "no_resize":
        return Prep(name)
    if m := _RE_RANDOM.fullmatch(name):
        a, cw, ch = _positive(name, *m.group(1, 2, 3))
        if cw > a or ch > a:
            raise ConfigError(f"image prep {name!r}: crop {cw}x{ch} is larger than the resize {a}x{a}")
        return Prep(name, resize=(a, a), random_crop=(cw, ch), hflip=m.group(4) is not None, rng=rng)
    if m := _RE_RESIZED_CROP.fullmatch(name):
        (n,) = _positive(name, m.group(1))
        return Prep(name, short_side=n, center_crop=n)
    if m := _RE_SQUARE.fullmatch(name):
        (n,) = _positive(name, m.group(1))
        return Prep(name, resize=(n, n))
    if m := _RE_RECT.fullmatch(name):
        w, h = _positive(name, *m.group(1, 2))
        return Prep(name, resize=(w, h))
    raise ConfigError(
        f"unknown image prep {name!r}: use one of {', '.join(PREP_NAMES)} or the forms {'; '.join(GENERAL_FORMS)}"
    )


def is_random(name: str) -> bool:
    """Whether the prep draws random numbers (a random crop or flip), i.e. is for training only."""
    return build_transform(name).is_random
