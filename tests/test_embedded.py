import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from ircache_tui import IRCache
from ircache_tui.cache.embedded import EmbeddedRedis, stop_owned
from ircache_tui.cache.errors import EmbeddedRedisError
from tests.support.cli import cli_env, run_cli
from tests.support.generators import SPEC, CountingGenerator
from tests.support.impostor import NOBODY, PLANTED_KEY, Impostor
from tests.support.processes import alive, servers_on

pytestmark = pytest.mark.server  # the embedded server

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="making files another user's needs root")


def redis_servers_of(server):
    """Running servers on `server`'s socket, found in /proc (not by asking them)."""
    return servers_on(server.socket_path)


def use_tempdir(monkeypatch, path):
    """Point tempfile.gettempdir() at `path` (it caches its first answer in tempfile.tempdir)."""
    monkeypatch.setenv("TMPDIR", str(path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert tempfile.gettempdir() == str(path)


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """The temp dir, for this test only."""
    d = tmp_path / "tmp"
    d.mkdir(mode=0o700)
    use_tempdir(monkeypatch, d)
    return d


@pytest.fixture
def shared_tmp(monkeypatch):
    """A stand-in for /tmp: world-writable and sticky, reachable by nobody, and the temp dir."""
    d = tempfile.mkdtemp(prefix="ircache-shared-")  # under the real temp dir, where user nobody can reach it
    os.chmod(d, 0o1777)
    use_tempdir(monkeypatch, d)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def deep(path):
    """A cache dir too deep for {cache_dir}/.redis/redis.sock to fit in sun_path."""
    return path / ("d" * 60) / ("e" * 60)


def assert_private(path):
    st = os.lstat(path)
    assert stat.S_ISDIR(st.st_mode)
    assert st.st_uid == os.getuid()
    assert stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode)


def assert_refused(server, *fragments):
    with pytest.raises(EmbeddedRedisError) as err:
        server.start()
    message = str(err.value)
    assert "\n" not in message and message.startswith("refusing to use ")
    for fragment in fragments:
        assert fragment in message
    assert server.process is None and not server.using  # nothing started, nothing joined
    return message


def test_start_reuse_stop_without_persistence(tmp_path):
    # A cache, not a database: nothing survives a stop (the filesystem tier warms Redis back).
    cache_dir = tmp_path / "ir"
    first = EmbeddedRedis(cache_dir)
    url = first.start()
    assert first.owner and first.using and first.running()
    assert url == f"unix://{cache_dir.resolve()}/.redis/redis.sock"
    client = redis.Redis.from_url(url)
    # no keyspace notifications until a dashboard asks: every delete would pay for them
    assert client.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""
    assert client.config_get("save")["save"] == ""  # no RDB snapshots
    assert client.config_get("appendonly")["appendonly"] == "no"  # no AOF
    client.set("ir_cache:x_0a1b2c3d", "v")

    second = EmbeddedRedis(cache_dir)
    assert second.start() == url
    assert not second.owner and second.using  # reused, not restarted
    second.stop()
    assert not second.using
    assert first.running()  # another user still uses it: left running

    first.stop()
    assert not first.running() and not first.using and not first.owner
    assert not (cache_dir / ".redis" / "dump.rdb").exists()
    assert not os.path.lexists(first.socket_path)

    third = EmbeddedRedis(cache_dir)
    third.start()
    try:
        assert redis.Redis.from_url(url).get("ir_cache:x_0a1b2c3d") is None  # not persisted
    finally:
        third.stop()


def test_last_user_stops_the_server_even_if_it_did_not_start_it(tmp_path):
    cache_dir = tmp_path / "ir"
    starter, joiner = EmbeddedRedis(cache_dir), EmbeddedRedis(cache_dir)
    starter.start()
    joiner.start()
    pid = starter.server_pid()
    assert pid == starter.process.pid and not joiner.owner
    starter.stop()  # the starter leaves first: the joiner still uses the server
    assert joiner.running() and joiner.server_pid() == pid
    redis.Redis.from_url(joiner.url).set("k", "v")  # and it works
    joiner.stop()  # the last user, not its starter, stops it
    assert not joiner.running()
    assert not alive(pid)
    assert not os.path.lexists(joiner.socket_path)


def test_a_leftover_rdb_is_not_loaded(tmp_path):
    # an older version's snapshot: stale entries must not come back at every restart
    cache_dir = tmp_path / "ir"
    with EmbeddedRedis(cache_dir) as server:
        client = redis.Redis.from_url(server.url)
        client.set("ir_cache:old_0a1b2c3d", "v")
        client.save()  # what a persisting server left behind
    assert (cache_dir / ".redis" / "dump.rdb").exists()
    with EmbeddedRedis(cache_dir) as server:
        assert redis.Redis.from_url(server.url).dbsize() == 0
    assert not (cache_dir / ".redis" / "dump.rdb").exists()


def test_ensure_running_is_one_ping_when_up_and_restarts_when_gone(tmp_path):
    cache_dir = tmp_path / "ir"
    server = EmbeddedRedis(cache_dir)
    url = server.start()
    try:
        pid = server.server_pid()
        assert server.ensure_running() == url and server.server_pid() == pid  # answered: nothing restarted
        os.kill(pid, signal.SIGKILL)
        server.process.wait()
        assert not server.running()
        assert server.ensure_running() == url
        assert server.running() and server.using
        assert server.server_pid() not in (None, pid)
    finally:
        server.stop()
    assert not server.running()


def test_ensure_running_from_many_threads_makes_one_server(tmp_path):
    cache_dir = tmp_path / "ir"
    users = [EmbeddedRedis(cache_dir) for _ in range(4)]
    try:
        for user in users:
            user.start()
        os.kill(users[0].server_pid(), signal.SIGKILL)
        users[0].process.wait()
        with ThreadPoolExecutor(8) as pool:
            urls = list(pool.map(lambda u: u.ensure_running(), users * 2))
        assert set(urls) == {users[0].url}
        assert len(redis_servers_of(users[0])) == 1
    finally:
        for user in users:
            user.stop()
    assert redis_servers_of(users[0]) == []


@pytest.mark.e2e
def test_forked_child_never_stops_its_parents_server(tmp_path):
    with EmbeddedRedis(tmp_path / "ir") as server:
        pid = os.fork()
        if pid == 0:  # the child: leaving, even by every means, must not touch the parent's server
            code = 1
            try:
                server.stop()
                stop_owned()
                code = 0 if not server.using else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert server.using and server.running()
    assert not server.running()


def test_refused_start_leaves_no_user_behind(tmp_path):
    cache_dir = tmp_path / "ir"
    (cache_dir / ".redis").mkdir(parents=True, mode=0o700)
    server = EmbeddedRedis(cache_dir)
    open(server.socket_path, "w").close()  # not a socket
    with pytest.raises(EmbeddedRedisError):
        server.start()
    assert not server.using and stop_owned() == 0


def test_long_cache_dir_uses_short_socket(tmp_path, private_tmp):
    server = EmbeddedRedis(deep(tmp_path))
    assert len(server.socket_path) < 104
    with server:
        assert server.running()
        redis.Redis.from_url(server.url).ping()


def test_socket_dir_is_created_private(tmp_path):
    cache_dir = tmp_path / "ir"
    with EmbeddedRedis(cache_dir) as server:
        assert server.socket_dir == cache_dir.resolve() / ".redis"
        assert_private(server.socket_dir)
        st = os.lstat(server.socket_path)
        assert stat.S_ISSOCK(st.st_mode) and st.st_uid == os.getuid()


def test_long_path_socket_dir_is_per_user_and_private(tmp_path, private_tmp):
    with EmbeddedRedis(deep(tmp_path)) as server:
        assert server.socket_dir == private_tmp / f"ircache-{os.getuid()}"
        assert os.path.dirname(server.socket_path) == str(server.socket_dir)
        assert_private(server.socket_dir)
        assert_private(server.data_dir)  # the RDB's dir is checked even though the socket is elsewhere
        assert server.running()


@needs_root
def test_redis_server_of_another_user_in_the_cache_dir_is_refused(tmp_path, shared_tmp):
    # Another user gets to the socket's directory first and serves a planted entry there.
    cache_dir = shared_tmp / "team-cache"  # e.g. a cache dir others may write in
    cache_dir.mkdir(mode=0o777)
    cache_dir.chmod(0o1777)
    server = EmbeddedRedis(cache_dir)
    assert server.socket_dir == cache_dir / ".redis"
    impostor = Impostor(Path(server.socket_path), shared_tmp)
    try:
        impostor.start()
        before = impostor.connections()

        message = assert_refused(server, str(server.socket_dir), f"owned by uid {NOBODY}, not {os.getuid()}")
        with pytest.raises(EmbeddedRedisError):
            server.running()

        assert impostor.connections() == before + 1  # just the one asking: EmbeddedRedis never connected
        with impostor.client() as client:
            assert client.get(PLANTED_KEY) == b"planted"
        assert "impersonating" in message
    finally:
        impostor.stop()


@needs_root
def test_redis_server_of_another_user_in_the_temp_dir_fallback_is_passed_over(tmp_path, shared_tmp, ircache_logs):
    """Before: every start refused (a local denial of service by one mkdir in /tmp). Now the
    taken directory is never used, nor its server asked anything: a new private one is made."""
    taken = shared_tmp / f"ircache-{os.getuid()}"
    server = EmbeddedRedis(deep(tmp_path))
    assert server.socket_dir == taken  # the first choice, before the checks
    impostor = Impostor(Path(server.socket_path), shared_tmp)
    try:
        impostor.start()
        before = impostor.connections()
        with server:
            assert server.socket_dir.parent == shared_tmp and server.socket_dir != taken
            assert server.socket_dir.name.startswith(f"ircache-{os.getuid()}-")
            assert_private(server.socket_dir)
            client = redis.Redis.from_url(server.url)
            assert client.get(PLANTED_KEY) is None
            client.close()
        assert impostor.connections() == before + 1  # just the one asking: EmbeddedRedis never connected
        with impostor.client() as client:
            assert client.get(PLANTED_KEY) == b"planted"
        assert f"Not using {taken} for the embedded Redis socket (owned by uid {NOBODY}" in ircache_logs.text
    finally:
        impostor.stop()


@needs_root
@pytest.mark.parametrize("mode", [0o700, 0o777])
def test_cache_redis_dir_of_another_user_is_refused(tmp_path, mode):
    cache_dir = tmp_path / "ir"
    (cache_dir / ".redis").mkdir(parents=True)
    os.chmod(cache_dir / ".redis", mode)
    os.chown(cache_dir / ".redis", NOBODY, NOBODY)
    server = EmbeddedRedis(cache_dir)
    assert_refused(server, f"owned by uid {NOBODY}")
    assert list((cache_dir / ".redis").iterdir()) == []  # no lock file, no server


@needs_root
@pytest.mark.parametrize("mode", [0o700, 0o777], ids=["0700", "0777"])
@pytest.mark.e2e
def test_a_taken_temp_dir_fallback_is_passed_over_and_every_process_finds_the_server(tmp_path, private_tmp, mode):
    """Before: `ircache-{uid}` in the temp dir, made first by another user, refused every command
    of a deep cache dir. Now a new private directory holds the socket, and the location is
    recorded, so that every process of the cache dir finds the same server (here: the real CLI)."""
    taken = private_tmp / f"ircache-{os.getuid()}"
    taken.mkdir()
    taken.chmod(mode)
    os.chown(taken, NOBODY, NOBODY)
    cache_dir = deep(tmp_path)
    spec = tmp_path / "shop.md"
    spec.write_text(SPEC)
    env = cli_env(None, cache_dir, IR_GENERATOR="offline")  # TMPDIR: private_tmp, as for this process
    with EmbeddedRedis(cache_dir) as server:  # a user of the server for the whole test: it stays up
        assert server.socket_dir != taken and server.socket_dir.parent == private_tmp
        assert_private(server.socket_dir)
        first = run_cli("get", str(spec), env=env)
        again = run_cli("get", str(spec), env=env)
        assert first.returncode == 0 and first.stdout.startswith("shop_"), first.stderr
        assert first.stdout.splitlines()[0].endswith(": from generator"), first.stdout
        assert again.returncode == 0 and again.stdout.splitlines()[0].endswith(": from redis"), again.stdout
        assert "refusing" not in first.stderr + again.stderr
        client = redis.Redis.from_url(server.url)
        assert client.exists(f"ir_cache:{first.stdout.split(':')[0]}") == 1  # the CLI's server is this one
        client.close()
        assert len(redis_servers_of(server)) == 1
        tempfile.tempdir = str(tmp_path)
        try:
            other = EmbeddedRedis(cache_dir)  # as another process of the cache dir, with another TMPDIR
            assert other.running() and other.socket_path == server.socket_path
        finally:
            tempfile.tempdir = str(private_tmp)
    assert list(taken.iterdir()) == [] and os.lstat(taken).st_uid == NOBODY  # never touched
    assert not os.path.lexists(server.socket_path)


def test_symlinked_socket_dir_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)  # ours and private: the symlink alone is the problem
    cache_dir = tmp_path / "ir"
    cache_dir.mkdir()
    link = cache_dir / ".redis"
    link.symlink_to(target)
    server = EmbeddedRedis(cache_dir)
    assert server.socket_dir == link
    assert_refused(server, str(link), "symlink")
    with pytest.raises(EmbeddedRedisError):
        server.running()
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("kind", ["symlink", "writable by others"])
def test_a_temp_dir_fallback_not_fit_for_use_is_passed_over(tmp_path, private_tmp, kind):
    fallback = private_tmp / f"ircache-{os.getuid()}"
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    if kind == "symlink":  # planted in the shared temp dir: never followed
        fallback.symlink_to(target)
    else:  # others could have planted a socket in it
        fallback.mkdir()
        fallback.chmod(0o777)
    server = EmbeddedRedis(deep(tmp_path))
    assert not server.running()
    with server:
        assert server.running() and server.socket_dir not in (fallback, target)
        assert_private(server.socket_dir)
    assert list(target.iterdir()) == [] and (kind == "symlink" or list(fallback.iterdir()) == [])


