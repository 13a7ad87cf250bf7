"""Reading and keying a spec file off the event loop, and remembering each file's latest read.

Reads of one path may overlap (a check and a generation, or two checks
around a save) and land out of order: `SpecReader` numbers them and drops
a result older than one already landed, so the key it remembers is always
that of the newest text. A status is only recorded for the key of the
latest read (`is_latest`), and the (inode, size, mtime) signature of that
read tells a walk whether a file has changed since.
"""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..cache.keys import InvalidSpecName, spec_name_from_path
from ..specs.discovery import BROKEN_LINK, SpecFile, read_spec
from .threads import FileThreads

Signature = tuple[int, int, int]  # (inode, size, mtime_ns)



@dataclass(frozen=True, slots=True)
class Gone:
    """The path no longer exists."""


@dataclass(frozen=True, slots=True)
class IsDirectory:
    """A directory stands where a spec file was expected."""


# what a read finds instead of a file to key
GONE = Gone()
DIRECTORY = IsDirectory()
#: a spec file (maybe with an error: unreadable, too big, ...), or what stands in its place
ReadResult = SpecFile | Gone | IsDirectory


def signature(st: os.stat_result) -> Signature:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def path_signature(path: Path) -> Signature | None:
    """The signature of what `path` names (of the link itself when it dangles); None if nothing."""
    try:
        return signature(os.stat(path))
    except OSError:
        try:
            return signature(os.lstat(path))
        except OSError:
            return None


def spec_name_of(path: Path) -> str:
    """The spec name of `path`, or "" when its name makes none."""
    try:
        return spec_name_from_path(str(path))
    except InvalidSpecName:
        return ""


def read_blocking(path: Path, max_bytes: int) -> tuple[ReadResult, Signature | None]:
    """Stat and read `path`: a SpecFile (maybe with an error), GONE or DIRECTORY; and the
    signature of what was read, when a regular file was. Blocking: run it in a thread."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):  # a dangling symlink is there, and says why it cannot be read
            return SpecFile(path, spec_name_of(path), error=BROKEN_LINK), path_signature(path)
        return GONE, None
    except OSError as exc:
        return SpecFile(path, spec_name_of(path), error=exc.strerror or str(exc)), None
    if stat.S_ISDIR(st.st_mode):
        return DIRECTORY, None
    if not stat.S_ISREG(st.st_mode):  # never opened: a FIFO would block the read
        return SpecFile(path, spec_name_of(path), error="not a regular file"), signature(st)
    spec = read_spec(path, max_bytes)
    if spec.error and not os.path.lexists(path):
        return GONE, None  # removed between the stat and the read
    return spec, signature(st)


class SpecReader:
    """Reads specs on `threads`. `is_tracked(path)` tells whether the watcher keeps a
    status for `path`: a file that vanished and never had one is forgotten here too."""

    def __init__(self, threads: FileThreads, max_bytes: int, is_tracked: Callable[[Path], bool]) -> None:
        self._threads = threads
        self._max_bytes = max_bytes
        self._is_tracked = is_tracked
        self._seq = itertools.count(1)
        self._read_seq: dict[Path, int] = {}
        self._keys: dict[Path, str] = {}  # the key of each spec's latest read ("" unreadable or gone)
        self._signatures: dict[Path, Signature] = {}  # at each spec's latest read

    async def read(self, path: Path) -> ReadResult | None:
        """Read and key `path` in a thread; None when a newer read of it has already landed."""
        seq = next(self._seq)
        result, sig = await self._threads.run(read_blocking, path, self._max_bytes)
        if seq < self._read_seq.get(path, 0):
            return None
        if isinstance(result, Gone) and not self._is_tracked(path):
            self._forget(path)  # a temp file that came and went
            return result
        self._read_seq[path] = seq
        self._keys[path] = result.cache_key if isinstance(result, SpecFile) else ""
        if sig is None:
            self._signatures.pop(path, None)
        else:
            self._signatures[path] = sig
        return result

    def is_latest(self, path: Path, key: str) -> bool:
        """Whether `key` is that of the latest read of `path` ("" for unreadable, gone or never read)."""
        return self._keys.get(path, "") == key

    def signature(self, path: Path) -> Signature | None:
        """The signature of the file as its latest read saw it."""
        return self._signatures.get(path)

    def _forget(self, path: Path) -> None:
        self._read_seq.pop(path, None)
        self._keys.pop(path, None)
        self._signatures.pop(path, None)
