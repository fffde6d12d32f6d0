"""What an evaluation returns: the report, each metric's result (value, related numbers, the policy that makes it
comparable, or the reason it is unavailable), the per-pair scores, the counts, and how pairs are ranked.
`EvalReport.to_json()` is the shape of metrics.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum

import numpy as np

from turbo_cli.eval.names import Better, Metric


class Status(StrEnum):
    OK = "ok"
    UNAVAILABLE = "unavailable"  # could not run (no weights offline, too few images, no reference); see `reason`


@dataclass
class MetricResult:
    key: Metric
    value: float | None = None
    status: Status = Status.OK
    reason: str | None = None  # why it is unavailable (one line)
    extra: dict[str, float] = field(default_factory=dict)  # related numbers, e.g. the source's own value (baseline)
    policy: dict[str, object] = field(default_factory=dict)  # how the number was made (backbone, resize, counts)

    @classmethod
    def unavailable(cls, key: Metric, reason: str, policy: dict | None = None) -> "MetricResult":
        return cls(key, None, Status.UNAVAILABLE, reason, policy=policy or {})

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    @property
    def label(self) -> str:
        return self.key.label

    @property
    def better(self) -> Better:
        return self.key.better

    def to_json(self) -> dict:
        return {"label": self.label, "value": self.value, "status": self.status.value, "reason": self.reason,
                "better": self.better.value, "extra": self.extra, "policy": self.policy}


@dataclass
class PairScores:
    """One evaluated pair (a source/output image pair, or a sampled video frame) and its per-pair metric values."""

    name: str  # relative path of the source image, or "frame 000012"
    scores: dict[Metric, float] = field(default_factory=dict)  # DINO_STRUCT, LPIPS, EDGES, BRIGHTNESS (the output's)
    source_brightness: float | None = None  # the baseline of BRIGHTNESS
    source: str | None = None  # image files (folders)
    output: str | None = None
    frame: int | None = None  # frame index (video)

    def to_json(self) -> dict:
        where = {k: v for k, v in (("source", self.source), ("output", self.output), ("frame", self.frame))
                 if v is not None}
        baseline = {"brightness_source": self.source_brightness} if self.source_brightness is not None else {}
        return {"name": self.name, **where, **{m.value: v for m, v in self.scores.items()}, **baseline}


@dataclass
class SkippedFiles:
    """Non-image files seen in each folder (counted, so a user sees that e.g. 40 .txt files were ignored)."""

    source: int = 0
    output: int = 0
    reference: int = 0


@dataclass
class FolderCounts:
    pairs: int  # pairs evaluated
    source_images: int
    output_images: int
    reference_images: int
    outputs_without_source: int
    sources_without_output: int
    non_image_files_skipped: SkippedFiles
    unreadable_skipped: int  # pairs and reference images that could not be decoded
    resized_outputs: int  # outputs resized to their source's size for the paired metrics
    reference_cache: list[str]  # reference statistics read from the cache
    translated: int | None = None  # model mode: test images the model translated

    def to_json(self) -> dict:
        data = asdict(self)
        if self.translated is None:
            del data["translated"]
        return data


@dataclass
class VideoCounts:
    frames: int = 0  # frame pairs decoded and compared
    resized_frames: int = 0
    sampled_frames: int = 0  # frames the per-pair metrics ran on
    sample_stride: int = 1

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Ranking:
    """How the pairs (`EvalReport.items`, the grid) are sorted: by which per-pair metric, and why that one."""

    metric: Metric | None
    better: Better
    note: str

    def to_json(self) -> dict:
        return {"metric": self.metric.value if self.metric else None, "better": self.better.value, "note": self.note}


@dataclass
class GridRow:
    """One "source | output" row of the report's grid.png."""

    section: str  # "best" | "worst" | "ranked"
    name: str
    score: str  # the ranking metric's value, as text
    source: np.ndarray  # (H, W, 3) uint8
    output: np.ndarray  # the same size as source


@dataclass
class EvalReport:
    kind: str  # "folders" | "video" | "model"
    inputs: dict[str, str | None]  # what was evaluated (paths; model, direction, dataset in model mode)
    counts: FolderCounts | VideoCounts
    metrics: list[MetricResult]
    items: list[PairScores]  # ranked, best first
    ranking: Ranking
    warnings: list[str] = field(default_factory=list)
    grid_rows: list[GridRow] = field(default_factory=list, repr=False)

    def metric(self, key: Metric | str) -> MetricResult:
        for m in self.metrics:
            if m.key == key:
                return m
        raise KeyError(key)

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "inputs": self.inputs,
            "counts": self.counts.to_json(),
            "metrics": {m.key.value: m.to_json() for m in self.metrics},
            "ranking": self.ranking.to_json(),
            "warnings": self.warnings,
            "items": [it.to_json() for it in self.items],
        }
