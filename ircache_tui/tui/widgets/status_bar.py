"""The one-line status: whether Redis answers, what is cached, this session's hits, what every
process's hits have saved, and where Redis is.

One line whatever the width, in the order of what matters when it is narrow (up or down and
read-only first, the URL last); a line that does not fit is cut with an ellipsis and is whole
in the bar's tooltip."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, TypedDict, Unpack

from rich.text import Text
from textual import events
from textual.widgets import Static

from ...fmt import human_bytes, human_count, human_ttl, human_usd
from ..text import printable


@dataclass(frozen=True)
class Status:
    redis_url: str = ""
    connected: bool | None = None  # None: not known yet
    ir_keys: int | None = None
    ir_bytes: int | None = None
    #: keys named like entries that hold another tool's values: not counted above, never touched
    foreign_keys: int = 0
    #: the server refuses MEMORY USAGE (an ACL without it): keys are counted, their size is unknown
    sizes_refused: bool = False
    #: keys went (our flush) since the size was measured: it is at most ir_bytes until the next round
    size_at_most: bool = False
    ttl: int = 0
    generator: str = ""
    hits: int = 0
    misses: int = 0
    #: hits of every process that shares this Redis, and the generation dollars they saved
    shared_hits: int | None = None
    saved_usd: float | None = None
    #: what each lever saved (hits, batch, prompt_cache, incremental): shown in the tooltip
    saved_by: dict[str, float] | None = None
    live: str = ""
    read_only: bool = False


class StatusChanges(TypedDict, total=False):
    """Status's fields, any of them, as `StatusBar.set` takes them (mypy checks them against Status)."""

    redis_url: str
    connected: bool | None
    ir_keys: int | None
    ir_bytes: int | None
    foreign_keys: int
    sizes_refused: bool
    size_at_most: bool
    ttl: int
    generator: str
    hits: int
    misses: int
    shared_hits: int | None
    saved_usd: float | None
    saved_by: dict[str, float] | None
    live: str
    read_only: bool


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $text; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.status = Status()

    def set(self, **changes: Unpack[StatusChanges]) -> None:
        self.status = replace(self.status, **changes)
        self._show()

    def on_resize(self, _: events.Resize) -> None:
        self._show()

    def _show(self) -> None:
        text = self.render_status(self.status)
        self.update(text)
        detail = self.savings_detail(self.status.saved_by)
        cut = text.cell_len > self.content_region.width
        # on hover: the line whole when the edge cuts it, and what each lever saved
        self.tooltip = Text("\n").join([t for t in (text if cut else None, detail) if t is not None]) or None

    @staticmethod
    def savings_detail(saved_by: dict[str, float] | None) -> Text | None:
        if not saved_by:
            return None
        levers = ", ".join(f"{name.replace('_', ' ')} {human_usd(usd)}" for name, usd in saved_by.items())
        return Text(f"saved by lever: {levers} (total {human_usd(round(sum(saved_by.values()), 6))})", "green")

    @staticmethod
    def render_status(s: Status) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        state = ("● up", "green") if s.connected else ("● down", "red") if s.connected is False else ("○ …", "yellow")
        text.append("Redis ", "bold")
        text.append(*state)
        if s.read_only:
            text.append(" │ ")
            text.append("READ-ONLY", "bold yellow")
        keys = "…" if s.ir_keys is None else human_count(s.ir_keys)
        size = ("size n/a" if s.sizes_refused else "…" if s.ir_bytes is None
                else ("≤" if s.size_at_most else "") + human_bytes(s.ir_bytes))
        text.append(f" │ {keys} IR keys, {size}")
        if s.foreign_keys:
            text.append(f" (+{human_count(s.foreign_keys)} not ours)", "dim")
        text.append(f" │ TTL {human_ttl(s.ttl) if s.ttl else 'off'}")
        text.append(f" │ hits {s.hits} miss {s.misses}")
        if s.live:
            text.append(f" │ live: {s.live}")
        if s.shared_hits:  # nothing to say until some process has hit the cache
            text.append(f" │ saved {human_usd(s.saved_usd)} over {human_count(s.shared_hits)} hits", "green")
        text.append(f" │ gen {printable(s.generator)}")
        text.append(" │ ")
        text.append(printable(s.redis_url))
        return text
