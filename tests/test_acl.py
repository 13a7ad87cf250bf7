"""Least privilege: the README's ACL users work, and a missing rule is named or degrades as documented.

One real redis-server for the module, shared the way a team shares one: every
test starts from 2,000 IR keys of another pipeline under the same prefix, plus
keys that are not IR keys at all, and none of them may be touched or miscounted.
Each test creates its ACL users (unique names) with `ACL SETUSER` through the
default user, and deletes them afterwards.

The CLI runs as a subprocess of the installed entry point; the cross-process
lock is exercised at library level with two IRCache instances (two processes'
worth of connections and single-flight), each with its own cache dir so that
only Redis can hand the IR from one to the other.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from ircache_tui import cache_key
from ircache_tui.cache.ircache import IRCache
from ircache_tui.cache.keys import KeySpace, spec_hash
from tests.support.cli import cli_env, run_cli
from tests.support.generators import SPEC, CountingGenerator
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.server  # ACL rules and the server's refusals

EXAMPLES = Path(__file__).parent.parent / "examples" / "specs"
PASSWORD = "Zq7-acl-test-9Xk"  # long and odd: the CLI scrubs the password from everything it prints
PREFIX = "ir_cache"
KEYSPACE = KeySpace(PREFIX)
FOREIGN_SPECS = 2000

# The README's users, rule for rule (prefix ir_cache, db 0)
RO_RULES = ["+ping", "+get", "+exists", "+scan", "+ttl", "+getrange", "+memory|usage", "+config|get", "+psubscribe"]
RW_RULES = ["+ping", "+get", "+set", "+exists", "+getrange", "+scan", "+unlink", "+memory|usage", "+evalsha",
            "+script|load"]
SCRIPT_RULES = ["+evalsha", "+script|load"]
RW_NO_SCRIPTS_RULES = [r for r in RW_RULES if r not in SCRIPT_RULES] + ["+watch", "+multi", "+exec"]
RW_NO_LOCK_RULES = [r for r in RW_RULES if r not in SCRIPT_RULES]
DASH_RULES = RW_RULES + ["+ttl", "+expire", "+config|get", "+config|set", "+psubscribe", "+pubsub|numpat"]
KEYSPACE_CHANNELS = [f"&__keyspace@0__:{PREFIX}:*"]

PETSTORE = "petstore-spec"
ECOMMERCE = "ecommerce-api-spec-human"

# Lines the CLI writes to stderr that are neither errors nor warnings (progress when piped)
_PROGRESS = re.compile(r"^(caching specs|unlinking keys): \d+(/\d+)?$")
# A rule that grants a whole command family (+script: also SCRIPT FLUSH/KILL; +config: CONFIG SET/REWRITE...)
# where one subcommand is enough. The product must never advise those.
_OVERBROAD = re.compile(r"\+(script|memory|config|client)(?![|\w])")


# -- the shared server ----------------------------------------------------------

@dataclass
class Shared:
    server: RedisServer
    admin: redis.Redis
    foreign_ir: list[bytes]  # another pipeline's IR keys under our prefix
    foreign_other: list[bytes]  # keys under the prefix that are not IR keys, and keys outside it
    users: list[str] = field(default_factory=list)  # ACL users to delete afterwards

    @property
    def foreign(self) -> list[bytes]:
        return self.foreign_ir + self.foreign_other

    def url(self, user: str) -> str:
        return f"redis://{user}:{PASSWORD}@127.0.0.1:{self.server.port}/0"

    def ir_keys(self) -> list[bytes]:
        return [k for k in self.admin.scan_iter(match=f"{PREFIX}:*", count=1000) if KEYSPACE.cache_key_of(k)]

    def ir_bytes(self, keys: list[bytes]) -> int:
        pipe = self.admin.pipeline(transaction=False)
        for k in keys:
            pipe.memory_usage(k, samples=0)
        return sum(pipe.execute())

    def foreign_intact(self) -> bool:
        return self.admin.exists(*self.foreign) == len(self.foreign)


@pytest.fixture(scope="module")
def acl_server():
    with RedisServer() as server:  # notifications off, as on most shared servers
        yield server


@pytest.fixture
def shared(acl_server):
    """The module's server, emptied and seeded with another team's keys; the users made by `make_user` go after."""
    admin = redis.Redis(unix_socket_path=acl_server.socket_path)
    admin.flushall()
    admin.script_flush()  # SCRIPT LOAD by anyone else would hide a refused +script|load
    admin.config_set("notify-keyspace-events", "")
    foreign_ir = []
    pipe = admin.pipeline(transaction=False)
    for i in range(FOREIGN_SPECS):
        spec_name = f"other-team-spec-{i}"
        digest = hashlib.sha256(spec_name.encode()).hexdigest()
        key = f"{PREFIX}:{spec_name}_{digest[:8]}".encode()
        foreign_ir.append(key)
        value = {"schema_version": 1, "spec_name": spec_name, "spec_hash": digest,
                 "generator": {"name": "offline", "model": None},
                 "application_ir": {"name": f"Other {i}", "entities": [], "endpoints": []}}
        pipe.set(key, json.dumps(value, separators=(",", ":")))  # an entry, as the cache spells it
    foreign_other = [f"{PREFIX}:foo".encode(), f"{PREFIX}:other-team-spec-1_ABCDEF12".encode(),
                     f"{PREFIX}:other-team-spec-2_0a1b2c3d:lock".encode(), b"other:x",
                     f"other:{PREFIX}:{PETSTORE}_0a1b2c3d".encode()]
    for key in foreign_other:
        pipe.set(key, b"{}")
    pipe.execute()
    state = Shared(acl_server, admin, foreign_ir, foreign_other)
    yield state
    for name in state.users:
        admin.acl_deluser(name)
    admin.close()


@pytest.fixture
def make_user(shared):
    """make_user(rules, channels=()) → the URL of a new ACL user with exactly these rules."""

    def make(rules: list[str], channels: list[str] = ()) -> str:
        name = f"acl-{uuid.uuid4().hex[:8]}"
        shared.admin.execute_command(
            "ACL", "SETUSER", name, "on", f">{PASSWORD}", "resetkeys", "resetchannels", "-@all",
            *rules, f"~{PREFIX}:*", *channels,
        )
        shared.users.append(name)
        return shared.url(name)

    return make


@pytest.fixture
def specs(tmp_path):
    d = tmp_path / "specs"
    shutil.copytree(EXAMPLES, d)
    return d


def key_of(specs: Path, name: str) -> str:
    path = specs / f"{name}.md"
    return cache_key(path.read_text(), str(path))


# -- what a command printed -------------------------------------------------------

def assert_sane(out: subprocess.CompletedProcess) -> None:
    """Never a traceback, and never advice to grant a whole command family where one subcommand does."""
    assert "Traceback" not in out.stderr, out.stderr
    assert not _OVERBROAD.search(out.stderr + out.stdout), f"advises an over-broad rule:\n{out.stderr}"


def stderr_lines(out: subprocess.CompletedProcess) -> list[str]:
    """stderr without progress lines."""
    return [line for line in out.stderr.splitlines() if line.strip() and not _PROGRESS.match(line)]


def assert_clean(out: subprocess.CompletedProcess) -> None:
    assert_sane(out)
    assert out.returncode == 0, out.stderr
    assert stderr_lines(out) == [], out.stderr


def assert_warns(out: subprocess.CompletedProcess, rule: str) -> None:
    """Exit 0; stderr holds only WARNING lines, and one of them names `rule`."""
    assert_sane(out)
    assert out.returncode == 0, out.stderr
    lines = stderr_lines(out)
    assert lines and all(line.startswith("WARNING: ") for line in lines), out.stderr
    assert any(rule in line for line in lines), f"no WARNING names {rule}:\n{out.stderr}"


def assert_stops(out: subprocess.CompletedProcess, rule: str, command: str) -> None:
    """Exit 1 and exactly one line on stderr naming the refused command and the rule to add."""
    assert_sane(out)
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{out.stderr}\nstdout:\n{out.stdout}"
    assert f"Redis refused {command}" in lines[0] and f"add {rule} " in lines[0], lines[0]


# -- the read-write command set ------------------------------------------------------

RW_COMMANDS = ("get", "get again", "stats", "prune", "warm", "flush")


@dataclass
class RwRun:
    results: dict[str, subprocess.CompletedProcess]
    petstore_key: str
    ecommerce_key: str
    keys_before_warm: list[bytes]  # the IR keys Redis held while stats ran
    bytes_before_warm: int  # and their MEMORY USAGE
    dbsize_before_flush: int
    cache_dir: Path


def run_rw_commands(shared: Shared, url: str, specs: Path, cache_dir: Path) -> RwRun:
    """get (miss), then get again / stats / prune --dry-run side by side (none of them changes a key),
    then warm, then flush of one spec."""
    env = cli_env(url, cache_dir)
    spec = str(specs / f"{PETSTORE}.md")
    results: dict[str, subprocess.CompletedProcess] = {}
    results["get"] = run_cli("get", spec, env=env)
    parallel = {
        "get again": ("get", spec),
        "stats": ("stats", "--json"),
        "prune": ("prune", str(specs), "--dry-run", "--json"),
    }
    with ThreadPoolExecutor(len(parallel)) as pool:
        futures = {name: pool.submit(run_cli, *args, env=env) for name, args in parallel.items()}
        results.update({name: f.result() for name, f in futures.items()})
    keys_before_warm = shared.ir_keys()
    bytes_before_warm = shared.ir_bytes(keys_before_warm)
    results["warm"] = run_cli("warm", str(specs), "--json", env=env)
    dbsize = shared.admin.dbsize()
    results["flush"] = run_cli("flush", PETSTORE, "--yes", "--json", env=env)
    return RwRun(results, key_of(specs, PETSTORE), key_of(specs, ECOMMERCE), keys_before_warm, bytes_before_warm,
                 dbsize, cache_dir)


# The outcome of each command when one rule is missing from the read-write user.
OK = "exit 0, clean stderr, full output"
WARN = "exit 0, WARNING naming the rule"
STOP = "exit 1, one line naming the rule"
NO_SIZE = "exit 0, keys counted, total_size_bytes null"

# rule removed → command → outcome (what the README promises)
EXPECTED: dict[str, dict[str, str]] = {
    "+ping":         {"get": OK,   "get again": OK,   "stats": OK,      "prune": OK,   "warm": STOP, "flush": STOP},
    "+get":          {"get": WARN, "get again": WARN, "stats": OK,      "prune": OK,   "warm": WARN, "flush": OK},
    "+set":          {"get": WARN, "get again": WARN, "stats": OK,      "prune": OK,   "warm": STOP, "flush": OK},
    "+exists":       {"get": OK,   "get again": OK,   "stats": OK,      "prune": OK,   "warm": OK,   "flush": OK},
    # an entry is told from another tool's key by its first bytes: nothing is counted or deleted without it
    "+getrange":     {"get": OK,   "get again": OK,   "stats": STOP,    "prune": STOP, "warm": STOP, "flush": STOP},
    "+scan":         {"get": OK,   "get again": OK,   "stats": STOP,    "prune": STOP, "warm": OK,   "flush": STOP},
    # the lock is released by compare-and-UNLINK: without it a warning says each lock lasts its TTL
    "+unlink":       {"get": WARN, "get again": OK,   "stats": OK,      "prune": OK,   "warm": WARN, "flush": STOP},
    "+memory|usage": {"get": OK,   "get again": OK,   "stats": NO_SIZE, "prune": OK,   "warm": OK,   "flush": OK},
    "+evalsha":      {"get": WARN, "get again": OK,   "stats": OK,      "prune": OK,   "warm": WARN, "flush": OK},
    "+script|load":  {"get": WARN, "get again": OK,   "stats": OK,      "prune": OK,   "warm": WARN, "flush": OK},
}
# The details that differ from a full user's output
GET_AGAIN_TIER = {"+get": "filesystem", "+set": "filesystem"}  # else "redis"
WARM_TIERS = {"+get": {"redis": 0, "filesystem": 1, "generator": 1}}  # else 1 / 0 / 1
FLUSHED = {"+set": 0}  # the IR never reached Redis; else exactly 1
# the command Redis refused, as the one line spells it
REFUSED = {"+ping": "PING", "+set": "SET", "+exists": "EXISTS", "+scan": "SCAN", "+unlink": "UNLINK",
           "+getrange": "GETRANGE"}
NO_LOCK = "no cross-process"


def check_rw_run(shared: Shared, run: RwRun, rule: str | None, expected: dict[str, str]) -> None:
    """Check every command against `expected`; fail once, listing every command that did not match."""
    r = run.results

    def outcome(name: str) -> None:
        out, want = r[name], expected[name]
        if want == OK or want == NO_SIZE:
            assert_clean(out)
        elif want == WARN:
            assert_warns(out, rule)
        else:
            assert_stops(out, rule, REFUSED[rule])

    def get() -> None:  # a miss, generated, and on disk whatever Redis refused
        outcome("get")
        assert r["get"].stdout.splitlines()[0] == f"{run.petstore_key}: from generator"
        assert (run.cache_dir / f"{run.petstore_key}.json").is_file()
        if rule in SCRIPT_RULES:  # no lock, said once
            assert sum(NO_LOCK in line for line in stderr_lines(r["get"])) == 1, r["get"].stderr

    def get_again() -> None:
        outcome("get again")
        tier = GET_AGAIN_TIER.get(rule, "redis")
        assert r["get again"].stdout.splitlines()[0] == f"{run.petstore_key}: from {tier}"

    def stats() -> None:
        outcome("stats")
        if expected["stats"] == STOP:
            return
        info = json.loads(r["stats"].stdout)["redis"]
        ours = {f"{PREFIX}:{run.petstore_key}".encode()} if rule != "+set" else set()
        assert set(run.keys_before_warm) == set(shared.foreign_ir) | ours  # what stats should have seen
        assert info["reachable"] is True
        assert info["total_keys"] == len(run.keys_before_warm)
        assert len(info["specs"]) == len(run.keys_before_warm)
        if expected["stats"] == NO_SIZE:
            assert info["total_size_bytes"] is None
        elif rule in GET_AGAIN_TIER:  # `get again` warmed Redis beside the stats walk: that one key was SET
            # again meanwhile, and a fresh allocation of the same value may differ by an allocator step
            assert abs(info["total_size_bytes"] - run.bytes_before_warm) <= 64 and run.bytes_before_warm > 0
        else:
            assert info["total_size_bytes"] == run.bytes_before_warm > 0

    def prune() -> None:
        outcome("prune")
        if expected["prune"] == STOP:
            return
        found = json.loads(r["prune"].stdout)["found"]
        assert found["redis"]["stale"] == [] and found["filesystem"] == {"stale": [], "orphaned": []}
        assert found["redis"]["orphaned"] == sorted(KEYSPACE.cache_key_of(k).cache_key for k in shared.foreign_ir)

    def warm() -> None:
        outcome("warm")
        if expected["warm"] == STOP:
            return
        data = json.loads(r["warm"].stdout)
        assert data["specs"] == 2 and data["failures"] == []
        assert data["specs_by_tier"] == WARM_TIERS.get(rule, {"redis": 1, "filesystem": 0, "generator": 1})
        if rule in SCRIPT_RULES:  # ecommerce is generated: the lock is wanted, and missing, said once
            assert sum(NO_LOCK in line for line in stderr_lines(r["warm"])) == 1, r["warm"].stderr

    def flush() -> None:
        outcome("flush")
        petstore_rkey = f"{PREFIX}:{run.petstore_key}"
        assert shared.foreign_intact(), "flush touched another pipeline's keys"
        if expected["flush"] == STOP:
            assert shared.admin.dbsize() == run.dbsize_before_flush
            assert shared.admin.exists(petstore_rkey) == 1
        else:
            assert json.loads(r["flush"].stdout) == {"redis": FLUSHED.get(rule, 1), "foreign_kept": 0}
            assert shared.admin.exists(petstore_rkey) == 0
            assert shared.admin.dbsize() == run.dbsize_before_flush - FLUSHED.get(rule, 1)

    problems = []
    for name, check in zip(RW_COMMANDS, (get, get_again, stats, prune, warm, flush)):
        try:
            check()
        except AssertionError as exc:
            text = str(exc).split("\nassert ")[0].strip()
            problems.append(f"[{name}] expected {expected[name]!r}, but: {text[:700]}")
    assert not problems, f"without {rule}:\n" + "\n".join(problems) if rule else "\n".join(problems)


ALL_OK = dict.fromkeys(RW_COMMANDS, OK)


# -- 1. each documented user, end to end ------------------------------------------------

@pytest.mark.parametrize("rules", [RW_RULES, RW_NO_SCRIPTS_RULES], ids=["rw", "rw-no-scripts"])
@pytest.mark.e2e
def test_read_write_user_runs_every_headless_command(shared, make_user, specs, tmp_path, rules):
    url = make_user(rules)
    run = run_rw_commands(shared, url, specs, tmp_path / "cache")
    check_rw_run(shared, run, None, ALL_OK)
    # warm generated the other spec, into Redis and onto disk
    assert shared.admin.exists(f"{PREFIX}:{run.ecommerce_key}") == 1
    assert (run.cache_dir / f"{run.ecommerce_key}.json").is_file()


@pytest.mark.parametrize("rules", [RW_RULES, RW_NO_SCRIPTS_RULES], ids=["rw", "rw-no-scripts"])
@pytest.mark.e2e
def test_get_leaves_no_lock_behind(shared, make_user, specs, tmp_path, rules):
    """A generation's lock is released when it is done: the next process must not wait out its TTL (30 s)."""
    env = cli_env(make_user(rules), tmp_path / "cache")
    out = run_cli("get", str(specs / f"{PETSTORE}.md"), env=env)
    assert_clean(out)
    lock = KEYSPACE.lock_key(key_of(specs, PETSTORE))
    assert shared.admin.exists(lock) == 0, f"{lock} still held, PTTL {shared.admin.pttl(lock)} ms"


