"""The evaluation report a person opens: metrics.json, index.html and grid.png (source | output pairs, best and
worst first). The terminal table is drawn by the CLI (rich); this module only writes files, atomically."""

from __future__ import annotations

import datetime as _dt
import html
import json
from pathlib import Path

import numpy as np

from turbo_cli.atomic import write_text
from turbo_cli.eval.names import Better, Metric
from turbo_cli.eval.results import EvalReport, GridRow, MetricResult
from turbo_cli.io.images import resize_rgb, write_image_atomic

GRID_HEIGHT = 192  # px per thumbnail row: big enough to judge structure, small enough for 8 rows on a screen
LABEL_H = 22
GAP = 6
SECTION_TITLES = {"best": "best", "worst": "worst", "ranked": "all pairs"}
ARROWS = {Better.LOWER: " ↓", Better.HIGHER: " ↑", Better.NEITHER: ""}
ITEM_METRICS = (Metric.DINO_STRUCT, Metric.EDGES, Metric.LPIPS, Metric.BRIGHTNESS)  # per-pair columns, in this order


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("turbo-cli")
    except Exception:  # running from a source tree that is not installed
        return "dev"


def report_json(report: EvalReport | list[EvalReport], names: list[str] | None = None) -> dict:
    """metrics.json content. Several reports (a model's two directions) nest under "directions"."""
    head = {"tool": "turbo eval", "turbo_version": _version(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if isinstance(report, list):
        return head | {"kind": "model", "directions": {n: r.to_json() for n, r in zip(names or [], report)}}
    return head | report.to_json()


def write_json(data: dict, path: str | Path) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=float) + "\n")


# ----------------------------------------------------------------------------------------------------------------------
# Grid


FONT_SCALE = 0.42


def _text_width(text: str) -> int:
    import cv2

    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE, 1)[0][0]


def _label(text: str, width: int, height: int = LABEL_H, bg: int = 32) -> np.ndarray:
    import cv2

    strip = np.full((height, width, 3), bg, np.uint8)
    # Long file names are cut from the left: the end of a path is the part that tells pairs apart.
    while len(text) > 4 and _text_width(text) > width - 8:
        text = "..." + text[4:]
    cv2.putText(strip, text, (4, height - 7), cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE, (235, 235, 235), 1, cv2.LINE_AA)
    return strip


