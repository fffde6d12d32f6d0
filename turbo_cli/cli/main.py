"""The `turbo` command. Each verb lives in its own module under turbo_cli/cli/ and registers itself.

Domain errors (TurboError) become one red line and an exit code here, at the CLI edge, and nowhere else.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer
import typer.core

from turbo_cli.device import set_threads, thread_scope
from turbo_cli.errors import TurboError

# Verb modules, each exposing `register(app: typer.Typer)`. Heavy imports (torch, diffusers) happen
# inside the command functions so `turbo --help` stays instant.
COMMAND_MODULES = ["translate", "video", "train", "eval", "convert", "export", "data", "demo"]


def _fail(message: str, code: int) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


class TurboGroup(typer.core.TyperGroup):
    """Click group that turns TurboError into a one-line message and a non-zero exit code."""

    def invoke(self, ctx):
        try:
            # Every verb starts with the thread count chosen from the CPUs this process may use (a verb's
            # --threads then overrides it); the scope restores the caller's setting for in-process use (tests).
            with thread_scope():
                set_threads(None)
                return super().invoke(ctx)
        except TurboError as e:
            _fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)


app = typer.Typer(
    cls=TurboGroup,
    name="turbo",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("turbo_cli")  # the installed distribution's (pyproject.toml), not a copy of it
        except PackageNotFoundError:  # run from a source tree that was never installed
            number = "unknown (not installed)"
        typer.echo(f"turbo {number}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_show_version, help="Print turbo's version and exit.")] = False,
) -> None:
    """One-step image translation (pix2pix-turbo / CycleGAN-turbo) for image folders and videos.

    \b
    First run:  turbo demo   (the bundled tiny model: CPU, no download)
    Images:     turbo translate photos/ night/ --direction night
    One image:  turbo translate in.png out.png --model demo
    Video:      turbo video in.mp4 out.mp4 --direction night
    """


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