@pytest.mark.e2e
def test_read_only_user(shared, make_user, specs, tmp_path):
    ro = make_user(RO_RULES, KEYSPACE_CHANNELS)
    petstore = specs / f"{PETSTORE}.md"
    # cached by someone else (the default user, in process); the ro user has an empty cache dir
    seeded = IRCache(shared.server.unix_url, tmp_path / "seed", generator=CountingGenerator())

    async def seed() -> str:
        async with seeded as cache:
            return (await cache.lookup(petstore.read_text(), str(petstore))).cache_key

    key = asyncio.run(seed())
    env = cli_env(ro, tmp_path / "cache")
    commands = {
        "hit": ("get", str(petstore), "--read-only"),
        "miss": ("get", str(specs / f"{ECOMMERCE}.md"), "--read-only"),
        "stats": ("stats", "--json", "--read-only"),
        "prune": ("prune", str(specs), "--dry-run", "--read-only", "--json"),
    }
    before = shared.admin.dbsize()
    with ThreadPoolExecutor(len(commands)) as pool:
        futures = {name: pool.submit(run_cli, *args, env=env) for name, args in commands.items()}
        r = {name: f.result() for name, f in futures.items()}

    assert_clean(r["hit"])
    assert r["hit"].stdout.splitlines()[0] == f"{key}: from redis"

    miss = r["miss"]
    assert_sane(miss)
    assert miss.returncode == 1 and len(miss.stderr.splitlines()) == 1 and "read-only" in miss.stderr, miss.stderr

    assert_clean(r["stats"])
    info = json.loads(r["stats"].stdout)["redis"]
    ir_keys = shared.ir_keys()
    assert info["total_keys"] == len(ir_keys) == FOREIGN_SPECS + 1
    assert info["total_size_bytes"] == shared.ir_bytes(ir_keys)

    assert_clean(r["prune"])
    found = json.loads(r["prune"].stdout)["found"]
    assert found["redis"]["stale"] == [] and len(found["redis"]["orphaned"]) == FOREIGN_SPECS

    assert shared.admin.dbsize() == before  # read-only: nothing written
    assert not list((tmp_path / "cache").glob("*.json"))


