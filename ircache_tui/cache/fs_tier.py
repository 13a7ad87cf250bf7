"""Tier 2: the filesystem, `{cache_dir}/{cache_key}.json`, the cold-start tier.

Writes are atomic (temp file in the same directory, fsync, os.replace, fsync
of the directory), so a crash leaves the old file or the new one, never a
torn one. A file that cannot be used is moved into `.quarantine/`, not
deleted, so an operator can see what went wrong. Blocking file work runs in
a thread so the event loop (and a dashboard on it) never waits on the disk.

No symlink inside the cache dir is ever followed: an entry is opened with
O_NOFOLLOW (a symlinked entry reads as NotARegularFile, a corrupt entry),
quarantining moves the link itself, a symlinked `.quarantine` is refused,
and listing, `exists` and the temp-file sweep look at links, not through
them. The cache dir itself may be a symlink: that is the user's choice.

`FilesystemTier(dir, read_only=True)` reads, lists and stats, and every
method that would change the directory raises ReadOnlyError instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fmt import plural, shown_name
from ..ir.envelope import CorruptEntry, GeneratorInfo, generator_in_head
from ..ir.usage import usage_from_head
from .errors import FlushIncomplete, IRCacheError, ReadOnlyError
from .keys import CacheKey, InvalidSpecName, KeyLike, as_key, parse_cache_key, validate_spec_name

# An entry is a few KB: reading it inline takes ~20 µs, a hop to a thread
# ~200 µs. Larger files go to a thread so the event loop never waits on a
# long read. (The open and small reads do block the loop: a cache dir on a
# hung network mount would stall it. The cache dir is meant to be local.)
INLINE_READ_MAX = 256 * 1024

log = logging.getLogger("ircache")

QUARANTINE = ".quarantine"
_TMP_SUFFIX = ".tmp"
_STALE_TMP_SECONDS = 60.0  # a writer never holds a temp file this long
_USAGE_HEAD = 4096  # usage sits before the IR, after a spec path of at most a few hundred bytes
_GENERATOR_HEAD = 1024  # the generator object, as the key pane and the stats script read it


class NotARegularFile(OSError, CorruptEntry):
    """An entry's name holds a symlink, FIFO, directory, socket or device, not a file.

    Both an OSError (errno ELOOP for a symlink, EINVAL otherwise; callers that
    catch OSError treat it as unreadable, as before) and a CorruptEntry
    (`reason` says what it is: a caller that catches it first can quarantine
    the thing under the entry's name; `quarantine()` moves a link itself,
    never its target).
    """

    def __init__(self, code: int, reason: str, filename: str) -> None:
        OSError.__init__(self, code, reason, filename)
        self.reason = reason


class UnsafeQuarantineDir(IRCacheError, OSError):
    """`.quarantine` is a symlink or not a directory: nothing is moved into it."""


@dataclass(frozen=True, slots=True)
class FileEntry:
    cache_key: str
    spec_name: str
    hash8: str
    path: Path
    size: int
    mtime: float
    quarantined: bool = False

    @property
    def key(self) -> CacheKey:
        return CacheKey(self.spec_name, self.hash8)


class FilesystemTier:
    def __init__(self, cache_dir: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.directory = Path(cache_dir)
        self.quarantine_dir = self.directory / QUARANTINE
        self.read_only = read_only

    def _refuse_if_read_only(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"read-only cache: not {what}")

    def path_for(self, cache_key: KeyLike) -> Path:
        """The entry's file; text that is not a cache key raises InvalidSpecName (a ValueError)."""
        return self.directory / f"{as_key(cache_key).cache_key}.json"

    # -- read and write ----------------------------------------------------
    async def read_raw(self, cache_key: KeyLike) -> bytes | None:
        """The entry's bytes, or None. Small files are read inline (see INLINE_READ_MAX).

        Raises NotARegularFile (an OSError and a CorruptEntry) when the entry's
        name holds a symlink (never followed), a FIFO, a directory, ...
        """
        path = self.path_for(cache_key)
        try:
            # O_NONBLOCK: a FIFO planted under an entry's name must not hang the event loop.
            # O_NOFOLLOW: a symlink planted there must not serve a file from elsewhere.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP and _is_symlink(path):
                raise NotARegularFile(errno.ELOOP, "a symlink, not a regular file", str(path)) from None
            raise
        handed_over = False
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise NotARegularFile(errno.EINVAL, f"{_kind(info.st_mode)}, not a regular file", str(path))
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

    async def write_raw(self, cache_key: KeyLike, raw: bytes) -> Path:
        path = self.path_for(cache_key)
        self._refuse_if_read_only(f"writing {path}")
        await asyncio.to_thread(atomic_write, path, raw)
        return path

    async def exists(self, cache_key: KeyLike) -> bool:
        """True when the entry's name holds a regular file (a symlink is not one)."""
        return await asyncio.to_thread(_is_regular_file, self.path_for(cache_key))

    async def delete(self, cache_key: KeyLike) -> bool:
        """Remove the entry; a symlink under its name is unlinked itself, not its target."""
        path = self.path_for(cache_key)
        self._refuse_if_read_only(f"deleting {path}")
        return await asyncio.to_thread(_unlink_if_present, path)

    async def quarantine(self, cache_key: KeyLike, reason: str) -> Path | None:
        """Move a bad entry aside into `.quarantine/`; returns where it went.

        Whatever is under the entry's name moves, a symlink as the link itself.
        Raises UnsafeQuarantineDir (an OSError) and moves nothing when
        `.quarantine` is a symlink or not a directory.
        """
        path = self.path_for(cache_key)
        self._refuse_if_read_only(f"quarantining {path} ({reason})")
        return await asyncio.to_thread(self._quarantine, path, reason)

    def _quarantine(self, path: Path, reason: str) -> Path | None:
        # Everything goes through directory descriptors: the cache dir is opened once
        # (it may be a symlink, the user's choice), `.quarantine` with O_NOFOLLOW, and
        # the rename works on names inside those two, so nothing can be swapped for a
        # symlink between the check and the move.
        try:
            dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            try:
                os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                return None
            q_fd = self._open_quarantine_dir(dir_fd, path.name)
            try:
                stamp = time.strftime("%Y%m%dT%H%M%S")
                name = f"{path.stem}.{stamp}.json"
                n = 1
                while _lexists(name, q_fd):
                    n += 1
                    name = f"{path.stem}.{stamp}-{n}.json"
                os.replace(path.name, name, src_dir_fd=dir_fd, dst_dir_fd=q_fd)  # moves a link, never its target
                os.fsync(q_fd)
                os.fsync(dir_fd)
            finally:
                os.close(q_fd)
        finally:
            os.close(dir_fd)
        log.warning("Quarantined %s: %s", path.name, reason)
        return self.quarantine_dir / name

    def _open_quarantine_dir(self, dir_fd: int, moving: str) -> int:
        """`.quarantine` opened as a real directory (created 0700 if missing), or UnsafeQuarantineDir."""
        created = False
        try:
            info = os.stat(QUARANTINE, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):  # a racing writer made it: checked below
                os.mkdir(QUARANTINE, 0o700, dir_fd=dir_fd)
                created = True
            info = os.stat(QUARANTINE, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode):
            raise self._unsafe_quarantine(info.st_mode, moving)
        try:
            q_fd = os.open(QUARANTINE, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # swapped for a link since the lstat
                raise self._unsafe_quarantine(stat.S_IFLNK, moving) from None
            raise
        if created:
            os.fchmod(q_fd, 0o700)  # whatever the umask
        return q_fd

    def _unsafe_quarantine(self, mode: int, moving: str) -> UnsafeQuarantineDir:
        code = errno.ELOOP if stat.S_ISLNK(mode) else errno.ENOTDIR
        return UnsafeQuarantineDir(
            code, f"quarantine dir is {_kind(mode)}, not a directory; not moving {moving} into it", str(self.quarantine_dir)
        )

    # -- listing, stats, clearing ------------------------------------------
    async def list_entries(self, *, include_quarantined: bool = False) -> list[FileEntry]:
        return await asyncio.to_thread(self._list, include_quarantined)

    def _list(self, include_quarantined: bool) -> list[FileEntry]:
        entries = list(_scan_entries(self.directory, quarantined=False))
        if include_quarantined:
            entries.extend(_scan_entries(self.quarantine_dir, quarantined=True))
        entries.sort(key=lambda e: (e.quarantined, e.spec_name, -e.mtime))
        return entries

    async def with_hash8(self, hash8: str) -> list[FileEntry]:
        """The entry files of any spec whose text hashes to `hash8` (`*_{hash8}.json`): one scan of
        the directory that parses only the names ending so (a rename's candidates, see renames.py)."""
        return await asyncio.to_thread(_scan_entries, self.directory, quarantined=False, suffix=f"_{hash8}.json")

    async def stats(self, current: GeneratorInfo | None = None) -> dict[str, Any]:
        """`{"directory", "file_count", "total_size_bytes"}`; with `current` (the generator in use),
        also `outdated`: the files whose first KiB names another generator (GeneratorInfo.outdated_for)."""
        entries = await self.list_entries()
        stats: dict[str, Any] = {
            "directory": str(self.directory),
            "file_count": len(entries),
            "total_size_bytes": sum(e.size for e in entries),
        }
        if current is not None:
            stats["outdated"] = await asyncio.to_thread(_count_outdated, entries, current)
        return stats

    async def usage_totals(self) -> dict[str, Any]:
        """Tokens and dollars of every entry's generation, from the first bytes of each file
        (usage is written before the IR); entries of unknown usage are counted apart."""
        return await asyncio.to_thread(self._usage_totals)

    def _usage_totals(self) -> dict[str, Any]:
        totals: dict[str, Any] = {"entries": 0, "entries_with_usage": 0, "input_tokens": 0, "output_tokens": 0,
                                  "cost_usd": 0.0, "seconds": 0.0, "batch_saved_usd": 0.0,
                                  "prompt_cache_saved_usd": 0.0, "incremental_saved_usd": 0.0}
        for entry in _scan_entries(self.directory, quarantined=False):
            totals["entries"] += 1
            head = _read_head(entry.path, _USAGE_HEAD)
            usage = usage_from_head(head) if head else None
            if usage is None:
                continue
            totals["entries_with_usage"] += 1
            totals["input_tokens"] += usage.input_tokens or 0
            totals["output_tokens"] += usage.output_tokens or 0
            totals["cost_usd"] += usage.cost_usd or 0.0
            totals["seconds"] += usage.duration_s or 0.0
            totals["batch_saved_usd"] += usage.batch_saved_usd or 0.0
            totals["prompt_cache_saved_usd"] += usage.prompt_cache_saved_usd or 0.0
            totals["incremental_saved_usd"] += usage.incremental_saved_usd or 0.0
        for dollars in ("cost_usd", "batch_saved_usd", "prompt_cache_saved_usd", "incremental_saved_usd"):
            totals[dollars] = round(totals[dollars], 6)
        totals["seconds"] = round(totals["seconds"], 3)
        return totals

    async def clear(self, spec_name: str | None = None) -> int:
        """Delete every entry file, or exactly one spec's; returns how many."""
        if spec_name is not None:
            validate_spec_name(spec_name)
        self._refuse_if_read_only(f"clearing {'all' if spec_name is None else spec_name} entries in {self.directory}")
        return await asyncio.to_thread(self._clear, spec_name)

    def _clear(self, spec_name: str | None) -> int:
        removed = 0
        try:
            for entry in _scan_entries(self.directory, quarantined=False):
                if spec_name is None or entry.spec_name == spec_name:
                    if _unlink_if_present(entry.path):
                        removed += 1
        except OSError as exc:  # a read-only or unreadable cache dir: every other unlink would fail too
            reason = f"cannot delete files in {self.directory}: {exc.strerror or exc}"
            log.info("Flush of the filesystem stopped after %s: %s", plural(removed, "file"), reason)  # raised next
            raise FlushIncomplete({"filesystem": removed}, reason) from None
        log.info("Cleared IR cache from filesystem %s", {"directory": str(self.directory), "spec": spec_name, "deleted": removed})
        return removed

    async def cleanup_temp_files(self, older_than: float = _STALE_TMP_SECONDS) -> int:
        """Remove temp files that a crashed writer left behind."""
        self._refuse_if_read_only(f"removing leftover temp files from {self.directory}")
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
                    if _writer_gone(item.name) or now - item.stat(follow_symlinks=False).st_mtime >= older_than:
                        os.unlink(item.path)
                        removed += 1
        if removed:
            log.info("Removed %s from %s", plural(removed, "leftover temp file"), self.directory)
        return removed


def _read_head(path: Path, size: int) -> bytes | None:
    """The first `size` bytes of a regular file (never through a symlink), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, size) if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except OSError:
        return None
    finally:
        os.close(fd)


def _count_outdated(entries: list[FileEntry], current: GeneratorInfo) -> int:
    """How many of `entries` another generator made, by their first KiB (as the key pane reads)."""
    count = 0
    for entry in entries:
        head = _read_head(entry.path, _GENERATOR_HEAD)
        made_by = generator_in_head(head) if head else None
        count += made_by is not None and made_by.outdated_for(current)
    return count


def _scan_entries(directory: Path, *, quarantined: bool, suffix: str = ".json") -> list[FileEntry]:
    """The regular files named like entries (and ending with `suffix`); symlinks and anything else
    are skipped.

    The cache dir may be a symlink (the user's choice); `.quarantine` is opened
    with O_NOFOLLOW, so a symlinked one lists nothing (quarantine() refuses it).
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (os.O_NOFOLLOW if quarantined else 0)
    try:
        dir_fd = os.open(directory, flags)
    except FileNotFoundError:
        return []
    except OSError as exc:
        if quarantined and exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return []
        raise
    found = []
    try:
        with os.scandir(dir_fd) as items:
            for item in items:
                if not item.name.endswith(suffix) or not item.name.endswith(".json"):
                    continue
                stem = item.name[: -len(".json")]
                if quarantined:
                    stem = stem.rsplit(".", 1)[0]  # `{cache_key}.{timestamp}[-n]`
                parsed = parse_cache_key(stem)
                if parsed is None:
                    if not quarantined:
                        _warn_unkeyable(directory, item.name, stem)
                    continue
                try:
                    st = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                found.append(
                    FileEntry(parsed.cache_key, parsed.spec_name, parsed.hash8, directory / item.name, st.st_size, st.st_mtime, quarantined)
                )
    finally:
        os.close(dir_fd)
    return found


_ENTRY_SHAPE = re.compile(r"(?P<spec>.+)_[0-9a-f]{8}\Z", re.DOTALL)
_warned_names: set[tuple[str, str]] = set()


def _warn_unkeyable(directory: Path, filename: str, stem: str) -> None:
    """A file named like an entry whose spec name cannot be a key (not UTF-8, invisible
    characters, hidden, too long): never listed, flushed or served, so say so, once."""
    m = _ENTRY_SHAPE.match(stem)
    if m is None or (str(directory), filename) in _warned_names:
        return
    try:
        validate_spec_name(m["spec"])
    except InvalidSpecName as exc:
        _warned_names.add((str(directory), filename))
        log.warning("Skipping %s in %s: %s; it is not a cache entry and is left as it is",
                    shown_name(filename), shown_name(directory, quote=False), exc)


_KINDS = (
    (stat.S_ISLNK, "a symlink"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISREG, "a regular file"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a file")


def _is_symlink(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):  # as Path.is_file
            return False
        raise


def _lexists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


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
        os.unlink(path)  # a symlink is removed itself, never its target
        return True
    except FileNotFoundError:
        return False


def _writer_gone(temp_name: str) -> bool:
    """True when the temp file `.{stem}.{pid}.{random}.tmp` was left by a process that no
    longer exists (killed mid-write). Unknown (an older name, a pid we may not signal): False."""
    parts = temp_name[: -len(_TMP_SUFFIX)].rsplit(".", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    return False


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half.

    Nothing at `path` is written through: the temp file is new (mkstemp opens
    with O_CREAT | O_EXCL, which refuses an existing name, a symlink included)
    and os.replace swaps the name, so a symlink at `path` is replaced, its
    target untouched. The parent dir may itself be a symlink (the user's choice).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's pid in the name: a temp file of a dead writer is cleaned at once (_writer_gone)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.{os.getpid()}.", suffix=_TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o644)  # the descriptor, never a name that could be swapped
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
