"""The metrics that compare the outputs as a set with real images of the target domain: FID, KID and the colour
distance; and the reference folder's statistics they need, cached so a second evaluation against the same
folder only reads the outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from turbo_cli.errors import TurboError
from turbo_cli.eval import metrics as M
from turbo_cli.eval.cache import folder_fingerprint, load_arrays, save_arrays, stats_key
from turbo_cli.eval.names import INCEPTION_METRICS, Metric
from turbo_cli.eval.paired import FeatureBuffer, Guarded, PairAccumulator
from turbo_cli.eval.pairing import ImageSet
from turbo_cli.eval.policies import COLOR_POLICY, KID_POLICY, KID_SETTINGS, inception_policy
from turbo_cli.eval.results import MetricResult
from turbo_cli.hub import cache_dir
from turbo_cli.io.images import read_image
from turbo_cli.progress import QUIET, Progress

FID_MIN_IMAGES = 2  # a covariance needs 2 samples; below the feature size (2048) FID is biased upwards
STATS_VERSION = 1  # bump when cached reference statistics change meaning


@dataclass
class ReferenceStats:
    count: int  # reference images read (or counted by the cache entry)
    feats: np.ndarray | None  # Inception features (N, D), when FID/KID were asked for and could run
    color_q: np.ndarray | None  # colour quantiles (metrics.color_quantiles)
    brightness: float | None
    cached: list[str]  # components read from the cache
    skipped_unreadable: list[str]


def reference_stats(ref_set: ImageSet, chosen: set[Metric], inception: Guarded, *, progress: Progress = QUIET,
                    cache_root: Path | None = None) -> ReferenceStats:
    """Inception features and colour statistics of the reference images, from the cache when the folder and the
    method are unchanged. Statistics of a folder with unreadable images are never cached."""
    files = [j.src for j in ref_set.jobs]
    fp = folder_fingerprint(files, ref_set.root)
    cache_root = Path(cache_root) if cache_root is not None else cache_dir("eval")
    want_feats = bool(chosen & INCEPTION_METRICS) and inception.active
    want_color = bool(chosen & {Metric.COLOR, Metric.BRIGHTNESS})
    feats_path = color_path = None
    feats = color_q = brightness = None
    cached = []
    if want_feats:
        inc = inception.backbone
        key = stats_key(fp, part="inception", backbone=inc.id, mode=inc.mode, version=STATS_VERSION)
        feats_path = cache_root / f"ref-{key}.npz"
        hit = load_arrays(feats_path)
        if hit is not None and "feats" in hit:
            feats = hit["feats"]
            cached.append("inception features")
    if want_color:
        key = stats_key(fp, part="color", thumb=M.COLOR_THUMB, dirs=M.COLOR_DIRECTIONS, q=M.COLOR_QUANTILES,
                        version=STATS_VERSION)
        color_path = cache_root / f"ref-{key}.npz"
        hit = load_arrays(color_path)
        if hit is not None and {"quantiles", "brightness"} <= hit.keys():
            color_q, brightness = hit["quantiles"], float(hit["brightness"])
            cached.append("colour statistics")

    need_feats = want_feats and feats is None
    need_color = want_color and color_q is None
    unreadable: list[str] = []
    count = len(files)
    if need_feats or need_color:
        buf = FeatureBuffer(inception)
        labs, brights = [], []
        with progress.bar(len(files), "img", "reference images", transient=True) as bar:
            for job in ref_set.jobs:
                bar.advance()
                try:
                    rgb = read_image(job.src).rgb
                except TurboError:
                    unreadable.append(job.rel.as_posix())
                    continue
                if need_feats:
                    buf.add(rgb, job.rel.as_posix())
                if need_color:
                    labs.append(M.image_lab_pixels(rgb).astype(np.float32))
                    brights.append(M.mean_brightness(rgb))
        count = len(files) - len(unreadable)
        if need_feats:
            feats = buf.result()
            if feats is not None and not unreadable:
                save_arrays(feats_path, feats=feats)
        if need_color and labs:
            color_q = M.color_quantiles(np.concatenate(labs))
            brightness = float(np.mean(brights))
            if not unreadable:
                save_arrays(color_path, quantiles=color_q, brightness=np.float64(brightness))
    elif feats is not None:
        count = len(feats)
    return ReferenceStats(count, feats, color_q, brightness, cached, unreadable)


def fid_kid(chosen: set[Metric], out_feats: np.ndarray | None, ref: ReferenceStats | None, inception: Guarded,
            no_reference_reason: str | None) -> list[MetricResult]:
    """FID and KID (those of the two in `chosen`) of the outputs' features against the reference's."""
    res = []
    for key in (Metric.FID, Metric.KID):
        if key not in chosen:
            continue
        if no_reference_reason:
            res.append(MetricResult.unavailable(key, no_reference_reason))
            continue
        if inception.reason or out_feats is None or ref is None or ref.feats is None:
            res.append(MetricResult.unavailable(key, inception.reason or "no Inception features"))
            continue
        name = key.value.upper()
        n_out, n_ref = len(out_feats), len(ref.feats)
        if min(n_out, n_ref) < FID_MIN_IMAGES:
            res.append(MetricResult.unavailable(key, f"{name} needs at least {FID_MIN_IMAGES} images in each set "
                                                     f"(outputs: {n_out}, reference: {n_ref})"))
            continue
        policy = inception_policy(inception.backbone) | {"output_images": n_out, "reference_images": n_ref}
        dims = out_feats.shape[1]
        if min(n_out, n_ref) < dims:
            policy["note"] = (f"biased: fewer images than feature dimensions ({dims}); compare only at equal "
                              f"image counts")
        try:
            if key == Metric.FID:
                mu1, s1 = M.feature_stats(out_feats)
                mu2, s2 = M.feature_stats(ref.feats)
                res.append(MetricResult(key, M.frechet_distance(mu1, s1, mu2, s2), policy=policy))
            else:
                value = M.kernel_inception_distance(out_feats, ref.feats, **KID_SETTINGS)
                res.append(MetricResult(key, value, policy=policy | KID_POLICY))
        except ValueError as e:
            res.append(MetricResult.unavailable(key, f"{name}: {e}"))
    return res


def color_vs_reference(acc: PairAccumulator, ref: ReferenceStats | None, no_reference_reason: str | None
                       ) -> MetricResult:
    """Colour distance of the outputs to the reference, with the sources' own distance as the baseline."""
    if ref is None or ref.color_q is None:
        return MetricResult.unavailable(Metric.COLOR, no_reference_reason or "no reference colours")
    q_out = M.color_quantiles(np.concatenate(acc.lab_out))
    q_src = M.color_quantiles(np.concatenate(acc.lab_src))
    return MetricResult(Metric.COLOR, M.color_distance(q_out, ref.color_q),
                        extra={"source": M.color_distance(q_src, ref.color_q)},
                        policy=COLOR_POLICY | {"output_images": len(acc.lab_out), "reference_images": ref.count})
