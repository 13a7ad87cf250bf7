"""Directories that appear or vanish under a spec directory.

A directory created in, or moved into, a watched tree raises one event
for itself and none for the specs already in it: they are found by a walk
and queued for a check. When a directory vanishes, so do the specs in it,
again without events of their own: the known ones are queued, and their
check finds them gone.

`resync` is the same look over everything watched, after the file watcher
had to be restarted and the changes of its last batch were lost.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..fmt import plural
from .bad_names import BadNames
from .log import log, show
from .paths import PathKind, PathRules
from .pending import PathQueue
from .spec_reader import Signature, SpecReader, path_signature
from .status import SpecState, StatusBoard
from .threads import FileThreads


class DirectoryChanges:
    """Queues on `checks` the specs that a directory's coming or going affects."""

    def __init__(
        self, rules: PathRules, board: StatusBoard, checks: PathQueue, reader: SpecReader, threads: FileThreads,
        bad_names: BadNames | None = None, on_undecodable: Callable[[Path], None] | None = None,
    ) -> None:
        """`on_undecodable(path)`: a resync walked past a name that is not UTF-8."""
        self._rules = rules
        self._board = board
        self._checks = checks
        self._reader = reader
        self._threads = threads
        self.bad_names = bad_names if bad_names is not None else BadNames()
        self._on_undecodable = on_undecodable or (lambda path: None)

    def bad_name(self, path: Path) -> None:
        """A spec or entry file whose name cannot become a key: say so, once."""
        kind = "entry" if self._rules.under_cache_dir(path) else "spec"
        self.bad_names.note(path, kind, self._rules.name_problem(path))

    async def walk_into(self, directory: Path, *, undecodable: bool = False) -> set[Path]:
        """Queue the specs of a directory that appeared (or was moved in) and that no event covers.

        Specs already queued, or read since they last changed, are left alone:
        in a `git checkout` the files of a new directory raise events of their own.
        Returns every spec found. `undecodable`: report names that are not UTF-8, too.
        """

        def walk() -> tuple[list[tuple[Path, Signature | None]], list[Path], list[Path]]:
            out = []
            bad: list[Path] = []
            odd: list[Path] | None = [] if undecodable else None
            for path in self._rules.walk(directory, bad_names=bad, undecodable=odd):
                out.append((path, path_signature(path)))
            return out, bad, odd or []

        found, bad, odd = await self._threads.run(walk)
        for path in bad:
            self.bad_name(path)
        for path in odd:
            self._on_undecodable(path)
        for path, sig in found:
            status = self._board.get(path)
            if self._checks.queued(path):
                continue
            if status is not None and status.state is not SpecState.DELETED and sig is not None \
                    and self._reader.signature(path) == sig:
                continue
            self._checks.put(path)
        return {path for path, _ in found}

    async def resync(self) -> None:
        """Look at everything watched again, as after lost events: queue the specs that are new or
        changed since their last read, and the known ones that are gone; and look again at the
        entries of the specs whose IR Redis lacks (one may have been written meanwhile). Names that
        are not UTF-8 are reported (watchfiles names only one of those per lost batch)."""
        found: set[Path] = set()
        for root in self._rules.roots:
            if await self._threads.run(root.is_dir):
                found |= await self.walk_into(root, undecodable=True)
        for path in await self._threads.run(self._rules.undecodable_in_cache_dir):
            self._on_undecodable(path)
        for path, status in list(self._board.statuses.items()):
            if status.state is not SpecState.DELETED and path not in found and not self._checks.queued(path):
                self._checks.put(path)  # its check finds it gone (or, raced, there after all)
        cache_dir = self._rules.cache_dir
        keys = {s.cache_key for s in self._board.statuses.values()
                if s.cache_key and s.state in (SpecState.MISSING, SpecState.FILESYSTEM_ONLY)}
        for key in sorted(keys):
            entry = cache_dir / f"{key}.json"
            if self._rules.classify(entry) is PathKind.ENTRY:
                self._checks.put(entry)

    async def changed(self, path: Path) -> None:
        """A path under a spec directory that is not a spec changed: a directory, maybe."""
        if await self._threads.run(path.is_dir):
            await self.walk_into(path)  # created, or moved in: its files raise no events of their own
            return
        if await self._threads.run(os.path.lexists, path):
            return  # some other file
        statuses = self._board.statuses
        known = [p for p in self._board.paths_under(path) if statuses[p].state is not SpecState.DELETED]
        if path in self._rules.roots:
            log.warning("spec directory %s disappeared: %s in it marked deleted; it is no longer watched",
                        show(path), plural(len(known), "spec"))
        elif known:
            log.warning("directory %s disappeared: %s in it marked deleted", show(path), plural(len(known), "spec"))
        for p in known:
            self._checks.put(p)
