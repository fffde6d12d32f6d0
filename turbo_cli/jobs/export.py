"""`turbo export`: a model as a Hub-ready folder (checkpoint + model card), optionally uploaded.

The folder holds `model.safetensors` (turbo's format, copied byte for byte, so `--model FOLDER` or `--model
owner/name` after a push loads exactly the exported model), the run's resolved `recipe.toml`, its latest
validation grid and numbers when the source is a training run, the base model folder when the checkpoint names a
relative one (the bundled demo), and `README.md`: a model card whose YAML header the Hub reads (base model, library,
tags, licence).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from turbo_cli.atomic import atomic_dir
from turbo_cli.errors import InputError, OfflineError
from turbo_cli.hub import hub_errors, is_offline, parse_repo_id
from turbo_cli.progress import QUIET, Progress

CARD = "README.md"
MODEL_FILE = "model.safetensors"


@dataclass
class ExportResult:
    folder: Path
    checkpoint: Path  # the source checkpoint file
    pushed_to: str | None = None  # the Hub URL after --push


def export_model(source: str, folder: str | Path, *, base_model: str | None = None, overwrite: bool = False,
                 push: str | None = None, private: bool = False, progress: Progress = QUIET) -> ExportResult:
    """Write `folder` from `source` (a training run folder, a checkpoint folder or file, an original .pkl, a
    published name or `demo`); with `push` ("owner/name"), upload it with huggingface_hub."""
    from turbo_cli.engine.checkpoint import read_turbo_info
    from turbo_cli.jobs.loading import resolve_checkpoint

    folder = Path(folder)
    if push is not None and parse_repo_id(push) is None:
        raise InputError(f"--push {push}: not a Hub repo id (owner/name)")
    if push is not None and is_offline():
        raise OfflineError(f"--push {push}: HF_HUB_OFFLINE is set; the folder can be uploaded later with "
                           f"`turbo export {folder} {folder} --push {push}` or `hf upload {push} {folder}`")
    checkpoint, _ = resolve_checkpoint(source, progress)
    if folder.is_dir() and checkpoint.resolve() == (folder / MODEL_FILE).resolve():
        if push is None:  # the source IS an exported folder: nothing to write
            raise InputError(f"{folder}: is already an exported model (add --push owner/name to upload it)")
        return ExportResult(folder, checkpoint, _push(folder, push, private))
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())) and not overwrite:
        raise InputError(f"{folder}: already exists (pass --overwrite to replace it)")
    run = _run_folder_of(checkpoint)
    staging = folder.parent / f".{folder.name}.export"
    shutil.rmtree(staging, ignore_errors=True)
    with atomic_dir(staging) as tmp:  # complete or absent: an interrupted export leaves no half folder
        if checkpoint.suffix == ".safetensors":
            shutil.copyfile(checkpoint, tmp / MODEL_FILE)
        else:  # an original pickle: turbo's format is what loads by folder or repo id
            _convert(checkpoint, tmp / MODEL_FILE, base_model)
        info = read_turbo_info(tmp / MODEL_FILE)
        if info.base_model.startswith(("./", "../")):  # e.g. the demo's "./base": ship the base beside it
            shutil.copytree((checkpoint.parent / info.base_model).resolve(), tmp / info.base_model)
        extras = _copy_run_files(checkpoint, run, tmp)
        (tmp / CARD).write_text(model_card(info, folder.name, extras), encoding="utf-8")
    if folder.is_dir():
        shutil.rmtree(folder)
    elif folder.exists():
        folder.unlink()
    staging.rename(folder)
    return ExportResult(folder, checkpoint, _push(folder, push, private) if push else None)


def _convert(pkl: Path, target: Path, base_model: str | None) -> None:
    from turbo_cli.engine.checkpoint import save_turbo
    from turbo_cli.jobs.loading import load_model

    loaded, _ = load_model(str(pkl), base_model)
    save_turbo(loaded.generator, loaded.info, target)


def _run_folder_of(checkpoint: Path) -> Path | None:
    """RUN for RUN/checkpoints/step_N/model.safetensors (a `turbo train` output), else None."""
    step = checkpoint.parent
    return step.parent.parent if step.name.startswith("step_") and step.parent.name == "checkpoints" else None


def _copy_run_files(checkpoint: Path, run: Path | None, tmp: Path) -> dict:
    """The recipe, the latest validation grid and numbers of a training run, when there are some."""
    extras: dict = {}
    recipe = checkpoint.parent / "recipe.toml"
    if recipe.is_file():
        shutil.copyfile(recipe, tmp / "recipe.toml")
        extras["recipe"] = recipe.read_text(encoding="utf-8")
    for name in ("val_metrics.json", "validation.json", "metrics.json"):
        if (checkpoint.parent / name).is_file():
            extras["metrics"] = json.loads((checkpoint.parent / name).read_text())
            break
    if run is not None:
        grids = sorted((run / "val").glob("step_*.png")) if (run / "val").is_dir() else []
        if grids:
            shutil.copyfile(grids[-1], tmp / "samples.png")
            extras["grid"] = "samples.png"
    return extras


def model_card(info, name: str, extras: dict) -> str:
    """README.md for the Hub: YAML metadata, then what the model is, how to run it, how it was made."""
    kind = "CycleGAN-turbo" if info.kind.value == "cyclegan" else "pix2pix-turbo"
    base = info.base_model if parse_repo_id(info.base_model) else None
    tags = ["turbo", "img2img-turbo", kind.lower(), "lora", "image-to-image"]
    lines = ["---", "library_name: turbo", "pipeline_tag: image-to-image"]
    if base:
        lines.append(f"base_model: {base}")
    lines += ["license: other", f"license_name: derived from {base or 'its base model'} (its licence applies)",
              "tags:", *[f"- {t}" for t in tags], "---", "", f"# {info.name or name}", "",
              f"A {kind} model{' (stochastic, r = ' + str(info.r) + ')' if info.stochastic else ''} for turbo: "
              f"one-step image translation on SD-Turbo ([Parmar et al., 2024](https://arxiv.org/abs/2403.12036)).",
              ""]
    if info.kind.value == "cyclegan":
        lines += ["| direction | caption |", "|---|---|",
                  *[f"| {d} | {info.captions.get(d, '')} |" for d in info.directions], ""]
    elif info.prompt:
        lines += [f"Default prompt: `{info.prompt}`", ""]
    lines += ["## Use", "", "```bash", f"turbo translate photos/ out/ --model OWNER/{name}"
              + (f" --direction {info.direction}" if info.direction else ""), "```", "", "```python",
              "import turbo_cli", f'model = turbo_cli.load_model("OWNER/{name}")', "out = model(image)", "```", "",
              f"Image prep: `{info.image_prep}` (outputs keep the input's size); input range {info.input_range}; "
              f"conditioning: {info.preprocess}.", ""]
    step = info.extra.get("step")
    if step is not None or "recipe" in extras:
        lines += ["## Training", ""]
        if step is not None:
            lines += [f"Trained with `turbo train` for {step} steps"
                      + (f" (recipe `{info.extra['recipe']}`)" if info.extra.get("recipe") else "") + ".", ""]
        if "metrics" in extras:
            lines += ["| validation metric | value |", "|---|---:|",
                      *[f"| {k} | {v:.4g} |" if isinstance(v, (int, float)) else f"| {k} | {v} |"
                        for k, v in _flat(extras["metrics"]).items()], ""]
        if "grid" in extras:
            lines += [f"![validation samples]({extras['grid']})", ""]
        if "recipe" in extras:
            lines += ["<details><summary>recipe.toml</summary>", "", "```toml", extras["recipe"].rstrip(), "```",
                      "", "</details>", ""]
    return "\n".join(lines)


def _flat(metrics: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float, str)):
            out[f"{prefix}{k}"] = v
    return out


def _push(folder: Path, repo: str, private: bool) -> str:
    import os

    from huggingface_hub import HfApi

    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)
    with hub_errors("--push", repo, instead="run again when online"):
        api.create_repo(repo, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo, folder_path=str(folder), commit_message="turbo export")
    return str(getattr(info, "commit_url", None) or f"https://huggingface.co/{repo}")
