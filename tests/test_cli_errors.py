"""Errors from the command line are one line: a Redis URL that cannot be used (exit 2, before
anything starts, the dashboard's screen included) and a Redis that cannot be used (exit 1, with
the reason in words), never a traceback, never a password. The installed entry point runs as a
subprocess against real redis-servers (or a real port with nothing behind it)."""

from __future__ import annotations

import shutil
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ircache_tui.cache.ircache import IRCache
from ircache_tui.settings import SettingsError
from tests.support.cli import cli_env, run_cli
from tests.support.redis_server import RedisServer, free_port

EXAMPLES = Path(__file__).parent.parent / "examples" / "specs"
SECRET = "hunter2-SECRET-pw"  # a password that must never be shown
WRONG = "wrong-SECRET-guess"

BAD_URLS = [
    "notaurl",
    "garbage",
    "http://x",
    "redis://:pw@127.0.0.1:abc/0",
    f"redis://:{SECRET}@127.0.0.1:abc/0",
    "redis://127.0.0.1:99999",
    "redis://[::1",
    f"redis://:{SECRET}@[::1",
    "redis://127.0.0.1:6379/0?socket_timeout=abc",
    f"redis://127.0.0.1:6379/0?password={SECRET}&socket_timeout=abc",
]


@pytest.fixture
def world(tmp_path):
    """A spec dir with the example specs, a spec file, and an empty cache dir."""
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLES, specs)
    return {"specs": specs, "spec": specs / "petstore-spec.md", "cache_dir": tmp_path / "cache" / "ir"}


def commands(world) -> list[list[str]]:
    """Every command, the dashboard (the default command) included, with the arguments it needs."""
    specs, spec = str(world["specs"]), str(world["spec"])
    return [["stats"], ["get", spec], ["warm"], ["flush", "--yes"], ["prune", specs], ["watch", specs], [specs]]


def one_line(out) -> str:
    lines = out.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{out.stderr}"
    return lines[0]


def assert_clean(out, *secrets: str) -> None:
    shown = out.stdout + out.stderr
    assert "Traceback" not in shown, shown
    assert "\x1b" not in shown, f"a screen was drawn: {shown!r}"
    for secret in secrets:
        assert secret not in shown, shown


# -- a malformed URL: exit 2, one line, from every command --------------------------------------
@pytest.mark.parametrize("via", ["env", "flag"])
@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.e2e
def test_a_malformed_redis_url_is_one_line_and_exit_2(url, via, world):
    if via == "env":
        env, flag, name = cli_env(url, world["cache_dir"]), [], "REDIS_URL"
    else:
        env, flag, name = cli_env(None, world["cache_dir"]), ["--redis-url", url], "--redis-url"
    all_args = commands(world)
    with ThreadPoolExecutor(len(all_args)) as pool:  # independent processes: run them side by side
        outs = list(pool.map(lambda args: run_cli(*flag, *args, env=env, timeout=30), all_args))
    for args, out in zip(all_args, outs):
        assert out.returncode == 2, (args, out.returncode, out.stderr)
        line = one_line(out)
        assert line.startswith(f"ircache-tui: {name} is not a usable Redis URL: "), (args, line)
        assert out.stdout == "", (args, out.stdout)
        assert_clean(out, SECRET)
    # nothing was started for a URL that was refused: no embedded server, no cache dir
    assert not world["cache_dir"].exists()


@pytest.mark.e2e
def test_the_flag_wins_over_a_malformed_variable(world, redis_url):
    env = cli_env("notaurl", world["cache_dir"])
    out = run_cli("--redis-url", redis_url, "stats", "--json", env=env)
    assert out.returncode == 0, out.stderr
    out = run_cli("stats", env=env)  # without the flag the variable is used, and named
    assert out.returncode == 2 and one_line(out).startswith("ircache-tui: REDIS_URL is not a usable Redis URL")


def test_the_library_refuses_a_malformed_url_by_name(tmp_path):
    with pytest.raises(SettingsError, match=r"^redis_url is not a usable Redis URL: .*schemes"):
        IRCache(redis_url="notaurl", cache_dir=tmp_path)
    with pytest.raises(SettingsError, match=r"^redis_url is not a usable Redis URL: Port could not be cast") as err:
        IRCache(redis_url=f"redis://:{SECRET}@127.0.0.1:abc/0", cache_dir=tmp_path)
    assert SECRET not in str(err.value)


# -- Redis that cannot be used: exit 1, one line, the reason in words ---------------------------
NEEDS_REDIS = (["stats"], ["flush", "--yes"], ["warm"])


