"""Where the embedded server's socket lives, and why that place can be trusted.

Trust comes from the directory, never from an answer to PING: anyone who can
put a socket where we look can serve us entries. So the socket lives in a
directory this user owns with mode 0700 (as ssh-agent and tmux do), checked
with lstat before anything is pinged, connected to or started:
`{cache_dir}/.redis/`, or, when that path would overflow sun_path,
`{tempdir}/ircache-{uid}/{digest}.sock`. A directory that is a symlink, is
owned by another user, or is writable by group/other is refused with an
EmbeddedRedisError. One of ours that others can only read is tightened. A
directory that cannot be made (a read-only file system, a cache dir that is a
file) is an EmbeddedRedisError too, one line saying which and why.

The temp dir is shared, so its `ircache-{uid}` may be taken by someone else
first: that must not stop every command (a denial of service by one mkdir).
Such a directory is passed over, never used, for a new one from
`tempfile.mkdtemp` (ours, 0700, checked like the others). Where the socket
lives outside the cache dir is recorded in `.redis/socket-path`, which only
this user can write; every process of the cache dir reads it first (its
directory checked before use), so they all find the same server, whatever
their TMPDIR.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from ..errors import EmbeddedRedisError

log = logging.getLogger("ircache")

_SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes on Linux; keep a margin
_SOCKET_RECORD = "socket-path"  # in .redis/: where the socket is, when it is not in .redis/ itself

_IMPERSONATION = "another user may be impersonating the cache's redis-server"


def why(exc: OSError) -> str:
    """The OS's words for `exc`, for one-line errors."""
    return exc.strerror or str(exc)


def _refuse(path: str | os.PathLike[str], reason: str) -> EmbeddedRedisError:
    return EmbeddedRedisError(f"refusing to use {path}: {reason} ({_IMPERSONATION})")


def _private_dir(path: Path, *, create: bool) -> bool:
    """Make sure `path` is a directory only this user can enter; False if absent and not `create`.

    lstat, so a symlink is refused rather than followed to wherever it points.
    """
    uid = os.getuid()
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        else:
            os.chmod(path, 0o700)  # mkdir's mode is filtered by umask (and default ACLs)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(path, f"it is a symlink to {os.readlink(path)}")
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(path, "it is not a directory")
    if st.st_uid != uid:
        raise _refuse(path, f"owned by uid {st.st_uid}, not {uid}")
    loose = stat.S_IMODE(st.st_mode) & 0o077
    if loose & 0o022:
        # Others could have planted a socket or a file in it: tightening now would not undo that.
        raise _refuse(path, f"mode {stat.S_IMODE(st.st_mode):04o} lets other users write in it")
    if loose:
        # Readable by others but not writable (e.g. 0755 from an older version): ours to fix.
        os.chmod(path, 0o700)
        log.warning("Tightened %s from mode %04o to 0700", path, stat.S_IMODE(st.st_mode))
    return True


