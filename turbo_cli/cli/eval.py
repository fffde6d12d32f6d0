"""`turbo eval`: how good is a translation? FID/KID (realism), DINO-Struct-Dist (structure kept), LPIPS, a colour
distance and an edge agreement that need no weights, and temporal flicker for video. Writes a report folder."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from turbo_cli.cli.options import with_model_options
from turbo_cli.errors import InputError
from turbo_cli.jobs.loading import ModelOptions

PANEL = "Evaluation"


def _default_report_dir(output: Path | None, model: str | None) -> Path:
    """Beside what was evaluated: OUTPUT-eval/ (folder) or OUTPUT-stem-eval/ (video); eval-MODEL/ for a model."""
    if output is not None:
        name = output.stem if output.is_file() else output.name
        return output.parent / f"{name or 'output'}-eval"
    return Path.cwd() / f"eval-{Path(model or 'model').stem}"


def print_report(console, report, title: str) -> None:
    """The report as a rich table, then its counts and warnings. File names and reasons are user text: escaped."""
    from rich.markup import escape
    from rich.table import Table

    from turbo_cli.eval.report import ARROWS
    from turbo_cli.eval.results import FolderCounts

    table = Table(title=escape(title), title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("related")
    table.add_column("notes", overflow="fold")
    for m in report.metrics:
        label = m.label + ARROWS[m.better]
        if m.ok:
            # std is in the JSON; "output" repeats the value of the brightness row
            related = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in m.extra.items()
                                if k != "std" and not (k == "output" and v == m.value))
            table.add_row(label, f"{m.value:.4g}", escape(related), escape(str(m.policy.get("note", ""))))
        else:
            table.add_row(label, "[red]n/a[/red]", "", f"[red]{escape(m.reason or '')}[/red]")
    console.print(table)
    counts = report.counts
    if isinstance(counts, FolderCounts):
        skipped = sum(vars(counts.non_image_files_skipped).values())
        console.print(f"{counts.pairs} pairs, {counts.reference_images} reference images"
                      + (f", {skipped} non-image files skipped" if skipped else "")
                      + (f" (reference statistics from cache: {escape(', '.join(counts.reference_cache))})"
                         if counts.reference_cache else ""))
    else:
        console.print(f"{counts.frames} frames, {counts.sampled_frames} sampled for the per-frame metrics")
    for w in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")


@with_model_options
def eval_command(
    source: Annotated[Optional[Path], typer.Option(
        "--source", "-s", rich_help_panel=PANEL, help="Input images (folder) or input video (file).")] = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", rich_help_panel=PANEL,
        help="Translated images (folder; paired with --source by relative path, any extension) or video.")] = None,
    reference: Annotated[Optional[Path], typer.Option(
        "--reference", "-r", rich_help_panel=PANEL,
        help="Real images of the target domain (folder), for FID, KID and the colour distance.")] = None,
    dataset: Annotated[Optional[Path], typer.Option(
        rich_help_panel=PANEL, help="With --model: a dataset folder; its test split is translated and evaluated "
                                    "(both directions for CycleGAN models).")] = None,
    report: Annotated[Optional[Path], typer.Option(
        rich_help_panel=PANEL, help="Report folder (index.html, grid.png, metrics.json); default: beside --output "
                                    "(OUTPUT-eval/), or eval-MODEL/ for --model.")] = None,
    json_path: Annotated[Optional[Path], typer.Option(
        "--json", rich_help_panel=PANEL, help="Also write metrics.json here.")] = None,
    metrics: Annotated[Optional[str], typer.Option(
        rich_help_panel=PANEL,
        help="Comma list. Images: fid,kid,dino_struct,lpips,color,edges,brightness (default: all but lpips). "
             "Video: flicker,dino_struct,lpips,edges,brightness (default: all but lpips). 'all' for everything.")
    ] = None,
    weights_dir: Annotated[Optional[Path], typer.Option(
        rich_help_panel=PANEL, help="Local metric weights (air-gapped): inception-2015-12-05.pt, dino-vitb8/ "
                                    "(transformers folder), vgg16-397923af.pth.")] = None,
    max_images: Annotated[Optional[int], typer.Option(
        min=1, rich_help_panel=PANEL, help="Evaluate at most N pairs (and N reference images); video: frames "
                                           "sampled for DINO/LPIPS/edges (default 32).")] = None,
    flow: Annotated[str, typer.Option(
        rich_help_panel=PANEL, help="Video: optical flow for flicker, dis | farneback.")] = "dis",
    max_frames: Annotated[Optional[int], typer.Option(
        min=2, rich_help_panel=PANEL, help="Video: read at most N frames of each video.")] = None,
    *,
    model_options: ModelOptions,
) -> None:
    """Evaluate translated images, a translated video, or a model on a dataset's test split.

    \b
    turbo eval --source photos/ --output photos-night/ --reference night-refs/
    turbo eval --source day.mp4 --output night.mp4
    turbo eval --model day_to_night --dataset my_day2night/
    """
    from rich.markup import escape

    from turbo_cli.cli.ui import RichProgress, console
    from turbo_cli.eval import names, networks
    from turbo_cli.eval.flicker import FLOW_METHODS
    from turbo_cli.eval.folder_eval import evaluate_folders
    from turbo_cli.eval.report import write_report
    from turbo_cli.eval.video_eval import evaluate_video
    from turbo_cli.io.video import is_video_path

    model_mode = model_options.model is not None or dataset is not None
    if model_mode:
        if dataset is None:
            raise InputError("--model needs --dataset DIR (a folder with test_A/ and test_B/)")
        if model_options.model is None and model_options.direction is None:
            raise InputError("--dataset needs --model NAME|PATH")
        if source is not None or output is not None:
            raise InputError("--model/--dataset evaluate a model; --source/--output evaluate existing outputs: "
                             "use one or the other")
    elif source is None or output is None:
        raise InputError("pass --source and --output (folders or videos), or --model and --dataset")
    video = not model_mode and is_video_path(source)
    if video and not output.is_file():
        raise InputError(f"--output {output}: --source is a video, so --output must be a video file too")
    allowed = names.VIDEO_METRICS if video else names.FOLDER_METRICS
    default = names.DEFAULT_VIDEO_METRICS if video else names.DEFAULT_FOLDER_METRICS
    chosen = names.parse_metrics(metrics, allowed, default)
    if flow not in FLOW_METHODS:
        raise InputError(f"--flow {flow}: use one of {', '.join(FLOW_METHODS)}")
    if weights_dir is not None and not weights_dir.is_dir():
        raise InputError(f"--weights-dir {weights_dir}: no such folder")

    progress = RichProgress()
    nets = networks.load_backbones(chosen, weights_dir, model_options.device, progress=progress)
    report_dir = report or _default_report_dir(output, model_options.model or model_options.direction)
    if model_mode:
        from turbo_cli.jobs.evaluate import evaluate_model

        results = evaluate_model(model_options, dataset, report_dir, backbones=nets, metrics=chosen,
                                 max_images=max_images, progress=progress)
        paths = write_report([r for _, r in results], report_dir, names=[d for d, _ in results], json_path=json_path)
    else:
        if video:
            result = evaluate_video(source, output, backbones=nets, metrics=chosen, max_samples=max_images or 32,
                                    flow=flow, max_frames=max_frames, progress=progress)
        else:
            result = evaluate_folders(source, output, reference, backbones=nets, metrics=chosen,
                                      max_images=max_images, progress=progress)
        results = [(result.kind, result)]
        paths = write_report(result, report_dir, json_path=json_path)
    for name, r in results:
        print_report(console, r, f"turbo eval: {name}" if model_mode else f"turbo eval ({r.kind})")
    console.print(f"report: {escape(str(paths['html']))}  ·  metrics: {escape(str(paths['json']))}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
