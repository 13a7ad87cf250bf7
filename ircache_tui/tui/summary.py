"""An entry's summary as a Rich table: the detail pane and the detail screen both show it."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from ..cache.decoded import EntryDigest
from ..cache.results import RawHead
from ..fmt import human_bytes, human_count, human_time, human_ttl
from ..ir.envelope import StoredEntry
from .picked import KeyFigures
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


def figures_table(figures: KeyFigures, *, monotonic: float, now: float) -> Table:
    """A Redis key's TTL (counted down to `monotonic`), memory, hits and last hit (how long before
    `now`, epoch seconds), as the keys pane's row read them."""
    ttl = figures.ttl if figures.ttl < 0 else max(0, figures.ttl - int(monotonic - figures.read_at))
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("ttl", "no expiry" if ttl == -1 else human_ttl(ttl))
    table.add_row("memory", "n/a" if figures.memory is None else human_bytes(figures.memory))
    if figures.hits is None:
        table.add_row("hits", "? (the counts could not be read)")
    else:
        last = ("never" if figures.last_hit is None
                else f"last {human_ttl(max(0, int(now - figures.last_hit)))} ago")
        table.add_row("hits", f"{human_count(figures.hits)} ({last})")
    return table


def raw_text(raw: RawHead) -> Text:
    """The first bytes of a value as stored, escaped (a byte that is not UTF-8 as `\\xff`, ESC as
    `\\x1b`, a line break as `\\n`), never markup: what a corrupt entry or another tool's value holds."""
    if raw.kind == "none":
        return Text("the key is gone", style="dim")
    if raw.kind != "string":
        return Text("a hash, list, set or other non-string value: no bytes to show", style="dim")
    said = f"first {len(raw.head):,} bytes (more follow)" if raw.more else f"all {len(raw.head):,} bytes"
    return Text.assemble((f"{said}, as stored (escaped):", "bold"), "\n",
                         plain(raw.head.decode("utf-8", "surrogateescape"), "dim"))
