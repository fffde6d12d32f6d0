"""The bundled demo model and the `turbo demo` run: a real translation on a plain CPU in about a minute.

The demo model is a TINY CycleGAN-turbo (an SD-Turbo-shaped network a few MB in size, random-initialised and
trained by `turbo train` on the synthetic day/night street scenes of `turbo data synth`; see
scripts/train_demo.py and docs/demo.md). It translates those synthetic scenes from day to night; it is a
demonstration that turbo's pipeline works end to end, not a general-purpose model.

    demo_checkpoint()          -> the bundled .safetensors (what `--model demo` loads)
    run_demo(out_dir)          -> day clip -> `turbo video --model demo` -> `turbo eval` (video) -> report
    write_evidence(...)        -> the numbers of docs/demo.md (used by scripts/train_demo.py)
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from turbo_cli.errors import ModelError

ASSETS = Path(__file__).resolve().parent / "assets" / "demo"
CHECKPOINT_NAME = "day2night.safetensors"
METRICS_NAME = "metrics.json"
CLIP_NAME = "day_clip.mp4"  # as `turbo data synth` names it
OUTPUT_NAME = "night_clip.mp4"
REPORT_NAME = "report"
# The clip the demo translates: turbo_cli.io.synth.make_day_clip's defaults (48 frames, 4 s at 12 fps, 128x96).
CLIP_FRAMES, CLIP_FPS, CLIP_SIZE = 48, 12, (128, 96)
# The video metrics that need no downloaded weights, plus DINO, which the demo never downloads (350 MB): it runs
# when facebook/dino-vitb8 is already in the Hugging Face cache and is reported as n/a otherwise.
DEMO_VIDEO_METRICS = frozenset({"flicker", "edges", "brightness", "dino"})
ABOUT = ("a tiny CycleGAN-turbo (a few MB) trained by `turbo train` on synthetic 64x64 street scenes: it shows "
         "the pipeline working on a CPU, not SD-Turbo quality")


def demo_checkpoint() -> Path:
    """The bundled demo checkpoint (turbo format; its base_model "./base" is the tiny base folder beside it)."""
    path = ASSETS / CHECKPOINT_NAME
    if not path.is_file():
        raise ModelError(f"{path}: the demo model is not bundled with this installation (rebuild it with "
                         f"scripts/train_demo.py, or reinstall turbo with its package data)")
    return path


def demo_metrics() -> dict:
    """The training time and evidence numbers recorded with the bundled model ({} if absent)."""
    path = ASSETS / METRICS_NAME
    return json.loads(path.read_text()) if path.is_file() else {}


@contextmanager
def _torch_threads(n: int):
    """Run with n intra-op threads. The demo model is tiny (many small ops): one thread is as fast, and on a CPU
    shared with other work two OpenMP threads spin-wait against it (measured: 0.6 instead of 12 frames/s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _no_downloads():
    """Metric backbones load from local caches only (TURBO_OFFLINE/HF_HUB_OFFLINE): a demo must not fetch 350 MB."""
    keys = ("TURBO_OFFLINE", "HF_HUB_OFFLINE")
    before = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class DemoResult:
    clip: Path  # the day clip (input)
    output: Path  # the translated clip
    report_html: Path
    report_json: Path
    report: object  # turbo_cli.eval.api.EvalReport of the video pair
    video_seconds: float
    eval_seconds: float
    made_clip: bool = False  # False when an existing clip in out_dir was reused
    frames: int = 0


def run_demo(out_dir: str | Path = "demo-out", *, console=None, device: str = "cpu", threads: int = 1,
             notice: Callable[[str], None] | None = None) -> DemoResult:
    """The whole demo: make the synthetic day clip (if out_dir has none), translate it with the demo model
    (`turbo video`'s job), evaluate the pair (`turbo eval`'s video mode) and write the HTML report."""
    with _torch_threads(threads):
        return _run_demo(Path(out_dir), console, device, notice)


def _run_demo(out: Path, console, device: str, notice) -> DemoResult:
    from turbo_cli.eval import api
    from turbo_cli.eval.backbones import load_backbones
    from turbo_cli.eval.report import write_report
    from turbo_cli.io.synth import make_day_clip
    from turbo_cli.io.video import EncodeSettings
    from turbo_cli.jobs.video import VideoJobOptions, run_video
    from turbo_cli.models import ModelOptions

    demo_checkpoint()  # fail with the one-line reason before any work
    out.mkdir(parents=True, exist_ok=True)
    clip, output = out / CLIP_NAME, out / OUTPUT_NAME
    made = not clip.is_file()
    if made:
        make_day_clip(clip, frames=CLIP_FRAMES, fps=CLIP_FPS, size=CLIP_SIZE, audio=True, seed=0)

    t0 = time.perf_counter()
    results = run_video(clip, output, ModelOptions(model="demo", direction="a2b", device=device),
                        VideoJobOptions(encode=EncodeSettings(crf=18), overwrite=True), console=console,
                        notice=notice)
    video_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    with _no_downloads():
        nets = load_backbones(set(DEMO_VIDEO_METRICS), device=device)
    report = api.evaluate_video(clip, output, backbones=nets, metrics=DEMO_VIDEO_METRICS)
    paths = write_report(report, out / REPORT_NAME)
    eval_s = time.perf_counter() - t0
    return DemoResult(clip, output, paths["html"], paths["json"], report, video_s, eval_s, made,
                      frames=results[0].frames_out if results else 0)


# ----------------------------------------------------------------------------------------------------------------------
# Evidence (scripts/train_demo.py evaluate): the demo model vs the inputs vs an untrained model, on the test split


EVIDENCE_METRICS = frozenset({"color", "edges", "brightness", "fid", "kid", "dino"})


def _summary(report) -> dict:
    """The numbers docs/demo.md quotes from one `turbo eval` report (n/a metrics keep their reason)."""
    out = {}
    for m in report.metrics:
        if m.ok:
            out[m.key] = {"value": m.value, **{k: v for k, v in m.extra.items() if k != "std"}}
        else:
            out[m.key] = {"value": None, "unavailable": m.reason}
    out["pairs"] = report.counts.get("pairs")
    return out


def _save_untrained(base_dir: Path, path: Path, recipe) -> Path:
    """The recipe's generator at step 0 (LoRA B = 0, skips ~0: the random base itself), saved in turbo's format."""
    import torch

    from turbo_cli.engine.base import load_base
    from turbo_cli.engine.checkpoint import ModelInfo, save_turbo
    from turbo_cli.engine.generator import build_cyclegan

    torch.manual_seed(recipe.train.seed)
    base = load_base(base_dir, with_text_encoder=False)
    gen = build_cyclegan(base, recipe.model.rank_unet, recipe.model.rank_vae)
    info = ModelInfo("cyclegan", gen.spec, str(base_dir), name="untrained", direction="a2b",
                     directions=["a2b", "b2a"], image_prep="no_resize",
                     captions={"a2b": recipe.model.caption_b, "b2a": recipe.model.caption_a},
                     extra={"step": 0, "recipe": recipe.name})
    return save_turbo(gen, info, path)


def _side_by_side(rows: list[list[np.ndarray]], scale: int = 3, pad: int = 4) -> np.ndarray:
    """Rows of equal-size images -> one white-padded grid, each cell enlarged `scale` x (nearest: the pixels)."""
    h, w = rows[0][0].shape[:2]
    H, W = h * scale, w * scale
    ncol = max(len(r) for r in rows)
    grid = np.full((len(rows) * (H + pad) + pad, ncol * (W + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            big = img.repeat(scale, axis=0).repeat(scale, axis=1)
            y, x = pad + i * (H + pad), pad + j * (W + pad)
            grid[y:y + H, x:x + W] = big
    return grid


def write_evidence(work: Path, assets: Path = ASSETS, doc_img: Path | None = None, n_grid: int = 6) -> dict:
    """Evaluate (a) the day test inputs, (b) the demo model's a2b outputs, (c) the untrained model, and (d) the
    true night renders of the same test scenes (the ideal output), all against the night test set,
    with `turbo eval`'s weights-free metrics (FID/KID/DINO where their weights are reachable). Writes
    assets/metrics.json and, with doc_img, demo_day2night.png (input | demo | untrained | true night)."""
    from turbo_cli.eval import api
    from turbo_cli.eval.backbones import load_backbones
    from turbo_cli.io import synth
    from turbo_cli.io.images import read_image, write_image_atomic
    from turbo_cli.models import ModelOptions
    from turbo_cli.train.recipe import load_recipe

    work, assets = Path(work), Path(assets)
    data = work / "data"
    test_a, test_b = api.dataset_test_dirs(data)
    recipe = load_recipe(assets / "recipe.toml")
    ev = work / "evidence"
    nets = load_backbones(set(EVIDENCE_METRICS), device="cpu")
    kw = dict(backbones=nets, metrics=EVIDENCE_METRICS, cache_dir=ev / "cache")

    # (d) the same test scenes rendered at night (synth.render_pair draws the layout the test image was drawn from)
    manifest = json.loads((data / synth.MANIFEST).read_text())
    paired = ev / "true_night"
    for i, f in enumerate(sorted(test_a.glob("*.png"))):
        _, night = synth.render_pair(synth._image_rng(manifest["seed"], "test_A", i), manifest["size"])
        write_image_atomic(paired / f.name, night)

    untrained = _save_untrained(work / "base", ev / "untrained.safetensors", recipe)
    runs = {
        "inputs": None,
        "demo": ModelOptions(model="demo", direction="a2b", device="cpu"),
        "untrained": ModelOptions(model=str(untrained), direction="a2b", device="cpu"),
        "true_night": None,
    }
    evidence, outputs = {}, {}
    for name, options in runs.items():
        if options is None:
            out_dir = test_a if name == "inputs" else paired
            report = api.evaluate_folders(test_a, out_dir, test_b, **kw)
        else:
            (_, report), = api.evaluate_model(options, data, ev / name, **kw)
            out_dir = ev / name / "translations" / "a2b"
        outputs[name] = out_dir
        evidence[name] = _summary(report)

    night = evidence["inputs"]["brightness"]  # its "reference" is the night test set's, "source" the day set's
    metrics = {
        "about": ABOUT,
        "checkpoint": CHECKPOINT_NAME,
        "dataset": {"made_by": "turbo data synth", **manifest},
        "night_test_brightness": night.get("reference"),
        "day_test_brightness": night.get("source"),
        "evidence": evidence,
        "evidence_notes": {
            "inputs": "the day test images themselves (no translation)",
            "demo": "the demo model's a2b (day -> night) outputs of the day test images",
            "untrained": "the same architecture at step 0 of recipes/demo-day2night.toml (random base, no training)",
            "true_night": "the same test scenes rendered by night by the synthetic generator: the ideal output",
            "color": "sliced Wasserstein-1 in CIE Lab to the night test set (lower = closer to night)",
            "edges": "Canny edge F1 of output vs its day input (higher = structure kept)",
            "brightness": "mean Rec.601 luma 0..255 of the outputs; 'reference' = the night test set's",
        },
        "training": json.loads((work / "train_seconds.json").read_text()) if (work / "train_seconds.json").is_file()
        else None,
    }
    # the clip `turbo demo` makes: its numbers, and a few frames for the docs
    clip = run_demo(work / "demo-out")
    metrics["demo_video"] = {"frames": clip.frames, "size": list(CLIP_SIZE), **_summary(clip.report)}
    metrics["demo_video"].pop("pairs", None)
    old = json.loads((assets / METRICS_NAME).read_text()) if (assets / METRICS_NAME).is_file() else {}
    if "learning_curve" in old:  # measured during training on checkpoints that keep_last has since deleted
        metrics["learning_curve"] = old["learning_curve"]
    metrics["training_recipe"] = {"max_steps": recipe.train.max_steps, "batch_size": recipe.train.batch_size,
                                  "lr": recipe.optim.lr, "train_all": recipe.model.train_all}
    (assets / METRICS_NAME).write_text(json.dumps(metrics, indent=2, default=float) + "\n")

    if doc_img is not None:
        rows = []
        for f in sorted(test_a.glob("*.png"))[:n_grid]:
            rows.append([read_image(outputs[k] / f.name).rgb if k != "inputs" else read_image(f).rgb
                         for k in ("inputs", "demo", "untrained", "true_night")])
        write_image_atomic(Path(doc_img) / "demo_day2night.png", _side_by_side(rows))
        from turbo_cli.eval.folders import iter_video_frames

        picks = (0, 16, 32, 47)
        day = [f for i, f in enumerate(iter_video_frames(clip.clip)) if i in picks]
        night = [f for i, f in enumerate(iter_video_frames(clip.output)) if i in picks]
        write_image_atomic(Path(doc_img) / "demo_video_frames.png", _side_by_side([day, night], scale=2))
    return metrics
