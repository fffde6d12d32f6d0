"""One rich progress bar style for every long job: count, rate (items/s), elapsed and ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn
from rich.text import Text


class RateColumn(ProgressColumn):
    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} {self.unit}/s" if speed else f"- {self.unit}/s", style="progress.data.speed")


class Bar:
    """`with Bar(total, "img", "translating") as bar: bar.advance(n)`; a no-op when disabled."""

    def __init__(self, total: int | None, unit: str = "it", description: str = "", enabled: bool = True,
                 extra: TextColumn | None = None, console: Console | None = None):
        self.enabled = enabled
        if enabled:
            columns = [TextColumn(description), BarColumn(), MofNCompleteColumn(), RateColumn(unit),
                       TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
            if extra is not None:
                columns.append(extra)
            self.progress = Progress(*columns, console=console or Console(stderr=True))
            self.task = self.progress.add_task(description, total=total)

    def __enter__(self) -> "Bar":
        if self.enabled:
            self.progress.start()
        return self

    def advance(self, n: int = 1, **fields) -> None:
        if self.enabled:
            self.progress.update(self.task, advance=n, **fields)

    def settle(self) -> None:
        """Make the total the count reached (an estimated total becomes the real one)."""
        if self.enabled:
            task = self.progress.tasks[0]
            self.progress.update(self.task, total=task.completed)

    def __exit__(self, *exc) -> bool:
        if self.enabled:
            self.progress.stop()
        return False
