"""Metric math: numpy / torch arrays in, floats out. No files, no models, no downloads.

Everything here is deterministic (fixed seeds) so two runs over the same images give the same numbers.
The network-dependent parts (Inception features, DINO keys, LPIPS) live in networks.py / dino.py; this
module only turns their outputs into scores, which is what the tests check against reference formulas.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
from scipy import linalg

# ----------------------------------------------------------------------------------------------------------------------
# FID / KID (clean-fid's)


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (N, D) features, as clean-fid computes them (float64, rowvar=False)."""
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"need (N>=2, D) features, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), computed by clean-fid's own
    `cleanfid.fid.frechet_distance` so our FID is clean-fid's number, not a look-alike.

    Around the call: sizes are checked first (clean-fid asserts, which `python -O` drops), and clean-fid's stdout
    note when it retries a singular product (expected with few images) is kept off our stdout.
    """
    from cleanfid.fid import frechet_distance as cleanfid_frechet_distance

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"feature sizes differ: {mu1.shape} vs {mu2.shape}")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # singular with few images; clean-fid retries
        warnings.simplefilter("ignore", DeprecationWarning)  # clean-fid passes sqrtm's deprecated `disp`
        return float(cleanfid_frechet_distance(mu1, sigma1, mu2, sigma2))


def kernel_inception_distance(
    feats1: np.ndarray, feats2: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0
) -> float:
    """KID: unbiased MMD^2 with the cubic polynomial kernel k(x,y) = (x.y/D + 1)^3, averaged over random subsets.

    clean-fid's estimator (`cleanfid.fid.kernel_distance`) restated, because clean-fid draws its subsets from
    numpy's global, unseeded RNG: the same images would give a different KID on every run. Here the subsets come
    from a generator seeded with `seed`; with subsets as large as the sets the two agree exactly (a test checks).
    Papers often print KID x 10^3; we return the raw value.
    """
    feats1, feats2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    n = feats1.shape[1]
    m = min(feats1.shape[0], feats2.shape[0], max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {feats1.shape[0]} and {feats2.shape[0]}")
    rng = np.random.default_rng(seed)
    t = 0.0
    for _ in range(num_subsets):
        x = feats2[rng.choice(feats2.shape[0], m, replace=False)]
        y = feats1[rng.choice(feats1.shape[0], m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / num_subsets / m)


# ----------------------------------------------------------------------------------------------------------------------
# DINO-Struct-Dist (Tumanyan et al., "Splicing ViT features"; used by the pix2pix-turbo paper)


def key_self_similarity(keys):
    """(T, D) keys -> (T, T) cosine self-similarity. Accepts a torch tensor (returns one) or a numpy array."""
    try:
        import torch

        if isinstance(keys, torch.Tensor):
            k = torch.nn.functional.normalize(keys.float(), dim=-1)
            return k @ k.transpose(-1, -2)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    k = np.asarray(keys, np.float64)
    k = k / np.maximum(np.linalg.norm(k, axis=-1, keepdims=True), 1e-12)
    return k @ k.swapaxes(-1, -2)


def dino_struct_dist(keys_in, keys_out) -> float:
    """MSE between the cosine self-similarity matrices of the input's and the output's (T, D) keys (raw, not x100)."""
    s_in, s_out = key_self_similarity(keys_in), key_self_similarity(keys_out)
    if tuple(s_in.shape) != tuple(s_out.shape):
        raise ValueError(f"token counts differ: {tuple(s_in.shape)} vs {tuple(s_out.shape)} (resize to the same size)")
    d = s_in - s_out
    return float((d * d).mean())


# ----------------------------------------------------------------------------------------------------------------------
# Colour distance (needs no weights): sliced Wasserstein-1 between pooled pixel colours in CIE Lab.
#
# Why this one: it is defined for any set size (FID-style covariances need many images), it is 0 for the same
# colour distribution, it is in Lab units (~ perceptual colour difference, dE), and reference statistics are a
# tiny quantile table that caches well. Each image is area-resized to 64x64 first so every image weighs the same
# whatever its resolution.

COLOR_THUMB = 64  # pixels per side before pooling: 4096 colours per image
COLOR_DIRECTIONS = 64  # projections; the 3 Lab axes + 61 random unit vectors (seed 0)
COLOR_QUANTILES = 256  # quantile levels per projection; W1 ~ mean |q1 - q2|


def _color_directions() -> np.ndarray:
    rng = np.random.default_rng(0)
    rand = rng.normal(size=(COLOR_DIRECTIONS - 3, 3))
    rand /= np.linalg.norm(rand, axis=1, keepdims=True)
    return np.concatenate([np.eye(3), rand]).astype(np.float64)


def image_lab_pixels(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (COLOR_THUMB^2, 3) float Lab pixels (L in 0..100) of an area-resized thumbnail."""
    import cv2

    thumb = cv2.resize(rgb, (COLOR_THUMB, COLOR_THUMB), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(thumb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    return lab.reshape(-1, 3).astype(np.float64)


def color_quantiles(lab_pixels: np.ndarray) -> np.ndarray:
    """Pooled (N, 3) Lab pixels -> (COLOR_DIRECTIONS, COLOR_QUANTILES) quantiles of their 1-D projections."""
    proj = np.asarray(lab_pixels, np.float64) @ _color_directions().T  # (N, P)
    levels = (np.arange(COLOR_QUANTILES) + 0.5) / COLOR_QUANTILES
    return np.quantile(proj, levels, axis=0).T


def color_distance(q1: np.ndarray, q2: np.ndarray) -> float:
    """Sliced Wasserstein-1 (Lab units) from two quantile tables of color_quantiles()."""
    return float(np.abs(np.asarray(q1) - np.asarray(q2)).mean())


# ----------------------------------------------------------------------------------------------------------------------
# Edge-structure agreement (needs no weights): F1 of Canny edges with a small distance tolerance.
#
# Two normalisations make it measure structure rather than exposure or resolution: each grey image is
# contrast-stretched (1st..99th percentile to 0..255) first, so a night rendering of a scene keeps the day
# image's edges (with fixed thresholds a darkened image loses most of them), and both images are resized to a
# short side of 256 px, so the tolerance means the same at 64 px and at 4K.

CANNY_LOW, CANNY_HIGH = 100, 200  # on the stretched grey image
EDGE_WORK_SIDE = 256  # short side (px) the edges are found at
EDGE_TOLERANCE = 2  # pixels at EDGE_WORK_SIDE: an edge moved by <= 2 px still counts as kept


def _edge_work_size(shape: tuple[int, ...]) -> tuple[int, int]:
    h, w = shape[:2]
    s = EDGE_WORK_SIDE / min(h, w)
    return max(1, round(w * s)), max(1, round(h * s))


def canny_edges(rgb: np.ndarray) -> np.ndarray:
    """Boolean edge map of a uint8 RGB image at its edge working size."""
    import cv2

    size = _edge_work_size(rgb.shape)
    interp = cv2.INTER_AREA if size[0] < rgb.shape[1] else cv2.INTER_CUBIC
    gray = cv2.cvtColor(cv2.resize(np.ascontiguousarray(rgb), size, interpolation=interp), cv2.COLOR_RGB2GRAY)
    lo, hi = np.percentile(gray, (1, 99))
    stretched = np.clip((gray.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8)
    return cv2.Canny(stretched, CANNY_LOW, CANNY_HIGH) > 0


def edge_f1(rgb_a: np.ndarray, rgb_b: np.ndarray, tolerance: int = EDGE_TOLERANCE) -> float:
    """F1 between the Canny edges of two same-size images; an edge pixel matches if the other has one within
    `tolerance` px. Two edge-free images have no structure to keep: NaN (undefined; it must not rank as the best
    pair nor lift the mean); one edge-free image against an edgy one gives 0."""
    import cv2

    if rgb_a.shape[:2] != rgb_b.shape[:2]:
        raise ValueError(f"image sizes differ: {rgb_a.shape[:2]} vs {rgb_b.shape[:2]}")
    ea, eb = canny_edges(rgb_a), canny_edges(rgb_b)
    na, nb = int(ea.sum()), int(eb.sum())
    if na == 0 and nb == 0:
        return float("nan")
    if na == 0 or nb == 0:
        return 0.0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
    near_a = cv2.dilate(ea.astype(np.uint8), kernel) > 0
    near_b = cv2.dilate(eb.astype(np.uint8), kernel) > 0
    precision = float((eb & near_a).sum()) / nb  # b's edges that a explains
    recall = float((ea & near_b).sum()) / na  # a's edges that b kept
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


# ----------------------------------------------------------------------------------------------------------------------
# Brightness


def mean_brightness(rgb: np.ndarray) -> float:
    """Mean Rec.601 luma of a uint8 RGB image, 0..255 (the demo compares day vs night with it)."""
    x = np.asarray(rgb, np.float64)
    return float((0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]).mean())
