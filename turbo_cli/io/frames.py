"""The original inference scripts' path around the model, on 8-bit images (docs/fidelity.md).

`inference_unpaired.py` / `inference_paired.py` resize the 8-bit RGB image to the model's size with PIL
`Image.LANCZOS`, compute the conditioning (Canny edges, the sketch threshold) on the RESIZED image, run the model,
truncate its output to 8 bits, and (CycleGAN) resize it back to the input's size with PIL Lanczos. `FramePrep`
does exactly that, one image at a time, so it can run on the decode threads (PIL releases the GIL) while the model
works on the previous batch. The tiny random models amplify a 1-level input difference into tens of levels, so
the input resize must be PIL's own 8-bit result, not an approximation of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from turbo_cli.errors import InputError
from turbo_cli.io import condition

INFERENCE_PREPS = "no_resize, resize_N, resize_WxH (e.g. resize_512x512)"
MIN_SIDE = 8  # the VAE downsamples by 8: a side under 8 pixels has no latent


def model_size(height: int, width: int, image_prep: str) -> tuple[int, int]:
    """The (H, W) the model runs at for an input of (height, width) under an inference image prep."""
    if image_prep == "no_resize":  # the original resizes DOWN to multiples of 8
        if height < MIN_SIDE or width < MIN_SIDE:
            raise InputError(f"image of {width}x{height} is smaller than {MIN_SIDE}x{MIN_SIDE}")
        return height - height % 8, width - width % 8
    if m := re.fullmatch(r"resize_(\d+)", image_prep):
        n = int(m.group(1))
        return n, n
    if m := re.fullmatch(r"resize_(\d+)x(\d+)", image_prep):
        return int(m.group(2)), int(m.group(1))
    raise InputError(f"--image-prep {image_prep}: not usable for inference; use {INFERENCE_PREPS}")


def check_image_prep(image_prep: str) -> str:
    h, w = model_size(64, 64, image_prep)
    if h % 8 or w % 8 or h < MIN_SIDE or w < MIN_SIDE:
        raise InputError(f"--image-prep {image_prep}: sizes must be multiples of 8")
    return image_prep


def lanczos(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """PIL `Image.LANCZOS` on an 8-bit RGB (or single-channel) array, as the original scripts resize (identity at
    the same size)."""
    if rgb.shape[:2] == (height, width):
        return rgb
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((width, height), Image.Resampling.LANCZOS))


@dataclass(frozen=True)
class FramePrep:
    """How an input image becomes the model's input and how the model's output becomes the result.

    `image_prep`: the model size (no_resize = down to multiples of 8; resize_N / resize_WxH). `preprocess`: the
    conditioning the released pix2pix models expect (none | canny | sketch), computed after the resize.
    `keep_model_size`: return outputs at the model's size, as `inference_paired.py` saves them (turbo's default
    brings every output back to the input's size).
    """

    image_prep: str = "no_resize"
    preprocess: str = "none"
    canny_low: int = 100  # the original's Canny thresholds
    canny_high: int = 200
    keep_model_size: bool = False

    def __post_init__(self):
        check_image_prep(self.image_prep)
        if self.preprocess not in condition.PREPROCESSORS:
            raise InputError(f"--preprocess {self.preprocess}: valid values are "
                             f"{', '.join(sorted(condition.PREPROCESSORS))}")

    def model_size(self, height: int, width: int) -> tuple[int, int]:
        return model_size(height, width, self.image_prep)

    def to_model(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 at any size -> (h, w, 3) uint8 at the model's size, conditioned: what the model sees."""
        height, width = self.model_size(*rgb.shape[:2])
        resized = lanczos(rgb, height, width)
        if self.preprocess == "canny":
            return condition.canny(resized, self.canny_low, self.canny_high)
        if self.preprocess == "sketch":
            return condition.sketch(resized)
        return resized

    def from_model(self, rgb: np.ndarray, height: int, width: int) -> np.ndarray:
        """The model's (h, w, 3) uint8 output -> the result for an input of (height, width)."""
        return rgb if self.keep_model_size else lanczos(rgb, height, width)
