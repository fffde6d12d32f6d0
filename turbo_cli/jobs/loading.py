"""From what the user typed (--model, --direction, --prompt, --base-model ...) to a ready Translator.

`--model` accepts a named model (`engine/registry.py`: the published ones and `demo`), a turbo `.safetensors` file, a folder holding one
(`model.safetensors`, e.g. a training checkpoint), or an original img2img-turbo `.pkl`/`.pt`. `--direction` takes
a2b/b2a or a target-domain word (night, day, rainy, clear) that picks the published model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from turbo_cli.engine.families import Kind
from turbo_cli.errors import InputError, ModelError
from turbo_cli.hub import parse_repo_id, snapshot
from turbo_cli.progress import QUIET, Progress

VALID_DIRECTIONS = ("a2b", "b2a")


@dataclass
class ModelOptions:
    """The model options shared by `turbo translate`, `turbo video` and `turbo eval`."""

    model: str | None = None  # None: picked by a --direction word
    direction: str | None = None  # a2b | b2a | night | day | rainy | clear
    prompt: str | None = None  # None: the checkpoint's caption for the direction
    base_model: str | None = None  # None: the checkpoint's base (stabilityai/sd-turbo for the published ones)
    device: str = "auto"
    dtype: str = "auto"  # auto: bf16/fp16 on CUDA, fp32 on CPU
    compile: bool | None = None  # None: on for CUDA, off for CPU (compiling costs more than it saves there)
    compile_mode: str | None = None  # torch.compile mode; "reduce-overhead" adds CUDA graphs
    image_prep: str | None = None  # None: the checkpoint's (the original script's default for original files)
    preprocess: str | None = None  # None: the model's own (canny for edge_to_image, sketch for the sketch model)
    canny_low: int = 100  # the original's Canny thresholds
    canny_high: int = 200
    keep_model_size: bool = False  # True: outputs at the model's size, as inference_paired.py saves them
    r: float | None = None  # strength of a stochastic model (--gamma); None: the model's (0.4 for the sketch model)
    seed: int = 42  # the original's default seed for stochastic models
    batch_size: int | None = None  # None: chosen by image size and device
    merged: bool = True  # adapters folded into the weights (engine/merge.py); False: the peft model training runs


def known_models() -> list[str]:
    from turbo_cli.engine.registry import model_names

    return model_names()


def _model_for_direction(options: ModelOptions) -> tuple[str | None, str | None]:
    """(model, direction) after turning a target-domain word into the published model and its direction."""
    from turbo_cli.engine.registry import DEMO, DIRECTION_WORDS, direction_for

    direction = options.direction
    if direction is None or direction in VALID_DIRECTIONS:
        return options.model, direction
    if direction not in DIRECTION_WORDS:
        raise InputError(f"--direction {direction}: unknown; valid: {', '.join(VALID_DIRECTIONS)}, "
                         f"{', '.join(sorted(DIRECTION_WORDS))}")
    picked = direction_for(options.model, direction)
    if picked is None:
        if options.model == DEMO:
            raise InputError(f"--direction {direction}: the demo model knows night (a2b) and day (b2a)")
        raise InputError(f"--direction {direction} picks the model {DIRECTION_WORDS[direction]}; drop --model or "
                         f"use --direction a2b/b2a")
    return picked


def resolve_checkpoint(model: str, progress: Progress = QUIET) -> tuple[Path, object | None]:
    """A local file for --model, downloading a published checkpoint into the cache on first use."""
    from turbo_cli.engine.registry import DEMO, PUBLISHED, demo_checkpoint

    if model in PUBLISHED:
        from turbo_cli.io.download import download
        from turbo_cli.hub import cache_dir

        entry = PUBLISHED[model]
        return download(entry.url, cache_dir("checkpoints") / entry.filename, progress=progress), entry
    if model == DEMO:
        return demo_checkpoint(), None
    path = Path(model).expanduser()
    if path.is_dir():
        return _checkpoint_in_folder(path, progress), None
    if path.is_file():
        return path, None
    if (repo := parse_repo_id(model)) is not None and not path.suffix:
        # A Hub repo id (owner/name[@revision]): the snapshot folder holds a turbo checkpoint (`turbo export`).
        folder = snapshot(repo[0], revision=repo[1], allow_patterns=["*.safetensors", "*.json", "*.toml", "*.md",
                                                                     "base/**"])
        return _checkpoint_in_folder(folder, progress, hub_ref=model), None
    if "/" in model or "\\" in model or path.suffix:
        raise ModelError(f"{model}: no such checkpoint file")
    raise ModelError(f"unknown model '{model}'; known: {', '.join(known_models())}, a checkpoint path or a Hub "
                     f"repo id (owner/name)")


def _checkpoint_in_folder(path: Path, progress: Progress, hub_ref: str | None = None) -> Path:
    """The turbo checkpoint in a folder: `model.safetensors`, the only `.safetensors`, or, for a training run's
    output folder, its newest checkpoint (said in a notice)."""
    if (path / "model.safetensors").is_file():
        return path / "model.safetensors"
    candidates = sorted(path.glob("*.safetensors"))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        from turbo_cli.train.checkpoints import newest_checkpoint

        if (newest := newest_checkpoint(path)) is not None:
            progress.notice(f"{path}: a training run; using its newest checkpoint, {newest.parent.name}")
            return newest
    where = f"the Hub repository {hub_ref}" if hub_ref else str(path)
    raise ModelError(f"{where}: expected one turbo .safetensors checkpoint (or a training run's checkpoints/), "
                     f"found {len(candidates)} .safetensors files")


def read_model(model: str, base_model: str | None = None, progress: Progress = QUIET):
    """(ModelInfo, tensors under generator keys, base model source, checkpoint path) for a --model value; builds
    no network, so a bad file fails before any base model is read."""
    from turbo_cli.engine.base import DEFAULT_BASE
    from turbo_cli.engine.checkpoint import ModelInfo, original_contents, read_original, read_turbo

    path, entry = resolve_checkpoint(model, progress)
    if path.suffix == ".safetensors":
        info, state = read_turbo(path)
        return info, state, base_model or _base_of(info, path), path
    sd = read_original(path)
    source = base_model or DEFAULT_BASE
    preset = None
    if entry is not None:  # a published checkpoint: what the original hard-codes for its name
        preset = ModelInfo.for_family(entry.kind, None, source, stochastic=entry.stochastic, name=entry.name,
                                      captions=dict(entry.captions), direction=entry.direction,
                                      image_prep=entry.image_prep, preprocess=entry.preprocess, r=entry.r)
    info, state = original_contents(sd, path, source, preset)
    return info, state, source, path


def load_model(model: str, base_model: str | None = None, progress: Progress = QUIET):
    """(LoadedModel with the trainable diffusers + peft generator, prompt encoder) for a --model value. The text
    encoder is not loaded: prompts are encoded from the on-disk cache, or by loading it on a cache miss
    (`engine.base.CachedPromptEncoder`)."""
    return _peft_model(*read_model(model, base_model, progress))


def _peft_model(info, state, source: str, path: Path):
    from turbo_cli.engine.base import CachedPromptEncoder, load_base
    from turbo_cli.engine.checkpoint import build_generator
    from turbo_cli.hub import cache_dir

    base = load_base(source, with_text_encoder=False)
    return build_generator(base, info, state, str(path)), CachedPromptEncoder(base.root, cache_dir("prompts"))


def load_inference_model(model: str, base_model: str | None = None, r: float | None = None, *,
                         merged: bool = True, progress: Progress = QUIET):
    """Like `load_model`, for inference: the adapters merged into plain weights at strength r (the model's own
    when None) in `engine/sd.py`'s modules, so neither diffusers nor peft is imported or run. A base model those
    modules do not build runs on the diffusers model instead, with a notice."""
    from turbo_cli.engine.base import CachedPromptEncoder, resolve_base_dir
    from turbo_cli.engine.checkpoint import LoadedModel
    from turbo_cli.engine.merge import Unmergeable, build_merged
    from turbo_cli.hub import cache_dir

    if not merged:
        return load_model(model, base_model, progress)
    info, state, source, path = read_model(model, base_model, progress)
    root = resolve_base_dir(source)
    # A deterministic model merges at r = 1; a --gamma for it is refused by the Translator.
    r = (info.r if r is None else r) if info.stochastic else 1.0
    try:
        generator = build_merged(root, state, r, info.directions, str(path))
    except Unmergeable as e:
        progress.notice(f"{source}: {e} is not in turbo's merged inference model; running the diffusers model")
        return _peft_model(info, state, source, path)
    return LoadedModel(generator, info), CachedPromptEncoder(root, cache_dir("prompts"))


def _base_of(info, checkpoint: Path) -> str:
    """The checkpoint's base model; a relative folder is taken relative to the checkpoint (bundled models)."""
    base = info.base_model
    if base.startswith("./") or base.startswith("../"):
        return str((checkpoint.parent / base).resolve())
    return base


