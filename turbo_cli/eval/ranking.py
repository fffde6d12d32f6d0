"""Ranking the pairs: which per-pair metric sorts them (DINO-Struct-Dist, else edge F1, else LPIPS), best first,
and which of them the report's grid shows (all when few, else the best and the worst)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from turbo_cli.eval.names import Better, Metric
from turbo_cli.eval.results import GridRow, MetricResult, PairScores, Ranking

GRID_PER_SIDE = 4  # best and worst pairs shown in the grid
RANKING_ORDER = (Metric.DINO_STRUCT, Metric.EDGES, Metric.LPIPS)  # the first one that ran sorts the pairs
_SCORE_NAMES = {Metric.DINO_STRUCT: "DINO-struct x100", Metric.EDGES: "edge F1", Metric.LPIPS: "LPIPS"}


def choose_ranking(results: list[MetricResult]) -> Ranking:
    ok = {m.key for m in results if m.ok}
    if Metric.DINO_STRUCT in ok:
        return Ranking(Metric.DINO_STRUCT, Better.LOWER, "sorted by DINO-Struct-Dist (best first)")
    why = ("DINO-Struct-Dist unavailable" if any(m.key == Metric.DINO_STRUCT for m in results)
           else "DINO not requested")
    for key in RANKING_ORDER[1:]:
        if key in ok:
            return Ranking(key, key.better, f"sorted by {_SCORE_NAMES[key]} (best first): {why}")
    return Ranking(None, Better.NEITHER, f"in path order: {why} and no edge metric")


def sort_items(items: list[PairScores], ranking: Ranking) -> list[PairScores]:
    """Best first by the ranking metric; pairs without a value for it last."""
    key = ranking.metric
    if key is None:
        return list(items)
    sign = 1.0 if ranking.better == Better.LOWER else -1.0
    return sorted(items, key=lambda it: (sign * it.scores[key]) if key in it.scores else math.inf)


def score_text(item: PairScores, ranking: Ranking) -> str:
    key = ranking.metric
    if key is None or key not in item.scores:
        return ""
    return f"{_SCORE_NAMES[key]} {item.scores[key]:.3f}"


def grid_rows(sorted_items: list[PairScores], ranking: Ranking,
              images: Callable[[PairScores], tuple[np.ndarray, np.ndarray] | None]) -> list[GridRow]:
    """The grid's rows: every pair when few, else the best and the worst GRID_PER_SIDE. `images(item)` gives the
    (source, output) pictures, same size, or None to leave a pair out (e.g. unreadable by now)."""
    if len(sorted_items) <= 2 * GRID_PER_SIDE:
        chosen = [("ranked", it) for it in sorted_items]
    else:
        chosen = ([("best", it) for it in sorted_items[:GRID_PER_SIDE]]
                  + [("worst", it) for it in sorted_items[-GRID_PER_SIDE:]])
    rows = []
    for section, item in chosen:
        pictures = images(item)
        if pictures is not None:
            rows.append(GridRow(section, item.name, score_text(item, ranking), *pictures))
    return rows
