"""Regenerate the demo model's evidence (docs/demo.md, turbo_cli/assets/demo/metrics.json, docs/img/*.png).

    .venv/bin/python scripts/demo_evidence.py [WORK]      # WORK: runs/demo-day2night (scripts/train_demo.py's)

Evaluates (a) the day test inputs, (b) the demo model's a2b outputs, (c) the untrained model and (d) the true
night renders of the same scenes against the night test set, with `turbo eval`'s weight-free metrics.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


from turbo_cli.engine.registry import DEMO, DEMO_ABOUT, DEMO_ASSETS, DEMO_CHECKPOINT
from turbo_cli.eval.names import Metric
from turbo_cli.eval.results import FolderCounts
from turbo_cli.io.images import image_grid
from turbo_cli.jobs.demo import CLIP_SIZE, METRICS_NAME, run_demo

ROOT = Path(__file__).resolve().parents[1]


EVIDENCE_METRICS = frozenset({Metric.COLOR, Metric.EDGES, Metric.BRIGHTNESS, Metric.FID, Metric.KID,
                              Metric.DINO_STRUCT})


def _summary(report) -> dict:
    """The numbers docs/demo.md quotes from one `turbo eval` report (n/a metrics keep their reason)."""
    out = {}
    for m in report.metrics:
        if m.ok:
            out[m.key] = {"value": m.value, **{k: v for k, v in m.extra.items() if k != "std"}}
        else:
            out[m.key] = {"value": None, "unavailable": m.reason}
    out["pairs"] = report.counts.pairs if isinstance(report.counts, FolderCounts) else None
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


def write_evidence(work: Path, assets: Path = DEMO_ASSETS, doc_img: Path | None = None, n_grid: int = 6) -> dict:
    """Evaluate (a) the day test inputs, (b) the demo model's a2b outputs, (c) the untrained model, and (d) the
    true night renders of the same test scenes (the ideal output), all against the night test set,
    with `turbo eval`'s weights-free metrics (FID/KID/DINO where their weights are reachable). Writes
    assets/metrics.json and, with doc_img, demo_day2night.png (input | demo | untrained | true night)."""
    from turbo_cli.eval.folder_eval import evaluate_folders
    from turbo_cli.eval.networks import load_backbones
    from turbo_cli.io import synth
    from turbo_cli.io.images import read_image, write_image_atomic
    from turbo_cli.io.video import read_frames
    from turbo_cli.jobs.evaluate import dataset_test_dirs, evaluate_model
    from turbo_cli.jobs.loading import ModelOptions
    from turbo_cli.train.recipe import load_recipe

    work, assets = Path(work), Path(assets)
    data = work / "data"
    test_a, test_b = dataset_test_dirs(data)
    recipe = load_recipe(assets / "recipe.toml")
    ev = work / "evidence"
    nets = load_backbones(EVIDENCE_METRICS, device="cpu")
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
        "demo": ModelOptions(model=DEMO, direction="a2b", device="cpu"),
        "untrained": ModelOptions(model=str(untrained), direction="a2b", device="cpu"),
        "true_night": None,
    }
    evidence, outputs = {}, {}
    for name, options in runs.items():
        if options is None:
            out_dir = test_a if name == "inputs" else paired
            report = evaluate_folders(test_a, out_dir, test_b, **kw)
        else:
            (_, report), = evaluate_model(options, data, ev / name, **kw)
            out_dir = ev / name / "translations" / "a2b"
        outputs[name] = out_dir
        evidence[name] = _summary(report)

    night = evidence["inputs"]["brightness"]  # its "reference" is the night test set's, "source" the day set's
    metrics = {
        "about": DEMO_ABOUT,
        "checkpoint": DEMO_CHECKPOINT,
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
        write_image_atomic(Path(doc_img) / "demo_day2night.png", image_grid(rows, pad=4, scale=3))
        picks = (0, 16, 32, 47)
        day = [f.rgb for i, f in enumerate(read_frames(clip.clip)) if i in picks]
        night = [f.rgb for i, f in enumerate(read_frames(clip.output)) if i in picks]
        write_image_atomic(Path(doc_img) / "demo_video_frames.png", image_grid([day, night], pad=4, scale=2))
    return metrics


if __name__ == "__main__":
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "runs" / "demo-day2night"
    write_evidence(work, DEMO_ASSETS, ROOT / "docs" / "img")
