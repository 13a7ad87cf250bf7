"""Tier 2: the filesystem, `{cache_dir}/{cache_key}.json`, the cold-start tier.

Writes are atomic (temp file in the same directory, fsync, os.replace, fsync
of the directory), so a crash leaves the old file or the new one, never a
torn one. A file that cannot be used is moved into `.quarantine/`, not
deleted, so an operator can see what went wrong. Blocking file work runs in
a thread so the event loop (and a dashboard on it) never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .keys import parse_cache_key, validate_spec_name

# An entry is a few KB: reading it inline takes ~20 µs, a hop to a thread
# ~200 µs. Larger files go to a thread so the event loop never waits on a
# long read. (The open and small reads do block the loop: a cache dir on a
# hung network mount would stall it. The cache dir is meant to be local.)
INLINE_READ_MAX = 256 * 1024

log = logging.getLogger("ircache")

QUARANTINE = ".quarantine"
_TMP_SUFFIX = ".tmp"
_STALE_TMP_SECONDS = 60.0  # a writer never holds a temp file this long


@dataclass(frozen=True, slots=True)
class FileEntry:
    cache_key: str
    spec_name: str
    hash8: str
    path: Path
    size: int
    mtime: float
    quarantined: bool = False


class FilesystemTier:
    def __init__(self, cache_dir: str | os.PathLike[str]) -> None:
        self.directory = Path(cache_dir)
        self.quarantine_dir = self.directory / QUARANTINE

    def path_for(self, cache_key: str) -> Path:
        parsed = parse_cache_key(cache_key)
        if parsed is None:
            raise ValueError(f"{cache_key!r} is not a cache key of the form {{spec_name}}_{{hash8}}")
        return self.directory / f"{cache_key}.json"

    # -- read and write ----------------------------------------------------
    async def read_raw(self, cache_key: str) -> bytes | None:
        """The entry's bytes, or None. Small files are read inline (see INLINE_READ_MAX)."""
        path = self.path_for(cache_key)
        try:
            # O_NONBLOCK: a FIFO planted under an entry's name must not hang the event loop.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        handed_over = False
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", str(path))
            if info.st_size <= INLINE_READ_MAX:
                return _read_all(fd, info.st_size)
            # The thread owns the descriptor from here and always runs (shielded: a
            # cancelled job that never started would leak it). Closing the number under
            # a running read could hand it to the next open() and feed that one's bytes.
            read = asyncio.get_running_loop().run_in_executor(None, _read_all_and_close, fd, info.st_size)
            handed_over = True
            read.add_done_callback(_retrieve)  # a failure after we were cancelled is not "never retrieved"
            return await asyncio.shield(read)
        finally:
            if not handed_over:
                os.close(fd)

    async def write_raw(self, cache_key: str, raw: bytes) -> Path:
        path = self.path_for(cache_key)
        await asyncio.to_thread(atomic_write, path, raw)
        return path

    async def exists(self, cache_key: str) -> bool:
        return await asyncio.to_thread(self.path_for(cache_key).is_file)

    async def delete(self, cache_key: str) -> bool:
        path = self.path_for(cache_key)
        return await asyncio.to_thread(_unlink_if_present, path)

    async def quarantine(self, cache_key: str, reason: str) -> Path | None:
        """Move a bad entry aside into `.quarantine/`; returns where it went."""
        return await asyncio.to_thread(self._quarantine, self.path_for(cache_key), reason)

    def _quarantine(self, path: Path, reason: str) -> Path | None:
        if not path.exists():
            return None
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        target = self.quarantine_dir / f"{path.stem}.{time.strftime('%Y%m%dT%H%M%S')}.json"
        n = 1
        while target.exists():
            n += 1
            target = self.quarantine_dir / f"{path.stem}.{time.strftime('%Y%m%dT%H%M%S')}-{n}.json"
        os.replace(path, target)
        log.warning("Quarantined %s: %s", path.name, reason)
        return target

    # -- listing, stats, clearing ------------------------------------------
    async def list_entries(self, *, include_quarantined: bool = False) -> list[FileEntry]:
        return await asyncio.to_thread(self._list, include_quarantined)

    def _list(self, include_quarantined: bool) -> list[FileEntry]:
        entries = list(_scan_entries(self.directory, quarantined=False))
        if include_quarantined:
            entries.extend(_scan_entries(self.quarantine_dir, quarantined=True))
        entries.sort(key=lambda e: (e.quarantined, e.spec_name, -e.mtime))
        return entries

    async def stats(self) -> dict[str, Any]:
        entries = await self.list_entries()
        return {
            "directory": str(self.directory),
            "file_count": len(entries),
            "total_size_bytes": sum(e.size for e in entries),
        }

    async def clear(self, spec_name: str | None = None) -> int:
        """Delete every entry file, or exactly one spec's; returns how many."""
        if spec_name is not None:
            validate_spec_name(spec_name)
        return await asyncio.to_thread(self._clear, spec_name)

    def _clear(self, spec_name: str | None) -> int:
        removed = 0
        for entry in _scan_entries(self.directory, quarantined=False):
            if spec_name is None or entry.spec_name == spec_name:
                if _unlink_if_present(entry.path):
                    removed += 1
        log.info("Cleared IR cache from filesystem %s", {"directory": str(self.directory), "spec": spec_name, "deleted": removed})
        return removed

    async def cleanup_temp_files(self, older_than: float = _STALE_TMP_SECONDS) -> int:
        """Remove temp files that a crashed writer left behind."""
        return await asyncio.to_thread(self._cleanup_temp, older_than)

    def _cleanup_temp(self, older_than: float) -> int:
        removed = 0
        now = time.time()
        try:
            candidates = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        for item in candidates:
            if item.name.startswith(".") and item.name.endswith(_TMP_SUFFIX) and item.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    if now - item.stat().st_mtime >= older_than:
                        os.unlink(item.path)
                        removed += 1
        if removed:
            log.info("Removed %d leftover temp file(s) from %s", removed, self.directory)
        return removed


def _scan_entries(directory: Path, *, quarantined: bool):
    try:
        items = list(os.scandir(directory))
    except FileNotFoundError:
        return
    for item in items:
        if not item.name.endswith(".json") or item.name.startswith("."):
            continue
        stem = item.name[: -len(".json")]
        if quarantined:
            stem = stem.rsplit(".", 1)[0]  # `{cache_key}.{timestamp}[-n]`
        parsed = parse_cache_key(stem)
        if parsed is None:
            continue
        try:
            st = item.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if not item.is_file(follow_symlinks=False):
            continue
        yield FileEntry(parsed.cache_key, parsed.spec_name, parsed.hash8, Path(item.path), st.st_size, st.st_mtime, quarantined)


def _read_all(fd: int, size_hint: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, max(size_hint + 1, 65536)):
        chunks.append(chunk)
    return b"".join(chunks)


def _retrieve(future: asyncio.Future[bytes]) -> None:
    if not future.cancelled():
        future.exception()


def _read_all_and_close(fd: int, size_hint: int) -> bytes:
    try:
        return _read_all(fd, size_hint)
    finally:
        os.close(fd)


def _unlink_if_present(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=_TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