async def test_dashboard_user_live_updates_and_ttl(shared, make_user, tmp_path):
    url = make_user(DASH_RULES, KEYSPACE_CHANNELS)
    async with IRCache(url, tmp_path / "cache", generator=CountingGenerator(), ttl=3600) as cache:
        assert await cache.enable_live_updates() is True  # CONFIG GET, then CONFIG SET
        flags = shared.admin.config_get("notify-keyspace-events")["notify-keyspace-events"]
        assert "K" in flags and all(c in flags or "A" in flags for c in "g$x")

        changes: asyncio.Queue = asyncio.Queue()
        subscribed = asyncio.Event()

        async def listen() -> None:
            async for change in cache.key_changes(on_subscribed=subscribed.set):
                await changes.put(change)

        listener = asyncio.create_task(listen())
        try:
            await asyncio.wait_for(subscribed.wait(), 5)
            found = await cache.lookup(SPEC, "shop.md")
            assert found.tier == "generator"
            change = await asyncio.wait_for(changes.get(), 5)
            assert (change.key.cache_key, change.event) == (found.cache_key, "set")

            rkey = KEYSPACE.redis_key(found.cache_key)
            assert 3500 < shared.admin.ttl(rkey) <= 3600
            assert await cache.reset_ttl(found.cache_key, 120) is True
            assert 100 < shared.admin.ttl(rkey) <= 120
        finally:
            listener.cancel()
            with pytest.raises(asyncio.CancelledError):
                await listener
        restored = await cache.restore_notifications()  # +pubsub|numpat: it may ask whether others listen
    assert restored is not None and restored.restored, restored
    assert shared.admin.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""
    assert shared.foreign_intact()


