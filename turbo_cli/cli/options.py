"""The model options shared by `turbo translate`, `turbo video` and `turbo eval`, declared once.

`@with_model_options` adds them to a Typer command's signature and hands the command one `ModelOptions`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Annotated, Optional

import typer

from turbo_cli.jobs.loading import ModelOptions

PANEL = "Model"
_MODEL_PARAMS: list[tuple[str, object, object]] = [
    ("model", Annotated[Optional[str], typer.Option(
        "--model", "-m", rich_help_panel=PANEL,
        help="Published name (day_to_night, night_to_day, clear_to_rainy, rainy_to_clear, edge_to_image, "
             "sketch_to_image_stochastic), 'demo', a turbo .safetensors (or its folder), or an original .pkl.")], None),
    ("direction", Annotated[Optional[str], typer.Option(
        "--direction", "-d", rich_help_panel=PANEL,
        help="a2b | b2a, or a target domain (night, day, rainy, clear) that picks the published model.")], None),
    ("prompt", Annotated[Optional[str], typer.Option(
        rich_help_panel=PANEL, help="Caption / prompt; default: the checkpoint's caption for the direction.")], None),
    ("base_model", Annotated[Optional[str], typer.Option(
        rich_help_panel=PANEL, help="Base model hub id or local folder in the SD-Turbo layout (air-gapped use).")],
     None),
    ("batch_size", Annotated[Optional[int], typer.Option(
        min=1, rich_help_panel=PANEL, help="Images per batch; default: chosen by image size and device.")], None),
    ("device", Annotated[str, typer.Option(rich_help_panel=PANEL, help="auto | cpu | cuda | cuda:N")], "auto"),
    ("dtype", Annotated[str, typer.Option(
        rich_help_panel=PANEL, help="auto (bf16/fp16 on CUDA, fp32 on CPU) | fp32 | fp16 | bf16")], "auto"),
    ("compile", Annotated[Optional[bool], typer.Option(
        "--compile/--no-compile", rich_help_panel=PANEL,
        help="torch.compile the model; default: on for CUDA, off for CPU.")], None),
    ("compile_mode", Annotated[Optional[str], typer.Option(
        "--compile-mode", rich_help_panel=PANEL,
        help="torch.compile mode: default | reduce-overhead (CUDA graphs: fastest for small batches) | "
             "max-autotune.")], None),
    ("image_prep", Annotated[Optional[str], typer.Option(
        rich_help_panel=PANEL,
        help="no_resize (down to multiples of 8) | resize_N | resize_WxH; default: the checkpoint's, or the "
             "original script's for original files (CycleGAN resize_512x512, pix2pix no_resize). PIL Lanczos in "
             "and back, as the original; outputs keep the input's size.")], None),
    ("keep_model_size", Annotated[bool, typer.Option(
        "--keep-model-size", rich_help_panel=PANEL,
        help="Save outputs at the model's size (pix2pix: the input cut down to multiples of 8, as "
             "inference_paired.py saves them) instead of the input's size.")], False),
    ("preprocess", Annotated[Optional[str], typer.Option(
        rich_help_panel=PANEL, help="none | canny | sketch; default: the model's own.")], None),
    ("canny_low", Annotated[int, typer.Option(rich_help_panel=PANEL, help="Canny low threshold.")], 100),
    ("canny_high", Annotated[int, typer.Option(rich_help_panel=PANEL, help="Canny high threshold.")], 200),
    ("r", Annotated[Optional[float], typer.Option(
        "--gamma", min=0.0, max=1.0, rich_help_panel=PANEL,
        help="Stochastic models: the strength r of the paper (the original scripts call it gamma); default: the "
             "model's, 0.4 for the sketch model.")], None),
    ("seed", Annotated[int, typer.Option(
        rich_help_panel=PANEL, help="Stochastic models: noise seed. Every image gets the noise the original script "
                                    "draws when run once on it with this seed (torch.manual_seed, then randn on "
                                    "the model's device).")],
     42),
]
MODEL_OPTION_NAMES = [name for name, _, _ in _MODEL_PARAMS]

# `--threads` for every verb (the model verbs get it from `with_model_options`; demo and train declare it).
THREADS_HELP = ("CPU threads for torch and OpenMP; default: the CPUs this process may use (its affinity), or "
                "OMP_NUM_THREADS. On a busy or shared CPU, 1 is often faster: idle OpenMP threads spin.")
ThreadsOption = Annotated[Optional[int], typer.Option("--threads", min=1, help=THREADS_HELP)]


def use_threads(threads: int | None) -> None:
    """Apply a verb's --threads (None: keep the default `cli/main.py` chose from the usable CPUs)."""
    if threads is not None:
        from turbo_cli.device import set_threads

        set_threads(threads)


def with_model_options(command):
    """Decorator: append the model options to `command`'s CLI signature; it receives `model_options=ModelOptions`."""
    signature = inspect.signature(command)
    # Resolve string annotations (`from __future__ import annotations`) in the command's own module, so its
    # Annotated help texts survive being re-declared on the wrapper.
    hints = typing.get_type_hints(command, include_extras=True)
    own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
           if p.name != "model_options"]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
             for name, annotation, default in _MODEL_PARAMS]
    if "threads" not in signature.parameters:
        extra.append(inspect.Parameter("threads", inspect.Parameter.KEYWORD_ONLY, default=None,
                                       annotation=ThreadsOption))

    @functools.wraps(command)
    def wrapper(**kwargs):
        options = ModelOptions(**{name: kwargs.pop(name) for name in MODEL_OPTION_NAMES})
        if "threads" not in signature.parameters:
            use_threads(kwargs.pop("threads"))
        return command(**kwargs, model_options=options)

    wrapper.__signature__ = signature.replace(parameters=own + extra)
    return wrapper