@pytest.mark.parametrize("where, mode", [("cache dir", 0o755), ("temp-dir fallback", 0o750)])
def test_own_readable_socket_dir_is_tightened(tmp_path, private_tmp, ircache_logs, where, mode):
    # e.g. a .redis made by an older version: nobody else could write in it, so it is ours to fix
    if where == "cache dir":
        cache_dir = tmp_path / "ir"
        socket_dir = cache_dir / ".redis"
    else:
        cache_dir = deep(tmp_path)
        socket_dir = private_tmp / f"ircache-{os.getuid()}"
    socket_dir.mkdir(parents=True)
    socket_dir.chmod(mode)
    with EmbeddedRedis(cache_dir) as server:
        assert server.running()
        assert_private(socket_dir)
    assert f"Tightened {socket_dir} from mode {mode:04o} to 0700" in ircache_logs.text


def test_own_socket_dir_writable_by_others_is_refused(tmp_path):
    # others may already have planted a socket or an RDB in it: chmod would not undo that
    socket_dir = tmp_path / "ir" / ".redis"
    socket_dir.mkdir(parents=True)
    socket_dir.chmod(0o777)
    assert_refused(EmbeddedRedis(tmp_path / "ir"), str(socket_dir), "mode 0777 lets other users write")
    assert stat.S_IMODE(os.lstat(socket_dir).st_mode) == 0o777


