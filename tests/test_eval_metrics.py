"""Metric math checked against clean-fid's own functions and direct computations."""

import numpy as np
import pytest
from cleanfid.fid import frechet_distance as cleanfid_frechet
from cleanfid.fid import kernel_distance as cleanfid_kid
from scipy import linalg

from tests._eval_helpers import scene
from turbo_cli.eval import metrics as M


def _random_gaussian(rng, d):
    a = rng.normal(size=(d, d))
    return rng.normal(size=d), a @ a.T + 0.1 * np.eye(d)


def test_frechet_diagonal_gaussians_closed_form():
    # For diagonal covariances the distance is |mu1-mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2.
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.5, 3, 6), rng.uniform(0.5, 3, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert M.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_matches_cleanfid_and_symmetric_scipy_form():
    rng = np.random.default_rng(2)
    mu1, s1 = _random_gaussian(rng, 8)
    mu2, s2 = _random_gaussian(rng, 8)
    ours = M.frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(cleanfid_frechet(mu1, s1, mu2, s2), rel=1e-9)
    # Independent route: Tr sqrt(s1 s2) = Tr sqrt(s1^1/2 s2 s1^1/2) (a symmetric PSD matrix).
    r1 = linalg.sqrtm(s1).real
    direct = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.trace(linalg.sqrtm(r1 @ s2 @ r1).real)
    assert ours == pytest.approx(direct, rel=1e-6)
    assert M.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-6)


def test_frechet_from_features_and_too_few():
    rng = np.random.default_rng(3)
    f1, f2 = rng.normal(size=(50, 4)), rng.normal(size=(60, 4)) + 1.0
    mu1, s1 = M.feature_stats(f1)
    np.testing.assert_allclose(s1, np.cov(f1, rowvar=False))
    mu2, s2 = M.feature_stats(f2)
    assert M.frechet_distance(mu1, s1, mu2, s2) > 3.0  # means differ by 1 in each of 4 dims
    with pytest.raises(ValueError):
        M.feature_stats(f1[:1])


def test_kid_matches_cleanfid_when_subsets_are_whole_sets():
    # With subset size = set size every subset is a permutation, so any seed gives clean-fid's number exactly.
    rng = np.random.default_rng(4)
    f1, f2 = rng.normal(size=(30, 8)), rng.normal(size=(30, 8)) + 0.3
    ours = M.kernel_inception_distance(f1, f2, num_subsets=5)
    assert ours == pytest.approx(cleanfid_kid(f1, f2, num_subsets=5), rel=1e-9)


def test_kid_direct_unbiased_mmd():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(12, 6)), rng.normal(size=(12, 6)) * 1.5
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    m = len(x)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert M.kernel_inception_distance(x, y, num_subsets=1) == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-9)
    # Two samples of one distribution score near 0; a shifted distribution clearly above.
    a, b = rng.normal(size=(200, 6)), rng.normal(size=(200, 6))
    same = M.kernel_inception_distance(a, b, num_subsets=5, max_subset_size=100)
    shifted = M.kernel_inception_distance(a, b + 1.0, num_subsets=5, max_subset_size=100)
    assert abs(same) < 0.1 * shifted


def test_kid_seeded_and_needs_two():
    rng = np.random.default_rng(6)
    f1, f2 = rng.normal(size=(40, 5)), rng.normal(size=(25, 5))
    a = M.kernel_inception_distance(f1, f2, num_subsets=10, max_subset_size=10, seed=3)
    assert a == M.kernel_inception_distance(f1, f2, num_subsets=10, max_subset_size=10, seed=3)
    with pytest.raises(ValueError, match="at least 2"):
        M.kernel_inception_distance(f1[:1], f2)


def test_dino_struct_dist_formula_on_arrays():
    rng = np.random.default_rng(7)
    k1, k2 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    n1 = k1 / np.linalg.norm(k1, axis=1, keepdims=True)
    n2 = k2 / np.linalg.norm(k2, axis=1, keepdims=True)
    assert M.dino_struct_dist(k1, k2) == pytest.approx(np.mean((n1 @ n1.T - n2 @ n2.T) ** 2))
    assert M.dino_struct_dist(k1, 3.0 * k1) == pytest.approx(0.0, abs=1e-12)  # cosine: scale-free
    with pytest.raises(ValueError, match="token counts"):
        M.dino_struct_dist(k1, k2[:4])


def _lab_q(images):
    return M.color_quantiles(np.concatenate([M.image_lab_pixels(im) for im in images]))


def test_color_distance_zero_for_same_set_and_grows_with_shift():
    imgs = [scene(seed=s, shift=s) for s in range(3)]
    q = _lab_q(imgs)
    assert M.color_distance(q, _lab_q(imgs)) == 0.0
    # Order and image size do not matter; colours do.
    assert M.color_distance(q, _lab_q(imgs[::-1])) == pytest.approx(0.0, abs=1e-9)
    small = M.color_distance(q, _lab_q([scene(seed=s, shift=s, tint=(10, 0, 0)) for s in range(3)]))
    large = M.color_distance(q, _lab_q([scene(seed=s, shift=s, tint=(40, 0, -20)) for s in range(3)]))
    assert 0 < small < large


def test_edge_f1():
    a = scene(shift=0)
    assert M.edge_f1(a, a) == 1.0
    assert M.edge_f1(a, np.clip(a.astype(int) + 20, 0, 255).astype(np.uint8)) == pytest.approx(1.0, abs=0.05)
    # Structure kept under a night-like exposure change; lost when the layout moves or turns to noise.
    night = np.clip(a * 0.3 + np.array([0, 0, 20]), 0, 255).astype(np.uint8)
    assert M.edge_f1(a, night) > 0.9
    moved = M.edge_f1(a, scene(shift=8))
    assert moved < 0.8
    noise = np.random.default_rng(0).integers(0, 256, a.shape).astype(np.uint8)
    assert M.edge_f1(a, noise) < 0.3
    flat = np.full_like(a, 90)
    assert np.isnan(M.edge_f1(flat, flat))  # no structure to keep: undefined, not a perfect score
    assert M.edge_f1(a, flat) == 0.0
    with pytest.raises(ValueError, match="sizes differ"):
        M.edge_f1(a, a[:32])


def test_mean_brightness():
    assert M.mean_brightness(np.full((4, 4, 3), 100, np.uint8)) == pytest.approx(100.0)
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    assert M.mean_brightness(red) == pytest.approx(0.299 * 255)
