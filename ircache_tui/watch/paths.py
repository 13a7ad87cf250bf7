"""Which paths the watcher cares about, and the walk over a spec directory.

Three kinds of path matter:

- a spec: a file under a watched directory whose name matches the pattern
  (`*.md`), outside VCS dirs, editor temp and swap files and the cache dir;
- a cache entry: `{cache_dir}/{spec}_{hash8}.json` (not the temp files of an
  atomic write, `.quarantine/` or the embedded Redis's `.redis/`);
- anything else under a watched directory that is not ignored: it may be a
  directory that appeared (its specs raise no events of their own) or
  disappeared (its specs went with it).

A spec or entry file whose name cannot become a key (not UTF-8, a control,
bidi or zero-width character, a leading dot, over 200 bytes: the rules of
`cache.keys.validate_spec_name`) is a `BAD_NAME`: it is never read nor keyed,
only reported (once: `BadNames`), and a walk leaves it out.
"""

from __future__ import annotations

import enum
import fnmatch
import functools
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from ..cache.keys import InvalidSpecName, parse_cache_key, spec_name_from_path, validate_spec_name
from ..specs.discovery import IGNORED_DIRS, is_ignored
from .log import log

# the shape of an entry file's stem, `{spec}_{hash8}`, whatever the spec part is
_ENTRY_SHAPE = re.compile(r"(?s).+_[0-9a-f]{8}\Z")
_ENTRY_FILE_SHAPE = re.compile(r"(?s).+_[0-9a-f]{8}\.json\Z")


@functools.lru_cache(maxsize=4096)
def _name_ignored(name: str) -> bool:
    """Editor temp and swap files, VCS dirs: `specs.discovery.is_ignored`'s rules for one name."""
    return is_ignored(Path(name))


def _is_utf8(name: str) -> bool:
    """False for a name os.listdir decoded with surrogates: its bytes are not UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def spec_name_problem(name: str) -> str:
    """Why the file name `name` (a spec's) makes no spec name, or "" when it makes one."""
    try:
        spec_name_from_path(name)
    except InvalidSpecName as exc:
        return str(exc)
    return ""


def entry_name_problem(name: str) -> str:
    """Why `name` (`{spec}_{hash8}.json` in the cache dir) is no cache entry, or "" when it is one."""
    stem = name[: -len(".json")] if name.endswith(".json") else name
    if parse_cache_key(stem) is not None:
        return ""
    try:
        validate_spec_name(stem.rsplit("_", 1)[0])
    except InvalidSpecName as exc:
        return str(exc)
    return "not a cache key of the form {spec_name}_{hash8}"


class PathKind(enum.Enum):
    SPEC = "spec"
    ENTRY = "entry"
    OTHER = "other"
    #: a spec or entry file whose name cannot become a key: reported, never read
    BAD_NAME = "bad name"


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
            stem = name[: -len(".json")]
            if parse_cache_key(stem) is not None:
                return PathKind.ENTRY
            # shaped like an entry, but its spec part can be no spec name: say so (once)
            return PathKind.BAD_NAME if _ENTRY_SHAPE.match(stem) else None
        for root_s, prefix in self._roots:
            if s == root_s:
                return PathKind.OTHER
            if s.startswith(prefix):
                *dirs, name = s[len(prefix):].split(os.sep)
                if any(d in IGNORED_DIRS for d in dirs) or _name_ignored(name):
                    return None
                if not self._pattern.match(name):
                    return PathKind.OTHER
                return PathKind.BAD_NAME if spec_name_problem(name) else PathKind.SPEC
        return None

    def entry_shaped(self, path: Path | str) -> bool:
        """A file right in the cache dir named like an entry, `{anything}_{hash8}.json`: the cache's
        own listing warns (once) about those whose name makes no key, so the watcher does not."""
        s = str(path)
        if not s.startswith(self._cache_prefix):
            return False
        name = s[len(self._cache_prefix):]
        return os.sep not in name and _ENTRY_FILE_SHAPE.match(name) is not None

    def name_problem(self, path: Path | str) -> str:
        """Why a BAD_NAME path's name cannot become a key ("" when it can)."""
        name = os.path.basename(str(path))
        return entry_name_problem(name) if self.under_cache_dir(path) else spec_name_problem(name)

    def walk(
        self, top: Path, on_error: Callable[[str], None] | None = None, bad_names: list[Path] | None = None,
        undecodable: list[Path] | None = None,
    ) -> Iterator[Path]:
        """Every spec file under `top` (recursive, sorted). Blocking: run it in a thread.

        A directory that cannot be listed (gone, or permission denied) is
        reported through `on_error` (default: a warning in the log) and skipped.
        Spec files whose name makes no spec name are not yielded: they are
        appended to `bad_names`, when given; and every other file or directory
        whose name is not UTF-8 (watchfiles cannot report those) to `undecodable`.
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
            if undecodable is not None:
                undecodable.extend(here / d for d in dirnames if not _is_utf8(d))
            for name in sorted(filenames):
                path = here / name
                kind = self.classify(path)
                if kind is PathKind.SPEC:
                    yield path
                elif kind is PathKind.BAD_NAME and bad_names is not None:
                    bad_names.append(path)
                elif kind is not PathKind.BAD_NAME and undecodable is not None and not _is_utf8(name):
                    undecodable.append(path)

    def undecodable_in_cache_dir(self) -> list[Path]:
        """The files right in the cache dir whose name is not UTF-8. Blocking: run it in a thread."""
        try:
            names = os.listdir(self.cache_dir)
        except OSError:
            return []
        return [self.cache_dir / n for n in sorted(names) if not _is_utf8(n)]
