"""Console output shared by the commands (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


def print_summary_table(title: str, rows: list[tuple[str, object]]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)
