"""Evaluating a translated video against its source video: temporal flicker over every frame pair, and the
per-pair metrics (DINO-Struct-Dist, LPIPS, edges, brightness) on evenly spaced sample frames."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from turbo_cli.errors import InputError
from turbo_cli.eval.flicker import DEFAULT_FLOW, FlickerResult, temporal_flicker
from turbo_cli.eval.names import DEFAULT_VIDEO_METRICS, VIDEO_METRICS, Metric
from turbo_cli.eval.networks import Backbones
from turbo_cli.eval.paired import PairAccumulator, match_size
from turbo_cli.eval.policies import FLICKER_MAX_SIDE, flicker_policy
from turbo_cli.eval.ranking import choose_ranking, grid_rows, sort_items
from turbo_cli.eval.results import EvalReport, MetricResult, PairScores, VideoCounts
from turbo_cli.io.images import resize_rgb
from turbo_cli.io.video import probe, read_frames
from turbo_cli.progress import QUIET, Progress

THUMB_SIDE = 320  # long side of the sample frames kept for the report's grid


def _downscale(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """`rgb` with its long side at most `max_side` (aspect kept)."""
    h, w = rgb.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return rgb
    return resize_rgb(rgb, (max(1, round(w * s)), max(1, round(h * s))))


def _frames(path: str | Path, max_frames: int | None) -> Iterator[np.ndarray]:
    return (frame.rgb for frame in read_frames(path, max_frames=max_frames))


def evaluate_video(
    source: str | Path,
    output: str | Path,
    *,
    backbones: Backbones,
    metrics: Iterable[Metric | str] = DEFAULT_VIDEO_METRICS,
    max_samples: int = 32,
    flow: str = DEFAULT_FLOW,
    max_frames: int | None = None,
    progress: Progress = QUIET,
) -> EvalReport:
    """Temporal flicker of OUTPUT (with flow from SOURCE) next to SOURCE's own, and the per-pair metrics
    (DINO-struct, LPIPS, edges, brightness) on up to `max_samples` evenly spaced frames."""
    chosen = {Metric(m) for m in metrics} & set(VIDEO_METRICS)
    for p, opt in ((source, "--source"), (output, "--output")):
        if not Path(p).is_file():
            raise InputError(f"{opt} {p}: no such video file")
    info = probe(source)
    total = info.expected_frames()
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames
    stride = max(1, math.ceil(total / max_samples)) if total else 8
    acc = PairAccumulator(chosen, backbones)
    warnings: list[str] = []
    counts = VideoCounts(sample_stride=stride)
    thumbs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    src_it, out_it = _frames(source, max_frames), _frames(output, max_frames)
    longer: list[str] = []  # the option whose video still had frames when the other ended

    def pairs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        with progress.bar(total, "frame", "frames", transient=True) as bar:
            for i in itertools.count():
                fs, fo = next(src_it, None), next(out_it, None)
                if fs is None or fo is None:
                    if fs is not None or fo is not None:
                        longer.append("--source" if fs is not None else "--output")
                    return
                bar.advance()
                counts.frames += 1
                if fo.shape != fs.shape:
                    counts.resized_frames += 1
                    fo = match_size(fo, fs.shape)
                if i % stride == 0 and counts.sampled_frames < max_samples:
                    counts.sampled_frames += 1
                    item = PairScores(f"frame {i:06d}", frame=i)
                    acc.add(item, fs, fo)
                    thumbs[item.name] = (_downscale(fs, THUMB_SIDE), _downscale(fo, THUMB_SIDE))
                if Metric.FLICKER in chosen:
                    yield _downscale(fs, FLICKER_MAX_SIDE), _downscale(fo, FLICKER_MAX_SIDE)

    results: list[MetricResult] = []
    flick: FlickerResult | None = None
    if Metric.FLICKER in chosen:
        try:
            flick = temporal_flicker(pairs(), method=flow)
        except ValueError as e:
            results.append(MetricResult.unavailable(Metric.FLICKER, str(e)))
    else:
        for _ in pairs():
            pass
    if counts.frames == 0:
        raise InputError(f"{source} / {output}: no frames decoded")
    # One video longer than the other usually means a cut or a dropped frame: say which and compare the common part.
    if longer:
        warnings.append(f"{longer[0]} has more frames than the other; compared the first {counts.frames}")
    if counts.resized_frames:
        warnings.append(f"output frames differ in size from the source's: resized to {info.width}x{info.height}")
    if flick is not None:
        results.append(MetricResult(Metric.FLICKER, flick.output,
                                    extra={"input": flick.input, "output": flick.output, "ratio": flick.ratio},
                                    policy=flicker_policy(flick.method, flick.pairs)))
    results += acc.per_pair_metrics()
    b = acc.brightness()
    if b is not None:
        results.append(b)
    ranking = choose_ranking(results)
    items = sort_items(acc.items, ranking)
    return EvalReport(
        kind="video",
        inputs={"source": str(source), "output": str(output)},
        counts=counts,
        metrics=results,
        items=items,
        ranking=ranking,
        warnings=warnings,
        grid_rows=grid_rows(items, ranking, lambda item: thumbs[item.name]),
    )
