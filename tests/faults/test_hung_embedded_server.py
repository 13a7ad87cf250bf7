"""A hung embedded server, Redis or Valkey, whatever its binary is called (issue 22).

Valkey titles itself `valkey-server unixsocket:…`, and a `redis-server` may be anything: a
hung (SIGSTOPped) embedded server must still be recognised (by the pid file and what the
server said when it was started or first seen answering, never by its title), so that it is
stopped and replaced, never doubled, and its last user can still kill it. Real processes
(the installed `ircache-tui`, a Python process holding an IRCache), real servers:
IRCACHE_REDIS_SERVER picks the binary (`make test` runs these on every server of the matrix).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ircache_tui.cache.embedded import EmbeddedRedis, find_redis_server
from ircache_tui.cache.errors import EmbeddedRedisError
from ircache_tui.cache.server import ServerInfo
from tests.support.cli import cli_env, run_cli

pytestmark = [pytest.mark.server, pytest.mark.e2e, pytest.mark.slow]

# A process that uses the embedded server through an IRCache until its stdin closes; it prints
# the server's pid once the cache is open.
HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from ircache_tui import IRCache

    async def main():
        async with IRCache(redis_url=None, cache_dir=sys.argv[1]) as cache:
            print(cache.embedded.server_pid(), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())
    """
)


def this_server() -> ServerInfo:
    """What the binary says it is (`Valkey server v=9.1.2 …`): the test's own oracle, not the product's."""
    line = subprocess.run([find_redis_server(), "--version"], capture_output=True, text=True, check=True).stdout
    name, _, rest = line.partition(" server v=")
    return ServerInfo(name.strip().lower(), rest.split()[0])


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def servers_on(socket_path: str) -> list[int]:
    """Running processes whose command line names this socket, whatever the binary is called."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split()
        except OSError:
            continue
        if (f"unixsocket:{socket_path}" in args or f"--unixsocket {socket_path}" in " ".join(args)) and \
                running(int(entry.name)):
            found.append(int(entry.name))
    return found


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.fixture(params=["as installed", "renamed"])
def binary(request, tmp_path) -> str:
    """The server binary, or a symlink to it under a name that says nothing (`cache-daemon`): the
    process then titles itself `…/cache-daemon unixsocket:…`."""
    real = find_redis_server()
    if request.param == "as installed":
        return real
    link = tmp_path / "bin" / "cache-daemon"
    link.parent.mkdir()
    link.symlink_to(real)
    return str(link)


class Holders:
    """Holder processes and the servers of one cache dir, ended whatever happens (a SIGSTOPped
    server included: SIGKILL ends it)."""

    def __init__(self, cache_dir: Path, env: dict[str, str]) -> None:
        self.cache_dir, self.env = cache_dir, env
        self.procs: list[subprocess.Popen] = []

    @property
    def socket_path(self) -> str:
        embedded = EmbeddedRedis(self.cache_dir)
        with contextlib.suppress(EmbeddedRedisError):
            embedded.running()  # settles where the socket is (a deep cache dir's is recorded in .redis/)
        return embedded.socket_path

    def start(self) -> tuple[subprocess.Popen, int]:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(self.cache_dir)], env=self.env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs.append(proc)
        line = proc.stdout.readline().strip()
        assert line.isdigit(), proc.stderr.read() if proc.poll() is not None else line
        return proc, int(line)

    def leave(self, proc: subprocess.Popen) -> str:
        proc.stdin.close()
        assert proc.wait(30) == 0, proc.stderr.read()
        return proc.stderr.read()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        for pid in servers_on(self.socket_path):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def holders(tmp_path, binary) -> Iterator[Holders]:
    cache_dir = tmp_path / "cache"
    found = Holders(cache_dir, cli_env(None, cache_dir, IRCACHE_REDIS_SERVER=binary))
    try:
        yield found
    finally:
        found.close()


def test_a_hung_embedded_server_is_replaced_not_doubled(holders):
    """A process uses the embedded server; it hangs (SIGSTOP). `stats` must find it (by the pid file
    and what the server said when it started, not by its title), stop it and start one in its place:
    one server on the socket, never two, and the hung one gone."""
    holder, hung = holders.start()
    socket_path = holders.socket_path
    assert servers_on(socket_path) == [hung]
    os.kill(hung, signal.SIGSTOP)
    try:
        out = run_cli("stats", "--json", env=holders.env)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung, signal.SIGCONT)  # (a server still there must not stay frozen for the checks below)
    server = this_server()
    assert out.returncode == 0, out.stderr
    now = servers_on(socket_path)
    assert len(now) == 1, f"servers on the socket: {now} (the hung one was {hung})\n{out.stderr}"
    wait_until(lambda: not running(hung), 10, f"the hung server (pid {hung}) is still running")
    assert f"WARNING: Embedded {server.program} (pid {hung}) does not answer: stopping it" in out.stderr, out.stderr
    assert json.loads(out.stdout)["redis"]["server"] == server.as_json()
    holders.leave(holder)  # the last user: it stops the server that replaced the hung one
    wait_until(lambda: not servers_on(socket_path), 10, f"servers left on the socket: {servers_on(socket_path)}")


def test_the_last_user_kills_a_hung_server_it_did_not_start(holders, ircache_logs):
    """The server's starter leaves; it hangs; its last user (this process, which did not start it)
    cannot ask it to SHUTDOWN, so it signals it: SIGTERM, then SIGKILL. It must not take the hung
    server for someone else's and leave it running."""
    holder, pid = holders.start()
    me = EmbeddedRedis(holders.cache_dir)
    me.start()  # joins the holder's server (it answers: nothing is started)
    assert not me.owner and me.server_pid() == pid
    holders.leave(holder)
    assert running(pid), "the server should stay up for its other user"
    os.kill(pid, signal.SIGSTOP)
    me.stop(timeout=1.0)
    wait_until(lambda: not running(pid), 10, f"the hung server (pid {pid}) was left running")
    program = this_server().program
    said = [r.getMessage() for r in ircache_logs.records]
    assert f"Embedded {program} (pid {pid}) did not stop within 1s: killing it" in said, said
    assert f"Stopped embedded {program} (pid {pid})" in said, said
    assert not servers_on(holders.socket_path)