# -- 2. one rule missing from the read-write user -------------------------------------------

@pytest.mark.parametrize("rule", list(EXPECTED))
@pytest.mark.e2e
def test_read_write_user_missing_one_rule(shared, make_user, specs, tmp_path, rule):
    url = make_user([r for r in RW_RULES if r != rule])
    run = run_rw_commands(shared, url, specs, tmp_path / "cache")
    check_rw_run(shared, run, rule, EXPECTED[rule])


@pytest.mark.e2e
def test_warm_without_set_stops_even_with_nothing_on_disk(shared, make_user, specs, tmp_path):
    """`warm DIR` exists to fill Redis: without +set it stops, whether the IR comes from disk or the generator."""
    url = make_user([r for r in RW_RULES if r != "+set"])
    out = run_cli("warm", str(specs), "--json", env=cli_env(url, tmp_path / "cache"))
    assert_stops(out, "+set", "SET")


# -- 3. the cross-process lock ------------------------------------------------------------

async def two_processes(url: str, tmp_path: Path) -> tuple[list, list[str]]:
    """Both caches miss SPEC at once; returns their lookups and the generator's calls (pid spec per line)."""
    calls = tmp_path / "calls.log"
    caches = [
        IRCache(url, tmp_path / f"cache-{i}", generator=CountingGenerator(delay=3.0, log_path=str(calls)),
                lock_ttl_ms=1000, lock_poll_interval=0.02)
        for i in range(2)
    ]
    async with caches[0] as a, caches[1] as b:
        found = await asyncio.gather(a.lookup(SPEC, "shop.md"), b.lookup(SPEC, "shop.md"))
    return list(found), calls.read_text().splitlines() if calls.exists() else []


