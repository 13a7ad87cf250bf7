"""One generation per key per machine, whether or not Redis answers.

The Redis lock (SET NX PX) keeps generations single across machines, but
only while Redis is up: with Redis down, every process on a machine would
generate the same spec. So a generation also holds an exclusive `flock` on
`{cache_dir}/.locks/{cache_key}.lock`. The kernel releases it when its
holder dies, even by SIGKILL, so a crash never leaves a lock to expire.

The holder writes who it is into the file ("pid 4242 on build-3"), so a
waiter can say whom it waits for. It unlinks the file on release, while
still holding it; a waiter that locked the unlinked file notices (the path
no longer names its inode) and tries again, so two processes never both
believe they hold the lock.

Cross-machine while Redis is down is the one case this cannot cover: two
machines that share no Redis and no cache dir may each generate once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import socket
from collections.abc import Callable
from pathlib import Path

LOCK_DIR = ".locks"


def whoami() -> str:
    """Who holds a lock, in words a waiter can print."""
    return f"pid {os.getpid()} on {socket.gethostname()}"


class MachineLock:
    """An exclusive, crash-safe lock on one cache key, for this machine's processes."""

    def __init__(self, cache_dir: Path, cache_key: str, *, poll: float = 0.05) -> None:
        self.path = cache_dir / LOCK_DIR / f"{cache_key}.lock"
        self.poll = poll
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False if another process holds it.

        Raises OSError when the lock dir cannot be made (a read-only cache dir):
        callers go on without a machine lock.
        """
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False  # its holder unlinked it as we locked it: the lock is a new file now
        if not same:
            os.close(fd)
            return False
        with contextlib.suppress(OSError):  # who we are, for waiters; the lock works without it
            os.ftruncate(fd, 0)
            os.pwrite(fd, whoami().encode(), 0)
        self._fd = fd
        return True

    def holder(self) -> str | None:
        """Who holds it, as its holder wrote it, or None if unknown."""
        try:
            with open(self.path, "rb") as f:
                text = f.read(200).decode("utf-8", "replace").strip()
        except OSError:
            return None
        return text or None

    async def acquire(self, on_wait: Callable[[], None] | None = None) -> bool:
        """Wait until the lock is ours; True if another process held it first.

        Polls (no thread blocked in flock), so a cancelled waiter stops at once.
        `on_wait` is called once, when it first finds the lock taken.
        """
        waited = False
        while not self.try_acquire():
            if not waited and on_wait is not None:
                on_wait()
            waited = True
            await asyncio.sleep(self.poll)
        return waited

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # while still locked: see the module docstring
        os.close(fd)
