"""Evaluation entry points: folders, a video, a model on a dataset. Backbones are arguments, never globals.

    from turbo_cli.eval.api import evaluate_folders, ALL_METRICS
    from turbo_cli.eval.backbones import load_backbones
    report = evaluate_folders("photos", "photos-night", "night-refs", backbones=load_backbones(ALL_METRICS))
    report.metric("fid").value

Every metric that cannot run (no weights offline, too few images, no reference) comes back with status
"unavailable" and a one-line reason; the others still give numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from turbo_cli.errors import InputError, TurboError
from turbo_cli.eval import metrics as M
from turbo_cli.eval.backbones import Backbones, InceptionFeatures, Unavailable
from turbo_cli.eval.cache import folder_fingerprint, load_arrays, save_arrays, stats_key, turbo_cache_dir
from turbo_cli.eval.flicker import DEFAULT_FLOW, FlickerResult, temporal_flicker

FOLDER_METRICS = ("fid", "kid", "dino", "lpips", "color", "edges", "brightness")
VIDEO_METRICS = ("flicker", "dino", "lpips", "edges", "brightness")
ALL_METRICS = frozenset(FOLDER_METRICS + VIDEO_METRICS)
DEFAULT_FOLDER_METRICS = frozenset({"fid", "kid", "dino", "color", "edges", "brightness"})  # LPIPS is opt-in: slow
DEFAULT_VIDEO_METRICS = frozenset({"flicker", "dino", "edges", "brightness"})
METRIC_ALIASES = {"dino_struct": "dino", "dino-struct": "dino", "colour": "color", "edge": "edges"}

FID_MIN_IMAGES = 2  # a covariance needs 2 samples; below the feature size (2048) FID is biased upwards
STATS_VERSION = 1  # bump when cached reference statistics change meaning
INCEPTION_BATCH = 16  # images per Inception forward: small enough for CPU memory, large enough to amortise
GRID_PER_SIDE = 4  # best and worst pairs shown in the grid
ProgressFn = Callable[[str, int, int | None], None]  # (stage, done, total)


def parse_metrics(text: str | None, allowed: Iterable[str], default: Iterable[str]) -> set[str]:
    """"fid,kid,dino" -> {"fid", "kid", "dino"}; unknown names are an InputError naming --metrics."""
    if not text:
        return set(default)
    allowed = set(allowed)
    chosen = set()
    for name in (t.strip().lower() for t in text.split(",") if t.strip()):
        name = METRIC_ALIASES.get(name, name)
        if name == "all":
            chosen |= allowed
        elif name not in allowed:
            what = "does not apply here" if name in ALL_METRICS else "is not a metric"
            raise InputError(f"--metrics {text}: {name!r} {what} (choose from {', '.join(sorted(allowed))})")
        else:
            chosen.add(name)
    return chosen


# ----------------------------------------------------------------------------------------------------------------------
# Results


@dataclass
class MetricResult:
    key: str  # "fid", "kid", "dino_struct", "lpips", "color", "edges", "brightness", "flicker"
    label: str  # what the table prints
    value: float | None = None
    status: str = "ok"  # "ok" | "unavailable"
    reason: str | None = None  # why it is unavailable (one line)
    better: str = "lower"  # "lower" | "higher" | "-"
    extra: dict = field(default_factory=dict)  # related numbers, e.g. the source's own value as a baseline
    policy: dict = field(default_factory=dict)  # how the number was made (backbone, resize, counts, scale)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class EvalReport:
    kind: str  # "folders" | "video" | "model"
    inputs: dict  # paths
    counts: dict  # images / frames / skipped files
    metrics: list[MetricResult]
    items: list[dict]  # per pair: {"name", "source", "output", metric values...}
    ranking: dict  # {"metric", "better", "note"}: how `items` and the grid are sorted
    warnings: list[str] = field(default_factory=list)
    grid_rows: list = field(default_factory=list, repr=False)  # (name, score text, source rgb, output rgb) for report

    def metric(self, key: str) -> MetricResult:
        for m in self.metrics:
            if m.key == key:
                return m
        raise KeyError(key)

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "inputs": self.inputs,
            "counts": self.counts,
            "metrics": {m.key: {k: v for k, v in asdict(m).items() if k != "key"} for m in self.metrics},
            "ranking": self.ranking,
            "warnings": self.warnings,
            "items": self.items,
        }


def _unavailable(key: str, label: str, reason: str, better: str = "lower", policy: dict | None = None) -> MetricResult:
    return MetricResult(key, label, None, "unavailable", reason, better, policy=policy or {})


# ----------------------------------------------------------------------------------------------------------------------
# Policies: written next to every number so two reports can be compared honestly


def _inception_policy(inc: InceptionFeatures) -> dict:
    return {"backbone": inc.id, "mode": inc.mode, "resize": inc.resize_policy}


def _dino_policy(dino) -> dict:
    return {
        "backbone": dino.id,
        "layer": f"{dino.layer_name} (last block): keys of all tokens incl. CLS, heads concatenated",
        "similarity": "cosine self-similarity T x T; score = MSE(input, output), per image, averaged",
        "resize": f"short side {dino.short_side}, aspect kept, no crop (bilinear, antialiased)",
        "normalisation": "ImageNet mean/std",
        "scale": "value is x100 (as papers report it); raw value in extra.raw",
        "pair_size": "output resized to its source's size first (area down / bicubic up)",
    }


COLOR_POLICY = {
    "method": "sliced Wasserstein-1 between pooled pixel colours in CIE Lab (units ~ dE)",
    "pixels": f"each image area-resized to {M.COLOR_THUMB}x{M.COLOR_THUMB}, all pixels pooled",
    "projections": f"{M.COLOR_DIRECTIONS} (3 Lab axes + random, seed 0), {M.COLOR_QUANTILES} quantiles each",
    "weights": "none",
}
EDGE_POLICY = {
    "method": f"F1 of Canny edges (thresholds {M.CANNY_LOW}/{M.CANNY_HIGH}) of the grey image contrast-stretched "
              f"1st..99th percentile, tolerance {M.EDGE_TOLERANCE} px",
    "resize": f"both images to a short side of {M.EDGE_WORK_SIDE} px (output first resized to its source's size)",
    "weights": "none",
}
BRIGHTNESS_POLICY = {"method": "mean Rec.601 luma, 0..255, per image, averaged over the set"}


# ----------------------------------------------------------------------------------------------------------------------
# Shared per-pair work


def match_size(rgb: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Resize (H, W, 3) uint8 to shape[:2]: area filter when shrinking, bicubic when growing."""
    import cv2

    h, w = shape[:2]
    if rgb.shape[:2] == (h, w):
        return rgb
    shrink = w * h < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


