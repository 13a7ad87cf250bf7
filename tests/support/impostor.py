"""Another local user's redis-server, for the tests that show the embedded one is not fooled by it.

The tests run as root. The impostor is a real redis-server run as `nobody`
(uid 65534) through setpriv or runuser: it makes its own directory where the
cache will look, listens there on a socket anyone may connect to, and holds a
planted entry. If nobody cannot be used (no setpriv/runuser, not root, or
nobody cannot reach the binary or the directory), the directory is made by
us and chowned to nobody and the server runs as us: the directory's owner is
what the cache must judge, so that still tests the same thing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from ircache_tui.cache.embedded import find_redis_server
from ircache_tui.cache.embedded.resp import ping

NOBODY = 65534
PLANTED_KEY = "ir_cache:x_0a1b2c3d"


def as_nobody() -> list[str] | None:
    """A command prefix that runs its argument as nobody, or None."""
    if os.geteuid() != 0:
        return None
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    try:
        name = pwd.getpwuid(NOBODY).pw_name
    except KeyError:
        return None
    if shutil.which("runuser"):
        return ["runuser", "-u", name, "--"]
    return None


def _succeeds(args: list[str]) -> bool:
    try:
        return subprocess.run(args, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Impostor:
    """A redis-server on `socket_path`, in a directory made by (or given to) nobody.

    `scratch` is a directory nobody can reach, for a copy of the binary if
    nobody cannot read the original (the venv may sit under a closed dir).
    """

    def __init__(self, socket_path: Path, scratch: Path) -> None:
        self.socket_path = socket_path
        self.dir = socket_path.parent
        self.scratch = scratch
        self.process: subprocess.Popen[bytes] | None = None
        self.as_nobody = False

    def _binary_for(self, runner: list[str]) -> str | None:
        binary = find_redis_server()
        if _succeeds([*runner, binary, "--version"]):
            return binary
        copy_dir = self.scratch / "impostor-bin"
        copy_dir.mkdir(mode=0o755, exist_ok=True)
        copy_dir.chmod(0o755)
        copy = copy_dir / Path(binary).name
        shutil.copy(binary, copy)
        copy.chmod(0o755)
        return str(copy) if _succeeds([*runner, str(copy), "--version"]) else None

    def start(self, timeout: float = 10.0) -> "Impostor":
        runner = as_nobody()
        binary = self._binary_for(runner) if runner else None
        if runner and binary and _succeeds([*runner, "mkdir", "-m", "755", str(self.dir)]):
            self.as_nobody = True
        else:
            runner, binary = [], find_redis_server()
            self.dir.mkdir(mode=0o755)
            os.chown(self.dir, NOBODY, NOBODY)
        assert os.lstat(self.dir).st_uid == NOBODY
        args = [
            *runner, binary,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "777",  # open to its victim
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", "",
        ]
        # Its own process group, so stop() reaches the server even behind runuser.
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not ping(str(self.socket_path)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"impostor redis-server did not start: {args}")
            time.sleep(0.01)
        with self.client() as client:
            client.set(PLANTED_KEY, "planted")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket_path))

    def connections(self) -> int:
        """Connections accepted so far, counting the one that asks."""
        with self.client() as client:
            return int(client.info("stats")["total_connections_received"])

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
