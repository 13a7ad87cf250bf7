"""The embedded redis-server's life, with real processes: the installed `ircache-tui`, Python
processes holding an IRCache, real redis-servers found in /proc, real mounts (tmpfs, read-only
binds). Nothing is mocked.

The promises:
- the server is shared: it stays up while any process uses it, whoever started it, and the last
  process to leave stops it (an owner killed by SIGKILL or SIGTERM included: its server is
  adopted and stopped by the last process that goes on using it);
- it persists nothing (no RDB, `save` is empty), so a full disk cannot keep it from stopping;
- a cache dir where its directory cannot be made is one line on stderr, exit 1;
- processes starting at once make one server.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis

from ircache_tui.cache.embedded import EmbeddedRedis
from ircache_tui.cache.errors import EmbeddedRedisError
from tests.support import entry_keys
from tests.support.cli import ENTRY_POINT, cli_env, run_cli
from tests.support.processes import alive, servers_on

pytestmark = pytest.mark.server  # the embedded server's life

EXAMPLES = Path(__file__).parent.parent.parent / "examples" / "specs"

# A process that uses the embedded server through an IRCache until its stdin closes.
# It prints "owner PID" or "reused PID" (the server's pid) once the cache is open.
HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from ircache_tui import IRCache

    async def main():
        async with IRCache(redis_url=None, cache_dir=sys.argv[1]) as cache:
            e = cache.embedded
            print("owner" if e.owner else "reused", e.server_pid(), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())
    """
)


# -- processes ---------------------------------------------------------------------------------
def socket_of(cache_dir: Path) -> str:
    embedded = EmbeddedRedis(cache_dir)
    with contextlib.suppress(EmbeddedRedisError):
        embedded.running()  # settles where the socket is (a deep cache dir's is recorded in .redis/)
    return embedded.socket_path


def servers(cache_dir: Path) -> list[int]:
    """Running servers on `cache_dir`'s socket, found in /proc (not by asking them)."""
    return servers_on(socket_of(cache_dir))


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def assert_no_server(cache_dir: Path) -> None:
    """Nothing of a server left: no process on the socket, no socket, no snapshot."""
    wait_until(lambda: not servers(cache_dir), 5, f"redis-server(s) {servers(cache_dir)} still running")
    socket_path = socket_of(cache_dir)
    assert not os.path.lexists(socket_path), f"{socket_path} left behind"
    assert not (cache_dir / ".redis" / "dump.rdb").exists()


