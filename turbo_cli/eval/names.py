"""The metric vocabulary, defined once: each metric's one name (the `--metrics` value, the metrics.json key, the
HTML report's and the training log's key), what the table calls it, which way is better, and which metrics apply to
image folders and which to a video; plus the parser that turns a user's list of names into a set of metrics."""

from __future__ import annotations

import difflib
from enum import StrEnum
from typing import Iterable

from turbo_cli.errors import InputError, TurboError


class Better(StrEnum):
    """Which way a metric improves; NEITHER for a measurement to read, not to optimise (brightness)."""

    LOWER = "lower"
    HIGHER = "higher"
    NEITHER = "-"


class Metric(StrEnum):
    FID = "fid"
    KID = "kid"
    DINO_STRUCT = "dino_struct"
    LPIPS = "lpips"
    COLOR = "color"
    EDGES = "edges"
    BRIGHTNESS = "brightness"
    FLICKER = "flicker"

    @property
    def label(self) -> str:
        """What the terminal table and the HTML report print."""
        return _LABELS[self]

    @property
    def better(self) -> Better:
        return _BETTER[self]


_LABELS = {
    Metric.FID: "FID vs reference",
    Metric.KID: "KID vs reference",
    Metric.DINO_STRUCT: "DINO-Struct-Dist x100",
    Metric.LPIPS: "LPIPS(source, output)",
    Metric.COLOR: "Colour distance vs reference",
    Metric.EDGES: "Edge F1 vs source",
    Metric.BRIGHTNESS: "Mean brightness (output)",
    Metric.FLICKER: "Temporal flicker (warp error)",
}
_BETTER = {m: Better.LOWER for m in Metric} | {Metric.EDGES: Better.HIGHER, Metric.BRIGHTNESS: Better.NEITHER}

FOLDER_METRICS = (Metric.FID, Metric.KID, Metric.DINO_STRUCT, Metric.LPIPS, Metric.COLOR, Metric.EDGES,
                  Metric.BRIGHTNESS)
VIDEO_METRICS = (Metric.FLICKER, Metric.DINO_STRUCT, Metric.LPIPS, Metric.EDGES, Metric.BRIGHTNESS)
ALL_METRICS = frozenset(Metric)
# LPIPS is opt-in everywhere: it is the slowest per pair and says little that DINO-Struct and edges do not.
DEFAULT_FOLDER_METRICS = frozenset(FOLDER_METRICS) - {Metric.LPIPS}
DEFAULT_VIDEO_METRICS = frozenset(VIDEO_METRICS) - {Metric.LPIPS}
# The metrics computed from Inception features (one network serves both, and the reference cache holds them).
INCEPTION_METRICS = frozenset({Metric.FID, Metric.KID})


def select_metrics(names: Iterable[str], allowed: Iterable[str] = ALL_METRICS, *, option: str = "--metrics",
                   error: type[TurboError] = InputError) -> frozenset[Metric]:
    """Names -> metrics; "all" means every allowed one. An unknown or inapplicable name raises `error` naming
    `option` (the CLI's --metrics, or a recipe's "[eval] metrics")."""
    allowed = frozenset(Metric(a) for a in allowed)
    names = [n.strip().lower() for n in names if n.strip()]
    chosen: set[Metric] = set()
    for name in names:
        if name == "all":
            chosen |= allowed
            continue
        if name in allowed:
            chosen.add(Metric(name))
            continue
        choices = ", ".join(m.value for m in Metric if m in allowed)
        if name in ALL_METRICS:
            raise error(f"{option} {','.join(names)}: {name!r} does not apply here (choose from {choices})")
        close = ([m.value for m in Metric if m in allowed and m.value.startswith(name)]
                 or difflib.get_close_matches(name, [m.value for m in Metric if m in allowed], n=1))
        hint = f"; did you mean {close[0]}?" if close else ""
        raise error(f"{option} {','.join(names)}: {name!r} is not a metric{hint} (choose from {choices})")
    return frozenset(chosen)


def parse_metrics(text: str | None, allowed: Iterable[str], default: Iterable[str]) -> frozenset[Metric]:
    """The --metrics option: "fid,kid,dino_struct" -> those metrics; empty -> `default`."""
    if not text or not text.strip():
        return frozenset(Metric(d) for d in default)
    return select_metrics(text.split(","), allowed)
