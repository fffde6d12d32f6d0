"""The per-pair metrics (DINO-Struct-Dist, LPIPS, edge F1, brightness), accumulated pair by pair, plus the
set-level inputs gathered on the way (Inception features of the outputs, Lab pixels for the colour distance).
Folder and video evaluation both feed their pairs through `PairAccumulator`."""

from __future__ import annotations

from typing import Callable, TypeVar

import numpy as np

from turbo_cli.eval import metrics as M
from turbo_cli.eval.names import INCEPTION_METRICS, Metric
from turbo_cli.eval.networks import Backbones, InceptionFeatures, Unavailable
from turbo_cli.eval.policies import BRIGHTNESS_POLICY, EDGE_POLICY, dino_policy, lpips_policy
from turbo_cli.eval.results import MetricResult, PairScores
from turbo_cli.io.images import resize_rgb

INCEPTION_BATCH = 16  # images per Inception forward: small enough for CPU memory, large enough to amortise

T = TypeVar("T")


def match_size(rgb: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`rgb` resized to shape[:2] (an output to its source's size), area down / bicubic up."""
    return resize_rgb(rgb, (shape[1], shape[0]))


class Guarded:
    """One backbone's per-image work; its first error turns its metrics off with a reason instead of failing all."""

    def __init__(self, backbone, what: str):
        self.backbone = backbone
        self.reason = backbone.reason if isinstance(backbone, Unavailable) else None
        self.what = what  # names the metric in the reason

    @property
    def active(self) -> bool:
        return self.backbone is not None and self.reason is None

    def run(self, fn: Callable[[], T], name: str) -> T | None:
        if not self.active:
            return None
        try:
            return fn()
        except (RuntimeError, ValueError, MemoryError) as e:
            self.reason = f"{self.what} failed on {name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
            return None


class FeatureBuffer:
    """Batches Inception inputs so the network runs on INCEPTION_BATCH images at a time."""

    def __init__(self, guarded: Guarded):
        self.guarded = guarded
        self.pending: list[np.ndarray] = []
        self.names: list[str] = []
        self.chunks: list[np.ndarray] = []

    @property
    def inception(self) -> InceptionFeatures:
        return self.guarded.backbone

    def add(self, rgb: np.ndarray, name: str) -> None:
        if not self.guarded.active:
            return
        self.pending.append(self.inception.prepare(rgb))
        self.names.append(name)
        if len(self.pending) >= INCEPTION_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending and self.guarded.active:
            f = self.guarded.run(lambda: self.inception.embed(self.pending), self.names[0])
            if f is not None:
                self.chunks.append(f)
        self.pending, self.names = [], []

    def result(self) -> np.ndarray | None:
        """(N, D) features of everything added, or None when the network was off or failed."""
        self.flush()
        if not self.guarded.active or not self.chunks:
            return None
        return np.concatenate(self.chunks)


class PairAccumulator:
    """Scores each (source, output) pair for the chosen per-pair metrics and keeps what the set metrics need."""

    def __init__(self, chosen: set[Metric], backbones: Backbones):
        self.chosen = chosen
        self.dino = Guarded(backbones.dino if Metric.DINO_STRUCT in chosen else None, "DINO-Struct-Dist")
        self.lpips = Guarded(backbones.lpips if Metric.LPIPS in chosen else None, "LPIPS")
        self.inception = Guarded(backbones.inception if chosen & INCEPTION_METRICS else None, "Inception")
        self.items: list[PairScores] = []
        self.lab_out: list[np.ndarray] = []
        self.lab_src: list[np.ndarray] = []
        self.feats = FeatureBuffer(self.inception)
        self.resized = 0  # outputs resized to their source's size

    def add(self, item: PairScores, src: np.ndarray, out: np.ndarray) -> None:
        """Score one pair into `item` (FID/KID features are taken from the output as it is, before any resize)."""
        self.feats.add(out, item.name)
        if out.shape != src.shape:
            self.resized += 1
            out = match_size(out, src.shape)
        if self.dino.active:
            raw = self.dino.run(lambda: self.dino.backbone.struct_dist(src, out), item.name)
            if raw is not None:
                item.scores[Metric.DINO_STRUCT] = raw * 100.0
        if self.lpips.active:
            v = self.lpips.run(lambda: self.lpips.backbone(src, out), item.name)
            if v is not None:
                item.scores[Metric.LPIPS] = v
        if Metric.EDGES in self.chosen:
            f1 = M.edge_f1(src, out)
            if not np.isnan(f1):  # an edge-free pair has no score (undefined), so it never ranks "best"
                item.scores[Metric.EDGES] = f1
        if Metric.COLOR in self.chosen:
            self.lab_out.append(M.image_lab_pixels(out).astype(np.float32))
            self.lab_src.append(M.image_lab_pixels(src).astype(np.float32))
        if Metric.BRIGHTNESS in self.chosen:
            item.source_brightness = M.mean_brightness(src)
            item.scores[Metric.BRIGHTNESS] = M.mean_brightness(out)
        self.items.append(item)

    def _values(self, key: Metric) -> list[float]:
        return [it.scores[key] for it in self.items if key in it.scores]

    def per_pair_metrics(self) -> list[MetricResult]:
        """DINO-Struct-Dist, LPIPS and edge F1 over all pairs (brightness: `brightness()`, it takes a reference)."""
        res = []
        if Metric.DINO_STRUCT in self.chosen:
            vals = self._values(Metric.DINO_STRUCT)
            if self.dino.reason:
                res.append(MetricResult.unavailable(Metric.DINO_STRUCT, self.dino.reason))
            elif vals:
                mean = float(np.mean(vals))
                res.append(MetricResult(Metric.DINO_STRUCT, mean,
                                        extra={"raw": mean / 100.0, "std": float(np.std(vals))},
                                        policy=dino_policy(self.dino.backbone) | {"images": len(vals)}))
        if Metric.LPIPS in self.chosen:
            vals = self._values(Metric.LPIPS)
            if self.lpips.reason:
                res.append(MetricResult.unavailable(Metric.LPIPS, self.lpips.reason))
            elif vals:
                res.append(MetricResult(Metric.LPIPS, float(np.mean(vals)),
                                        policy=lpips_policy(self.lpips.backbone) | {"images": len(vals)}))
        if Metric.EDGES in self.chosen and self.items:
            vals = self._values(Metric.EDGES)
            edge_free = len(self.items) - len(vals)
            policy = EDGE_POLICY | {"images": len(vals)} | ({"edge_free_pairs_skipped": edge_free} if edge_free else {})
            res.append(MetricResult(Metric.EDGES, float(np.mean(vals)), policy=policy) if vals else
                       MetricResult.unavailable(Metric.EDGES, "every source and output pair is edge-free: no structure "
                                                "to compare", policy))
        return res

    def brightness(self, reference: float | None = None, reference_count: int = 0) -> MetricResult | None:
        """Mean brightness of the outputs, with the sources' (and the reference's, when given) beside it."""
        if Metric.BRIGHTNESS not in self.chosen or not self.items:
            return None
        out = float(np.mean(self._values(Metric.BRIGHTNESS)))
        extra = {"source": float(np.mean([it.source_brightness for it in self.items])), "output": out}
        if reference is not None:
            extra["reference"] = reference
        return MetricResult(Metric.BRIGHTNESS, out, extra=extra,
                            policy=BRIGHTNESS_POLICY | {"images": len(self.items), "reference_images": reference_count})