class Lab:
    """What a test starts, undone whatever happens: processes, the servers of its cache dirs, mounts."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.cache_dirs: list[Path] = []
        self.mounts: list[Path] = []

    def cache_dir(self, path: Path) -> Path:
        self.cache_dirs.append(path)
        return path

    def spawn(self, args: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(args, env=env, text=True, **kwargs)
        self.procs.append(proc)
        return proc

    def holder(self, cache_dir: Path) -> tuple[subprocess.Popen, str, int]:
        """A process holding an IRCache on `cache_dir`; its role ("owner"/"reused") and server pid."""
        proc = self.spawn([sys.executable, "-c", HOLDER, str(cache_dir)], cli_env(None, cache_dir),
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = proc.stdout.readline().split()
        assert len(line) == 2, proc.stderr.read() if proc.poll() is not None else line
        return proc, line[0], int(line[1])

    def mount(self, *args: str) -> None:
        target = Path(args[-1])
        out = subprocess.run(["mount", *args], capture_output=True, text=True)
        if out.returncode != 0:
            pytest.skip(f"mount {' '.join(args)} is not permitted here: {out.stderr.strip()}")
        self.mounts.append(target)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        for cache_dir in self.cache_dirs:
            for pid in servers(cache_dir):
                os.kill(pid, signal.SIGKILL)
        for target in reversed(self.mounts):
            if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(target)], capture_output=True)


@pytest.fixture
def lab():
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()


def leave(proc: subprocess.Popen) -> None:
    """A holder leaves normally: its stdin closes, its IRCache closes."""
    proc.stdin.close()
    assert proc.wait(15) == 0, proc.stderr.read()


# -- sharing -----------------------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.slow
def test_server_stays_up_for_the_processes_still_using_it(tmp_path, lab):
    """The issue's `warm &` + `watch`: the starter leaving must not pull Redis from under `watch`,
    nor may a `warm` that reuses it; `watch`, the last user, stops it."""
    cache_dir = lab.cache_dir(tmp_path / "ir")
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLES, specs)
    env = cli_env(None, cache_dir)

    starter, role, pid = lab.holder(cache_dir)
    assert role == "owner" and servers(cache_dir) == [pid]

    watch_log = tmp_path / "watch.log"
    with open(watch_log, "w") as log_file:
        watch = lab.spawn([ENTRY_POINT, "watch", str(specs), "-v"], env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=log_file)
    wait_until(lambda: "initial walk done" in watch_log.read_text(), 20, "watch did not start")

    leave(starter)  # the process that started the server is gone...
    assert servers(cache_dir) == [pid]  # ...the server is not: watch uses it
    client = redis.Redis.from_url(EmbeddedRedis(cache_dir).url)
    assert client.ping()

    # and watch still caches into it: a new spec lands in Redis, not on the filesystem alone
    shutil.copy(specs / "petstore-spec.md", specs / "latecomer.md")
    wait_until(lambda: list(client.scan_iter("ir_cache:latecomer_*")), 20,
               f"watch did not cache the new spec in Redis:\n{watch_log.read_text()}")

    # a warm that reuses the server leaves it up too
    out = run_cli("warm", str(specs), env=env)
    assert out.returncode == 0, out.stderr
    assert servers(cache_dir) == [pid] and client.ping()
    client.close()

    watch.send_signal(signal.SIGTERM)
    assert watch.wait(15) == 0
    log_text = watch_log.read_text()
    assert "Redis unavailable" not in log_text and "No such file" not in log_text, log_text
    assert not alive(pid)  # the last user stopped it, though it never started it
    assert_no_server(cache_dir)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
@pytest.mark.e2e
@pytest.mark.slow
def test_server_of_a_killed_owner_is_adopted_and_stopped_by_the_last_user(tmp_path, lab, sig):
    cache_dir = lab.cache_dir(tmp_path / "ir")
    owner, role, pid = lab.holder(cache_dir)
    assert role == "owner"
    assert int((cache_dir / ".redis" / "redis.pid").read_text()) == pid  # the pid file names it

    owner.send_signal(sig)  # no close, no stop: the OS drops its shared lock
    owner.wait(15)
    assert alive(pid) and EmbeddedRedis(cache_dir).running()  # the server outlives it

    # a later process reuses it, and leaving as its only user, stops it
    user, role, reused_pid = lab.holder(cache_dir)
    assert (role, reused_pid) == ("reused", pid)
    leave(user)
    assert not alive(pid)
    assert_no_server(cache_dir)

    # a one-shot command adopts an orphan just the same
    owner, _, pid = lab.holder(cache_dir)
    owner.send_signal(sig)
    owner.wait(15)
    assert alive(pid)
    out = run_cli("stats", "--json", env=cli_env(None, cache_dir))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["redis"]["reachable"] is True
    assert not alive(pid)
    assert_no_server(cache_dir)


@pytest.mark.e2e
@pytest.mark.slow
def test_processes_starting_at_once_make_one_server(tmp_path, lab):
    cache_dir = lab.cache_dir(tmp_path / "ir")
    env = cli_env(None, cache_dir)
    procs = [
        lab.spawn([sys.executable, "-c", HOLDER, str(cache_dir)], env,
                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(5)
    ]
    answers = [p.stdout.readline().split() for p in procs]
    assert all(len(a) == 2 for a in answers), answers
    assert sorted(role for role, _ in answers) == ["owner"] + ["reused"] * 4
    (pid,) = {int(p) for _, p in answers}
    assert servers(cache_dir) == [pid]
    for proc in procs:
        leave(proc)
    assert not alive(pid)
    assert_no_server(cache_dir)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory another user's needs root")
@pytest.mark.e2e
def test_processes_starting_at_once_past_a_taken_socket_dir_make_one_server(tmp_path, lab, monkeypatch):
    """A deep cache dir's socket goes to `$TMPDIR/ircache-{uid}`; another user made that first.
    Before: every process refused to start. Now they make one private directory and one server."""
    tmp = tmp_path / "tmp"
    tmp.mkdir(mode=0o1777)
    taken = tmp / f"ircache-{os.getuid()}"
    taken.mkdir(mode=0o700)
    os.chown(taken, 65534, 65534)
    monkeypatch.setenv("TMPDIR", str(tmp))
    cache_dir = lab.cache_dir(tmp_path / ("d" * 60) / ("e" * 60))
    procs = [
        lab.spawn([sys.executable, "-c", HOLDER, str(cache_dir)], cli_env(None, cache_dir),
                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(5)
    ]
    answers = [p.stdout.readline().split() for p in procs]
    assert all(len(a) == 2 for a in answers), [p.stderr.read() for p in procs if p.poll() is not None]
    assert sorted(role for role, _ in answers) == ["owner"] + ["reused"] * 4
    (pid,) = {int(p) for _, p in answers}
    assert servers(cache_dir) == [pid]
    made = [d for d in tmp.iterdir() if d != taken]
    assert len(made) == 1 and made[0].name.startswith(f"ircache-{os.getuid()}-")  # one new dir, private
    assert os.lstat(made[0]).st_uid == os.getuid() and os.lstat(made[0]).st_mode & 0o777 == 0o700
    assert list(taken.iterdir()) == []
    for proc in procs:
        leave(proc)
    assert not alive(pid)
    assert_no_server(cache_dir)


# -- persistence -------------------------------------------------------------------------------
@pytest.mark.e2e
def test_nothing_is_persisted(tmp_path, lab):
    cache_dir = lab.cache_dir(tmp_path / "ir")
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLES, specs)
    env = cli_env(None, cache_dir)

    holder, _, pid = lab.holder(cache_dir)
    out = run_cli("get", str(specs / "petstore-spec.md"), env=env)
    assert out.returncode == 0, out.stderr
    client = redis.Redis.from_url(EmbeddedRedis(cache_dir).url)
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}
    assert len(entry_keys(client)) == 1  # the entry (its hit counts aside)
    client.close()
    leave(holder)
    assert not alive(pid)
    assert_no_server(cache_dir)
    assert not [p.name for p in (cache_dir / ".redis").iterdir() if p.suffix in (".rdb", ".aof")]

    # a new server starts empty; the filesystem tier still has the entry and warms Redis back
    out = run_cli("stats", "--json", env=env)
    data = json.loads(out.stdout)
    assert data["redis"]["total_keys"] == 0 and data["filesystem"]["file_count"] == 1
    out = run_cli("get", str(specs / "petstore-spec.md"), env=env)
    assert out.returncode == 0 and "from filesystem" in out.stdout, out.stdout
    assert_no_server(cache_dir)


@pytest.mark.e2e
def test_full_disk_does_not_hold_up_the_exit(tmp_path, lab):
    """Once, SIGTERM on a full disk made redis-server log "can't save the DB, can't exit", and
    every command waited 10 s to SIGKILL it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    lab.mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk))
    cache_dir = lab.cache_dir(disk / "ir")
    cache_dir.mkdir()
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:  # every last block
        with pytest.raises(OSError) as full:
            while True:
                os.write(fd, b"\0" * 4096)
        assert full.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bavail == 0

    out = run_cli("stats", "--json", env=cli_env(None, cache_dir), timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["redis"]["reachable"] is True  # it did start a server, and used it
    assert_no_server(cache_dir)  # and stopped it on the way out
    # on its SHUTDOWN NOSAVE: not killed once the stop's 10 s were out, which the stop would say
    assert "did not stop within" not in out.stderr, out.stderr


# -- directories that cannot be made ---------------------------------------------------------------
def one_line_failure(out: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 1, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.mark.parametrize("below", [False, True], ids=["cache-dir", "missing-subdir"])
@pytest.mark.e2e
def test_read_only_cache_dir_is_one_line(tmp_path, lab, below):
    source = tmp_path / "source"
    source.mkdir()
    ro = tmp_path / "ro"
    ro.mkdir()
    lab.mount("--bind", "-o", "ro", str(source), str(ro))  # chmod proves nothing as root
    cache_dir = lab.cache_dir(ro / "ir" if below else ro)
    line = one_line_failure(run_cli("stats", env=cli_env(None, cache_dir)))
    redis_dir = cache_dir.resolve() / ".redis"
    assert line == f"ircache-tui stats: cannot create the embedded Redis directory {redis_dir}: Read-only file system"
    assert servers(cache_dir) == []


@pytest.mark.e2e
def test_cache_dir_that_is_a_file_is_one_line(tmp_path, lab):
    cache_file = lab.cache_dir(tmp_path / "not-a-dir")
    cache_file.write_text("x")
    line = one_line_failure(run_cli("stats", env=cli_env(None, cache_file)))
    assert line == (
        f"ircache-tui stats: cannot create the embedded Redis directory {cache_file}/.redis: "
        f"{cache_file} is not a directory"
    )
    assert cache_file.read_text() == "x"


@pytest.mark.slow
async def test_a_cache_whose_embedded_server_was_killed_restarts_it_when_it_probes(tmp_path):
    """A watcher or dashboard probes Redis every few seconds: the probe brings the server back,
    and the next lookup is a Redis hit again (warmed from the filesystem on the way)."""
    from ircache_tui.cache.ircache import IRCache
    from tests.support.generators import SPEC, CountingGenerator

    cache_dir = tmp_path / "cache"
    async with IRCache(redis_url=None, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        await cache.lookup(SPEC, "shop.md")
        first = cache.embedded.server_pid()
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{first}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        await cache.probe()  # would raise RedisUnavailable if nothing brought it back
        second = cache.embedded.server_pid()
        assert second and second != first
        assert (await cache.lookup(SPEC, "shop.md")).tier == "filesystem"  # the new server starts empty
        assert (await cache.lookup(SPEC, "shop.md")).tier == "redis"
    deadline = time.monotonic() + 10
    while Path(f"/proc/{second}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not Path(f"/proc/{second}").exists(), "the restarted server outlived its last user"
