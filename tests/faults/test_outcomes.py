"""Outcomes are honest: `warm`, `flush` and `prune` say what was done and what was not,
and exit 1 when anything failed; every OSError, URL or setting error is one line.

Bug 3: Redis SIGKILLed during a warm of 20,000 files gave `"warmed": 7437, "failures": []`,
exit 0; a Redis that refused every SET still said "warmed 0", exit 0.
Bug 4: tracebacks for a read-only cache dir (flush, prune), IR_CACHE_DIR=/etc/passwd, bad URLs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.support import entry_keys
from tests.support.cli import ENTRY_POINT
from tests.support.foreign import entry_value
from tests.support.redis_server import RedisServer

from .conftest import PASSWORD, assert_clean, cli_env, one_line, run
from .entries import spec_text, write_entries

pytestmark = pytest.mark.e2e  # the installed command


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


@contextlib.contextmanager
def read_only_mount(source: Path, target: Path):
    """A read-only bind mount: as root, chmod would prove nothing."""
    source.mkdir(parents=True, exist_ok=True)
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "--bind", "-o", "ro", str(source), str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here: {done.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.mark.slow
def test_warm_interrupted_by_a_redis_sigkill_reports_what_is_left_and_exits_1(tmp_path):
    cache = tmp_path / "cache"
    keys = write_entries(cache, 20_000)
    with RedisServer(password=PASSWORD) as server:
        probe = redis.Redis.from_url(server.url)
        proc = subprocess.Popen([ENTRY_POINT, "warm", "--json"], env=cli_env(server.url, cache),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            wait_for(lambda: probe.dbsize() >= 2_000 or proc.poll() is not None, 60, "the warm to start")
            assert proc.poll() is None, "the warm finished before Redis could be killed"
            seen = probe.dbsize()
            server.process.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
            probe.close()
    assert_clean(out, err)
    assert proc.returncode == 1, err
    result = json.loads(out)
    # warmed counts the SETs Redis confirmed: one at a time, so at most one stored but never answered
    assert seen - 1 <= result["warmed"] < len(keys), (seen, result["warmed"])
    assert result["left"] > 0 and result["warmed"] + result["left"] + result["failed"] == len(keys)
    assert result["failed"] == len(result["failures"]) and result["error"].startswith("Redis unavailable"), result
    assert one_line(err).startswith(f"ERROR: Warming Redis stopped after {result['warmed']:,} entries: "
                                    "Redis unavailable"), err


def room_for(url: str, entry: bytes, entries: int) -> int:
    """A maxmemory that leaves this server room for one more connection (twice what one costs)
    and about `entries` of `entry`, measured here: used_memory (INFO memory) and MEMORY USAGE. A
    fixed allowance cannot do: a fresh Redis 7 or Valkey grows by tens of KiB at its first key
    and at every connection, more than 64 KiB in all before it stores anything. Measured with no
    other client connected: a connection's memory goes when the server notices it closed."""
    probe = "ircache-test:probe"
    with redis.Redis.from_url(url) as admin:
        def used() -> int:
            return int(admin.info("memory")["used_memory"])

        def alone() -> None:
            wait_for(lambda: int(admin.info("clients")["connected_clients"]) == 1, 10, "the other clients to go")

        admin.set(probe, entry, ex=3600)  # as `warm` stores one (with a TTL); the first key pays for
        per_entry = int(admin.memory_usage(probe, samples=0))  # what the keyspace allocates once
        admin.delete(probe)
        alone()
        before = used()
        with redis.Redis.from_url(url) as other:
            other.ping()
            connection = max(0, used() - before)
        alone()
        return max(before, used()) + 2 * connection + entries * per_entry


@pytest.mark.server  # this server's maxmemory and OOM refusal
def test_warm_into_a_full_redis_lists_the_refusals_and_exits_1(tmp_path):
    cache = tmp_path / "cache"
    # entries of ~18 KB: what a server spends besides them (its connections, its tables) is then
    # a few entries' worth, whichever server it is, however it counts
    keys = write_entries(cache, 300, entities=40)
    with RedisServer("--maxmemory-policy", "noeviction", password=PASSWORD) as server:
        admin = redis.Redis.from_url(server.url)
        # room for the warm's connection and about 100 of the 300: some stored, the rest refused
        admin.config_set("maxmemory", room_for(server.url, (cache / f"{keys[0]}.json").read_bytes(), 100))
        proc = run("warm", env=cli_env(server.url, cache))
        stored = admin.dbsize()
        admin.close()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 0 < stored < 300
    first = proc.stdout.splitlines()[0]
    assert first == f"warmed {stored} entries from the filesystem (0 already in Redis, {300 - stored} failed)", proc.stdout
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith("failed: ")]
    assert len(failed) == 21 and "OOM" in failed[0] and failed[-1].startswith("failed: … and ")


