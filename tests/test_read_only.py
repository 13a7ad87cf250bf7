"""Read-only is a property of the cache: the library, every command and the dashboard over an
external Redis (TCP, password) change nothing in Redis or in the cache dir.

Each test seeds a real redis-server and a real cache dir (`seeded_world`):

- A (petstore-spec) cached in Redis and on disk, plus an older version of A (stale) in both;
- B (ecommerce-api-spec-human) cold: its entry file on disk, its Redis key deleted;
- C (inventory-spec) cached nowhere;
- D (corrupt-redis-spec) with a corrupt value in Redis; E (corrupt-file-spec) with a corrupt file;
- a few hundred foreign IR keys (`ir_cache:other-spec-N_<hex8>`), non-IR keys, a hash, keys with
  and without a TTL, and a crashed writer's leftover temp file in the cache dir.

Then it snapshots the server (DBSIZE, every key's DUMP and PTTL, CONFIG GET *) and the cache dir
(os.walk + lstat: mode, size, mtime, inode, content hash), records every command the server runs
with MONITOR on its own connection plus INFO commandstats and rdb_changes_since_last_save
(`WriteWatch`), runs the product read-only, and requires: no write command, nothing changed.
The test's own connection uses the unix socket and sends only reads while the watch is on; the
product connects over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from ircache_tui import IRCache, ReadOnlyError, ReadOnlyMiss, cache_key
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.screens.flush import FlushScreen
from ircache_tui.tui.screens.prune import PruneScreen
from ircache_tui.tui.services import Services
from ircache_tui.tui.widgets.log_pane import LogPane
from tests.support.cli import ENTRY_POINT, cli_env, run_cli
from tests.support.generators import SPEC, CountingGenerator
from tests.support.monitor import CommandLog
from tests.support.redis_server import RedisServer
from tests.support.tui import cell, static_text, until

pytestmark = pytest.mark.server  # what this server's MONITOR and INFO commandstats see

EXAMPLES = Path(__file__).parent.parent / "examples" / "specs"
PASSWORD = "ro-test-s3cret"
FOREIGN_IR_KEYS = 300
NON_IR_KEYS = 40
#: appended to spec A while the product runs: a new key nobody has cached
A_EDIT = "\n- DELETE /pets/{id} - Remove a pet (auth)\n"
#: an older version of spec A, cached in both tiers: a stale entry (prune would remove it)
A_OLD_EDIT = "\n- GET /legacy/pets - The old listing\n"


# -- the seeded world --------------------------------------------------------------------------
@dataclass
class World:
    server: RedisServer
    specs: Path
    cache_dir: Path
    paths: dict[str, Path]
    keys: dict[str, str]  # "a", "a_old", "b", "c", "d", "e" → cache key

    def admin(self) -> redis.Redis:
        """The test's own connection: over the unix socket (the product uses TCP)."""
        return redis.Redis.from_url(self.server.unix_url)

    def text(self, name: str) -> str:
        return self.paths[name].read_text()