class _Guarded:
    """Runs one metric's per-image work; the first error turns the metric off with a reason instead of failing all."""

    def __init__(self, backbone, label: str):
        self.backbone = backbone
        self.reason = backbone.reason if isinstance(backbone, Unavailable) else None
        self.label = label

    @property
    def active(self) -> bool:
        return self.backbone is not None and self.reason is None

    def run(self, fn, name: str):
        if not self.active:
            return None
        try:
            return fn()
        except (RuntimeError, ValueError, MemoryError) as e:
            self.reason = f"{self.label} failed on {name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
            return None


class _PairAccumulator:
    """Per-pair metrics (DINO-struct, LPIPS, edges, brightness) plus the set-level inputs (features, colours)."""

    def __init__(self, chosen: set[str], backbones: Backbones):
        self.chosen = chosen
        self.dino = _Guarded(backbones.dino if "dino" in chosen else None, "DINO-Struct-Dist")
        self.lpips = _Guarded(backbones.lpips if "lpips" in chosen else None, "LPIPS")
        self.inception = _Guarded(backbones.inception if chosen & {"fid", "kid"} else None, "Inception")
        self.items: list[dict] = []
        self.lab_out: list[np.ndarray] = []
        self.lab_src: list[np.ndarray] = []
        self.bright_src: list[float] = []
        self.bright_out: list[float] = []
        self.feats = _FeatureBuffer(self.inception)
        self.resized = 0

    def add(self, name: str, src: np.ndarray, out: np.ndarray, extra: dict | None = None) -> None:
        item = {"name": name, **(extra or {})}
        self.feats.add(out, name)
        if out.shape != src.shape:
            self.resized += 1
            out = match_size(out, src.shape)
        if self.dino.active:
            raw = self.dino.run(lambda: self.dino.backbone.struct_dist(src, out), name)
            if raw is not None:
                item["dino_struct"] = raw * 100.0
        if self.lpips.active:
            v = self.lpips.run(lambda: self.lpips.backbone(src, out), name)
            if v is not None:
                item["lpips"] = v
        if "edges" in self.chosen:
            item["edges_f1"] = M.edge_f1(src, out)
        if "color" in self.chosen:
            self.lab_out.append(M.image_lab_pixels(out).astype(np.float32))
            self.lab_src.append(M.image_lab_pixels(src).astype(np.float32))
        if "brightness" in self.chosen:
            item["brightness_source"] = M.mean_brightness(src)
            item["brightness_output"] = M.mean_brightness(out)
        self.items.append(item)

    def per_pair_metrics(self) -> list[MetricResult]:
        res = []
        n = len(self.items)
        if "dino" in self.chosen:
            vals = [it["dino_struct"] for it in self.items if "dino_struct" in it]
            if self.dino.reason:
                res.append(_unavailable("dino_struct", "DINO-Struct-Dist x100", self.dino.reason))
            elif vals:
                pol = _dino_policy(self.dino.backbone) | {"images": len(vals)}
                res.append(MetricResult("dino_struct", "DINO-Struct-Dist x100", float(np.mean(vals)), better="lower",
                                        extra={"raw": float(np.mean(vals)) / 100.0, "std": float(np.std(vals))},
                                        policy=pol))
        if "lpips" in self.chosen:
            vals = [it["lpips"] for it in self.items if "lpips" in it]
            if self.lpips.reason:
                res.append(_unavailable("lpips", "LPIPS(source, output)", self.lpips.reason))
            elif vals:
                res.append(MetricResult("lpips", "LPIPS(source, output)", float(np.mean(vals)), better="lower",
                                        policy={"backbone": self.lpips.backbone.id, "images": len(vals),
                                                "pair_size": "output resized to its source's size first"}))
        if "edges" in self.chosen and n:
            vals = [it["edges_f1"] for it in self.items]
            res.append(MetricResult("edges", "Edge F1 vs source", float(np.mean(vals)), better="higher",
                                    policy=EDGE_POLICY | {"images": n}))
        return res

    def brightness(self, reference: float | None = None, reference_count: int = 0) -> MetricResult | None:
        if "brightness" not in self.chosen or not self.items:
            return None
        src = float(np.mean([it["brightness_source"] for it in self.items]))
        out = float(np.mean([it["brightness_output"] for it in self.items]))
        extra = {"source": src, "output": out}
        if reference is not None:
            extra["reference"] = reference
        return MetricResult("brightness", "Mean brightness (output)", out, better="-", extra=extra,
                            policy=BRIGHTNESS_POLICY | {"images": len(self.items), "reference_images": reference_count})


