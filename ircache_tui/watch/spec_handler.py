"""What one spec file, or one cache entry, means for the cache: the work of both stages on it.

Each reads the spec (in a thread) and keys it, then:

- `check`: Redis has the key → nothing to do; a valid file on disk → warm
  Redis; otherwise queue a generation (or, with generate=False, call it
  missing);
- `generate`: `IRCache.lookup` the text just read, so that the latest
  text is the one generated;
- `observe` (for `SpecWatcher.refresh`): ask both tiers, never warm nor
  generate, and log quietly.

On a read-only cache `check` observes too (and says what it sees): nothing
is warmed or generated. `entry_changed` handles a cache entry written or
removed by someone else. When a generation lands under a new key for a spec
whose previous key had landed too (the spec was edited), one INFO line says
what changed structurally: `petstore-spec: +1 entity, +2 endpoints, −1 rule`. A status is recorded only for the key of the
spec's latest read (`apply`): a slow read or generation of an older text
never overwrites a newer one, and its line says the file was renamed,
deleted or changed meanwhile (the IR stays under the key of the text that
was read). A spec whose IR left both tiers under it (another client's
flush of both) is marked `lost`, for the Redis keeper to have it made
again. The tiers are asked through IRCache only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from ..cache.errors import IRCacheError
from ..cache.ircache import IRCache
from ..ir.diff import diff_ir
from ..ir.model import ApplicationIR
from ..ir.generators import GenerationError
from ..specs.discovery import SpecFile
from ..specs.history import read_any_tier
from .log import log, show
from .pending import PathQueue
from .spec_reader import Gone, IsDirectory, SpecReader
from .stale import StaleRecounter
from .status import SpecState, SpecStatus, StatusBoard, WatchStats
from .threads import FileThreads

_CACHED = (SpecState.IN_REDIS, SpecState.FILESYSTEM_ONLY)  # the states of a spec whose IR is in a tier


class SpecHandler:
    def __init__(
        self,
        cache: IRCache,
        reader: SpecReader,
        board: StatusBoard,
        generations: PathQueue,
        stale: StaleRecounter,
        stats: WatchStats,
        threads: FileThreads,
        *,
        generate: bool,
        walk_into: Callable[[Path], Awaitable[object]],
    ) -> None:
        """`walk_into(directory)` queues the specs of a directory found where a spec was expected."""
        self._cache = cache
        self._generation_on = generate
        self._reader = reader
        self._board = board
        self._generations = generations
        self._stale = stale
        self._stats = stats
        self._threads = threads
        self._walk_into = walk_into
        self._said_caching_off = False
        #: path → the key of its last IR known to be in a tier: what a regeneration replaces
        self._landed: dict[Path, str] = {}
        #: path → its current key, when that key's IR was in a tier and is now in neither (another
        #: client flushed both, or they expired): the Redis keeper has it made again (see `lost`)
        self._lost: dict[Path, str] = {}
        #: until the initial walk is processed: "already in Redis" is not news
        self.initial_walk = True

    def apply(self, path: Path, key: str, **changes: object) -> bool:
        """Set the status of `path` if `key` is still that of its latest read."""
        if not self._reader.is_latest(path, key):
            return False
        before = self._board.get(path)
        after = self._board.set(path, cache_key=key, **changes)
        if after is not before:
            self._stale.mark_dirty()
        if key and after.state in _CACHED:
            self._landed[path] = key
        self._note_lost(path, before, after)
        return True

    def lost(self, path: Path, key: str) -> bool:
        """Whether the IR of `path` under `key` was cached and is now in neither tier, so that it
        should be made again (warmed, or generated once) unless this process removed it."""
        return self._lost.get(path) == key

    def _note_lost(self, path: Path, before: SpecStatus | None, after: SpecStatus) -> None:
        # Whoever saw it go (the entry file's event, a refresh, the keeper) marks it: a mark set
        # only on one path would lose the race with the others, and MISSING is otherwise final.
        if after.state is not SpecState.MISSING or before is None or not after.cache_key \
                or before.cache_key != after.cache_key:
            self._lost.pop(path, None)
        elif before.state in _CACHED and self._can_make():
            self._lost[path] = after.cache_key
        # (MISSING again under the same key: the mark stays as it was)

    def _can_make(self) -> bool:
        """Whether this watcher may put a lost IR back (else a mark would only re-check it in vain)."""
        return self._generation_on and self._cache.enabled and not self._cache.read_only

    # -- specs --------------------------------------------------------------------
    async def check(self, path: Path) -> None:
        """Warm Redis from disk, or queue a generation; on a read-only cache, only look."""
        self._stats.checked[path] += 1
        spec = await self._read(path, quiet=False)
        if spec is not None:
            await self._place(path, spec, quiet=False, act=not self._cache.read_only)

    async def observe(self, path: Path) -> None:
        """Ask both tiers what they hold for the spec; change nothing, log quietly."""
        self._stats.observed[path] += 1
        spec = await self._read(path, quiet=True)
        if spec is not None:
            await self._place(path, spec, quiet=True, act=False)

    async def generate(self, path: Path) -> None:
        """Look the spec's latest text up, generating it on a miss."""
        spec = await self._read(path, quiet=False)
        if spec is None:
            return
        if self._cache.read_only:  # never queued on a read-only cache; say what is there if it was
            await self._place(path, spec, quiet=False, act=False)
            return
        await self._generate(path, spec)  # lookup reads both tiers before it generates

    async def _read(self, path: Path, *, quiet: bool) -> SpecFile | None:
        """The spec's text to key, or None when there is none (gone, a directory, unreadable, empty)."""
        result = await self._reader.read(path)
        if result is None:
            return None
        if isinstance(result, Gone):
            self._spec_gone(path)
            return None
        if isinstance(result, IsDirectory):
            if not quiet:
                await self._walk_into(path)
            return None
        spec = result
        if not spec.ok:
            self._bad_file(path, spec, quiet=quiet)
            return None
        if not spec.text.strip():
            if self.apply(path, spec.cache_key, spec_name=spec.spec_name, state=SpecState.MISSING,
                          error="empty file: nothing to generate"):
                self._generations.discard(path)
                self._say(quiet, "spec %s is empty: nothing to generate", show(path))
            return None
        return spec

    async def _place(self, path: Path, spec: SpecFile, *, quiet: bool, act: bool) -> None:
        """Record where the spec's IR is; with `act`, warm Redis or queue a generation."""
        key = spec.cache_key
        base = {"spec_name": spec.spec_name}
        if await self.in_redis(key):
            self._generations.discard(path)
            if self.apply(path, key, **base, state=SpecState.IN_REDIS, error=""):
                self._say(quiet or self.initial_walk, "spec %s: in Redis (%s)", show(path), key)
            return
        if act and self._cache.enabled and await self.warm(key):
            self._stats.warmed += 1
            self._generations.discard(path)
            if self.apply(path, key, **base, state=SpecState.IN_REDIS, error=""):
                log.info("spec %s: warmed Redis from the filesystem (%s)", show(path), key)
            return
        if await self.on_disk(key):
            if self.apply(path, key, **base, state=SpecState.FILESYSTEM_ONLY, error="") and not quiet:
                if self._cache.read_only:
                    why = "read-only, so Redis is not warmed"
                elif not self._cache.enabled:
                    why = "caching is off (IR_CACHE_TTL=0)"
                else:
                    why = "Redis did not take it"
                log.warning("spec %s: IR on disk (%s) but not in Redis: %s", show(path), key, why)
            return
        if not act or not self._cache.enabled or not self._generation_on:
            if self.apply(path, key, **base, state=SpecState.MISSING, error="") and not quiet:
                if self._cache.read_only:
                    log.info("spec %s: IR not cached (%s): missing (read-only, not generated)", show(path), key)
                elif not self._cache.enabled:
                    self._caching_off()
                else:
                    log.info("spec %s: IR not cached (%s) and generation is off: missing", show(path), key)
            return
        if self.apply(path, key, **base, state=SpecState.PENDING, error=""):
            self._generations.put(path)
            log.debug("spec %s: IR not cached (%s): queued for generation", show(path), key)

    async def _generate(self, path: Path, spec: SpecFile) -> None:
        key = spec.cache_key
        if not self.apply(path, key, spec_name=spec.spec_name, state=SpecState.GENERATING, error=""):
            return
        log.info("spec %s: generating its IR (%s)", show(path), key)
        previous = self._landed.get(path)
        try:
            found = await self._cache.lookup(spec.text, str(path))
        except GenerationError as exc:  # the cache has logged it
            self._stats.errors += 1
            self.apply(path, key, state=SpecState.ERROR, error=str(exc))
            return
        except Exception as exc:
            self._stats.errors += 1
            message = f"{exc.__class__.__name__}: {exc}"
            self.apply(path, key, state=SpecState.ERROR, error=message)
            log.warning("spec %s: cannot generate its IR: %s", show(path), message)
            return
        if found.tier == "generator":
            self._stats.generated += 1
        self._stale.mark_dirty()
        if await self.in_redis(key):
            state = SpecState.IN_REDIS
        elif await self.on_disk(key):
            state = SpecState.FILESYSTEM_ONLY
        else:
            state = SpecState.MISSING
        how = "generated and cached" if found.tier == "generator" else f"found in {found.tier}"
        if not self.apply(path, key, state=state, error=""):
            self._moved_on(path, key, how, state)
            return
        log.info("spec %s: IR %s (%s, %s)", show(path), how, key, state.value)
        if previous is not None and previous != key:
            await self._say_what_changed(spec.spec_name, previous, found.ir)

    def _moved_on(self, path: Path, key: str, how: str, state: SpecState) -> None:
        """The file changed or went while its IR was made: the IR is that of the text read, under
        that text's key; say so, never that `path` holds it now."""
        status = self._board.get(path)
        if status is None or status.state is SpecState.DELETED or self._reader.is_latest(path, ""):
            log.info("spec %s was renamed or deleted meanwhile: the IR %s (%s, %s) is that of the text it had",
                     show(path), how, key, state.value)
        else:
            log.info("spec %s changed meanwhile: the IR %s (%s, %s) is that of its previous text; "
                     "the new text is checked next", show(path), how, key, state.value)

    async def _say_what_changed(self, spec_name: str, previous: str, ir: ApplicationIR) -> None:
        """One INFO line: what the new IR changed from the previous key's (if that is still readable)."""
        try:
            before = await read_any_tier(self._cache, previous)  # None: gone (flushed, expired, pruned)
            summary = None if before is None else diff_ir(before[0].application_ir, ir).summary()
        except Exception as exc:  # a summary is a nicety: it never stops the watcher
            log.debug("no diff of %s against %s: %s", spec_name, previous, exc)
            return
        if summary is not None:
            log.info("%s: %s", spec_name, summary)

    def _spec_gone(self, path: Path) -> None:
        self._generations.discard(path)
        status = self._board.get(path)
        if status is None or status.state is SpecState.DELETED:
            return
        self._board.set(path, state=SpecState.DELETED, error="")
        self._stale.mark_dirty()
        log.info("spec %s deleted: its cache entries stay until their TTL runs out or a prune", show(path))

    def _bad_file(self, path: Path, spec: SpecFile, *, quiet: bool = False) -> None:
        self._generations.discard(path)
        self.apply(path, "", spec_name=spec.spec_name, state=SpecState.ERROR, error=spec.error)
        if not quiet:
            log.warning("spec %s skipped: %s", show(path), spec.error)

    def _caching_off(self) -> None:
        if not self._said_caching_off:
            self._said_caching_off = True
            log.warning("caching is off (IR_CACHE_TTL=0): specs are not warmed nor generated")

    @staticmethod
    def _say(quiet: bool, message: str, *args: object) -> None:
        if quiet:
            log.debug(message, *args)
        else:
            log.info(message, *args)

    # -- cache entries ----------------------------------------------------------------
    async def entry_changed(self, path: Path) -> None:
        """An entry file appeared, changed or went: written or flushed by someone else?"""
        key = path.stem
        present = await self.on_disk(key)
        in_redis = await self.in_redis(key)
        if present and not in_redis and self._cache.enabled and not self._cache.read_only:
            if await self.warm(key):
                self._stats.warmed += 1
                in_redis = True
                log.info("cache entry %s appeared on disk: warmed Redis", key)
            else:
                present = await self.on_disk(key)  # a corrupt one was quarantined
        for p in self._board.paths_with_key(key):
            status = self._board.statuses[p]
            if status.state in (SpecState.DELETED, SpecState.GENERATING):
                continue
            if in_redis:
                state = SpecState.IN_REDIS
            elif present:
                state = SpecState.FILESYSTEM_ONLY
            elif status.state in (SpecState.IN_REDIS, SpecState.FILESYSTEM_ONLY):
                state = SpecState.MISSING
            else:
                continue
            self.apply(p, key, state=state, error="" if state is not SpecState.MISSING else status.error)
        self._stale.mark_dirty()

    # -- tiers ----------------------------------------------------------------------
    async def in_redis(self, key: str) -> bool:
        try:
            return await self._cache.in_redis(key)
        except IRCacheError:
            return False

    async def on_disk(self, key: str) -> bool:
        try:
            return await self._cache.on_disk(key)
        except (OSError, ValueError):  # ValueError: a name in the cache dir that is not a cache key
            return False

    async def warm(self, key: str) -> bool:
        try:
            return await self._cache.warm_key(key)
        except IRCacheError as exc:
            log.warning("cannot warm Redis with %s: %s", key, exc)
            return False
