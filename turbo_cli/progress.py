"""How lower layers report progress and notices without knowing how they are shown.

`jobs/`, `train/`, `eval/` and `io/` take a `Progress` and call `progress.bar(...)` / `progress.notice(...)`;
the default `QUIET` shows nothing (a library, a test, a non-main process). `cli/ui.RichProgress` renders the same
calls as rich progress bars and yellow notes on stderr, so every verb writes its diagnostics to one stream.
No rich (or any terminal library) is imported below `cli/`.
"""

from __future__ import annotations

import contextlib
from typing import Iterator


class Bar:
    """One progress bar: `with progress.bar(total, "img", "translating") as bar: bar.advance(n)`.

    This base class shows nothing; renderers subclass it.
    """

    def advance(self, n: int = 1) -> None:
        """n more items done."""

    def update(self, *, completed: int | None = None, total: int | None = None) -> None:
        """Set the count reached and/or the total (an estimate may be corrected while running)."""

    def settle(self) -> None:
        """Make the total the count reached (an estimated total becomes the real one)."""

    def close(self) -> None:
        """The bar is finished; a renderer draws its last state."""

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


class Progress:
    """Where a long job reports to. This base class shows nothing (`QUIET`)."""

    def bar(self, total: int | None, unit: str = "it", description: str = "", *, transient: bool = False,
            bytes_: bool = False) -> Bar:
        """A new bar counting `unit`s (`bytes_`: a byte count, shown as sizes); `transient`: gone when closed."""
        return Bar()

    def notice(self, message: str) -> None:
        """A one-line diagnostic for the user (a fallback taken, something skipped); plain text, not markup."""

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A spinner with `message` while a step with no count runs (loading a model, say)."""
        yield


QUIET = Progress()


class NoticesOnly(Progress):
    """Notices through, no bars: rank 0's own shard in a multi-process run (the merged bar stands for every
    process's work), or a training run with `[log] progress = false`."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def notice(self, message: str) -> None:
        self.progress.notice(message)



class Stages:
    """Adapts `(stage, done, total)` callbacks (one bar per stage) onto a `Progress`."""

    def __init__(self, progress: Progress, unit: str = "it"):
        self.progress, self.unit = progress, unit
        self.bars: dict[str, Bar] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if stage not in self.bars:
            self.bars[stage] = self.progress.bar(total, self.unit, stage, transient=True)
        self.bars[stage].update(completed=done, total=total)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