class _FeatureBuffer:
    """Batches Inception inputs so the network runs on INCEPTION_BATCH images at a time."""

    def __init__(self, guarded: _Guarded):
        self.guarded = guarded
        self.pending: list[np.ndarray] = []
        self.names: list[str] = []
        self.chunks: list[np.ndarray] = []

    def add(self, rgb: np.ndarray, name: str) -> None:
        if not self.guarded.active:
            return
        self.pending.append(self.guarded.backbone.prepare(rgb))
        self.names.append(name)
        if len(self.pending) >= INCEPTION_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending and self.guarded.active:
            f = self.guarded.run(lambda: self.guarded.backbone.embed(self.pending), self.names[0])
            if f is not None:
                self.chunks.append(f)
        self.pending, self.names = [], []

    def result(self) -> np.ndarray | None:
        self.flush()
        if not self.guarded.active or not self.chunks:
            return None
        return np.concatenate(self.chunks)


# ----------------------------------------------------------------------------------------------------------------------
# Reference statistics (cached)


@dataclass
class _ReferenceStats:
    count: int
    feats: np.ndarray | None  # Inception features (N, D), when FID/KID were asked for and could run
    color_q: np.ndarray | None
    brightness: float | None
    cached: list[str]  # components read from the cache
    skipped_unreadable: list[str]


