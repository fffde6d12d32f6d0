"""Conditioning inputs of the released pix2pix-turbo models (`--preprocess`), numpy uint8 in and out.

Both return (H, W, 3) uint8 images whose /255 is exactly the float input the original code feeds the model:
- edge_to_image: OpenCV Canny on the RGB image (thresholds 100/200), the one edge map copied to 3 channels;
- sketch_to_image_stochastic: `to_tensor(sketch) < 0.5` per channel, i.e. 1 where the pixel is dark.
"""

from __future__ import annotations

import cv2
import numpy as np

from turbo_cli.errors import InputError

PREPROCESSORS = {"none", "canny", "sketch"}


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    return np.ascontiguousarray(rgb)


def canny(rgb: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """Canny edges (255 on an edge) of the RGB image, as 3 identical channels, like the original's demo."""
    if not (0 <= low <= high):
        raise InputError(f"--canny-low {low} / --canny-high {high}: need 0 <= low <= high")
    # cv2.Canny takes the 3-channel image directly (gradient of the strongest channel), as the original does.
    edges = cv2.Canny(_check_rgb(rgb), low, high)
    return np.repeat(edges[:, :, None], 3, axis=2)


def sketch(rgb: np.ndarray) -> np.ndarray:
    """255 where the original's `to_tensor(x) < 0.5` holds (x/255 < 0.5, i.e. x <= 127), per channel; else 0."""
    return np.where(_check_rgb(rgb) < 128, np.uint8(255), np.uint8(0))


def apply(name: str, rgb: np.ndarray, **kw) -> np.ndarray:
    """Run the preprocessor `name` ("none", "canny", "sketch"). Extra keywords go to it (canny's low/high)."""
    if name == "none":
        return rgb
    if name == "canny":
        return canny(rgb, **kw)
    if name == "sketch":
        return sketch(rgb)
    raise InputError(f"--preprocess {name}: unknown preprocessor (use one of {', '.join(sorted(PREPROCESSORS))})")
