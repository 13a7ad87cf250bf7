"""Stale counts: per spec, the entries of its name that no current spec file can hit.

The definition, the walk over the tiers and the count are
`ircache_tui.specs.stale.find_stale`'s, as for `prune`: an entry
`{spec}_{hash8}` is stale when no existing spec file named `spec` has that
hash now; a spec file that exists but cannot be read protects every entry
of its name. A key present in both tiers counts once; a deleted spec counts
none (its entries are orphans, which prune keeps unless told).

`StaleRecounter` keeps the counts on the status board up to date: each
change marks them dirty, and a background loop counts again once a burst
has settled, at most every `RECOUNT_INTERVAL` (longer when a count is slow).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path

from ..cache.ircache import IRCache
from ..specs.discovery import SpecFile
from ..specs.stale import find_stale
from .log import log, show
from .status import SpecState, SpecStatus, StatusBoard

RECOUNT_DELAY = 0.05  # let a burst settle before counting stale entries...
RECOUNT_INTERVAL = 0.25  # ...and count at most this often


def current_specs(statuses: Iterable[SpecStatus]) -> list[SpecFile]:
    """The spec files that exist now, as `specs.stale` wants them (for find_stale and prune)."""
    out: list[SpecFile] = []
    for status in statuses:
        if status.state is SpecState.DELETED or not status.spec_name:
            continue
        if status.cache_key:
            # SpecFile.hash8 is digest[:8]: the hash8 stands in for the full digest
            out.append(SpecFile(status.path, status.spec_name, status.cache_key[-8:]))
        else:  # unreadable, or not read yet: protects every entry of its name
            out.append(SpecFile(status.path, status.spec_name, error=status.error or "not read yet"))
    return out


def stale_counts(statuses: Iterable[SpecStatus], by_spec: dict[str, int]) -> list[tuple[Path, int]]:
    """(path, stale count) of each status, from `StaleReport.stale_by_spec`: every file of a spec
    name shows that name's count; a deleted one shows none."""
    return [(s.path, 0 if s.state is SpecState.DELETED else by_spec.get(s.spec_name, 0)) for s in statuses]


class StaleRecounter:
    """Counts stale entries again after changes, into `board`; `on_change` runs when `busy` may have changed."""

    def __init__(self, cache: IRCache, board: StatusBoard, on_change: Callable[[], None]) -> None:
        self._cache = cache
        self._board = board
        self._on_change = on_change
        self._wanted = False
        self._running = 0  # recounts running (the loop's, and those awaited directly)
        self._wakeup = asyncio.Event()
        #: stale entries in all at the last count (`StaleReport.stale_entries`): what a prune removes
        self.total = 0

    @property
    def busy(self) -> bool:
        """A recount is wanted or running."""
        return self._wanted or self._running > 0

    def mark_dirty(self) -> None:
        """The counts may be off: have the loop count again soon."""
        self._wanted = True
        self._wakeup.set()
        self._on_change()

    async def run(self) -> None:
        """The loop that recounts after `mark_dirty`, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            await asyncio.sleep(RECOUNT_DELAY)
            self._wakeup.clear()
            started = loop.time()
            try:
                await self.recount()
            except Exception as exc:  # never let the counting task die
                log.warning("cannot count stale entries: %s: %s", exc.__class__.__name__, exc)
            # a count over a big cache costs more: keep it to a small share of the time
            await asyncio.sleep(max(RECOUNT_INTERVAL, 10 * (loop.time() - started)))

    async def after_flush(self, spec_name: str | None, *, filesystem: bool) -> None:
        """Redis (and with `filesystem` the cache dir too) was emptied of `spec_name`'s entries
        (None: of every spec's) by this process: what is stale of it is what the cache dir still
        holds, counted from its files alone, with no Redis walk. The other specs keep their counts."""
        by_spec: dict[str, int] = {}
        if not filesystem:
            try:
                statuses = list(self._board.statuses.values())
                by_spec = (await find_stale(self._cache, current_specs(statuses), redis=False)).stale_by_spec()
            except OSError as exc:
                log.warning("cannot count stale entries: %s", exc.strerror or exc)
                self.mark_dirty()
                return
        # read after the walk (a recount may have ended meanwhile); a deleted spec file shows no count
        named = [s for s in self._board.statuses.values() if spec_name is None or s.spec_name == spec_name]
        live = [s for s in named if s.state is not SpecState.DELETED]
        before = {s.spec_name: s.stale for s in live}  # (every file of a name shows that name's count)
        counts = stale_counts(named, by_spec)
        self._board.set_stale(counts)
        after = {s.spec_name: by_spec.get(s.spec_name, 0) for s in live}
        self.total = max(0, self.total - sum(before.values()) + sum(after.values()))
        self._on_change()

    async def recount(self) -> None:
        """Count now, and log the specs whose count went up (with the whole count, as prune gives it)."""
        self._wanted = False
        self._running += 1
        self._on_change()
        try:
            statuses = list(self._board.statuses.values())
            try:
                report = await find_stale(self._cache, current_specs(statuses))
            except OSError as exc:  # the cache dir cannot be listed: counts stay as they are
                log.warning("cannot count stale entries: %s", exc.strerror or exc)
                return
            self.total = len(report.stale_entries)
            before = {s.path: s.stale for s in self._board.statuses.values()}
            counts = stale_counts(statuses, report.stale_by_spec())
            self._board.set_stale(counts)
            for path, count in counts:
                if count > before.get(path, 0):
                    log.info("spec %s: %d stale entr%s of other versions (%d in all; prune removes them)",
                             show(path), count, "y" if count == 1 else "ies", self.total)
        finally:
            self._running -= 1
            self._on_change()
