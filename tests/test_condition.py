"""Conditioning preprocessors (turbo_cli/io/condition.py) against what the original code computes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from turbo_cli.errors import InputError
from turbo_cli.io.condition import PREPROCESSORS, apply, canny, sketch


def _scene() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.full((64, 80, 3), 40, np.uint8)
    img[10:40, 15:50] = (200, 60, 30)
    cv2.circle(img, (60, 45), 12, (20, 180, 220), -1)
    img[:, :, 1] = np.clip(img[:, :, 1].astype(int) + rng.integers(-30, 30, img.shape[:2]), 0, 255)
    return img


def test_canny_matches_opencv_on_the_rgb_array():
    img = _scene()
    for low, high in ((100, 200), (30, 60)):
        out = canny(img, low, high)
        ref = cv2.Canny(img, low, high)
        assert out.shape == (64, 80, 3) and out.dtype == np.uint8
        for c in range(3):
            assert np.array_equal(out[:, :, c], ref)
    assert canny(img).any() and not np.array_equal(canny(img), canny(img, 30, 60))
    assert np.array_equal(apply("canny", img, low=30, high=60), canny(img, 30, 60))
    with pytest.raises(InputError, match="low"):
        canny(img, 200, 100)


def test_sketch_matches_original_to_tensor_threshold():
    # Every byte value in every channel: ours/255 must equal the original's float(to_tensor(x) < 0.5).
    values = np.arange(256, dtype=np.uint8)
    img = np.stack([values, values[::-1], np.roll(values, 77)], axis=1)[None].repeat(2, axis=0)  # (2, 256, 3)
    ours = sketch(img)
    to_tensor = torch.from_numpy(img).permute(2, 0, 1).float().div(255)  # torchvision's to_tensor on uint8
    original = (to_tensor < 0.5).float().permute(1, 2, 0).numpy()
    assert np.array_equal(ours.astype(np.float32) / 255.0, original)
    assert ours[0, 127, 0] == 255 and ours[0, 128, 0] == 0


def test_apply_dispatch():
    img = _scene()
    assert PREPROCESSORS == {"none", "canny", "sketch"}
    assert apply("none", img) is img
    assert np.array_equal(apply("sketch", img), sketch(img))
    with pytest.raises(InputError, match="--preprocess blur"):
        apply("blur", img)
    with pytest.raises(ValueError):
        canny(img[:, :, 0])