def _thumb(rgb: np.ndarray, height: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    return resize_rgb(rgb, (max(1, round(w * height / h)), height))


def make_grid(rows: list[GridRow], ranking_note: str, height: int = GRID_HEIGHT) -> np.ndarray:
    """One uint8 image: a title, then per section a header and one "source | output" row per pair with its name
    and score above it."""
    blocks: list[np.ndarray] = []
    pair_imgs = []
    for row in rows:
        s, o = _thumb(row.source, height), _thumb(row.output, height)
        pair_imgs.append((row.section, f"{row.name}  {row.score}".strip(), np.concatenate(
            [s, np.full((height, GAP, 3), 255, np.uint8), o], axis=1)))
    title = f"source | output   ({ranking_note})"
    width = max([p[2].shape[1] for p in pair_imgs] + [480, _text_width(title) + 12])
    pad = lambda img, bg=255: np.concatenate(  # noqa: E731
        [img, np.full((img.shape[0], width - img.shape[1], 3), bg, np.uint8)], axis=1) if img.shape[1] < width else img
    blocks.append(_label(title, width, 28, bg=0))
    current = None
    for section, text, img in pair_imgs:
        if section != current:
            blocks.append(_label(SECTION_TITLES.get(section, section).upper(), width, 26, bg=70))
            current = section
        blocks.append(_label(text, width))
        blocks.append(pad(img))
        blocks.append(np.full((GAP, width, 3), 255, np.uint8))
    return np.concatenate(blocks, axis=0)


# ----------------------------------------------------------------------------------------------------------------------
# HTML


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _metric_row(m: MetricResult) -> str:
    arrow = ARROWS[m.better]
    if m.ok:
        value = f"<b>{_fmt(m.value)}</b>"
        extra = ", ".join(f"{html.escape(k)} {_fmt(v)}" for k, v in m.extra.items())
    else:
        value = "<span class=na>n/a</span>"
        extra = f"<span class=na>{html.escape(m.reason or '')}</span>"
    policy = "<br>".join(f"<i>{html.escape(k)}</i>: {_fmt(v)}" for k, v in m.policy.items())
    return (f"<tr><td>{html.escape(m.label)}{arrow}</td><td>{value}</td><td>{extra}</td>"
            f"<td class=pol>{policy}</td></tr>")


def _section_html(report: EvalReport, title: str, grid_name: str | None) -> str:
    parts = [f"<h2>{html.escape(title)}</h2>",
             "<p>" + " · ".join(f"{html.escape(k)}: <code>{html.escape(str(v))}</code>"
                                for k, v in report.inputs.items() if v) + "</p>",
             "<table><tr><th>metric</th><th>value</th><th>related / reason</th><th>policy</th></tr>",
             *(_metric_row(m) for m in report.metrics), "</table>"]
    counts = {k: v for k, v in report.counts.to_json().items() if v not in (0, [], None)}
    parts.append("<p class=small>" + " · ".join(f"{html.escape(k)}: {_fmt(v)}" for k, v in counts.items()) + "</p>")
    if report.warnings:
        parts.append("<ul class=warn>" + "".join(f"<li>{html.escape(w)}</li>" for w in report.warnings) + "</ul>")
    if grid_name:
        parts.append(f"<h3>Pairs ({html.escape(report.ranking.note)})</h3>"
                     f"<a href='{grid_name}'><img src='{grid_name}' alt='source | output grid'></a>")
    items = [it.to_json() for it in report.items]
    cols = [c for c in (*ITEM_METRICS, "brightness_source") if any(c in it for it in items)]
    if items:
        parts.append(f"<details><summary>all {len(items)} pairs</summary><table><tr><th>#</th><th>name</th>"
                     + "".join(f"<th>{c}</th>" for c in cols) + "</tr>")
        for i, it in enumerate(items, 1):
            parts.append(f"<tr><td>{i}</td><td>{html.escape(str(it['name']))}</td>"
                         + "".join(f"<td>{_fmt(it[c]) if c in it else ''}</td>" for c in cols) + "</tr>")
        parts.append("</table></details>")
    return "\n".join(parts)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;
text-align:left}th{background:#f3f3f3}.na{color:#a33}.pol{font-size:80%;color:#555}.small{font-size:85%;color:#555}
.warn{color:#8a5a00}img{max-width:100%;border:1px solid #ddd}code{background:#f6f6f6;padding:0 3px}"""


def write_report(report: EvalReport | list[EvalReport], report_dir: str | Path, names: list[str] | None = None,
                 json_path: str | Path | None = None) -> dict[str, Path]:
    """Write metrics.json, grid*.png and index.html into report_dir (and metrics JSON to json_path if given)."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    reports = report if isinstance(report, list) else [report]
    titles = names if isinstance(report, list) else [f"turbo eval: {report.kind}"]
    data = report_json(report, names)
    paths = {"json": write_json(data, report_dir / "metrics.json")}
    if json_path is not None:
        paths["json_copy"] = write_json(data, json_path)
    sections = []
    for i, (r, title) in enumerate(zip(reports, titles)):
        grid_name = None
        if r.grid_rows:
            grid_name = "grid.png" if len(reports) == 1 else f"grid-{title}.png"
            paths[grid_name] = write_image_atomic(report_dir / grid_name, make_grid(r.grid_rows, r.ranking.note))
        sections.append(_section_html(r, title, grid_name))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>turbo eval</title><style>{_CSS}</style>"
            f"</head><body><h1>turbo eval</h1><p class=small>{html.escape(data['created'])} · turbo "
            f"{html.escape(data['turbo_version'])} · <a href='metrics.json'>metrics.json</a></p>"
            + "\n".join(sections) + "</body></html>\n")
    paths["html"] = write_text(report_dir / "index.html", page)
    return paths
