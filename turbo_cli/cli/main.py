"""The `turbo` command. Each verb lives in its own module under turbo_cli/cli/ and registers itself.

Domain errors (TurboError) become one red line and an exit code here, at the CLI edge, and nowhere else.
"""

from __future__ import annotations

import importlib

import typer
import typer.core

from turbo_cli.errors import TurboError

# Verb modules, each exposing `register(app: typer.Typer)`. Heavy imports (torch, diffusers) happen
# inside the command functions so `turbo --help` stays instant.
COMMAND_MODULES = ["translate", "video", "train", "eval", "convert", "data", "demo"]


def _fail(message: str, code: int) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


class TurboGroup(typer.core.TyperGroup):
    """Click group that turns TurboError into a one-line message and a non-zero exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TurboError as e:
            _fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)


app = typer.Typer(
    cls=TurboGroup,
    name="turbo",
    help="One-step image translation (pix2pix-turbo / CycleGAN-turbo) for image folders and videos.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"turbo_cli.cli.{_name}")
    except ModuleNotFoundError as _e:  # a verb not written yet
        if _e.name == f"turbo_cli.cli.{_name}":
            continue
        raise
    _module.register(app)


def run() -> None:
    app()


if __name__ == "__main__":
    run()
