"""Keeps Redis holding the IR of every current spec: after Redis restarts (empty or not), and after
keys vanish under it (flushed by another client, expired).

File events say nothing about Redis: a spec generated while Redis was down
is on disk only, and a Redis that restarts empty holds nothing for specs
that did not change. So every `interval` seconds, one round at a time (the
next is scheduled when one ends), `RedisKeeper`:

1. PINGs Redis through the door (`IRCache.probe`); while it is down there
   is nothing more to do;
2. asks which keys of the current specs Redis holds, in one round trip
   (`IRCache.in_redis_many`);
3. for each spec the watcher believed cached (in Redis, or filesystem only)
   whose key Redis lacks: warms Redis from its file (`IRCache.warm_key`);
   without a valid file, queues the spec for a check, so that the usual
   path (warm, or generate once) puts it in both tiers. A spec already shown
   missing because its IR left both tiers (another client's `flush
   --filesystem`: the entry file's event may land before, between or after
   these rounds) counts as believed cached too (`SpecHandler.lost`).

When Redis comes back after being down, the round acts at once and says so
in one line ("Redis is back at …: re-warmed N specs from the filesystem").
Otherwise a key is acted on only once it is missing at two rounds in a row,
so that a flush in progress is not raced. Keys that this process deleted on
purpose (a flush or delete through this cache, of either tier: the
dashboard's `f`, `F`, `d`) are held: not put back until they are in Redis
again or their spec changes, as after a flush "Redis stays flushed until a
spec changes". Specs queued for a check or a generation are left to it, so
nothing is generated twice. A read-only cache (or caching off) changes
nothing: the round only puts the statuses right (in Redis / filesystem only
/ missing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from ..cache.errors import IRCacheError, RedisUnavailable
from ..cache.events import CacheEvent
from ..cache.ircache import IRCache
from ..fmt import plural
from .log import log
from .pending import PathQueue
from .spec_handler import SpecHandler
from .status import SpecState, StatusBoard, WatchStats

DEFAULT_INTERVAL = 2.0  # seconds between the end of one round and the start of the next

# the states in which the watcher believes the spec's IR is cached, so that a key gone from Redis is news
_BELIEVED_CACHED = (SpecState.IN_REDIS, SpecState.FILESYSTEM_ONLY)
# the states whose key a round looks at (the others are being worked on, gone, or have no key)
_LOOKED_AT = (SpecState.IN_REDIS, SpecState.FILESYSTEM_ONLY, SpecState.MISSING)


class RedisKeeper:
    """The background rounds; `busy` (with `on_change` called when it may change) while one acts."""

    def __init__(
        self,
        cache: IRCache,
        board: StatusBoard,
        specs: SpecHandler,
        checks: PathQueue,
        generations: PathQueue,
        stats: WatchStats,
        *,
        interval: float = DEFAULT_INTERVAL,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"the Redis check interval must be positive, got {interval}")
        self._cache = cache
        self._board = board
        self._specs = specs
        self._checks = checks
        self._generations = generations
        self._stats = stats
        self.interval = interval
        self._on_change = on_change
        #: None until the first round; then whether Redis answered at the last one
        self.up: bool | None = None
        #: rounds done; and how many times Redis was found back after being down
        self.rounds = 0
        self.returns = 0
        self._acting = False
        self._held: set[str] = set()  # keys this process deleted from Redis on purpose
        self._missing_before: set[str] = set()  # keys missing at the last round, not acted on yet
        self._said_error = False

    @property
    def busy(self) -> bool:
        """A round is warming Redis or queuing checks."""
        return self._acting

    # -- the loop ---------------------------------------------------------------------
    async def run(self) -> None:
        """Rounds until cancelled; none ever overlaps the next."""
        unsubscribe = self._cache.events.subscribe(self._on_cache_event)
        try:
            while True:
                await asyncio.sleep(self.interval)
                try:
                    await self.round()
                except Exception as exc:  # never let the keeper die
                    if not self._said_error:
                        self._said_error = True
                        log.warning("cannot check Redis for the watched specs: %s: %s", exc.__class__.__name__, exc)
                    log.debug("Redis keeper: traceback", exc_info=exc)
        finally:
            unsubscribe()

    def _on_cache_event(self, event: CacheEvent) -> None:
        """Hold what this process flushed or deleted on purpose, from either tier: a file deleted
        here leaves a spec that Redis lacks missing, and that must stay so too."""
        if event.kind == "flushed":
            self._held |= {s.cache_key for s in self._board.statuses.values()
                           if s.cache_key and (not event.spec_name or s.spec_name == event.spec_name)}
        elif event.kind == "deleted" and event.cache_key:
            self._held.add(event.cache_key)

    def _set_acting(self, acting: bool) -> None:
        if acting != self._acting:
            self._acting = acting
            self._on_change()

    # -- one round ----------------------------------------------------------------------
    async def round(self) -> None:
        """Look once: is Redis up, does it hold every current spec's key; warm or queue what it lacks."""
        try:
            await self._round()
        finally:
            self._set_acting(False)

    async def _round(self) -> None:
        self.rounds += 1
        if not self._cache.enabled:
            return  # IR_CACHE_TTL=0: nothing is cached, nothing to keep
        try:
            await self._cache.probe()
        except RedisUnavailable as exc:
            self._went_down(exc)
            return
        except IRCacheError as exc:  # it answered, but refused PING (an ACL without +ping): cannot tell
            if not self._said_error:
                self._said_error = True
                log.warning("cannot check Redis for the watched specs: %s", exc)
            return
        came_back = self.up is False
        self.up = True
        if came_back:
            self.returns += 1
        targets = self._targets()
        keys = sorted(targets)
        try:
            present = await self._cache.in_redis_many(keys) if keys else []
        except RedisUnavailable as exc:
            self._went_down(exc)
            return
        have = {k for k, there in zip(keys, present) if there}
        current = {s.cache_key for s in self._board.statuses.values() if s.cache_key}
        self._held = (self._held & current) - have  # back in Redis, or no longer any spec's: not held
        missing_before, self._missing_before = self._missing_before, set()
        warmed: list[Path] = []
        queued: list[Path] = []
        for key in keys:
            paths = targets[key]
            if key in have:
                self._show(paths, key, SpecState.IN_REDIS)
                continue
            believed = [p for p in paths if self._state(p) in _BELIEVED_CACHED or self._specs.lost(p, key)]
            if not believed:
                continue  # never cached (or generation is off): the watcher says so already
            if self._cache.read_only or key in self._held:
                self._set_acting(True)
                await self._show_missing(believed, key)
                continue
            if not came_back and key not in missing_before:
                self._missing_before.add(key)  # gone since the last round: act if it still is at the next
                continue
            self._set_acting(True)
            await self._restore(key, believed, warmed, queued)
        if came_back:
            log.info("Redis is back at %s: re-warmed %s from the filesystem%s", self._cache.display_url,
                     plural(len(warmed), "spec"),
                     f"; {plural(len(queued), 'spec')} queued to be generated" if queued else "")
        elif warmed or queued:
            log.info("Redis lacked the IR of %s (flushed by another client, or expired): re-warmed %s "
                     "from the filesystem%s", plural(len(warmed) + len(queued), "spec"), plural(len(warmed), "spec"),
                     f"; {plural(len(queued), 'spec')} queued to be generated" if queued else "")

    def _went_down(self, exc: RedisUnavailable) -> None:
        if self.up is not False:  # (the cache has said why)
            log.info("Redis is down: specs are cached on the filesystem until it is back, then Redis is re-warmed")
            log.debug("Redis keeper: %s", exc)
        self.up = False
        self._missing_before.clear()

    def _targets(self) -> dict[str, list[Path]]:
        """key → the paths of the specs that have it, for the specs nobody is working on."""
        out: dict[str, list[Path]] = {}
        for path, status in self._board.statuses.items():
            if not status.cache_key or status.state not in _LOOKED_AT:
                continue
            if self._checks.queued(path) or self._generations.queued(path):
                continue
            out.setdefault(status.cache_key, []).append(path)
        return out

    def _state(self, path: Path) -> SpecState | None:
        status = self._board.get(path)
        return status.state if status is not None else None

    def _show(self, paths: list[Path], key: str, state: SpecState) -> None:
        for path in paths:
            if self._state(path) is not state and not self._checks.queued(path) and not self._generations.queued(path):
                self._specs.apply(path, key, state=state, error="")

    async def _show_missing(self, paths: list[Path], key: str) -> None:
        """Say where the IR is now that Redis lacks it: filesystem only, or missing. (A spec shown
        filesystem only stays so: entry files raise events of their own.)"""
        paths = [p for p in paths if self._state(p) is SpecState.IN_REDIS]
        if not paths:
            return
        on_disk = await self._specs.on_disk(key)
        self._show(paths, key, SpecState.FILESYSTEM_ONLY if on_disk else SpecState.MISSING)

    async def _restore(self, key: str, paths: list[Path], warmed: list[Path], queued: list[Path]) -> None:
        """Warm Redis with `key` from its file; without a valid one, queue the specs for a check."""
        if await self._specs.on_disk(key):
            if await self._specs.warm(key):
                self._stats.warmed += 1
                self._stats.rewarmed += 1
                for path in paths:
                    if self._specs.apply(path, key, state=SpecState.IN_REDIS, error=""):
                        warmed.append(path)
                log.debug("re-warmed Redis with %s from the filesystem", key)
                return
            if await self._specs.on_disk(key):  # Redis did not take it (down again, or refused)
                self._show(paths, key, SpecState.FILESYSTEM_ONLY)
                return
            # no valid file after all (a corrupt one was quarantined): as if there were none
        for path in paths:
            if self._checks.queued(path) or self._generations.queued(path):
                continue
            self._checks.put(path)  # the check warms, or generates once, as for a saved spec
            queued.append(path)
