"""Changed paths, from watchfiles' `awatch` over the spec directories and the cache dir, onto the check queue.

No watch filter is given to `awatch`: each batch is classified by
`PathRules` in a thread, so that a burst of events costs the event loop
nothing, and only the paths the watcher cares about are queued. When
inotify cannot be used (typically the fs.inotify.max_user_watches limit),
the feed falls back to polling.

A name that is not UTF-8 anywhere under a watched directory makes
watchfiles fail the whole batch ("Unable to decode path") and leaves its
notifier unusable. The feed then hands the path to `on_undecodable` (the
watcher names the file, once), starts a
new `awatch` on the directories that still exist (backing off if that keeps
happening) and calls `on_restart`: the changes of the lost batch are found
again by a walk (the watcher's resync), so one bad file never stops the watch.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from watchfiles import Change, awatch

from .bad_names import undecodable_paths
from .log import log, show
from .paths import PathRules
from .pending import PathQueue
from .status import WatchStats
from .threads import FileThreads

AWATCH_STEP_MS = 50  # quiet time after which awatch yields a batch (at most debounce_ms after its first change)
RESTART_BACKOFF_MIN = 0.1  # awatch failing again within RESTART_QUIET of its restart: wait before the next...
RESTART_BACKOFF_MAX = 2.0  # ...doubling up to this (a walk catches what happened meanwhile)
RESTART_QUIET = 1.0


class ChangeFeed:
    """Feeds `checks` until `stop_event` is set; `on_change` runs when `busy` may have changed."""

    def __init__(
        self,
        rules: PathRules,
        checks: PathQueue,
        threads: FileThreads,
        stats: WatchStats,
        *,
        debounce_ms: int,
        stop_event: asyncio.Event,
        on_change: Callable[[], None],
        create_cache_dir: bool = True,
        on_undecodable: Callable[[Path], None] | None = None,
        on_restart: Callable[[], None] | None = None,
    ) -> None:
        """`create_cache_dir=False` (a read-only cache): watch the cache dir only if it exists.
        `on_undecodable(path)`: watchfiles could not decode the name of `path`; `on_restart`
        runs each time awatch was started again after that (its batch was lost)."""
        self._rules = rules
        self._create_cache_dir = create_cache_dir
        self._checks = checks
        self._threads = threads
        self._stats = stats
        self._debounce_ms = debounce_ms
        self._stop_event = stop_event
        self._on_change = on_change
        self._enqueuing = 0  # batches of events being classified
        self._on_undecodable = on_undecodable or (lambda path: None)
        self._on_restart = on_restart or (lambda: None)

    @property
    def busy(self) -> bool:
        """A batch is being classified: its paths are not queued yet."""
        return self._enqueuing > 0

    def cache_dir_is_extra(self) -> bool:
        """The cache dir is not under a spec directory, so it is watched on its own."""
        return self._rules.root_of(self._rules.cache_dir) is None

    def _watch_paths(self) -> list[Path]:
        paths = list(self._rules.roots)
        cache_dir = self._rules.cache_dir
        try:
            if self._create_cache_dir:
                cache_dir.mkdir(parents=True, exist_ok=True)
            elif not cache_dir.is_dir():
                log.info("the cache dir %s does not exist: not watching it (read-only, not creating it)",
                         show(cache_dir))
                return paths
        except OSError as exc:
            log.warning("cannot watch the cache dir %s: %s", show(cache_dir), exc.strerror or exc)
            return paths
        if self.cache_dir_is_extra():
            paths.append(cache_dir)
        return paths

    async def run(self) -> None:
        """Until `stop_event` is set; raises what `awatch` raises (not an OSError it can poll past,
        nor a name it cannot decode)."""
        paths = self._watch_paths()
        loop = asyncio.get_running_loop()
        force_polling = False
        backoff = 0.0
        while True:
            started = loop.time()
            try:
                await self._watch(paths, force_polling)
                return  # stop_event set
            except OSError as exc:
                if force_polling or isinstance(exc, FileNotFoundError) or self._stop_event.is_set():
                    raise
                # typically the inotify watch limit (fs.inotify.max_user_watches)
                log.warning("cannot use file notifications (%s); polling for changes instead", exc)
                force_polling = True
                continue
            except Exception as exc:
                bad = undecodable_paths(exc)
                if bad is None:
                    raise
                for path in bad:
                    self._on_undecodable(path)
            if self._stop_event.is_set():
                return
            # the notifier is spent and the changes of its last batch are lost: a new one, and a walk
            self._stats.restarts += 1
            backoff = 0.0 if loop.time() - started > RESTART_QUIET else \
                min(max(backoff * 2, RESTART_BACKOFF_MIN), RESTART_BACKOFF_MAX)
            log.debug("file notifications failed on a name they cannot decode: restarting them%s",
                      f" in {backoff:g}s" if backoff else "")
            if backoff:
                try:
                    await asyncio.wait_for(self._stop_event.wait(), backoff)
                    return
                except asyncio.TimeoutError:
                    pass
            paths = await self._threads.run(lambda: [p for p in paths if os.path.isdir(p)])
            if not paths:  # every watched directory is gone
                await self._stop_event.wait()
                return
            self._on_restart()  # runs once the new notifier below is in place (it is set up synchronously)

    async def _watch(self, paths: list[Path], force_polling: bool) -> None:
        async for changes in awatch(
            *paths,
            watch_filter=None,  # classified in a thread by _enqueue: a burst costs the loop nothing
            debounce=self._debounce_ms,
            step=min(AWATCH_STEP_MS, self._debounce_ms),
            stop_event=self._stop_event,
            recursive=True,
            ignore_permission_denied=True,
            force_polling=force_polling or None,  # None: watchfiles' default (WATCHFILES_FORCE_POLLING)
        ):
            await self._enqueue(changes)

    async def _enqueue(self, changes: set[tuple[Change, str]]) -> None:
        self._stats.batches += 1
        self._stats.events += len(changes)
        raw = {p for _, p in changes}
        self._enqueuing += 1
        self._on_change()
        try:
            keep = await self._threads.run(lambda: sorted(p for p in raw if self._rules.classify(p) is not None))
            for path in keep:
                self._checks.put(Path(path))
        finally:
            self._enqueuing -= 1
            self._on_change()