def build_translator(options: ModelOptions, progress: Progress = QUIET):
    """Load everything once and return a Translator for these options (a first download shows on `progress`)."""
    from turbo_cli.engine.registry import default_image_prep
    from turbo_cli.engine.translator import Translator
    from turbo_cli.io.frames import FramePrep

    model, direction = _model_for_direction(options)
    if model is None:
        raise InputError(f"pass --model (one of {', '.join(known_models())}, or a checkpoint path) or a "
                         f"--direction word (night, day, rainy, clear)")
    loaded, prompt_encoder = load_inference_model(model, options.base_model, options.r, merged=options.merged,
                                                  progress=progress)
    info = loaded.info
    if info.kind is Kind.CYCLEGAN:
        direction = direction or info.direction or "a2b"
        if direction not in info.directions:
            raise ModelError(f"{info.name}: the checkpoint holds no {direction} VAE (has: {', '.join(info.directions)})")
        prompt = options.prompt or info.captions.get(direction)
        if not prompt:
            raise InputError(f"{info.name}: no caption stored for {direction}; pass --prompt (the target domain's "
                             f"caption, e.g. 'driving in the night')")
    else:
        if direction is not None:
            raise InputError(f"--direction {direction}: {info.name} is a pix2pix model and has no direction")
        prompt = options.prompt or info.prompt
        if not prompt:
            raise InputError(f"{info.name}: pass --prompt (what the output image should show)")
    frame_prep = FramePrep(image_prep=options.image_prep or default_image_prep(model) or info.image_prep,
                           preprocess=options.preprocess or info.preprocess, canny_low=options.canny_low,
                           canny_high=options.canny_high, keep_model_size=options.keep_model_size)
    translator = Translator(loaded, prompt_encoder([prompt]), frame_prep, direction=direction, device=options.device,
                      dtype=options.dtype, compile=options.compile, compile_mode=options.compile_mode, r=options.r,
                      seed=options.seed, batch_size=options.batch_size, notice=progress.notice)
    translator.prompts = prompt_encoder  # callers that switch prompts per image (jobs/evaluate.py)
    return translator
