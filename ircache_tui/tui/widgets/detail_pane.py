"""A summary of the highlighted entry; `enter` opens the full IR."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ...fmt import human_time
from ...ir.envelope import StoredEntry


def summary_table(entry: StoredEntry) -> Table:
    ir = entry.application_ir
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("name", ir.name)
    for label, n in ir.summary().items():
        table.add_row(label, str(n))
    gen = entry.generator.name + (f" ({entry.generator.model})" if entry.generator.model else "")
    table.add_row("generator", gen)
    table.add_row("generated", human_time(entry.generated_at))
    table.add_row("spec", entry.spec_path)
    table.add_row("hash", entry.spec_hash[:16] + "…")
    return table


class DetailPane(Static):
    DEFAULT_CSS = """
    DetailPane { padding: 0 1; height: 1fr; }
    """

    def show_entry(self, title: str, entry: StoredEntry | None, error: str = "") -> None:
        if error:
            self.update(Text.assemble((title + "\n", "bold"), (error, "red")))
        elif entry is None:
            self.update(Text("Select an entry to see its summary; enter opens the IR.", style="dim"))
        else:
            grid = Table.grid()
            grid.add_row(Text(title, style="bold"))
            grid.add_row(summary_table(entry))
            self.update(grid)
