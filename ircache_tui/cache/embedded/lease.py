"""Who uses the embedded server, counted by the OS with flocks in `.redis/`.

One server per cache dir, shared by every process that uses it, counted by the
OS: each user holds a shared flock on `.redis/users.lock` from `start()` to
`stop()`. The kernel drops the flock of a process that dies, even by SIGKILL.
`start.lock` (exclusive) is held around "start it if it does not answer, then
take the shared lock" and around "drop ours, then see whether an exclusive lock
is granted". Joining and leaving therefore never race. Two processes starting at
once make one server. Whoever leaves last stops the server, whether or not it
started it. A server whose starter was killed is adopted by the processes that
go on using it and stopped by the last of them.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import EmbeddedRedisError
from .trust import why


def flock(fd: int, operation: int, path: Path) -> None:
    """flock, blocking; a file system without locks (ENOLCK) is one line, not an OSError."""
    try:
        fcntl.flock(fd, operation)
    except OSError as exc:
        raise EmbeddedRedisError(f"cannot lock {path}: {why(exc)}") from None


class LockFiles:
    """The lock files in a `.redis/` dir (start.lock, users.lock, socket.lock)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[int]:
        fd = self.open(name)
        try:
            flock(fd, fcntl.LOCK_EX, self.data_dir / name)
            yield fd
        finally:
            os.close(fd)  # releases the flock

    def open(self, name: str) -> int:
        path = self.data_dir / name
        flags = os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o600)
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES):
                with contextlib.suppress(OSError):
                    return os.open(path, os.O_RDONLY | flags)  # an existing one can still be locked
            raise EmbeddedRedisError(f"cannot open {path}: {why(exc)}") from None


class Lease:
    """A process's shared flock on users.lock: "this process uses the server".

    A forked child inherits the fd, not the lease: `pid` says which process took it.
    """

    def __init__(self, locks: LockFiles) -> None:
        self._locks = locks
        self.fd: int | None = None  # holds LOCK_SH on users.lock
        self.pid = 0  # the process that took it

    @property
    def held(self) -> bool:
        """True if this process holds the lease (took it, and has not dropped it)."""
        return self.fd is not None and self.pid == os.getpid()

    @property
    def inherited(self) -> bool:
        """True in a forked child of a process that held it: the fd is here, the lease is not."""
        return self.fd is not None and self.pid != os.getpid()

    def take(self) -> None:
        """LOCK_SH on users.lock; take it under start.lock (so nobody is deciding to stop the server)."""
        fd = self._locks.open("users.lock")
        try:
            flock(fd, fcntl.LOCK_SH, self._locks.data_dir / "users.lock")
        except BaseException:
            os.close(fd)
            raise
        self.fd, self.pid = fd, os.getpid()

    def drop(self) -> None:
        fd, self.fd, self.pid = self.fd, None, 0
        if fd is not None:
            os.close(fd)

    def forget(self) -> None:
        """In a forked child: drop the parent's lease fd without touching the parent's flock.

        Closing our copy of the fd leaves the flock in place, because the parent's fd
        still holds it. LOCK_UN would release it for the parent too.
        """
        fd, self.fd, self.pid = self.fd, None, 0
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def last_to_leave(self) -> bool:
        """Unlock ours, then see whether an exclusive lock is granted: True if no other process
        uses the server. Call it under start.lock, so that nobody joins meanwhile; the lease is
        still ours to drop() after."""
        if self.fd is None:
            return False  # not a user: never the last one
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
