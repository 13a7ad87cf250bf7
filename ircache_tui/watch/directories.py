"""Directories that appear or vanish under a spec directory.

A directory created in, or moved into, a watched tree raises one event
for itself and none for the specs already in it: they are found by a walk
and queued for a check. When a directory vanishes, so do the specs in it,
again without events of their own: the known ones are queued, and their
check finds them gone.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..fmt import plural
from .log import log, show
from .paths import PathRules
from .pending import PathQueue
from .spec_reader import Signature, SpecReader, signature
from .status import SpecState, StatusBoard
from .threads import FileThreads


class DirectoryChanges:
    """Queues on `checks` the specs that a directory's coming or going affects."""

    def __init__(
        self, rules: PathRules, board: StatusBoard, checks: PathQueue, reader: SpecReader, threads: FileThreads,
    ) -> None:
        self._rules = rules
        self._board = board
        self._checks = checks
        self._reader = reader
        self._threads = threads

    async def walk_into(self, directory: Path) -> None:
        """Queue the specs of a directory that appeared (or was moved in) and that no event covers.

        Specs already queued, or read since they last changed, are left alone:
        in a `git checkout` the files of a new directory raise events of their own.
        """

        def walk() -> list[tuple[Path, Signature | None]]:
            out = []
            for path in self._rules.walk(directory):
                try:
                    out.append((path, signature(os.stat(path))))
                except OSError:
                    out.append((path, None))
            return out

        for path, sig in await self._threads.run(walk):
            status = self._board.get(path)
            if self._checks.queued(path):
                continue
            if status is not None and status.state is not SpecState.DELETED and sig is not None \
                    and self._reader.signature(path) == sig:
                continue
            self._checks.put(path)

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
