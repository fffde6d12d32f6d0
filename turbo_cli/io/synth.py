"""A seeded, procedural two-domain dataset: street scenes by day (A) and by night (B).

It exists so the demo model, the tests and a newcomer's first run need no downloads. Scenes are a side view
of a street: sky, a row of buildings with windows, a sidewalk with street lamps, a road with lane marks and
cars. Both domains come from the same generator (`night` flag), so only the lighting differs in kind:
day has a blue sky, a sun and dark windows; night has a navy sky with stars and a moon, lit windows,
glowing lamps and headlights. Day and night images are independent draws (an unpaired dataset).

Everything is numpy on a 2x supersampled canvas, box-filtered down: deterministic for a given seed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from turbo_cli import atomic
from turbo_cli.errors import InputError

SPLITS = ("train_A", "train_B", "test_A", "test_B")
PROMPT_A = "a street by day"
PROMPT_B = "a street at night"
CLIP_NAME = "day_clip.mp4"
MANIFEST = "synth.json"  # written last: its presence means the dataset is complete

_SS = 2  # supersampling factor: smooth edges at 64 px without a dependency on a drawing library

# ----------------------------------------------------------------------------------------------- layout


@dataclass
class _Building:
    x0: float
    x1: float
    top: float
    color: np.ndarray  # (3,) float, day colour
    win_w: float
    win_h: float
    win_cols: list[float]
    win_rows: list[float]
    lit: np.ndarray  # (rows, cols) bool: which windows are lit at night


@dataclass
class _Car:
    x: float  # left edge
    y: float  # bottom edge (wheels)
    w: float
    h: float
    color: np.ndarray
    facing_right: bool


@dataclass
class _Layout:
    """Where things are, independent of the time of day (all in pixels of the supersampled canvas)."""

    w: int
    h: int
    horizon: float  # y where buildings stand (top of the sidewalk)
    curb: float  # y of the road's top edge
    lane_y: float
    lane_phase: float
    buildings: list[_Building]
    lamps: list[float]  # x of each lamp pole
    cars: list[_Car]
    sun: tuple[float, float, float]  # x, y, radius (the moon at night)
    stars: np.ndarray  # (n, 2) x, y
    star_size: float


def _layout(rng: np.random.Generator, w: int, h: int, n_cars: int | None = None) -> _Layout:
    u = rng.uniform
    horizon = h * u(0.56, 0.64)
    curb = horizon + h * u(0.05, 0.08)
    buildings = []
    x = -w * u(0.0, 0.1)
    while x < w:
        bw = w * u(0.12, 0.28)
        top = horizon - h * u(0.18, 0.48)
        grey = u(100, 185)
        color = np.clip(grey + rng.uniform(-35, 35, size=3), 40, 230)
        win_w, win_h = w * u(0.025, 0.04), h * u(0.035, 0.06)
        gap_x, gap_y = win_w * u(0.8, 1.6), win_h * u(0.7, 1.3)
        cols = list(np.arange(x + gap_x, x + bw - win_w - gap_x * 0.5, win_w + gap_x))
        rows = list(np.arange(top + gap_y, horizon - win_h - gap_y, win_h + gap_y))
        lit = rng.random((len(rows), len(cols))) < u(0.45, 0.9)
        buildings.append(_Building(x, x + bw, top, color, win_w, win_h, cols, rows, lit))
        x += bw + w * u(0.0, 0.05)
    lamps = list(np.sort(rng.uniform(0.05, 0.95, size=int(rng.integers(1, 4))) * w))
    cars = []
    for _ in range(int(rng.integers(0, 3)) if n_cars is None else n_cars):
        cw = w * u(0.18, 0.26)
        cars.append(
            _Car(
                x=u(-0.1 * w, w - 0.9 * cw),
                y=u(curb + 0.45 * (h - curb), h - 0.04 * h),
                w=cw,
                h=cw * u(0.32, 0.4),
                color=rng.uniform(30, 230, size=3),
                facing_right=bool(rng.random() < 0.5),
            )
        )
    cars.sort(key=lambda c: c.y)  # draw far (higher) cars first
    sun = (w * u(0.1, 0.9), h * u(0.07, 0.25), w * u(0.045, 0.07))
    n_stars = int(rng.integers(12, 36))
    stars = np.stack([rng.uniform(0, w, n_stars), rng.uniform(0, horizon * 0.9, n_stars)], axis=1)
    return _Layout(
        w, h, horizon, curb, curb + (h - curb) * u(0.45, 0.55), u(0, 1), buildings, lamps, cars, sun, stars,
        star_size=max(1.0, w / 128),
    )


# ----------------------------------------------------------------------------------------------- drawing


def _rect(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, color) -> None:
    h, w = img.shape[:2]
    xa, xb = max(0, int(round(x0))), min(w, int(round(x1)))
    ya, yb = max(0, int(round(y0))), min(h, int(round(y1)))
    if xa < xb and ya < yb:
        img[ya:yb, xa:xb] = color


def _disc(img: np.ndarray, cx: float, cy: float, r: float, color) -> None:
    h, w = img.shape[:2]
    ya, yb = max(0, int(cy - r)), min(h, int(cy + r) + 1)
    xa, xb = max(0, int(cx - r)), min(w, int(cx + r) + 1)
    if xa >= xb or ya >= yb:
        return
    yy, xx = np.mgrid[ya:yb, xa:xb]
    inside = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r
    img[ya:yb, xa:xb][inside] = color


def _glow(img: np.ndarray, cx: float, cy: float, r: float, color, strength: float = 1.0) -> None:
    """Additive light with a soft quadratic falloff (lamps, headlights, the sun's halo)."""
    h, w = img.shape[:2]
    ya, yb = max(0, int(cy - r)), min(h, int(cy + r) + 1)
    xa, xb = max(0, int(cx - r)), min(w, int(cx + r) + 1)
    if xa >= xb or ya >= yb:
        return
    yy, xx = np.mgrid[ya:yb, xa:xb]
    d = np.sqrt((xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2) / r
    fall = np.clip(1.0 - d, 0.0, 1.0) ** 2 * strength
    img[ya:yb, xa:xb] += fall[:, :, None] * np.asarray(color, np.float32)


def _vgradient(h: int, w: int, y1: float, top, bottom) -> np.ndarray:
    t = np.clip(np.arange(h, dtype=np.float32) / max(y1, 1.0), 0, 1)[:, None, None]
    col = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return np.broadcast_to(col, (h, w, 3)).copy()


def _draw_car(img: np.ndarray, car: _Car, x: float, night: bool) -> None:
    """Draw `car` with its left edge at x (the clip moves cars, so x is separate from the layout)."""
    body = car.color * (0.3 if night else 1.0)
    y1, cab_h = car.y - car.h * 0.25, car.h * 0.45
    _rect(img, x, car.y - car.h * 0.8, x + car.w, y1, body)  # body
    cab_x0 = x + car.w * (0.25 if car.facing_right else 0.2)
    _rect(img, cab_x0, car.y - car.h * 0.8 - cab_h, cab_x0 + car.w * 0.55, car.y - car.h * 0.8, body)
    glass = (20, 25, 35) if night else (120, 160, 190)
    _rect(img, cab_x0 + car.w * 0.05, car.y - car.h * 0.8 - cab_h * 0.8, cab_x0 + car.w * 0.5,
          car.y - car.h * 0.82, glass)
    for wx in (x + car.w * 0.22, x + car.w * 0.78):
        _disc(img, wx, y1, car.h * 0.25, (12, 12, 14))
    front = x + car.w if car.facing_right else x
    back = x if car.facing_right else x + car.w
    lamp_y = car.y - car.h * 0.62
    s = car.h * 0.12
    if night:
        _rect(img, front - s, lamp_y - s, front + s, lamp_y + s, (255, 250, 215))
        _rect(img, back - s, lamp_y - s, back + s, lamp_y + s, (255, 40, 30))
        _glow(img, front + (car.w * 0.5 if car.facing_right else -car.w * 0.5), lamp_y + s, car.w * 0.75,
              (230, 215, 160), 1.0)
        _glow(img, back, lamp_y, car.w * 0.25, (140, 20, 10), 0.8)
    else:
        _rect(img, front - s, lamp_y - s, front + s, lamp_y + s, (215, 215, 205))
        _rect(img, back - s, lamp_y - s, back + s, lamp_y + s, (150, 30, 30))


def _paint_static(lay: _Layout, night: bool) -> np.ndarray:
    """Everything but the cars, as float32 (h, w, 3) on the supersampled canvas."""
    w, h = lay.w, lay.h
    if night:
        img = _vgradient(h, w, lay.horizon, (4, 6, 22), (22, 28, 58))
        sx = np.clip(lay.stars[:, 0].astype(int), 0, w - 1)
        sy = np.clip(lay.stars[:, 1].astype(int), 0, h - 1)
        k = int(lay.star_size)
        for x, y in zip(sx, sy):
            img[y : y + k, x : x + k] = (235, 235, 255)
        mx, my, mr = lay.sun
        _glow(img, mx, my, mr * 2.5, (40, 40, 45), 1.0)
        _disc(img, mx, my, mr * 0.8, (225, 225, 205))
    else:
        img = _vgradient(h, w, lay.horizon, (60, 125, 225), (165, 205, 245))
        sx, sy, sr = lay.sun
        _glow(img, sx, sy, sr * 3.5, (90, 80, 40), 1.0)
        _disc(img, sx, sy, sr, (255, 245, 190))
    # buildings and windows
    for b in lay.buildings:
        _rect(img, b.x0, b.top, b.x1, lay.horizon, b.color * (0.22 if night else 1.0))
        for i, wy in enumerate(b.win_rows):
            for j, wx in enumerate(b.win_cols):
                if night:
                    color = (255, 215, 110) if b.lit[i, j] else (14, 14, 20)
                else:
                    color = (50, 62, 80)
                _rect(img, wx, wy, wx + b.win_w, wy + b.win_h, color)
    # sidewalk, road, lane marks
    _rect(img, 0, lay.horizon, w, lay.curb, (45, 45, 50) if night else (165, 160, 152))
    _rect(img, 0, lay.curb, w, h, (26, 26, 32) if night else (108, 108, 114))
    _rect(img, 0, lay.curb, w, lay.curb + h * 0.012, (70, 70, 72) if night else (200, 200, 195))
    dash, gap, thick = w * 0.09, w * 0.06, h * 0.018
    x = -dash + (lay.lane_phase * (dash + gap))
    while x < w:
        _rect(img, x, lay.lane_y - thick / 2, x + dash, lay.lane_y + thick / 2,
              (95, 95, 85) if night else (235, 235, 230))
        x += dash + gap
    # street lamps
    pole_w = w * 0.012
    for lx in lay.lamps:
        top = lay.horizon - h * 0.3
        _rect(img, lx - pole_w / 2, top, lx + pole_w / 2, lay.curb - h * 0.01, (20, 20, 24) if night else (70, 70, 75))
        _rect(img, lx - pole_w * 2, top - pole_w, lx + pole_w * 2, top + pole_w, (255, 235, 160) if night else (95, 95, 100))
        if night:
            _glow(img, lx, top, w * 0.14, (120, 100, 50), 1.0)
            _glow(img, lx, lay.curb, w * 0.2, (70, 60, 30), 1.0)
    return img


def _finish(img: np.ndarray) -> np.ndarray:
    """Box-filter the supersampled float canvas down to uint8."""
    h, w = img.shape[0] // _SS, img.shape[1] // _SS
    small = img.reshape(h, _SS, w, _SS, 3).mean(axis=(1, 3))
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def _size_wh(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def render_scene(rng: np.random.Generator, size: int | tuple[int, int], night: bool) -> np.ndarray:
    """One street scene, (H, W, 3) uint8. `size` is N (square) or (W, H)."""
    w, h = _size_wh(size)
    lay = _layout(rng, w * _SS, h * _SS)
    img = _paint_static(lay, night)
    for car in lay.cars:
        _draw_car(img, car, car.x, night)
    return _finish(img)


def render_pair(rng: np.random.Generator, size: int | tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The SAME scene by day and by night (a paired reference, e.g. for checking a day->night model)."""
    w, h = _size_wh(size)
    lay = _layout(rng, w * _SS, h * _SS)
    out = []
    for night in (False, True):
        img = _paint_static(lay, night)
        for car in lay.cars:
            _draw_car(img, car, car.x, night)
        out.append(_finish(img))
    return out[0], out[1]


# ----------------------------------------------------------------------------------------------- dataset


def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    # One generator per image: image i is the same whatever n_train/n_test are, and splits never share draws.
    return np.random.default_rng([seed, SPLITS.index(split), index])


def check_size(size: int) -> None:
    if size < 16 or size % 8:
        raise InputError(f"--size {size}: must be a multiple of 8 and at least 16")


def make_dataset(
    root: str | Path, size: int = 64, n_train: int = 200, n_test: int = 24, seed: int = 0
) -> dict[str, int]:
    """Write the unpaired day/night dataset under `root`; returns {split: image count}.

    Files: train_A/ train_B/ test_A/ test_B/ (PNG, A = day, B = night), fixed_prompt_a.txt,
    fixed_prompt_b.txt, and synth.json (the parameters; written last, so it marks a complete dataset).
    """
    from turbo_cli.io.images import write_image_atomic

    check_size(size)
    if n_train < 1 or n_test < 1:
        raise InputError(f"--n-train {n_train} / --n-test {n_test}: need at least one image per split")
    root = Path(root)
    counts = {}
    for split in SPLITS:
        n = n_train if split.startswith("train") else n_test
        night = split.endswith("_B")
        prefix = "night" if night else "day"
        for i in range(n):
            img = render_scene(_image_rng(seed, split, i), size, night=night)
            write_image_atomic(root / split / f"{prefix}_{i:04d}.png", img)
        counts[split] = n
    atomic.write_text(root / "fixed_prompt_a.txt", PROMPT_A + "\n")
    atomic.write_text(root / "fixed_prompt_b.txt", PROMPT_B + "\n")
    manifest = {"size": size, "n_train": n_train, "n_test": n_test, "seed": seed, "counts": counts}
    atomic.write_text(root / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return counts


def clear_dataset(root: str | Path) -> None:
    """Remove what make_dataset/make_day_clip write (for --overwrite), and nothing else."""
    root = Path(root)
    for split in SPLITS:
        if (root / split).is_dir():
            shutil.rmtree(root / split)
    for name in ("fixed_prompt_a.txt", "fixed_prompt_b.txt", MANIFEST, CLIP_NAME):
        (root / name).unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------- clip


def _chord(n_samples: int, rate: int, amp: float = 0.04) -> np.ndarray:
    """A quiet A-major chord, (2, n) float32, faded in and out; right channel a fifth-detuned echo of the left."""
    t = np.arange(n_samples, dtype=np.float64) / rate
    left = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63))
    right = sum(np.sin(2 * np.pi * f * t + 0.5) for f in (220.0, 277.18, 329.63))
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.25)
    return (np.stack([left, right]) * fade * amp).astype(np.float32)


def make_day_clip(
    path: str | Path,
    frames: int = 48,
    fps: int = 12,
    size: tuple[int, int] = (128, 96),
    audio: bool = True,
    seed: int = 0,
) -> Path:
    """A short day clip (H.264 yuv420p in MP4, + AAC stereo): the camera pans along a street while a car drives.

    `size` is (W, H), both even (yuv420p). Written to a temp file and renamed, like every output.
    """
    import av

    w, h = size
    if w % 2 or h % 2 or w < 16 or h < 16:
        raise InputError(f"clip size {w}x{h}: width and height must be even and at least 16")
    if frames < 1 or fps < 1:
        raise InputError(f"clip: frames ({frames}) and fps ({fps}) must be positive")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1000])

    # A street panorama twice as wide as the frame; the camera pans across half of it.
    pan_w = 2 * w
    lay = _layout(rng, pan_w * _SS, h * _SS, n_cars=1)
    static = _paint_static(lay, night=False)
    car = lay.cars[0]
    car.facing_right = True
    car.y = lay.curb + (h * _SS - lay.curb) * 0.8
    pan_px = (pan_w - w) * _SS  # total camera travel, canvas pixels

    with atomic.atomic_path(path) as tmp:  # a clip appears only when complete
        with av.open(str(tmp), mode="w", format="mp4") as out:
            vs = out.add_stream("libx264", rate=fps)
            vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
            vs.options = {"crf": "20"}
            as_ = None
            if audio:
                rate = 44100
                as_ = out.add_stream("aac", rate=rate, layout="stereo")
                as_.bit_rate = 96000
            for i in range(frames):
                t = i / max(frames - 1, 1)
                cam = int(round(t * pan_px))
                img = static[:, cam : cam + w * _SS].copy()
                # The car drives right faster than the camera pans: it crosses the frame from left to right.
                car_world_x = -car.w + t * (pan_px + w * _SS + car.w)
                _draw_car(img, car, car_world_x - cam, night=False)
                frame = av.VideoFrame.from_ndarray(_finish(img), format="rgb24")
                for packet in vs.encode(frame):
                    out.mux(packet)
            for packet in vs.encode(None):
                out.mux(packet)
            if as_ is not None:
                samples = _chord(int(round(frames / fps * rate)), rate)
                chunk = 1024  # AAC frame size
                for start in range(0, samples.shape[1], chunk):
                    block = np.ascontiguousarray(samples[:, start : start + chunk])
                    af = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                    af.sample_rate = rate
                    af.pts = start
                    af.time_base = Fraction(1, rate)
                    for packet in as_.encode(af):
                        out.mux(packet)
                for packet in as_.encode(None):
                    out.mux(packet)
    return path