@pytest.mark.parametrize("kind", ["regular file", "socket of another user"])
def test_socket_path_not_our_socket_is_refused(tmp_path, kind):
    if kind == "socket of another user" and os.geteuid() != 0:
        pytest.skip("making a file another user's needs root")
    cache_dir = tmp_path / "ir"
    (cache_dir / ".redis").mkdir(parents=True, mode=0o700)
    server = EmbeddedRedis(cache_dir)
    with socket.socket(socket.AF_UNIX) as planted:
        if kind == "regular file":
            open(server.socket_path, "w").close()
            assert_refused(server, server.socket_path, "not a socket")
        else:
            planted.bind(server.socket_path)
            os.chown(server.socket_path, NOBODY, NOBODY)
            assert_refused(server, server.socket_path, f"owned by uid {NOBODY}")
    assert os.path.lexists(server.socket_path)  # not ours: left alone, not unlinked


@pytest.mark.e2e
def test_second_process_reuses_running_server(tmp_path):
    cache_dir = tmp_path / "ir"
    script = textwrap.dedent(
        f"""
        from ircache_tui.cache.embedded import EmbeddedRedis, stop_owned
        s = EmbeddedRedis({str(cache_dir)!r})
        s.start()
        print("owner" if s.owner else "reused")
        s.stop()
        """
    )
    with EmbeddedRedis(cache_dir) as server:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "reused", out.stderr
        assert server.running()


async def test_ircache_without_url_uses_embedded(tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    cache_dir = tmp_path / "ir"
    async with IRCache(redis_url=None, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        assert cache.embedded is not None and cache.embedded.owner
        assert (await cache.lookup(SPEC, "shop.md")).tier == "generator"
        assert (await cache.lookup(SPEC, "shop.md")).tier == "redis"
    assert not EmbeddedRedis(cache_dir).running()
