"""An entry's summary as a Rich table: the detail pane and the detail screen both show it."""

from __future__ import annotations

from rich.table import Table

from ..cache.decoded import EntryDigest
from ..fmt import human_bytes, human_time
from ..ir.envelope import StoredEntry
from .text import plain


def summary_table(entry: StoredEntry | EntryDigest, *, size: bool = False) -> Table:
    """Name, counts, generator, time, spec and hash; `size`: also the stored size, when known.

    The values come from the entry (an LLM's IR, a spec's path): Text, never markup (a `str`
    cell of a Rich table is parsed)."""
    digest = entry if isinstance(entry, EntryDigest) else EntryDigest(entry)
    head = digest.head
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("name", plain(head.application_ir.name))
    for label, n in digest.summary().items():
        table.add_row(label, str(n))
    gen = head.generator.name + (f" ({head.generator.model})" if head.generator.model else "")
    if head.usage is not None and head.usage.mode == "incremental":
        gen += ", incremental"  # regenerated from a patch of the spec's previous IR
    table.add_row("generator", plain(gen))
    table.add_row("generated", human_time(head.generated_at))
    table.add_row("spec", plain(head.spec_path))
    table.add_row("hash", plain(head.spec_hash[:16] + "…"))
    if size and digest.size is not None:
        table.add_row("size", human_bytes(digest.size))
    return table