def own_socket(path: str) -> bool:
    """True if `path` is a socket this user owns, False if absent; anything else is refused."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(st.st_mode):
        raise _refuse(path, "it is not a socket")
    if st.st_uid != os.getuid():
        raise _refuse(path, f"owned by uid {st.st_uid}, not {os.getuid()}")
    return True


def _per_user_dir() -> Path:
    """Where a deep cache dir's socket goes first: this user's directory in the (shared) temp dir."""
    return Path(tempfile.gettempdir()) / f"ircache-{os.getuid()}"


def _new_private_dir() -> Path:
    """A new directory of ours, mode 0700, in the temp dir (mkdtemp: a name nobody could take first)."""
    try:
        directory = Path(tempfile.mkdtemp(prefix=f"ircache-{os.getuid()}-"))
    except OSError as exc:
        raise EmbeddedRedisError(f"cannot create a private directory in {tempfile.gettempdir()}: {why(exc)}") from None
    if len(os.fsencode(directory / "redis.sock")) > _SUN_PATH_MAX:
        with contextlib.suppress(OSError):
            directory.rmdir()
        raise EmbeddedRedisError(f"{directory} is too deep for a unix socket (point TMPDIR at a shorter dir)")
    _private_dir(directory, create=False)  # mkdtemp made it ours and 0700: checked all the same
    return directory


class SocketPlace:
    """The socket of the server of one `.redis/` dir: where it is, and whether its dirs are private.

    `socket_path` is data_dir/redis.sock, or (a deep cache dir) a socket in a private dir of the
    temp dir: the per-user one until the checks before use find the one recorded (see
    _find_socket_dir). `exclusive(name)` holds an exclusive flock on data_dir/name.
    """

    def __init__(self, data_dir: Path, exclusive: Callable[[str], AbstractContextManager[int]]) -> None:
        self.data_dir = data_dir
        self._exclusive = exclusive
        self._socket_name = f"{hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]}.sock"
        self.socket_path = self._first_path()
        self.socket_dir = Path(self.socket_path).parent
        self._in_data_dir = self.socket_dir == self.data_dir

    def _first_path(self) -> str:
        path = str(self.data_dir / "redis.sock")
        if len(path.encode()) <= _SUN_PATH_MAX:
            return path
        # A deep cache dir would overflow sun_path: use a short, stable path in a
        # per-user directory (checked like data_dir before use; the temp dir is shared).
        path = str(_per_user_dir() / self._socket_name)
        if len(path.encode()) > _SUN_PATH_MAX:
            raise EmbeddedRedisError(
                f"{self.data_dir} is too deep for a unix socket, and so is {path} (point TMPDIR at a shorter dir)"
            )
        return path

    def private_dirs(self, *, create: bool) -> bool:
        """Check (and if `create`, make) the data and socket dirs; False if one is absent.

        If `create` is set and a directory cannot be made (read-only file system, a file
        in the way), this raises EmbeddedRedisError with one line, never a bare OSError.
        """
        if create:
            parent = self.data_dir.parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except FileExistsError:  # exist_ok covers directories only
                raise EmbeddedRedisError(
                    f"cannot create the embedded Redis directory {self.data_dir}: {parent} is not a directory"
                ) from None
            except OSError as exc:
                raise EmbeddedRedisError(
                    f"cannot create the embedded Redis directory {self.data_dir}: {why(exc)}"
                ) from None
        # data_dir holds the lock and pid files, so it must be private even when the socket is elsewhere.
        try:
            if not _private_dir(self.data_dir, create=create):
                return False
        except OSError as exc:
            raise EmbeddedRedisError(
                f"cannot create the embedded Redis directory {self.data_dir}: {why(exc)}") from None
        return self._in_data_dir or self._find_socket_dir(create=create)

    # -- the socket's directory in the temp dir ------------------------------------------------
    def _find_socket_dir(self, *, create: bool) -> bool:
        """Settle `socket_dir` outside the cache dir (data_dir checked already); False if there is
        none yet and not `create`.

        The one recorded in data_dir while it is still a private dir of ours; else the per-user
        one; else, that one being taken (another user's, a symlink, writable by others: never
        used), a new private one, made and recorded under a lock so that processes starting at
        once make one directory, and one server.
        """
        if self._use_recorded():
            return True
        taken = self._use_per_user(create=create)
        if isinstance(taken, bool):
            if taken and create:
                self._record(quiet=True)  # processes with another TMPDIR find it too
            return taken
        if not create:
            return False
        with self._exclusive("socket.lock"):
            if self._use_recorded():  # another process made one while this one waited
                return True
            self._use(_new_private_dir() / "redis.sock")  # the directory is this cache dir's alone
            log.warning("Not using %s for the embedded Redis socket (%s): using %s instead",
                        _per_user_dir(), taken, self.socket_dir)
            self._record(quiet=False)
        return True

    def _use(self, socket_path: Path) -> None:
        self.socket_path = str(socket_path)
        self.socket_dir = socket_path.parent

    def _use_recorded(self) -> bool:
        """Use the recorded socket path if its directory is still a private one of ours."""
        try:
            fd = os.open(self.data_dir / _SOCKET_RECORD, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:  # none yet (or not a file we made): choose
            return False
        with os.fdopen(fd, "rb") as f:
            text = os.fsdecode(f.read(4096).strip())
        path = Path(text)
        if not text or not path.is_absolute() or len(os.fsencode(path)) > _SUN_PATH_MAX:
            return False
        try:
            if not _private_dir(path.parent, create=False):
                return False  # gone (a temp cleaner): choose again
        except (EmbeddedRedisError, OSError) as exc:  # someone else's since: never used
            log.debug("the recorded socket directory is not usable: %s", exc)
            return False
        self._use(path)
        return True

    def _use_per_user(self, *, create: bool) -> bool | str:
        """Use `{tempdir}/ircache-{uid}`: True; False if absent and not `create`; else why it is taken."""
        directory = _per_user_dir()
        try:
            if not _private_dir(directory, create=create):
                return False
        except EmbeddedRedisError as exc:  # someone else's, a symlink, writable by others
            return str(exc).removeprefix(f"refusing to use {directory}: ").replace(f" ({_IMPERSONATION})", "")
        except OSError as exc:
            if not create:
                return False
            raise EmbeddedRedisError(f"cannot create the embedded Redis directory {directory}: {why(exc)}") from None
        self._use(directory / self._socket_name)
        return True

    def _record(self, *, quiet: bool) -> None:
        """Write `socket_path` to data_dir/socket-path (temp file + rename: readers see all or nothing).
        `quiet`: a path others would find without it (the per-user one, with the same TMPDIR)."""
        record, temp = self.data_dir / _SOCKET_RECORD, self.data_dir / f".{_SOCKET_RECORD}.{os.getpid()}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(os.fsencode(self.socket_path) + b"\n")
            os.replace(temp, record)
        except OSError as exc:  # a read-only cache dir: this process still works; others may not find it
            with contextlib.suppress(OSError):
                os.unlink(temp)
            log.log(logging.DEBUG if quiet else logging.WARNING,
                    "Cannot record where the embedded Redis socket is in %s: %s", record, why(exc))
