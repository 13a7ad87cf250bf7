"""A summary of the picked entry, loaded by the pane itself; `enter` opens the full IR."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text
from textual import on, work
from textual.message import Message
from textual.widgets import Static

from ... import redact
from ...cache.decoded import SLICED_MIN, EntryDigest
from ...cache.errors import IRCacheError, RedisUnavailable
from ...cache.results import RawHead
from ...cache.ircache import IRCache
from ...ir.envelope import CorruptEntry
from ...fmt import human_bytes
from ..picked import PickedEntry
from ..summary import figures_table, raw_text, summary_table
from ..text import plain

HINT = "Select an entry to see its summary; enter opens the IR."


class DetailPane(Static):
    """The picked entry's summary. It loads the entry itself; the app only says what is picked.

    Contract (the app relies on exactly this):

    * `DetailPane(cache, **widget_kwargs)`; the app gives it id="detail".
    * `show(picked)`: `None` clears it to the "Select an entry…" hint at once.
      Otherwise the picked key's title (and "loading…") is shown at once,
      never the previous key's content, and the entry is read in a worker
      (group "detail", exclusive: a newer pick cancels an older load). The
      worker only posts a DetailPane.Loaded; its handler applies it only
      while it is for the current pick (it compares the pick, and a token of
      the `show` call that started the load), so a late result for an
      earlier pick is dropped.
      Tier "redis"/"filesystem" read that tier; "spec" reads Redis and, when
      Redis has no entry or is down, the filesystem. Shown errors: a missing
      entry "not cached"; a CorruptEntry (also a non-string Redis value)
      "corrupt entry: {reason}"; other cache or OS errors their one-line
      message, scrubbed of secrets. A key whose row saw a problem (foreign,
      corrupt, old schema…) also shows its first bytes as stored, escaped
      (IRCache.read_raw_head: a bounded GETRANGE); another tool's value is
      never read whole.
    * `open_full()`: push the DetailScreen of the entry shown (what `enter`
      does); while its load is still running, push it when the load lands.
      With nothing picked it notifies "Nothing selected".
    * `picked`: the current pick, or None. (`shown`: the loaded result on
      screen for it, or None while it loads.)
    * A key's TTL, memory and hits come with its pick (PickedEntry.figures,
      from the keys pane's row), not from Redis: `refigure(picked)` takes a
      re-announced pick's newer figures without reading the entry again, and
      `tick(monotonic)` counts the TTL down.

    A big entry never blocks the event loop: it is read as an EntryDigest
    (IRCache.read_entry_digest, validated a slice at a time in a thread and
    never held whole); the pane shows its summary and size, the full view
    its JSON through a virtualised view.
    """

    DEFAULT_CSS = """
    DetailPane { padding: 0 1; height: 1fr; }
    """

    class Loaded(Message, bubble=False):
        """A load of the pane's worker has finished: for `token`, the pane's pick when it started."""

        def __init__(self, token: int, picked: PickedEntry, title: str,
                     digest: EntryDigest | None, error: str = "", raw: RawHead | None = None) -> None:
            super().__init__()
            self.token = token
            self.picked = picked
            self.title = title
            self.digest = digest
            self.error = error
            self.raw = raw  # a problem key's first bytes

    def __init__(self, cache: IRCache, *, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 monotonic: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(Text(HINT, style="dim"), **kwargs)
        self.cache = cache
        self.clock = clock
        self.monotonic = monotonic
        self._picked: PickedEntry | None = None
        self._token = 0  # one per show(): only the newest load is applied
        self._shown: DetailPane.Loaded | None = None  # what is on screen, for the current pick
        self._open_when_loaded = False

    @property
    def picked(self) -> PickedEntry | None:
        return self._picked

    @property
    def shown(self) -> DetailPane.Loaded | None:
        """The loaded entry on screen (for the current pick), or None while it loads or with no pick."""
        return self._shown

    # -- what the app calls --------------------------------------------------------
    def show(self, picked: PickedEntry | None) -> None:
        self._token += 1
        if picked != self._picked:
            self._shown = None
            self._open_when_loaded = False  # an `enter` was for the previous pick
        self._picked = picked
        if picked is None:
            self.workers.cancel_group(self, "detail")
            self.update(Text(HINT, style="dim"))
            return
        if self._shown is None:  # a re-pick of what is shown keeps it until the reload lands
            self.update(Text.assemble(plain(_title(picked, _first_tier(picked)), "bold"), "\n", ("loading…", "dim")))
        if not picked.cache_key:  # a spec whose key is not known (unreadable): nothing to load
            self.workers.cancel_group(self, "detail")
            self._apply(DetailPane.Loaded(self._token, picked, picked.spec_name, None, "not cached"))
            return
        self._load(picked, self._token)

    def refigure(self, picked: PickedEntry) -> None:
        """The same pick with newer figures (a poll, a live change re-read its row): shown as they are."""
        if picked == self._picked and picked.figures != (self._picked.figures if self._picked else None):
            self._picked = picked
            if self._shown is not None:
                self.update(self._summary(self._shown))

    def tick(self, monotonic: float) -> None:
        """Count the TTL down (the app's one-second tick)."""
        if self._shown is not None and self._picked is not None and self._picked.figures is not None:
            self.update(self._summary(self._shown, monotonic))

    def open_full(self) -> None:
        if self._picked is None:
            self.app.notify("Nothing selected", severity="warning")
        elif self._shown is not None:
            self._push(self._shown)
        else:
            self._open_when_loaded = True

    # -- loading -----------------------------------------------------------------------
    @work(group="detail", exclusive=True, exit_on_error=False)
    async def _load(self, picked: PickedEntry, token: int) -> None:
        self.post_message(await self._read(picked, token))

    async def _read(self, picked: PickedEntry, token: int) -> DetailPane.Loaded:
        tier = _first_tier(picked)
        problem = picked.figures.problem if picked.figures is not None else None
        if problem:  # what the value holds, as stored; another tool's is never read whole
            raw, raw_error = await self._read_raw(picked.cache_key)
            if problem == "foreign":
                return DetailPane.Loaded(token, picked, _title(picked, tier), None,
                                         raw_error or "another tool's value under this name: not ours, never touched",
                                         raw)
            digest, error, _ = await self._read_tier(picked.cache_key, tier)
            return DetailPane.Loaded(token, picked, _title(picked, tier), digest, error or raw_error, raw)
        digest, error, why = await self._read_tier(picked.cache_key, tier)
        if picked.tier == "spec" and why in ("missing", "down"):  # a spec's entry may be in either tier
            fs_digest, fs_error, fs_why = await self._read_tier(picked.cache_key, "filesystem")
            if fs_why != "missing":  # the file answered: its entry, or why it cannot be shown
                return DetailPane.Loaded(token, picked, _title(picked, "filesystem"), fs_digest, fs_error)
        return DetailPane.Loaded(token, picked, _title(picked, tier), digest, error)

    async def _read_tier(self, cache_key: str, tier: str) -> tuple[EntryDigest | None, str, str]:
        """(digest, "", ""), or (None, what to show instead, why: "missing", "down" or "error")."""
        try:
            return await self.cache.read_entry_digest(cache_key, tier), "", ""  # type: ignore[arg-type]
        except KeyError:
            return None, "not cached", "missing"
        except CorruptEntry as exc:  # before OSError: a symlink under the entry's name is both
            return None, f"corrupt entry: {exc.reason}", "error"
        except RedisUnavailable as exc:
            return None, redact.scrub(str(exc)) or "Redis unavailable", "down"
        except (IRCacheError, OSError, ValueError) as exc:
            return None, redact.scrub(str(exc)) or exc.__class__.__name__, "error"

    async def _read_raw(self, cache_key: str) -> tuple[RawHead | None, str]:
        try:
            return await self.cache.read_raw_head(cache_key), ""
        except (IRCacheError, OSError) as exc:
            return None, redact.scrub(str(exc)) or exc.__class__.__name__

    @on(Loaded)
    def _loaded(self, message: DetailPane.Loaded) -> None:
        if message.token != self._token or message.picked != self._picked:
            return  # for an earlier pick (or an earlier show of this one): never shown
        self._apply(message)

    def _apply(self, message: DetailPane.Loaded) -> None:
        self._shown = message
        self.update(self._summary(message))
        if self._open_when_loaded:
            self._open_when_loaded = False
            self._push(message)

    def _push(self, loaded: DetailPane.Loaded) -> None:
        from ..screens.detail import DetailScreen

        figures = self._picked.figures if self._picked is not None else None
        self.app.push_screen(DetailScreen(loaded.title, loaded.digest, loaded.error, figures=figures,
                                          clock=self.clock, monotonic=self.monotonic, raw=loaded.raw))

    def _summary(self, loaded: DetailPane.Loaded, monotonic: float | None = None) -> Group:
        parts: list[RenderableType] = [plain(loaded.title, "bold")]
        figures = self._picked.figures if self._picked is not None else None
        if figures is not None:
            now = self.monotonic() if monotonic is None else monotonic
            parts.append(figures_table(figures, monotonic=now, now=self.clock().timestamp()))
        if loaded.raw is not None:
            parts.append(raw_text(loaded.raw))
        if loaded.digest is None:
            return Group(*parts, plain(loaded.error, "red"))
        size = loaded.digest.size
        if size is not None and size >= SLICED_MIN:  # worth knowing before opening it
            parts.append(Text(f"{human_bytes(size)} entry", style="dim"))
        return Group(*parts, summary_table(loaded.digest))

def _first_tier(picked: PickedEntry) -> str:
    return "filesystem" if picked.tier == "filesystem" else "redis"


def _title(picked: PickedEntry, tier: str) -> str:
    return f"{picked.cache_key} ({'filesystem' if tier == 'filesystem' else 'Redis'})"

