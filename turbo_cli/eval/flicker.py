"""Temporal flicker of a translated video (turbo's own measure, docs/design.md §4).

For each consecutive pair (t, t+1): optical flow is computed on the INPUT frames (OpenCV DIS or Farneback: the
motion that really happened), output frame t+1 is warped back onto frame t with it, and the mean absolute
difference is the warp error. A translation that is stable in time follows the input's motion, so its warp error
stays close to the input's own warp error (which is not 0: flow is imperfect, and occlusions exist). Reported in
0..255 intensity units, averaged over pixels, channels and frame pairs; pixels whose flow leaves the frame are not
counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

FLOW_METHODS = ("dis", "farneback")
DEFAULT_FLOW = "dis"  # OpenCV's DIS (medium preset): accurate, fast, and exactly 0 on identical frames


def compute_flow(prev_rgb: np.ndarray, next_rgb: np.ndarray, method: str = DEFAULT_FLOW) -> np.ndarray:
    """Flow (H, W, 2) from prev to next: prev(p) ~ next(p + flow(p))."""
    import cv2

    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r}; use one of {FLOW_METHODS}")
    a = cv2.cvtColor(np.ascontiguousarray(prev_rgb), cv2.COLOR_RGB2GRAY)
    b = cv2.cvtColor(np.ascontiguousarray(next_rgb), cv2.COLOR_RGB2GRAY)
    if np.array_equal(a, b):
        # No motion by definition (Farneback would still report ~0.1 px of spurious flow on identical frames).
        return np.zeros((*a.shape, 2), np.float32)
    if method == "farneback":
        # OpenCV's documented defaults for video (pyramid 0.5, 3 levels, window 15, 3 iterations, poly 5/1.2)
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    if method == "dis":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(a, b, None)


def warp_error(frame_t: np.ndarray, frame_t1: np.ndarray, flow: np.ndarray) -> tuple[float, int]:
    """Mean |warp(frame_t1 -> t) - frame_t| over valid pixels (0..255 units) and the number of valid pixels."""
    import cv2

    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = gx + flow[..., 0], gy + flow[..., 1]
    warped = cv2.remap(frame_t1.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    valid = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    n = int(valid.sum())
    if n == 0:
        return 0.0, 0
    err = np.abs(warped - frame_t.astype(np.float32))[valid]
    return float(err.mean()), n


@dataclass
class FlickerResult:
    input: float  # warp error of the input video itself (the floor flow errors/occlusions put under any output)
    output: float  # warp error of the output video warped with the input's flow
    pairs: int  # frame pairs measured
    method: str

    @property
    def ratio(self) -> float:
        """output / input: 1 means no flicker beyond what the measure sees in the input itself."""
        return self.output / self.input if self.input > 0 else float("inf") if self.output > 0 else 1.0


def temporal_flicker(
    frames: Iterable[tuple[np.ndarray, np.ndarray]], method: str = DEFAULT_FLOW
) -> FlickerResult:
    """Streams (input_frame, output_frame) pairs (uint8 HWC, same size per pair) and measures flicker.

    Holds only the previous pair in memory, so it works on long videos.
    """
    prev = None
    sum_in = sum_out = 0.0
    pairs = 0
    for fin, fout in frames:
        if fin.shape != fout.shape:
            raise ValueError(f"input and output frame sizes differ: {fin.shape} vs {fout.shape}")
        if prev is not None:
            pin, pout = prev
            flow = compute_flow(pin, fin, method)
            e_in, n = warp_error(pin, fin, flow)
            e_out, _ = warp_error(pout, fout, flow)
            if n:
                sum_in += e_in
                sum_out += e_out
                pairs += 1
        prev = (fin, fout)
    if pairs == 0:
        raise ValueError("flicker needs at least 2 frames")
    return FlickerResult(input=sum_in / pairs, output=sum_out / pairs, pairs=pairs, method=method)