async def _generate(server: RedisServer, cache_dir: Path, entries: list[tuple[str, Path]]) -> None:
    async with IRCache(redis_url=server.url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as cache:
        for text, path in entries:
            found = await cache.lookup(text, str(path))
            assert found.tier == "generator"


def _run_in_thread(coro) -> None:
    """asyncio.run on a thread of its own: never disturbs the event loop pytest-asyncio keeps here."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join(60)
    assert not t.is_alive(), "seeding hung"
    if errors:
        raise errors[0]


def seed(server: RedisServer, root: Path) -> World:
    specs = root / "specs"
    shutil.copytree(EXAMPLES, specs)
    paths = {
        "a": specs / "petstore-spec.md",
        "b": specs / "ecommerce-api-spec-human.md",
        "c": specs / "inventory-spec.md",
        "d": specs / "corrupt-redis-spec.md",
        "e": specs / "corrupt-file-spec.md",
    }
    for name, title in (("c", "Inventory API"), ("d", "Ledger API"), ("e", "Billing API")):
        paths[name].write_text(SPEC.replace("Shop API", title))
    cache_dir = root / "cache" / "ir"
    a_old_text = paths["a"].read_text() + A_OLD_EDIT
    keys = {name: cache_key(p.read_text(), str(p)) for name, p in paths.items()}
    keys["a_old"] = cache_key(a_old_text, str(paths["a"]))

    _run_in_thread(_generate(server, cache_dir, [
        (paths["a"].read_text(), paths["a"]), (paths["b"].read_text(), paths["b"]), (a_old_text, paths["a"]),
    ]))
    admin = redis.Redis.from_url(server.unix_url)
    try:
        assert admin.unlink(f"ir_cache:{keys['b']}") == 1  # B is cold: on disk only
        admin.set(f"ir_cache:{keys['d']}", b'{"schema_version":1,"application_ir":{"na', ex=3600)  # truncated
        pipe = admin.pipeline(transaction=False)
        for i in range(FOREIGN_IR_KEYS):
            pipe.set(f"ir_cache:other-spec-{i}_{i:08x}", json.dumps({"schema_version": 1, "foreign": i}, separators=(",", ":")),
                     ex=7200 + i if i % 2 else None)  # another pipeline's entries (ours by name and value)
        for i in range(NON_IR_KEYS):
            pipe.set(f"session:{i}", f"user-{i}", ex=900 if i % 3 == 0 else None)
        pipe.set("ir_cache:not-an-ir-key", "keep me")
        pipe.set("ir_cache:someone-else_0badcafe:lock", "their-token", px=600_000)  # another process's lock
        pipe.hset("app:config", mapping={"mode": "prod", "replicas": "3"})
        pipe.execute()
        assert admin.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""
    finally:
        admin.close()
    (cache_dir / f"{keys['e']}.json").write_bytes(b"\x00\x01 this is not an IR entry")
    leftover = cache_dir / ".petstore-spec_0badcafe.k3j2l1.tmp"  # a crashed writer's temp file, 2 h old
    leftover.write_bytes(b"half an entry")
    old = time.time() - 7200
    os.utime(leftover, (old, old))
    return World(server, specs, cache_dir, paths, keys)


@contextlib.contextmanager
def seeded_world(root: Path) -> Iterator[World]:
    server = RedisServer(password=PASSWORD).start()
    try:
        yield seed(server, root)
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    with seeded_world(tmp_path) as w:
        yield w


# -- what is there: Redis and the cache dir -----------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    dbsize: int
    keys: dict[bytes, tuple[bytes, int]]  # key → (DUMP, PTTL)
    config: dict[str, str]
    files: dict[str, tuple]


def cache_dir_listing(root: Path) -> dict[str, tuple]:
    """Every name under the cache dir (recursively, symlinks not followed) with what would show a change."""

    def describe(path: Path) -> tuple:
        st = os.lstat(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        return (stat.filemode(st.st_mode), st.st_size, st.st_mtime_ns, st.st_ino, digest)

    found = {".": describe(root)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            found[str(path.relative_to(root))] = describe(path)
    return found


def snapshot(world: World) -> Snapshot:
    admin = world.admin()
    try:
        names = sorted(admin.scan_iter(count=1000))
        pipe = admin.pipeline(transaction=False)
        for name in names:
            pipe.dump(name)
            pipe.pttl(name)
        flat = pipe.execute()
        keys = {name: (flat[2 * i], flat[2 * i + 1]) for i, name in enumerate(names)}
        return Snapshot(admin.dbsize(), keys, admin.config_get("*"), cache_dir_listing(world.cache_dir))
    finally:
        admin.close()


def assert_unchanged(before: Snapshot, after: Snapshot) -> None:
    assert after.dbsize == before.dbsize
    assert set(after.keys) == set(before.keys), (
        f"keys added {sorted(set(after.keys) - set(before.keys))[:10]}, "
        f"removed {sorted(set(before.keys) - set(after.keys))[:10]}")
    for name, (dump, ttl) in before.keys.items():
        dump_after, ttl_after = after.keys[name]
        assert dump_after == dump, f"{name!r} changed value"
        if ttl == -1:
            assert ttl_after == -1, f"{name!r} got a TTL ({ttl_after} ms)"
        else:
            assert 0 < ttl_after <= ttl, f"{name!r}: TTL {ttl} ms before, {ttl_after} ms after (EXPIRE/PERSIST?)"
    changed = {k: (before.config.get(k), after.config.get(k))
               for k in set(before.config) | set(after.config) if before.config.get(k) != after.config.get(k)}
    assert not changed, f"CONFIG changed: {changed}"
    assert after.files == before.files, _listing_diff(before.files, after.files)


def _listing_diff(before: dict[str, tuple], after: dict[str, tuple]) -> str:
    lines = [f"added {k}" for k in sorted(set(after) - set(before))]
    lines += [f"removed {k}" for k in sorted(set(before) - set(after))]
    lines += [f"changed {k}: {before[k]} -> {after[k]}" for k in sorted(set(before) & set(after)) if before[k] != after[k]]
    return "cache dir changed:\n" + "\n".join(lines)


# -- who sent what: MONITOR and the server's counters ---------------------------------------------
@dataclass
class WriteReport:
    commands: list[dict]
    write_flagged: set[str]  # command names the server flags `write`
    stats_writes: dict[str, dict]  # INFO commandstats entries of such commands
    dirty: int  # rdb_changes_since_last_save gained
    monitor_error: BaseException | None = None
    writes_seen: list[str] = field(default_factory=list)

    @property
    def product_commands(self) -> set[str]:
        """Command names sent by connections other than the test's own (unix socket): the product's."""
        return {c["command"].split(" ", 1)[0].lower() for c in self.commands if c["client_type"] != "unix"}


class WriteWatch:
    """MONITOR on a connection of its own, on a thread, plus INFO commandstats (reset at the start)
    and rdb_changes_since_last_save. MONITOR of Redis 6.2 does not show admin commands (CONFIG):
    a CONFIG SET shows in the CONFIG GET * comparison of the snapshots instead."""

    def __init__(self, server: RedisServer) -> None:
        self.url = server.unix_url
        self.admin = redis.Redis.from_url(self.url)
        self._log = CommandLog(self.url)

    def start(self) -> "WriteWatch":
        self.admin.config_resetstat()
        self._dirty = int(self.admin.info("persistence")["rdb_changes_since_last_save"])
        self._log.start()
        return self

    def stop(self) -> WriteReport:
        self._log.stop(check=False)  # (a MONITOR failure is the report's to say)
        self.commands, self.error = self._log.commands, self._log.error
        stats = {name.removeprefix("cmdstat_"): v for name, v in self.admin.info("commandstats").items()}
        dirty = int(self.admin.info("persistence")["rdb_changes_since_last_save"]) - self._dirty
        names = {c["command"].split(" ", 1)[0].lower() for c in self.commands} | set(stats)
        flagged = _write_commands(self.admin, names)
        report = WriteReport(
            self.commands, flagged,
            {n: v for n, v in stats.items() if n in flagged and (v.get("calls") or v.get("rejected_calls")
                                                               or v.get("failed_calls"))},
            dirty, self.error,
        )
        report.writes_seen = [
            f"[{c['client_type']} {c['client_address']}:{c['client_port']}] {c['command'][:120]}"
            for c in self.commands
            if c["command"].split(" ", 1)[0].lower() in flagged or c["command"].lower().startswith("config set")
        ]
        self.admin.close()
        return report


def _write_commands(admin: redis.Redis, names: set[str]) -> set[str]:
    """Which of these commands the server itself flags `write` (SET, UNLINK, EXPIRE, PERSIST, DEL, ...)."""
    names = {n for n in names if n}
    if not names:
        return set()
    info = admin.execute_command("COMMAND", "INFO", *sorted(names))
    flagged = {name for name, spec in info.items() if spec and "write" in spec.get("flags", [])}
    return flagged | ({"flushall", "flushdb", "swapdb", "move", "copy", "restore"} & names)


def assert_no_writes(report: WriteReport, *, expect_reads: set[str] = frozenset({"get", "getrange"})) -> None:
    assert report.monitor_error is None, f"MONITOR failed: {report.monitor_error!r}"
    assert not report.writes_seen, "write commands sent:\n" + "\n".join(report.writes_seen[:20])
    assert not report.stats_writes, f"INFO commandstats counts write commands: {report.stats_writes}"
    assert report.dirty == 0, f"rdb_changes_since_last_save grew by {report.dirty}"
    # the watch saw the product at all (else the checks above prove nothing)
    missing = expect_reads - report.product_commands
    assert not missing, f"MONITOR never saw the product send {missing}: saw {sorted(report.product_commands)}"


# -- 1. the library ---------------------------------------------------------------------------------
async def test_read_only_library_serves_both_tiers_refuses_every_write_and_changes_nothing(world, ircache_logs):
    keys = world.keys
    before = snapshot(world)
    watch = WriteWatch(world.server).start()
    gen = CountingGenerator()
    try:
        async with IRCache(redis_url=world.server.url, cache_dir=world.cache_dir, read_only=True, generator=gen) as cache:
            assert cache.read_only and cache.redis.read_only and cache.fs.read_only

            a = await cache.lookup(world.text("a"), str(world.paths["a"]))
            assert (a.cache_key, a.tier) == (keys["a"], "redis")
            assert a.ir.name and a.entry.spec_name == "petstore-spec"

            for _ in range(2):  # served from disk both times: the first hit did not warm Redis
                b = await cache.lookup(world.text("b"), str(world.paths["b"]))
                assert (b.cache_key, b.tier) == (keys["b"], "filesystem")
                assert not await cache.in_redis(keys["b"])
            ir_b = await cache.get_application_ir(world.text("b"), str(world.paths["b"]))
            assert ir_b == b.ir

            with pytest.raises(ReadOnlyMiss) as miss:
                await cache.get_application_ir(world.text("c"), str(world.paths["c"]))
            assert isinstance(miss.value, ReadOnlyError)
            assert (miss.value.spec_name, miss.value.cache_key) == ("inventory-spec", keys["c"])
            assert "inventory-spec" in str(miss.value) and "read-only" in str(miss.value)

            with pytest.raises(ReadOnlyError) as forced:
                await cache.get_application_ir(world.text("a"), str(world.paths["a"]), force_refresh=True)
            assert not isinstance(forced.value, ReadOnlyMiss)
            assert "petstore-spec" in str(forced.value)

            # corrupt entries: a miss, reported, left in place
            with pytest.raises(ReadOnlyMiss) as corrupt_redis:
                await cache.lookup(world.text("d"), str(world.paths["d"]))
            assert corrupt_redis.value.cache_key == keys["d"]
            with pytest.raises(ReadOnlyMiss) as corrupt_file:
                await cache.lookup(world.text("e"), str(world.paths["e"]))
            assert corrupt_file.value.cache_key == keys["e"]
            logged = [r.getMessage() for r in ircache_logs.records]
            assert any(f"Corrupt IR entry in Redis for corrupt-redis-spec ({keys['d']})" in line
                       and line.endswith("left in place (read-only)") for line in logged), logged
            assert any(f"Corrupt IR entry on disk for corrupt-file-spec ({keys['e']})" in line
                       and line.endswith("left in place (read-only)") for line in logged), logged
            assert await cache.in_redis(keys["d"]) and await cache.on_disk(keys["e"])
            assert cache.events.counters.hits == 4

            # every write asked anyway raises ReadOnlyError: none is dropped silently
            refused = {
                "clear_cache": lambda: cache.clear_cache(),
                "clear_cache(one spec, files)": lambda: cache.clear_cache(redis=False, spec_name="petstore-spec"),
                "warm_redis": lambda: cache.warm_redis(),
                "warm_key": lambda: cache.warm_key(keys["b"]),
                "delete_entry(redis)": lambda: cache.delete_entry(keys["a"], "redis"),
                "delete_entry(filesystem)": lambda: cache.delete_entry(keys["a"], "filesystem"),
                "delete_entries": lambda: cache.delete_entries([keys["a_old"]], [keys["a_old"]]),
                "reset_ttl": lambda: cache.reset_ttl(keys["a"]),
                "reset_ttl(60)": lambda: cache.reset_ttl(keys["a"], 60),
                "redis.set_raw": lambda: cache.redis.set_raw(keys["c"], b"{}"),
                "redis.cache_ir": lambda: cache.redis.cache_ir(keys["c"], {"x": 1}),
                "redis.delete": lambda: cache.redis.delete(keys["a"]),
                "redis.reset_ttl": lambda: cache.redis.reset_ttl(keys["a"], 5),
                "redis.unlink_many": lambda: cache.redis.unlink_many([f"ir_cache:{keys['a']}".encode()]),
                "redis.clear_ir_cache": lambda: cache.redis.clear_ir_cache(),
                "redis.acquire_lock": lambda: cache.redis.locks.acquire(keys["c"], "token", 1000),
                "redis.extend_lock": lambda: cache.redis.locks.extend(keys["c"], "token", 1000),
                "redis.release_lock": lambda: cache.redis.locks.release(keys["c"], "token"),
                "fs.write_raw": lambda: cache.fs.write_raw(keys["c"], b"{}"),
                "fs.delete": lambda: cache.fs.delete(keys["a"]),
                "fs.quarantine": lambda: cache.fs.quarantine(keys["e"], "test"),
                "fs.clear": lambda: cache.fs.clear(),
                "fs.cleanup_temp_files": lambda: cache.fs.cleanup_temp_files(older_than=0),
            }
            not_refused = []
            for what, call in refused.items():
                try:
                    result = await call()
                except ReadOnlyError:
                    continue
                not_refused.append(f"{what} returned {result!r}")
            assert not not_refused, not_refused

            # an external server's config is not ours to set when read-only: poll instead
            assert await cache.enable_live_updates() is False
            info = await cache.get_cache_info()  # reads still work after all that
            assert info.redis["reachable"] and info.redis["total_keys"] == FOREIGN_IR_KEYS + 3
        assert gen.calls == 0
    finally:
        report = watch.stop()
    assert_no_writes(report, expect_reads={"get", "getrange", "scan"})
    assert_unchanged(before, snapshot(world))


# -- 2. the command line ------------------------------------------------------------------------------
class WatchProcess:
    """`ircache-tui ... watch ...` running, its stderr collected line by line on a thread."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [ENTRY_POINT, *args], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 15.0) -> str:
        """The first stderr line so far (or to come) matching `pattern`."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for line in self.lines:
                    if re.search(pattern, line):
                        return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"exited ({self.proc.returncode}) before {pattern!r}:\n" + "\n".join(self.lines))
            if time.monotonic() > deadline:
                raise AssertionError(f"no line matching {pattern!r}:\n" + "\n".join(self.lines))
            time.sleep(0.05)

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 15.0) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    return lines[0]


@pytest.mark.e2e
def test_read_only_command_line_answers_refuses_and_changes_nothing(world):
    keys, paths, specs = world.keys, world.paths, str(world.specs)
    env = cli_env(world.server.url, world.cache_dir, IR_GENERATOR="offline")
    env_ro = {**env, "IR_READ_ONLY": "1"}
    env_no_url = {k: v for k, v in env.items() if k != "REDIS_URL"}  # the URL comes with --redis-url
    url = world.server.url
    before = snapshot(world)
    watch = WriteWatch(world.server).start()
    watcher = None
    try:
        # get: --read-only before the command, after its argument, IR_READ_ONLY=1, after --redis-url URL
        r = run_cli("--read-only", "get", str(paths["a"]), env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"{keys['a']}: from redis\n"), r.stdout
        for args, e in (((str(paths["b"]), "--read-only"), env), ((str(paths["b"]),), env_ro)):
            r = run_cli("get", *args, env=e)
            assert r.returncode == 0, r.stderr
            assert r.stdout.startswith(f"{keys['b']}: from filesystem\n"), r.stdout  # the first did not warm

        r = run_cli("--redis-url", url, "--read-only", "get", str(paths["c"]), env=env_no_url)
        assert r.returncode == 1 and r.stdout == "", (r.returncode, r.stdout)
        line = _one_line(r)
        assert line.startswith("ircache-tui get: ") and "inventory-spec" in line and keys["c"] in line
        assert "read-only" in line
        assert PASSWORD not in r.stderr

        r = run_cli("get", str(paths["a"]), "--force", env=env_ro)
        assert r.returncode == 1 and r.stdout == ""
        assert "read-only" in _one_line(r) and "petstore-spec" in r.stderr

        for name, where in (("d", "in Redis"), ("e", "on disk")):
            r = run_cli("get", str(paths[name]), "--read-only", env=env)
            assert r.returncode == 1, r.stderr
            assert f"Corrupt IR entry {where}" in r.stderr and "left in place (read-only)" in r.stderr, r.stderr
            assert r.stderr.strip().splitlines()[-1].startswith("ircache-tui get: IR for corrupt-")

        # every command that writes: refused with one line, exit 1
        for args, e in (
            (("--read-only", "warm", specs), env),
            (("warm", specs, "--read-only"), env),
            (("warm",), env_ro),
            (("flush", "--yes"), env_ro),
            (("--redis-url", url, "flush", "petstore-spec", "--filesystem", "--yes", "--read-only"), env_no_url),
        ):
            r = run_cli(*args, env=e)
            assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
            assert "read-only" in _one_line(r), args

        r = run_cli("prune", specs, "--yes", "--read-only", env=env)
        assert r.returncode == 1, (r.stdout, r.stderr)
        line = _one_line(r)
        assert line.startswith("ircache-tui prune: ") and "read-only" in line
        assert f"stale in Redis: {keys['a_old']}" in r.stdout  # it said what it would have pruned
        assert "pruned" not in r.stdout

        r = run_cli("--read-only", "prune", specs, "--dry-run", env=env)
        assert r.returncode == 0, r.stderr
        assert f"stale in Redis: {keys['a_old']}" in r.stdout and f"stale on disk: {keys['a_old']}" in r.stdout
        assert f"kept {FOREIGN_IR_KEYS} entries" in r.stdout

        r = run_cli("stats", "--read-only", env=env)
        assert r.returncode == 0, r.stderr
        assert re.search(rf"IR keys\s+{FOREIGN_IR_KEYS + 3}\n", r.stdout), r.stdout  # A, A (old), D
        assert re.search(r"files\s+4\n", r.stdout), r.stdout  # A, A (old), B, E

        # watch: observes and reports, never warms nor generates
        watcher = WatchProcess("watch", specs, "--read-only", env=env)
        watcher.wait_for(r"initial walk done: 5 spec")
        watcher.wait_for(r"watching ")
        watcher.wait_for(rf"ecommerce-api-spec-human\.md: IR on disk \({keys['b']}\) but not in Redis: read-only")
        watcher.wait_for(rf"inventory-spec\.md: IR not cached \({keys['c']}\): missing \(read-only")
        paths["a"].write_text(paths["a"].read_text() + A_EDIT)
        new_key = cache_key(paths["a"].read_text(), str(paths["a"]))
        watcher.wait_for(rf"petstore-spec\.md: IR not cached \({new_key}\): missing \(read-only, not generated\)")
        assert watcher.stop(signal.SIGINT) == 0, "\n".join(watcher.lines)
        text = "\n".join(watcher.lines)
        assert "stopped: 5 specs known; 0 warmed, 0 generated, 0 errors" in text, text
        assert "warmed Redis" not in text and "generating its IR" not in text, text
        assert "Traceback" not in text and "ERROR" not in text, text
    finally:
        if watcher is not None:
            watcher.kill()
        report = watch.stop()
    assert_no_writes(report)
    assert_unchanged(before, snapshot(world))


# -- 3. the dashboard (pilot) ----------------------------------------------------------------------------
def _state(app, path: Path) -> tuple[str, str] | None:
    status = app.specs_pane.statuses.get(str(path.resolve()))
    return (status.cache_key, status.state.value) if status is not None else None


def _log_text(app) -> str:
    return "\n".join(line.text for line in app.query_one(LogPane).lines)


@pytest.mark.slow
async def test_read_only_dashboard_observes_specs_and_changes_nothing(world):
    keys, paths = world.keys, world.paths
    before = snapshot(world)
    watch = WriteWatch(world.server).start()
    gen = CountingGenerator()
    try:
        cache = IRCache(redis_url=world.server.url, cache_dir=world.cache_dir, read_only=True, generator=gen)
        app = IRCacheApp(Services(cache=cache, spec_dirs=[world.specs], watch=True, poll_interval=0.5))
        async with app.run_test(size=(160, 45)) as pilot:
            await until(pilot, lambda: app.first_page_shown, what="first page")
            await until(pilot, lambda: _state(app, paths["a"]) == (keys["a"], "in redis")
                        and _state(app, paths["b"]) == (keys["b"], "filesystem only")
                        and _state(app, paths["c"]) == (keys["c"], "missing")
                        and _state(app, paths["d"]) == (keys["d"], "in redis")
                        and _state(app, paths["e"]) == (keys["e"], "filesystem only"),
                        what="statuses of A (in redis), B (filesystem only), C (missing)")
            status = static_text(app, "#status")
            assert "READ-ONLY" in status and "live: polling" in status, status
            await until(pilot, lambda: "watching " in _log_text(app) and "initial walk done" in _log_text(app),
                        what="the watcher follows the directory")

            paths["a"].write_text(paths["a"].read_text() + A_EDIT)
            new_key = cache_key(paths["a"].read_text(), str(paths["a"]))
            await until(pilot, lambda: _state(app, paths["a"]) == (new_key, "missing"), what="edited A missing")
            app.tabs.active = "tab-specs"
            await pilot.pause(0.1)
            row = str(paths["a"].resolve())
            assert cell(app, "specs", row, "state") == "missing"
            assert cell(app, "specs", row, "key") == new_key[-8:]
            assert cell(app, "specs", str(paths["c"].resolve()), "state") == "missing"

            # every key that would write: nothing happens, on a Redis key and on a spec
            table = app.query_one("#specs-table")
            table.focus()
            table.move_cursor(row=table.get_row_index(row))
            said: list[str] = []

            async def press_each(keys: str) -> None:
                # one at a time: each key that would write says why it did nothing
                for key in keys:
                    before = {id(n) for n in app._notifications}
                    await pilot.press(key)
                    await pilot.pause(0.05)
                    said.extend(n.message for n in app._notifications if id(n) not in before)

            await press_each("rfFwdtP")
            app.tabs.active = "tab-keys"
            keys_table = app.query_one("#keys-table")
            keys_table.focus()
            await until(pilot, lambda: keys_table.row_count > 0, what="keys shown")
            keys_table.move_cursor(row=0)
            await press_each("dtfFwrP")
            await pilot.pause(1.2)  # two poll rounds: anything those keys started has had time to act
            assert len(app.screen_stack) == 1, app.screen_stack
            assert not isinstance(app.screen, (FlushScreen, PruneScreen))
            assert said and all(t.startswith("Read-only session: ") for t in said), said
            disabled = {t.split(" (")[0].removeprefix("Read-only session: ").removesuffix(" is disabled") for t in said}
            assert disabled == {"regenerate", "flush spec", "flush all", "warm", "prune", "delete", "reset ttl"}, said
            assert _state(app, paths["a"]) == (new_key, "missing")
            assert "READ-ONLY" in static_text(app, "#status")
        assert gen.calls == 0
    finally:
        report = watch.stop()
    admin = world.admin()
    try:
        assert admin.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""
    finally:
        admin.close()
    assert_no_writes(report, expect_reads={"get", "scan", "getrange"})
    assert_unchanged(before, snapshot(world))


def test_read_only_flag_is_accepted_anywhere_on_the_command_line(monkeypatch, tmp_path):
    """--read-only before or after the command, before or after the spec dirs, after --redis-url URL,
    and IR_READ_ONLY=1: each gives read-only settings (the dashboard included)."""
    from ircache_tui.cli.common import settings_from_args
    from ircache_tui.cli.main import _with_default_command, build_parser

    for name in ("IR_READ_ONLY", "REDIS_URL", "IR_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    d = str(tmp_path)
    url = "redis://127.0.0.1:6399/0"

    def parsed(*argv: str):
        args = build_parser().parse_args(_with_default_command(list(argv)))
        return args.command, settings_from_args(args).read_only

    for argv, command in (
        (("--read-only", d), "dashboard"),
        ((d, "--read-only"), "dashboard"),
        (("--redis-url", url, "--read-only"), "dashboard"),
        (("--redis-url", url, "--read-only", d), "dashboard"),
        (("--read-only", "--redis-url", url, d, d), "dashboard"),
        (("dashboard", d, "--read-only"), "dashboard"),
        (("--read-only", "watch", d), "watch"),
        (("watch", d, "--read-only"), "watch"),
        (("get", "spec.md", "--read-only"), "get"),
        (("--read-only", "prune", d, "--dry-run"), "prune"),
        (("flush", "--read-only", "--yes"), "flush"),
    ):
        assert parsed(*argv) == (command, True), argv
    assert parsed(d) == ("dashboard", False)  # the check can fail: no flag, no env, not read-only
    assert parsed("watch", d) == ("watch", False)
    monkeypatch.setenv("IR_READ_ONLY", "1")
    assert parsed(d) == ("dashboard", True)
    assert parsed("stats") == ("stats", True)


@pytest.mark.e2e
def test_read_only_watch_does_not_create_a_missing_cache_dir(world, tmp_path):
    """A read-only watcher (headless, or the dashboard's) pointed at a cache dir that does not exist
    reports every spec as it is and creates nothing: not the cache dir, not its parents."""
    absent = tmp_path / "nowhere" / "cache" / "ir"
    env = cli_env(world.server.url, absent, IR_GENERATOR="offline")
    before = snapshot(world)
    watch = WriteWatch(world.server).start()
    watcher = WatchProcess("--read-only", "watch", str(world.specs), env=env)
    try:
        watcher.wait_for(r"initial walk done: 5 specs: 2 in redis, 3 missing")
        assert watcher.stop(signal.SIGTERM) == 0, "\n".join(watcher.lines)
    finally:
        watcher.kill()
        report = watch.stop()
    assert_no_writes(report, expect_reads={"getrange", "scan"})
    assert_unchanged(before, snapshot(world))
    assert not (tmp_path / "nowhere").exists(), (
        f"the read-only watcher created {sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / 'nowhere').rglob('*'))}")