def _reference_stats(ref_set, chosen: set[str], inception: _Guarded, progress: ProgressFn | None,
                     cache_root: Path | None) -> _ReferenceStats:
    from turbo_cli.io.images import read_image

    files = [j.src for j in ref_set.jobs]
    fp = folder_fingerprint(files, ref_set.root)
    cache_root = Path(cache_root) if cache_root is not None else turbo_cache_dir("eval")
    want_feats = bool(chosen & {"fid", "kid"}) and inception.active
    want_color = bool(chosen & {"color", "brightness"})
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
        buf = _FeatureBuffer(inception)
        labs, brights = [], []
        for i, job in enumerate(ref_set.jobs):
            if progress:
                progress("reference", i, len(files))
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
            if feats is not None and not unreadable:  # never cache stats of a folder we could not fully read
                save_arrays(feats_path, feats=feats)
        if need_color and labs:
            color_q = M.color_quantiles(np.concatenate(labs))
            brightness = float(np.mean(brights))
            if not unreadable:
                save_arrays(color_path, quantiles=color_q, brightness=np.float64(brightness))
    elif feats is not None:
        count = len(feats)
    return _ReferenceStats(count, feats, color_q, brightness, cached, unreadable)


def _fid_kid(chosen: set[str], out_feats: np.ndarray | None, ref: _ReferenceStats | None, inception: _Guarded,
             no_reference_reason: str | None) -> list[MetricResult]:
    res = []
    for key, label in (("fid", "FID vs reference"), ("kid", "KID vs reference")):
        if key not in chosen:
            continue
        if no_reference_reason:
            res.append(_unavailable(key, label, no_reference_reason))
            continue
        if inception.reason or out_feats is None or ref is None or ref.feats is None:
            res.append(_unavailable(key, label, inception.reason or "no Inception features"))
            continue
        n_out, n_ref = len(out_feats), len(ref.feats)
        if min(n_out, n_ref) < FID_MIN_IMAGES:
            res.append(_unavailable(key, label, f"{key.upper()} needs at least {FID_MIN_IMAGES} images in each set "
                                                f"(outputs: {n_out}, reference: {n_ref})"))
            continue
        policy = _inception_policy(inception.backbone) | {"output_images": n_out, "reference_images": n_ref}
        dims = out_feats.shape[1]
        if min(n_out, n_ref) < dims:
            policy["note"] = (f"biased: fewer images than feature dimensions ({dims}); compare only at equal "
                              f"image counts")
        try:
            if key == "fid":
                mu1, s1 = M.feature_stats(out_feats)
                mu2, s2 = M.feature_stats(ref.feats)
                res.append(MetricResult(key, label, M.frechet_distance(mu1, s1, mu2, s2), policy=policy))
            else:
                policy |= {"kernel": "(x.y/d + 1)^3", "num_subsets": 100, "max_subset_size": 1000, "seed": 0,
                           "scale": "raw (papers often print KID x 10^3)"}
                res.append(MetricResult(key, label, M.kernel_inception_distance(out_feats, ref.feats), policy=policy))
        except ValueError as e:
            res.append(_unavailable(key, label, f"{key.upper()}: {e}"))
    return res


