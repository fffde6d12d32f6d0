"""Evaluating a translated video against its source video: temporal flicker over every frame pair, and the
per-pair metrics (DINO-Struct-Dist, LPIPS, edges, brightness) on evenly spaced sample frames.

Frames are paired by timestamp, not by position: an OUTPUT trimmed by `turbo video --start/--end` starts at 0 and
says in its container tags where it lies in the source (`io.video.source_range`), and a dropped frame on either
side leaves the others paired with the right partner."""

from __future__ import annotations

import math
from pathlib import Path
from dataclasses import dataclass
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
from turbo_cli.io.video import Frame, probe, read_frames, source_range
from turbo_cli.progress import QUIET, Progress

THUMB_SIDE = 320  # long side of the sample frames kept for the report's grid


def _downscale(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """`rgb` with its long side at most `max_side` (aspect kept)."""
    h, w = rgb.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return rgb
    return resize_rgb(rgb, (max(1, round(w * s)), max(1, round(h * s))))


@dataclass
class _Pairing:
    """Frames left without a partner at the same time, and which side still had frames at the end."""

    source_only: int = 0
    output_only: int = 0
    longer: str | None = None


def pair_by_time(src: Iterator[Frame], out: Iterator[Frame], offset: float, tolerance: float,
                 tally: _Pairing) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(source, output) frames whose times agree within `tolerance` seconds, output time + `offset` being source
    time. A frame with no partner at its time is skipped and counted (a dropped or duplicated frame)."""
    s, o = next(src, None), next(out, None)
    while s is not None and o is not None:
        t = o.time + offset
        if abs(s.time - t) <= tolerance:
            yield s.rgb, o.rgb
            s, o = next(src, None), next(out, None)
        elif s.time < t:
            tally.source_only += 1
            s = next(src, None)
        else:
            tally.output_only += 1
            o = next(out, None)
    if s is not None or o is not None:
        tally.longer = "--source" if s is not None else "--output"


def evaluate_video(
    source: str | Path,
    output: str | Path,
    *,
    backbones: Backbones,
    metrics: Iterable[Metric | str] = DEFAULT_VIDEO_METRICS,
    max_samples: int = 32,
    flow: str = DEFAULT_FLOW,
    max_frames: int | None = None,
    source_start: float | None = None,
    source_end: float | None = None,
    progress: Progress = QUIET,
) -> EvalReport:
    """Temporal flicker of OUTPUT (with flow from SOURCE) next to SOURCE's own, and the per-pair metrics
    (DINO-struct, LPIPS, edges, brightness) on up to `max_samples` evenly spaced frames.

    `source_start`/`source_end` (seconds): the part of SOURCE that OUTPUT covers, its time 0 at `source_start`;
    by default what OUTPUT's tags say (a `turbo video --start/--end` output), else the whole SOURCE."""
    chosen = {Metric(m) for m in metrics} & set(VIDEO_METRICS)
    for p, opt in ((source, "--source"), (output, "--output")):
        if not Path(p).is_file():
            raise InputError(f"{opt} {p}: no such video file")
    info = probe(source)
    out_info = probe(output)
    tagged_start, tagged_end = source_range(out_info)
    start = tagged_start if source_start is None else source_start
    end = tagged_end if source_end is None else source_end
    total = out_info.expected_frames()
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames
    stride = max(1, math.ceil(total / max_samples)) if total else 8
    acc = PairAccumulator(chosen, backbones)
    warnings: list[str] = []
    counts = VideoCounts(sample_stride=stride)
    thumbs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    # Same time within a quarter frame: mkv rounds to milliseconds, and neighbours are a whole frame apart.
    rate = float(info.average_rate) if info.average_rate else 25.0
    tally = _Pairing()
    matched = pair_by_time(read_frames(source, start=start or None, end=end),
                           read_frames(output, max_frames=max_frames), start, max(0.002, 0.25 / rate), tally)

    def pairs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        with progress.bar(total, "frame", "frames", transient=True) as bar:
            for i, (fs, fo) in enumerate(matched):
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
        if tally.source_only or tally.output_only:
            where = f" from {start:g} s" if start else ""
            raise InputError(f"--output {output}: no frame has a --source frame at the same time{where} (a "
                             f"different frame rate, or trimmed by another tool?)")
        raise InputError(f"{source} / {output}: no frames decoded")
    # One video longer than the other usually means a cut or a dropped frame: say which and compare the common part.
    if tally.source_only or tally.output_only:
        warnings.append(f"{tally.source_only} source and {tally.output_only} output frame(s) have no partner at the "
                        f"same time (dropped or duplicated frames); compared the {counts.frames} that do")
    if tally.longer and not (tally.longer == "--source" and max_frames is not None):
        warnings.append(f"{tally.longer} has more frames than the other; compared the {counts.frames} frames at "
                        f"matching times")
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
        inputs={"source": str(source), "output": str(output), **({"source_start": f"{start:g}"} if start else {}),
                **({"source_end": f"{end:g}"} if end is not None else {})},
        counts=counts,
        metrics=results,
        items=items,
        ranking=ranking,
        warnings=warnings,
        grid_rows=grid_rows(items, ranking, lambda item: thumbs[item.name]),
    )