LOCK_KEY = KEYSPACE.lock_key(f"shop_{spec_hash(SPEC)[:8]}")


@pytest.mark.parametrize("rules", [RW_RULES, RW_NO_SCRIPTS_RULES], ids=["scripts", "watch-multi-exec"])
@pytest.mark.slow
async def test_one_generation_across_processes(shared, make_user, tmp_path, ircache_logs, rules):
    """The lock outlives its 1 s TTL (extended while the 3 s generation runs) and is released after it."""
    url = make_user(rules)
    found, calls = await two_processes(url, tmp_path)
    assert len(calls) == 1, f"generated {len(calls)} times: the lock did not hold\n{ircache_logs.text}"
    assert sorted(f.tier for f in found) == ["generator", "redis"]
    assert found[0].ir == found[1].ir
    assert shared.admin.exists(LOCK_KEY) == 0
    watch_lines = [r for r in ircache_logs.records if "WATCH/MULTI/EXEC" in r.getMessage()]
    if rules is RW_NO_SCRIPTS_RULES:  # said once per process, at INFO, naming the way
        assert len(watch_lines) == 2 and all(r.levelno == logging.INFO for r in watch_lines)
    else:
        assert watch_lines == []
    assert not [r for r in ircache_logs.records if r.levelno >= logging.WARNING], ircache_logs.text