@pytest.mark.e2e
def test_connection_refused_is_one_line(world):
    port = free_port()
    env = cli_env(f"redis://127.0.0.1:{port}/0", world["cache_dir"])
    for args in (*NEEDS_REDIS, ["prune", str(world["specs"])]):
        out = run_cli(*args, env=env)
        assert out.returncode == 1, (args, out.stderr)
        line = one_line(out)
        assert line.startswith(f"ircache-tui {args[0]}: "), line
        assert f"Redis unavailable at redis://127.0.0.1:{port}/0: connection refused" in line, line
        assert_clean(out)
    # -v shows the log as well: the health tracker's WARNING is still there for whoever asks
    out = run_cli("-v", "flush", "--yes", env=env)
    assert out.returncode == 1
    assert any(l.startswith("WARNING: Redis unavailable at") for l in out.stderr.splitlines()), out.stderr


@pytest.mark.server  # this server's words for a refused password
@pytest.mark.parametrize("form", ["tcp", "unix"])
@pytest.mark.e2e
def test_wrong_or_missing_password_is_one_line_in_words(form, world):
    with RedisServer(password=SECRET) as server:
        if form == "tcp":
            wrong, missing = f"redis://:{WRONG}@127.0.0.1:{server.port}/0", f"redis://127.0.0.1:{server.port}/0"
        else:
            wrong, missing = f"unix://{server.socket_path}?password={WRONG}", f"unix://{server.socket_path}"
        for url, words in ((wrong, "it refused the password"), (missing, "it needs a password, and the URL gives none")):
            env = cli_env(url, world["cache_dir"])
            for args in NEEDS_REDIS:
                out = run_cli(*args, env=env)
                assert out.returncode == 1, (url, args, out.stderr)
                line = one_line(out)
                assert line.startswith(f"ircache-tui {args[0]}: Redis unavailable at "), line
                assert line.endswith(words) or words in line, (url, line)
                assert "HELLO" not in line and "NOAUTH" not in line and "WRONGPASS" not in line, line
                assert_clean(out, SECRET, WRONG)


@pytest.mark.e2e
def test_no_such_socket_is_one_line(world, tmp_path):
    path = tmp_path / "nothing.sock"
    env = cli_env(f"unix://{path}", world["cache_dir"])
    out = run_cli("flush", "--yes", env=env)
    assert out.returncode == 1
    assert one_line(out) == f"ircache-tui flush: Redis unavailable at unix://{path}: no such socket"


@pytest.mark.e2e
def test_a_server_that_never_answers_is_one_line_saying_timed_out(world):
    """A real listening socket that accepts and then says nothing, like a hung server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        out = run_cli("flush", "--yes", env=cli_env(f"redis://127.0.0.1:{port}/0", world["cache_dir"]))
    finally:
        stop.set()
        thread.join(5)
        for s in (*held, listener):
            s.close()
    assert out.returncode == 1
    line = one_line(out)
    assert line == f"ircache-tui flush: Redis unavailable at redis://127.0.0.1:{port}/0: timed out (no answer in time)"


# -- get goes on without Redis: one WARNING, and the answer ------------------------------------
@pytest.mark.e2e
def test_get_with_redis_down_warns_once_and_answers(world):
    port = free_port()
    out = run_cli("get", str(world["spec"]), env=cli_env(f"redis://127.0.0.1:{port}/0", world["cache_dir"]))
    assert out.returncode == 0, out.stderr
    line = one_line(out)
    assert line == (f"WARNING: Redis unavailable at redis://127.0.0.1:{port}/0: connection refused "
                    "(nothing is listening there); using the filesystem tier until it is back")
    assert out.stdout.splitlines()[0].endswith(": from generator")
    assert "Petstore API: 3 entities, 5 endpoints" in out.stdout


@pytest.mark.server  # this server's words for a refused password
@pytest.mark.e2e
def test_get_with_a_wrong_password_warns_once_in_words_and_answers(world):
    with RedisServer(password=SECRET) as server:
        url = f"redis://:{WRONG}@127.0.0.1:{server.port}/0"
        out = run_cli("get", str(world["spec"]), env=cli_env(url, world["cache_dir"]))
    assert out.returncode == 0, out.stderr
    line = one_line(out)
    assert line.startswith(f"WARNING: Redis unavailable at redis://:***@127.0.0.1:{server.port}/0: it refused the password")
    assert "from generator" in out.stdout
    assert_clean(out, SECRET, WRONG)