# ----------------------------------------------------------------------------------------------------------------------
# Ranking and grid


def _ranking(items: list[dict], results: list[MetricResult]) -> dict:
    ok = {m.key for m in results if m.ok}
    if "dino_struct" in ok:
        return {"metric": "dino_struct", "better": "lower", "note": "sorted by DINO-Struct-Dist (best first)"}
    why = "DINO-Struct-Dist unavailable" if any(m.key == "dino_struct" for m in results) else "DINO not requested"
    if "edges" in ok:
        return {"metric": "edges_f1", "better": "higher", "note": f"sorted by edge F1 (best first): {why}"}
    if "lpips" in ok:
        return {"metric": "lpips", "better": "lower", "note": f"sorted by LPIPS (best first): {why}"}
    return {"metric": None, "better": "-", "note": f"in path order: {why} and no edge metric"}


def _sort_items(items: list[dict], ranking: dict) -> list[dict]:
    key = ranking["metric"]
    if key is None:
        return list(items)
    sign = 1.0 if ranking["better"] == "lower" else -1.0
    return sorted(items, key=lambda it: (sign * it[key]) if key in it else math.inf)


def _grid_choice(sorted_items: list[dict]) -> list[tuple[str, dict]]:
    """(section, item): all of them when few, else the best and the worst GRID_PER_SIDE."""
    if len(sorted_items) <= 2 * GRID_PER_SIDE:
        return [("ranked", it) for it in sorted_items]
    return [("best", it) for it in sorted_items[:GRID_PER_SIDE]] + \
           [("worst", it) for it in sorted_items[-GRID_PER_SIDE:]]


def _score_text(item: dict, ranking: dict) -> str:
    key = ranking["metric"]
    if key is None or key not in item:
        return ""
    return {"dino_struct": "DINO-struct x100", "edges_f1": "edge F1", "lpips": "LPIPS"}[key] + f" {item[key]:.3f}"


# ----------------------------------------------------------------------------------------------------------------------
# Folders


