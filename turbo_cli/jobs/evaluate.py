"""Evaluating a model on a dataset: translate its test split with the model (`jobs.translate`), then evaluate the
translations against the other domain's test images (`eval.folder_eval`). `turbo eval --model --dataset` runs this."""

from __future__ import annotations

import dataclasses
import gc
import shutil
from pathlib import Path
from typing import Iterable

from turbo_cli.errors import InputError, TurboError
from turbo_cli.io.datasets import read_prompts, split_dirs
from turbo_cli.eval.folder_eval import evaluate_folders
from turbo_cli.eval.names import DEFAULT_FOLDER_METRICS, Metric
from turbo_cli.eval.networks import Backbones
from turbo_cli.eval.pairing import scan_folder
from turbo_cli.eval.results import EvalReport
from turbo_cli.jobs.loading import ModelOptions, build_translator
from turbo_cli.jobs.translate import translate_folder
from turbo_cli.progress import QUIET, Progress


def dataset_test_dirs(dataset: str | Path) -> tuple[Path, Path]:
    """(test A, test B) of a dataset folder (`io.datasets.split_dirs`)."""
    return split_dirs(dataset, "test", "--dataset")


def _first_images(folder: Path, n: int | None, work: Path) -> Path:
    """`folder` itself, or a folder of links to its first n images (so --max-images also bounds translation)."""
    jobs = scan_folder(folder, "--dataset").jobs
    if n is None or len(jobs) <= n:
        return folder
    return _link_folder(jobs[:n], work)


def _link_folder(jobs: list, work: Path) -> Path:
    """A fresh folder of links to these images (copies where links are impossible), keeping relative paths."""
    if work.exists():
        shutil.rmtree(work)
    for job in jobs:
        target = work / job.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.symlink_to(job.src.resolve())
        except OSError:  # no symlinks (Windows without developer mode): copy
            shutil.copy2(job.src, target)
    work.mkdir(parents=True, exist_ok=True)
    return work


def _translate_by_caption(src: Path, out: Path, translator, captions: dict[str, str], work: Path,
                          progress: Progress):
    """pix2pix on a paired dataset: each image with its own caption (one translation run per caption)."""
    jobs = scan_folder(src, "--dataset").jobs
    groups: dict[str, list] = {}
    for job in jobs:
        caption = captions.get(job.src.name)
        if caption is None:
            raise InputError(f"{Path(src).parent / 'test_prompts.json'}: no caption for {job.src.name}")
        groups.setdefault(caption, []).append(job)
    summary = None
    for i, (caption, members) in enumerate(groups.items()):
        folder = _link_folder(members, work / str(i))
        translator.prompt_emb = translator.prompts([caption]).to(translator.device, translator.dtype)
        part = translate_folder(folder, out, translator, overwrite=True, progress=progress)
        summary = part if summary is None else summary.merge(part)
    return summary


def evaluate_model(
    model_options: ModelOptions,
    dataset: str | Path,
    work_dir: str | Path,
    *,
    backbones: Backbones,
    metrics: Iterable[Metric | str] = DEFAULT_FOLDER_METRICS,
    max_images: int | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress = QUIET,
) -> list[tuple[str, EvalReport]]:
    """Translate the dataset's test split with the model (both directions for a CycleGAN model unless
    model_options.direction picks one) into work_dir/translations/<direction>/, and evaluate each direction
    against the other domain's test images. Returns [(direction, report)]."""
    test_a, test_b = dataset_test_dirs(dataset)
    work_dir = Path(work_dir)
    # A paired dataset's per-image captions (test_prompts.json) are the prompts, unless --prompt gives one for all
    captions = read_prompts(Path(dataset), "test") if model_options.prompt is None and \
        (Path(dataset) / "test_prompts.json").is_file() else {}
    try:
        translator = build_translator(model_options, progress)
    except InputError:
        if not captions:
            raise
        translator = build_translator(dataclasses.replace(model_options, prompt=next(iter(captions.values()))),
                                      progress)
    info = translator.info
    per_image = captions if info.kind == "pix2pix" else {}
    if info.kind == "cyclegan" and model_options.direction is None:
        directions = [d for d in ("a2b", "b2a") if d in (info.directions or ["a2b", "b2a"])]
    else:
        directions = [translator.direction or "a2b"]
    results = []
    for direction in directions:
        if translator is None or (info.kind == "cyclegan" and translator.direction != direction):
            translator = None
            gc.collect()  # one model in memory at a time
            translator = build_translator(dataclasses.replace(model_options, direction=direction), progress)
        src, ref = (test_a, test_b) if direction == "a2b" else (test_b, test_a)
        src = _first_images(src, max_images, work_dir / "inputs" / direction)
        out = work_dir / "translations" / direction
        summary = (_translate_by_caption(src, out, translator, per_image, work_dir / "by-caption", progress)
                   if per_image else translate_folder(src, out, translator, overwrite=True, progress=progress))
        if summary.done == 0:
            raise TurboError(f"--model {model_options.model}: translated none of {summary.total} images in {src}"
                             + (f" ({summary.failed[0][1]})" if summary.failed else ""))
        report = evaluate_folders(src, out, ref, backbones=backbones, metrics=metrics, max_images=max_images,
                                  cache_dir=cache_dir, progress=progress)
        report.kind = "model"
        report.inputs |= {"model": model_options.model, "direction": direction, "dataset": str(dataset),
                          "reference_note": "the other domain's test images as stored (no val prep applied)"}
        report.counts.translated = summary.done
        if summary.failed:
            report.warnings.append(f"{len(summary.failed)} image(s) failed to translate: {summary.failed[0][0]}")
        results.append((direction, report))
    return results