@pytest.mark.slow
async def test_without_scripts_or_watch_there_is_no_lock_and_a_warning_says_so(shared, make_user, tmp_path, ircache_logs):
    """The documented degraded mode: both processes generate, each warns once, naming the rules to add."""
    url = make_user(RW_NO_LOCK_RULES)
    found, calls = await two_processes(url, tmp_path)
    assert len(calls) == 2
    assert [f.tier for f in found] == ["generator", "generator"] and found[0].ir == found[1].ir
    warnings = [r.getMessage() for r in ircache_logs.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    for message in warnings:
        assert NO_LOCK in message and "+evalsha +script|load" in message and "+watch +multi +exec" in message
    assert shared.admin.exists(LOCK_KEY) == 0


# -- 4. MEMORY refused ------------------------------------------------------------------------

@pytest.mark.e2e
def test_stats_without_memory_counts_keys_and_says_na(shared, make_user, tmp_path):
    url = make_user([r for r in RW_RULES if r != "+memory|usage"])
    env = cli_env(url, tmp_path / "cache")
    with ThreadPoolExecutor(2) as pool:
        as_json, as_text = pool.map(lambda args: run_cli(*args, env=env), [("stats", "--json"), ("stats",)])
    assert_clean(as_json)
    info = json.loads(as_json.stdout)["redis"]
    assert info["total_keys"] == len(shared.ir_keys()) == FOREIGN_SPECS
    assert info["total_size_bytes"] is None
    assert_clean(as_text)
    assert f"IR keys   {FOREIGN_SPECS:,}\n" in as_text.stdout
    memory = [line for line in as_text.stdout.splitlines() if line.strip().startswith("memory")]
    assert len(memory) == 1 and "n/a" in memory[0], as_text.stdout


# -- 6. hit counts (cache/hits.py) ------------------------------------------------------------------
COUNT_RULES = ["+hincrby", "+hincrbyfloat", "+hset", "+hdel", "+hmget", "+hgetall", "+expire"]


async def test_the_read_write_user_works_without_the_count_rules_and_says_so_once(shared, make_user, tmp_path,
                                                                                 ircache_logs):
    url = make_user(RW_RULES)
    async with IRCache(url, tmp_path / "cache", generator=CountingGenerator(), hit_flush_interval=3600) as cache:
        await cache.lookup(SPEC, "shop.md")
        for _ in range(3):
            assert (await cache.lookup(SPEC, "shop.md")).tier == "redis"
        assert await cache.hits.flush() is True  # refused: dropped, not retried forever
        assert cache.hits.enabled is False
        await cache.lookup(SPEC, "shop.md")
    said = [r for r in ircache_logs.records if "Hit counts are not shared" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO and "+hmget" in said[0].getMessage()
    assert not [r for r in ircache_logs.records if r.levelno >= logging.WARNING], ircache_logs.text
    assert not shared.admin.exists(f"{PREFIX}:stats:hits")


async def test_with_the_documented_count_rules_hits_are_shared(shared, make_user, tmp_path, ircache_logs):
    url = make_user(RW_RULES + COUNT_RULES)
    async with IRCache(url, tmp_path / "cache", generator=CountingGenerator()) as cache:
        await cache.lookup(SPEC, "shop.md")
        await cache.lookup(SPEC, "shop.md")
    async with IRCache(url, tmp_path / "cache", generator=CountingGenerator()) as cache:
        totals = await cache.hit_totals()
    assert (totals.generator, totals.redis) == (1, 1)
    assert not [r for r in ircache_logs.records if r.levelno >= logging.WARNING], ircache_logs.text


async def test_the_read_only_user_reads_a_foreign_keys_first_bytes(shared, make_user, tmp_path):
    """The detail's first bytes of a foreign or corrupt value need no rule beyond the documented
    read-only ones (GETRANGE, EXISTS): another type says so, a gone key too."""
    shared.admin.hset(f"{PREFIX}:hashed_0a1b2c3d", mapping={"a": "1"})
    shared.admin.set(f"{PREFIX}:junk_0a1b2c3d", b"{}")
    url = make_user(RO_RULES, KEYSPACE_CHANNELS)
    async with IRCache(url, tmp_path / "cache", generator=CountingGenerator(), read_only=True) as cache:
        raw = await cache.read_raw_head("junk_0a1b2c3d")
        hashed = await cache.read_raw_head("hashed_0a1b2c3d")
        gone = await cache.read_raw_head("gone_0a1b2c3d")
    assert (raw.kind, raw.head, raw.more) == ("string", b"{}", False)
    assert (hashed.kind, gone.kind) == ("other", "none")