def evaluate_folders(
    source: str | Path,
    output: str | Path,
    reference: str | Path | None = None,
    *,
    backbones: Backbones,
    metrics: Iterable[str] = DEFAULT_FOLDER_METRICS,
    max_images: int | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> EvalReport:
    """Evaluate translated images in OUTPUT against their sources (paired by relative path, any extension) and,
    for FID/KID/colour, against REFERENCE (real images of the target domain)."""
    from turbo_cli.eval.folders import pair_by_relpath, scan_folder
    from turbo_cli.io.images import read_image

    chosen = set(metrics)
    if max_images is not None and max_images < 1:
        raise InputError(f"--max-images {max_images}: must be at least 1")
    src_set = scan_folder(source, "--source")
    out_set = scan_folder(output, "--output")
    ref_set = scan_folder(reference, "--reference") if reference is not None else None
    pairing = pair_by_relpath(src_set, out_set)
    warnings = pairing.warnings()
    pairs = pairing.pairs
    if max_images is not None and len(pairs) > max_images:
        warnings.append(f"--max-images {max_images}: evaluating the first {max_images} of {len(pairs)} pairs")
        pairs = pairs[:max_images]
    if ref_set is not None and max_images is not None and len(ref_set.jobs) > max_images:
        ref_set.jobs = ref_set.jobs[:max_images]

    acc = _PairAccumulator(chosen, backbones)
    unreadable = []
    for i, (sjob, ojob) in enumerate(pairs):
        if progress:
            progress("pairs", i, len(pairs))
        try:
            src = read_image(sjob.src).rgb
            out = read_image(ojob.src).rgb
        except TurboError as e:
            unreadable.append(str(e))
            continue
        acc.add(sjob.rel.as_posix(), src, out, {"source": str(sjob.src), "output": str(ojob.src)})
    if progress:
        progress("pairs", len(pairs), len(pairs))
    if not acc.items:
        raise InputError(f"--output {output}: none of the {len(pairs)} paired images could be read "
                         f"({unreadable[0] if unreadable else 'no pairs'})")
    if unreadable:
        warnings.append(f"{len(unreadable)} pair(s) skipped, unreadable: {unreadable[0]}"
                        + (f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""))
    if acc.resized:
        warnings.append(f"{acc.resized} output(s) differ in size from their source: resized to the source's size "
                        f"for the paired metrics (FID uses them as they are)")

    out_feats = acc.feats.result()
    ref = None
    no_ref = None if ref_set is not None else "needs --reference (real images of the target domain)"
    if ref_set is not None:
        ref = _reference_stats(ref_set, chosen, acc.inception, progress, cache_dir)
        if ref.skipped_unreadable:
            warnings.append(f"{len(ref.skipped_unreadable)} reference image(s) unreadable, skipped: "
                            f"{ref.skipped_unreadable[0]}")

    results: list[MetricResult] = _fid_kid(chosen, out_feats, ref, acc.inception, no_ref)
    results += acc.per_pair_metrics()
    if "color" in chosen:
        if ref is None or ref.color_q is None:
            results.append(_unavailable("color", "Colour distance vs reference", no_ref or "no reference colours"))
        else:
            q_out = M.color_quantiles(np.concatenate(acc.lab_out))
            q_src = M.color_quantiles(np.concatenate(acc.lab_src))
            results.append(MetricResult(
                "color", "Colour distance vs reference", M.color_distance(q_out, ref.color_q),
                extra={"source": M.color_distance(q_src, ref.color_q)},
                policy=COLOR_POLICY | {"output_images": len(acc.lab_out), "reference_images": ref.count,
                                       "extra.source": "the same distance for the untranslated sources (baseline)"}))
    b = acc.brightness(ref.brightness if ref is not None else None, ref.count if ref is not None else 0)
    if b is not None:
        results.append(b)

    ranking = _ranking(acc.items, results)
    items = _sort_items(acc.items, ranking)
    grid_rows = []
    for section, it in _grid_choice(items):
        try:
            src = read_image(it["source"]).rgb
            out = match_size(read_image(it["output"]).rgb, src.shape)
        except TurboError:
            continue
        grid_rows.append((section, it["name"], _score_text(it, ranking), src, out))

    return EvalReport(
        kind="folders",
        inputs={"source": str(source), "output": str(output), "reference": str(reference) if reference else None},
        counts={
            "pairs": len(acc.items),
            "source_images": len(src_set.jobs),
            "output_images": len(out_set.jobs),
            "reference_images": ref.count if ref is not None else 0,
            "outputs_without_source": len(pairing.outputs_without_source),
            "sources_without_output": len(pairing.sources_without_output),
            "non_image_files_skipped": {"source": src_set.skipped_files, "output": out_set.skipped_files,
                                        "reference": ref_set.skipped_files if ref_set else 0},
            "unreadable_skipped": len(unreadable) + (len(ref.skipped_unreadable) if ref else 0),
            "resized_outputs": acc.resized,
            "reference_cache": ref.cached if ref is not None else [],
        },
        metrics=results,
        items=items,
        ranking=ranking,
        warnings=warnings,
        grid_rows=grid_rows,
    )


# ----------------------------------------------------------------------------------------------------------------------
# Video


FLICKER_MAX_SIDE = 512  # frames are area-downscaled to this long side for flow: steadier flow, 4-10x faster on 1080p


def _downscale(rgb: np.ndarray, max_side: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def evaluate_video(
    source: str | Path,
    output: str | Path,
    *,
    backbones: Backbones,
    metrics: Iterable[str] = DEFAULT_VIDEO_METRICS,
    max_samples: int = 32,
    flow: str = DEFAULT_FLOW,
    max_frames: int | None = None,
    progress: ProgressFn | None = None,
) -> EvalReport:
    """Temporal flicker of OUTPUT (with flow from SOURCE) next to SOURCE's own, and the per-pair metrics
    (DINO-struct, LPIPS, edges, brightness) on up to `max_samples` evenly spaced frames."""
    from turbo_cli.eval.folders import iter_video_frames
    from turbo_cli.io.video import probe

    chosen = set(metrics)
    for p, opt in ((source, "--source"), (output, "--output")):
        if not Path(p).is_file():
            raise InputError(f"{opt} {p}: no such video file")
    info = probe(source)
    total = info.expected_frames()
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames
    stride = max(1, math.ceil(total / max_samples)) if total else 8
    acc = _PairAccumulator(chosen - {"fid", "kid", "color"}, backbones)
    warnings: list[str] = []
    counts = {"frames": 0, "resized_frames": 0, "sampled_frames": 0}
    thumbs: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    src_it = iter_video_frames(source, max_frames=max_frames)
    out_it = iter_video_frames(output, max_frames=max_frames)

    def pairs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i, (fs, fo) in enumerate(zip(src_it, out_it)):
            counts["frames"] += 1
            if progress:
                progress("frames", i, total)
            if fo.shape != fs.shape:
                counts["resized_frames"] += 1
                fo = match_size(fo, fs.shape)
            if i % stride == 0 and counts["sampled_frames"] < max_samples:
                counts["sampled_frames"] += 1
                name = f"frame {i:06d}"
                acc.add(name, fs, fo, {"frame": i})
                thumbs[name] = (_downscale(fs, 320), _downscale(fo, 320))
            if "flicker" in chosen:
                yield _downscale(fs, FLICKER_MAX_SIDE), _downscale(fo, FLICKER_MAX_SIDE)

    results: list[MetricResult] = []
    flick: FlickerResult | None = None
    if "flicker" in chosen:
        try:
            flick = temporal_flicker(pairs(), method=flow)
        except ValueError as e:
            results.append(_unavailable("flicker", "Temporal flicker (warp error)", str(e)))
    else:
        for _ in pairs():
            pass
    if counts["frames"] == 0:
        raise InputError(f"{source} / {output}: no frames decoded")
    # One video longer than the other usually means a cut or a dropped frame: say which and compare the common part.
    left_src = next(src_it, None) is not None
    left_out = next(out_it, None) is not None
    if left_src or left_out:
        longer = "--source" if left_src else "--output"
        warnings.append(f"{longer} has more frames than the other; compared the first {counts['frames']}")
    if counts["resized_frames"]:
        warnings.append(f"output frames differ in size from the source's: resized to {info.width}x{info.height}")
    if flick is not None:
        results.append(MetricResult(
            "flicker", "Temporal flicker (warp error)", flick.output, better="lower",
            extra={"input": flick.input, "output": flick.output, "ratio": flick.ratio},
            policy={"method": f"warp output t+1 onto t with optical flow of the INPUT frames ({flick.method}, "
                              f"OpenCV); mean |difference| over valid pixels and channels, 0..255 units",
                    "frame_size": f"frames area-downscaled to a long side of at most {FLICKER_MAX_SIDE} px",
                    "frame_pairs": flick.pairs,
                    "extra.input": "the same warp error of the input video: the floor for any output"}))
    results += acc.per_pair_metrics()
    b = acc.brightness()
    if b is not None:
        results.append(b)
    ranking = _ranking(acc.items, results)
    items = _sort_items(acc.items, ranking)
    grid_rows = [(section, it["name"], _score_text(it, ranking), *thumbs[it["name"]])
                 for section, it in _grid_choice(items)]
    counts["sample_stride"] = stride
    return EvalReport(
        kind="video",
        inputs={"source": str(source), "output": str(output)},
        counts=counts,
        metrics=results,
        items=items,
        ranking=ranking,
        warnings=warnings,
        grid_rows=grid_rows,
    )


# ----------------------------------------------------------------------------------------------------------------------
# Model on a dataset


def dataset_test_dirs(dataset: str | Path) -> tuple[Path, Path]:
    """(test A, test B) of a dataset in turbo's layout (test_A/) or CycleGAN's (testA/)."""
    root = Path(dataset).expanduser()
    if not root.is_dir():
        raise InputError(f"--dataset {dataset}: no such folder")
    found = []
    for domain in ("A", "B"):
        cands = [root / f"test_{domain}", root / f"test{domain}"]
        hit = next((c for c in cands if c.is_dir()), None)
        if hit is None:
            raise InputError(f"--dataset {dataset}: no test_{domain}/ (or test{domain}/) folder")
        found.append(hit)
    return found[0], found[1]


def _first_images(folder: Path, n: int | None, work: Path) -> Path:
    """`folder` itself, or a folder of links to its first n images (so --max-images also bounds translation)."""
    from turbo_cli.eval.folders import scan_folder

    jobs = scan_folder(folder, "--dataset").jobs
    if n is None or len(jobs) <= n:
        return folder
    import shutil

    if work.exists():
        shutil.rmtree(work)
    for job in jobs[:n]:
        target = work / job.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.symlink_to(job.src.resolve())
        except OSError:  # no symlinks (Windows without developer mode): copy
            shutil.copy2(job.src, target)
    return work


def evaluate_model(
    model_options,
    dataset: str | Path,
    work_dir: str | Path,
    *,
    backbones: Backbones,
    metrics: Iterable[str] = DEFAULT_FOLDER_METRICS,
    max_images: int | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
    translate_progress: bool = False,
) -> list[tuple[str, EvalReport]]:
    """Translate the dataset's test split with the model (both directions for a CycleGAN model unless
    model_options.direction picks one) into work_dir/translations/<direction>/, and evaluate each direction
    against the other domain's test images. Returns [(direction, report)]."""
    import dataclasses
    import gc

    from turbo_cli.jobs.translate import translate_folder
    from turbo_cli.jobs.loading import build_translator

    test_a, test_b = dataset_test_dirs(dataset)
    work_dir = Path(work_dir)
    translator = build_translator(model_options)
    info = translator.info
    if info.kind == "cyclegan" and model_options.direction is None:
        directions = [d for d in ("a2b", "b2a") if d in (info.directions or ["a2b", "b2a"])]
    else:
        directions = [translator.direction or "a2b"]
    results = []
    for i, direction in enumerate(directions):
        if translator is None or translator.direction != direction:
            translator = None
            gc.collect()
            translator = build_translator(dataclasses.replace(model_options, direction=direction))
        src, ref = (test_a, test_b) if direction == "a2b" else (test_b, test_a)
        src = _first_images(src, max_images, work_dir / "inputs" / direction)
        out = work_dir / "translations" / direction
        summary = translate_folder(src, out, translator, overwrite=True, progress=translate_progress)
        if summary.done == 0:
            raise TurboError(f"--model {model_options.model}: translated none of {summary.total} images in {src}"
                             + (f" ({summary.failed[0][1]})" if summary.failed else ""))
        report = evaluate_folders(src, out, ref, backbones=backbones, metrics=metrics, max_images=max_images,
                                  cache_dir=cache_dir, progress=progress)
        report.kind = "model"
        report.inputs |= {"model": model_options.model, "direction": direction, "dataset": str(dataset),
                          "reference_note": "the other domain's test images as stored (no val prep applied)"}
        report.counts["translated"] = summary.done
        if summary.failed:
            report.warnings.append(f"{len(summary.failed)} image(s) failed to translate: {summary.failed[0][0]}")
        results.append((direction, report))
    return results
