"""`turbo demo`: the bundled tiny day->night model on a synthetic day clip, then `turbo eval` on the result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Folder for the day clip, the translated clip and the report.")] = Path("demo-out"),
    device: Annotated[str, typer.Option(help="cpu | cuda | auto (the demo model is tiny: cpu is plenty).")] = "cpu",
    threads: Annotated[int, typer.Option(
        "--threads", min=1, help="CPU threads for torch and OpenMP; 1 is as fast for this tiny model and robust on a "
                                 "busy CPU.")] = 1,
) -> None:
    """Translate a synthetic day clip to night with the bundled demo model and evaluate it (about 30 s on a CPU).

    The demo model is TINY (a few MB) and was trained by `turbo train` on synthetic 64x64 street scenes
    (recipes/demo-day2night.toml, scripts/train_demo.py): it shows the pipeline, not SD-Turbo quality.

    With other verbs, `--model demo` runs every image at 128x128 (--image-prep resize_128x128; outputs are
    resized back to the input's size), so a large photo takes well under a second; `--image-prep no_resize`
    runs it at full size (minutes for a 1080p photo on a CPU). `--direction night` / `day` = a2b / b2a.

    For real footage use the published models, e.g. `turbo video in.mp4 out.mp4 --direction night`.
    """
    from rich.markup import escape

    from turbo_cli.cli.eval import print_report
    from turbo_cli.cli.ui import RichProgress, console
    from turbo_cli.engine.registry import DEMO_ABOUT
    from turbo_cli.jobs.demo import run_demo

    console.print(f"[bold]turbo demo[/bold]: {DEMO_ABOUT}.")
    result = run_demo(out, device=device, threads=threads, progress=RichProgress())
    print_report(console, result.report, "turbo eval: day clip -> night clip")
    clip_note = "made" if result.made_clip else "reused"
    console.print(f"input video  ({clip_note}): {escape(str(result.clip))}")
    console.print(f"output video:        {escape(str(result.output))}   ({result.frames} frames; translated in "
                  f"{result.video_seconds:.1f} s)")
    console.print(f"report:              {escape(str(result.report_html))}   (metrics: "
                  f"{escape(str(result.report_json))})")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