@pytest.mark.slow
def test_a_flush_cut_by_a_redis_sigkill_says_how_many_went_and_a_rerun_finishes(tmp_path):
    n, foreign = 100_000, 2_000
    with RedisServer("--appendonly", "yes", "--appendfsync", "always", password=PASSWORD) as server:
        admin = redis.Redis.from_url(server.url)
        for start in range(0, n, 5_000):
            pipe = admin.pipeline(transaction=False)
            for i in range(start, start + 5_000):
                pipe.set(f"ir_cache:spec-{i % 500}_{i:08x}", entry_value())
            pipe.execute()
        for i in range(foreign):
            admin.set(f"ir_cache:team-{i}:state", b"keep")  # under the prefix, not IR keys
        env = cli_env(server.url, tmp_path / "cache")
        proc = subprocess.Popen([ENTRY_POINT, "flush", "--yes"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            wait_for(lambda: admin.dbsize() < n + foreign - 5_000 or proc.poll() is not None, 60, "the flush to start")
            server.process.send_signal(signal.SIGSTOP)  # freeze it mid-flush, then kill it frozen
            assert proc.poll() is None, "the flush finished before Redis could be stopped"
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert_clean(out, err)
        assert proc.returncode == 1, err
        line = one_line(err)
        assert line.startswith("ircache-tui flush: Redis flush stopped: Redis unavailable at"), line
        reported = int(line.rsplit("deleted before it stopped: ", 1)[1].split()[0].replace(",", ""))

        server.start()  # the AOF brings back what the kill left
        admin = redis.Redis.from_url(server.url)
        wait_for(lambda: loaded(admin), 60, "Redis to load its AOF")
        left = sum(1 for _ in admin.scan_iter("ir_cache:spec-*", count=5_000))
        # an UNLINK whose reply was lost with the server may have run: at most one batch more than said
        assert reported <= n - left <= reported + 300
        proc = run("flush", "--yes", "--json", env=env)
        assert json.loads(proc.stdout) == {"redis": left, "foreign_kept": 0}
        assert admin.dbsize() == foreign
        admin.close()


def test_flush_on_a_read_only_cache_dir_says_what_it_deleted_from_redis(secured_url, admin, tmp_path):
    real = tmp_path / "real"
    env = cli_env(secured_url, real)
    assert run("get", str(spec_file(tmp_path)), env=env).returncode == 0
    admin.set("ir_cache:team:state", b"keep")
    with read_only_mount(real, tmp_path / "ro") as ro:
        proc = run("flush", "--filesystem", "--yes", env=cli_env(secured_url, ro))
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert "Read-only file system" in line and line.endswith("deleted before it stopped: 1 Redis key, 0 files"), line
    assert entry_keys(admin) == [b"ir_cache:team:state"]
    assert len(list(real.glob("*.json"))) == 1  # nothing half-deleted on disk


def test_prune_on_a_read_only_cache_dir_is_one_line(secured_url, admin, tmp_path):
    real = tmp_path / "real"
    spec = spec_file(tmp_path)
    env = cli_env(secured_url, real)
    assert run("get", str(spec), env=env).returncode == 0
    spec.write_text(spec.read_text() + "\n- Other: name (str)\n")  # the cached entry is now stale
    with read_only_mount(real, tmp_path / "ro") as ro:
        proc = run("prune", str(spec.parent), "--yes", env=cli_env(secured_url, ro))
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert "Read-only file system" in line and "deleted before it stopped: 1 Redis key, 0 files" in line, line


def test_redis_keeps_serving_when_the_cache_dir_is_read_only(secured_url, tmp_path):
    real = tmp_path / "real"
    spec = spec_file(tmp_path)
    with read_only_mount(real, tmp_path / "ro") as ro:
        env = cli_env(secured_url, ro)
        first = run("get", str(spec), env=env)
        second = run("get", str(spec), env=env)
    assert first.returncode == 0 and first.stdout.splitlines()[0].endswith("from generator")
    assert [ln for ln in first.stderr.splitlines()] == [
        f"ERROR: Cannot write cache file for {first.stdout.split(':')[0]} in {ro}: Read-only file system"]
    assert second.returncode == 0 and second.stdout.splitlines()[0].endswith("from redis"), second.stdout


@pytest.mark.parametrize(
    "env_extra, code, words",
    [
        ({"IR_CACHE_DIR": "/etc/passwd"}, 1, "Not a directory: /etc/passwd"),
        ({"REDIS_URL": "garbage"}, 2, "REDIS_URL is not a usable Redis URL"),
        ({"REDIS_URL": "http://localhost:6379"}, 2, "REDIS_URL is not a usable Redis URL"),
        ({"REDIS_URL": "redis://localhost:99999"}, 2, "Port out of range"),
        ({"REDIS_URL": "redis://[::1"}, 2, "Invalid IPv6 URL"),
        ({"REDIS_URL": "redis://localhost?socket_timeout=abc"}, 2, "socket_timeout"),
        ({"IR_CACHE_TTL": "9223372036854775807"}, 2, "IR_CACHE_TTL must be at most"),
        ({"IR_REDIS_TIMEOUT": "soon"}, 2, "IR_REDIS_TIMEOUT must be a number of seconds"),
        ({"IR_GENERATE_TIMEOUT": "-1"}, 2, "IR_GENERATE_TIMEOUT must be 0 (no deadline) or more"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_configuration_errors_are_one_line_with_the_right_status(secured_url, tmp_path, env_extra, code, words):
    env = cli_env(secured_url, tmp_path / "cache")
    env.update(env_extra)
    proc = run("stats", env=env)
    assert proc.returncode == code, proc.stderr
    assert words in one_line(proc.stderr)


def loaded(client: redis.Redis) -> bool:
    try:
        return client.info("persistence")["loading"] == 0
    except redis.BusyLoadingError:
        return False


def spec_file(tmp_path: Path) -> Path:
    d = tmp_path / "specs"
    d.mkdir(exist_ok=True)
    path = d / "shop.md"
    path.write_text(spec_text(1))
    return path


# -- warm --json: its counts agree with its lists, and it prints them on every exit ---------------------
def warm_json(env: dict[str, str], *dirs: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    proc = run("warm", *dirs, "--json", env=env)
    assert proc.stdout.strip(), f"no JSON (exit {proc.returncode}); stderr:\n{proc.stderr}"
    result = json.loads(proc.stdout)
    assert result["failed"] == len(result["failures"]), result
    return proc, result


def test_warm_json_counts_every_failure_it_lists(secured_url, admin, tmp_path):
    """Before: `"failed": 1` beside three failures (the bad spec files were listed, not counted)."""
    cache = tmp_path / "cache"
    good = write_entries(cache, 2)
    (cache / "broken_0a1b2c3d.json").write_text("not an entry")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "ok.md").write_text(spec_text(0))
    (specs / "latin1.md").write_bytes(b"# Caf\xe9\n")
    (specs / "fifo.md").unlink(missing_ok=True)
    os.mkfifo(specs / "fifo.md")
    proc, result = warm_json(cli_env(secured_url, cache), str(specs))
    assert proc.returncode == 1, proc.stderr
    assert result["warmed"] == 2 and result["left"] == 0 and result["error"] is None, result
    assert result["failed"] == 3 and [f.split(":")[0] for f in result["failures"]] == [
        "broken_0a1b2c3d", str(specs / "fifo.md"), str(specs / "latin1.md")], result
    assert result["specs"] == 3 and sum(result["specs_by_tier"].values()) == 1, result
    assert admin.exists(*[f"ir_cache:{k}" for k in good]) == 2


def test_warm_json_is_printed_when_redis_is_down(tmp_path):
    """Before: exit 1 and one line on stderr, nothing on stdout for `--json` to parse."""
    cache = tmp_path / "cache"
    write_entries(cache, 3)
    server = RedisServer(password=PASSWORD)  # never started: nothing listens on its port
    proc, result = warm_json(cli_env(server.url, cache))
    assert proc.returncode == 1
    assert one_line(proc.stderr).startswith("ircache-tui warm: Redis unavailable at"), proc.stderr
    assert result["error"] == one_line(proc.stderr).removeprefix("ircache-tui warm: "), result
    assert {k: result[k] for k in ("warmed", "failed", "left", "failures")} == {
        "warmed": 0, "failed": 0, "left": 0, "failures": []}, result


@pytest.mark.server  # this server's ACL refusal
def test_warm_json_is_printed_when_redis_refuses_the_writes(secured_server, admin, tmp_path):
    """A user without +set: the walk stops at its first SET; before, nothing was printed."""
    user, password = "warm-no-set", "warm-no-set-pw-Qa8"
    admin.execute_command("ACL", "SETUSER", user, "reset", "on", f">{password}", "~ir_cache:*", "+@all", "-set")
    try:
        cache = tmp_path / "cache"
        keys = write_entries(cache, 4)
        (cache / "broken_0a1b2c3d.json").write_text("not an entry")  # listed first: a failure, then the stop
        url = f"redis://{user}:{password}@127.0.0.1:{secured_server.port}/0"
        proc, result = warm_json(cli_env(url, cache))
    finally:
        admin.execute_command("ACL", "DELUSER", user)
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert "Redis refused SET" in line and "add +set " in line, proc.stderr
    assert "Redis refused SET" in result["error"] and "add +set " in result["error"], result
    assert result["warmed"] == 0 and result["left"] == len(keys), result
    assert result["failed"] == 1 and result["failures"][0].startswith("broken_0a1b2c3d:"), result
    assert admin.dbsize() == 0
