"""The embedded server says which server it is, in the log and in `stats` (issue 22).

A `redis-server` may be Valkey, and Valkey calls itself `valkey-server`: what is said comes
from the server's own answer (INFO server, HELLO), and the record of it kept beside the pid
file is how a server that no longer answers is known (tests/faults/test_hung_embedded_server.py).
Real servers: IRCACHE_REDIS_SERVER picks the binary (`make test` runs these on every server of
the matrix).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from ircache_tui.cache.embedded import EmbeddedRedis, find_redis_server
from ircache_tui.cache.server import ServerInfo
from tests.support.cli import cli_env, run_cli
from tests.support.redis_server import free_port

pytestmark = pytest.mark.server


def this_server() -> ServerInfo:
    """What the binary says it is (`Valkey server v=9.1.2 …`): the test's own oracle, not the product's."""
    line = subprocess.run([find_redis_server(), "--version"], capture_output=True, text=True, check=True).stdout
    name, _, rest = line.partition(" server v=")
    return ServerInfo(name.strip().lower(), rest.split()[0])


@pytest.mark.e2e
def test_the_log_and_stats_say_which_server(tmp_path, ircache_logs):
    server = this_server()
    with EmbeddedRedis(tmp_path / "cache") as embedded:
        assert embedded.server == server
        env = cli_env(None, tmp_path / "cache")
        text, as_json = run_cli("stats", env=env), run_cli("stats", "--json", env=env)
    started = [r.getMessage() for r in ircache_logs.records if r.getMessage().startswith("Started embedded")]
    assert started == [f"Started embedded {server.program} ({server.label}) at {embedded.socket_path}"]
    assert text.returncode == 0 and as_json.returncode == 0, text.stderr + as_json.stderr
    redis_line = text.stdout.splitlines()[0]
    assert redis_line == f"Redis       unix://{embedded.socket_path}, {server.label}", text.stdout
    assert json.loads(as_json.stdout)["redis"]["server"] == {"name": server.name, "version": server.version}


@pytest.mark.e2e
def test_stats_says_null_for_the_server_of_an_unreachable_redis(tmp_path):
    out = run_cli("stats", "--json", env=cli_env(f"redis://127.0.0.1:{free_port()}/0", tmp_path / "cache"))
    assert out.returncode == 1
    redis_info = json.loads(out.stdout)["redis"]
    assert redis_info["reachable"] is False and redis_info["server"] is None


def test_a_record_naming_another_process_is_not_trusted(tmp_path):
    """The pid file and the record beside it say which process is the server; a pid that was
    recycled (another process now, started at another time) is not the server, and is never
    signalled."""
    with EmbeddedRedis(tmp_path / "cache") as embedded:
        pid = embedded.server_pid()
        record = json.loads(embedded.server_record.read_text())
        assert record["pid"] == pid and record["name"] == this_server().name
        assert embedded.is_our_server(pid)
        stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            record["pid"] = stranger.pid  # as if the server's pid had been recycled
            embedded.server_record.write_text(json.dumps(record))
            assert not embedded.is_our_server(stranger.pid)
        finally:
            stranger.kill()
            stranger.wait()


def test_logs_never_call_valkey_redis_server(tmp_path, ircache_logs):
    """Every line the embedded server's life logs names it as it is."""
    server = this_server()
    with EmbeddedRedis(tmp_path / "cache") as embedded:
        embedded.server_pid()
    lines = [r.getMessage() for r in ircache_logs.records if r.levelno >= logging.INFO]
    assert lines and all(server.program in line for line in lines if "embedded" in line.lower()), lines
    if server.name != "redis":
        assert not [line for line in lines if "redis-server" in line], lines
