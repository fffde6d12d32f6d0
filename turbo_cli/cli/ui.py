"""Console output shared by the commands: the one place turbo draws with rich (stderr).

`RichProgress` renders the `turbo_cli.progress.Progress` calls the lower layers make: one bar style for every
long job (count, rate, elapsed, ETA), notices as yellow notes. User-supplied text is escaped, never parsed as markup.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress as _RichProgress,
                           ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn, TransferSpeedColumn)
from rich.table import Table
from rich.text import Text

from turbo_cli.progress import Bar, Progress

console = Console(stderr=True)


def print_summary_table(title: str, rows: list[tuple[str, object]]) -> None:
    """A two-column table; the title and the values are plain text (file names keep their brackets)."""
    table = Table(title=escape(title), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, escape(str(value)))
    console.print(table)


def note(message: str) -> None:
    """A one-line notice (plain text: brackets in file names stay as they are)."""
    console.print(Text.assemble(("note ", "yellow"), message))


def _rate(task) -> float | None:
    """Items per second. rich's own estimate forgets its samples when the total changes and is empty (or wild) when
    one batch takes longer than its window, which is every batch of a slow model: fall back to the average."""
    speed = task.finished_speed or task.speed
    if not speed and task.completed and task.elapsed:
        speed = task.completed / task.elapsed
    return speed or None


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed, unit = _rate(task), task.fields.get("unit", "it")
        return Text(f"{speed:.1f} {unit}/s" if speed else f"- {unit}/s", style="progress.data.speed")


class EtaColumn(ProgressColumn):
    """Time left at the rate `RateColumn` shows (so the two always agree)."""

    def render(self, task) -> Text:
        speed = _rate(task)
        if task.finished or task.total is None or not speed:
            return Text("-:--:--", style="progress.remaining")
        left = int(max(0.0, (task.total - task.completed) / speed))
        return Text(f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}", style="progress.remaining")


class _RichBar(Bar):
    def __init__(self, owner: "RichProgress", progress: _RichProgress, task_id, transient: bool):
        self.owner, self.progress, self.task_id, self.transient = owner, progress, task_id, transient
        self.closed = False

    def advance(self, n: int = 1) -> None:
        self.progress.update(self.task_id, advance=n)

    def update(self, *, completed: int | None = None, total: int | None = None) -> None:
        kwargs = {}
        if completed is not None:
            kwargs["completed"] = completed
        if total is not None:
            kwargs["total"] = total
        self.progress.update(self.task_id, **kwargs)

    def settle(self) -> None:
        task = next(t for t in self.progress.tasks if t.id == self.task_id)
        self.progress.update(self.task_id, total=task.completed)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.progress.refresh()  # draw the last count, not a stale one
            if self.transient:
                self.progress.remove_task(self.task_id)
            self.owner._closed(self.progress)


class RichProgress(Progress):
    """rich bars on stderr; bars open at the same time share one live display."""

    def __init__(self, out: Console | None = None):
        self.console = out or console
        self._lock = threading.Lock()
        self._live: dict[str, tuple[_RichProgress, int]] = {}  # kind -> (display, open bars)

    def _display(self, kind: str) -> _RichProgress:
        with self._lock:
            if kind not in self._live:
                if kind == "bytes":
                    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                               TransferSpeedColumn(), TimeRemainingColumn()]
                else:
                    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                               TimeElapsedColumn(), TextColumn("eta"), EtaColumn()]
                display = _RichProgress(*columns, console=self.console)
                display.start()
                self._live[kind] = (display, 0)
            display, n = self._live[kind]
            self._live[kind] = (display, n + 1)
            return display

    def _closed(self, display: _RichProgress) -> None:
        with self._lock:
            for kind, (d, n) in list(self._live.items()):
                if d is display:
                    if n <= 1:
                        del self._live[kind]
                        d.stop()
                    else:
                        self._live[kind] = (d, n - 1)

    def bar(self, total: int | None, unit: str = "it", description: str = "", *, transient: bool = False,
            bytes_: bool = False) -> Bar:
        display = self._display("bytes" if bytes_ else "count")
        task_id = display.add_task(escape(description), total=total, unit=unit)
        return _RichBar(self, display, task_id, transient)

    def notice(self, message: str) -> None:
        self.console.print(Text.assemble(("note ", "yellow"), message))

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[None]:
        with self.console.status(escape(message)):
            yield
