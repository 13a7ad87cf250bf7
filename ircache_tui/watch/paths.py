"""Which paths the watcher cares about, and the walk over a spec directory.

Three kinds of path matter:

- a spec: a file under a watched directory whose name matches the pattern
  (`*.md`), outside VCS dirs, editor temp and swap files and the cache dir;
- a cache entry: `{cache_dir}/{spec}_{hash8}.json` (not the temp files of an
  atomic write, `.quarantine/` or the embedded Redis's `.redis/`);
- anything else under a watched directory that is not ignored: it may be a
  directory that appeared (its specs raise no events of their own) or
  disappeared (its specs went with it).
"""

from __future__ import annotations

import enum
import fnmatch
import functools
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from ..cache.keys import parse_cache_key
from ..specs.discovery import IGNORED_DIRS, is_ignored
from .log import log


@functools.lru_cache(maxsize=4096)
def _name_ignored(name: str) -> bool:
    """Editor temp and swap files, VCS dirs: `specs.discovery.is_ignored`'s rules for one name."""
    return is_ignored(Path(name))


class PathKind(enum.Enum):
    SPEC = "spec"
    ENTRY = "entry"
    OTHER = "other"


class PathRules:
    """Classifies paths. Works on strings, as it runs for every path of every batch of events."""

    def __init__(self, roots: list[Path], pattern: str, cache_dir: Path) -> None:
        self.roots = roots
        self.pattern = pattern
        self.cache_dir = cache_dir
        self._roots = [(str(r), str(r).rstrip(os.sep) + os.sep) for r in roots]
        self._cache = str(cache_dir)
        self._cache_prefix = self._cache.rstrip(os.sep) + os.sep
        # fnmatch.fnmatch is case-sensitive on POSIX, as this is
        self._pattern = re.compile(fnmatch.translate(pattern))

    def root_of(self, path: Path | str) -> Path | None:
        s = str(path)
        for root, (root_s, prefix) in zip(self.roots, self._roots):
            if s == root_s or s.startswith(prefix):
                return root
        return None

    def under_cache_dir(self, path: Path | str) -> bool:
        s = str(path)
        return s == self._cache or s.startswith(self._cache_prefix)

    def classify(self, path: Path | str) -> PathKind | None:
        """What `path` (absolute) is to the watcher, or None when it is to be ignored."""
        s = str(path)
        if s == self._cache or s.startswith(self._cache_prefix):
            name = s[len(self._cache_prefix):]
            if os.sep in name or name.startswith(".") or not name.endswith(".json"):
                return None  # temp files of atomic writes, .quarantine/, the embedded Redis's .redis/
            return PathKind.ENTRY if parse_cache_key(name[: -len(".json")]) is not None else None
        for root_s, prefix in self._roots:
            if s == root_s:
                return PathKind.OTHER
            if s.startswith(prefix):
                *dirs, name = s[len(prefix):].split(os.sep)
                if any(d in IGNORED_DIRS for d in dirs) or _name_ignored(name):
                    return None
                return PathKind.SPEC if self._pattern.match(name) else PathKind.OTHER
        return None

    def walk(self, top: Path, on_error: Callable[[str], None] | None = None) -> Iterator[Path]:
        """Every spec file under `top` (recursive, sorted). Blocking: run it in a thread.

        A directory that cannot be listed (gone, or permission denied) is
        reported through `on_error` (default: a warning in the log) and skipped.
        """

        def report(exc: OSError) -> None:
            where = exc.filename or top
            if isinstance(exc, FileNotFoundError):
                reason = "it disappeared during the walk"
            else:
                reason = exc.strerror or str(exc)
            message = f"cannot list directory {where}: {reason}; skipped"
            if on_error is not None:
                on_error(message)
            else:
                log.warning("%s", message)

        if self.under_cache_dir(top):
            return
        for dirpath, dirnames, filenames in os.walk(top, onerror=report):
            here = Path(dirpath)
            dirnames[:] = sorted(
                d for d in dirnames
                if d not in IGNORED_DIRS and not self.under_cache_dir(here / d)
            )
            for name in sorted(filenames):
                path = here / name
                if self.classify(path) is PathKind.SPEC:
                    yield path
