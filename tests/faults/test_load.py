"""Load, with real processes and a real redis-server (killed and restarted in one run).

The promise (issue "Faults and hostile input"): 8 processes over 200 specs with a slow
generator, once with Redis up throughout and once with Redis SIGKILLed about a third of the
way in and restarted empty a few seconds later:
- each spec is generated exactly once (the Redis lock keeps it single while Redis is up, the
  per-machine file lock while it is down; all the processes share one cache dir, one machine);
- no lookup raises (one answered by the filesystem or the generator while Redis is down is
  not an error);
- at the end, after one more lookup of every spec (which warms Redis from the filesystem),
  Redis and the filesystem hold the same 200 entries, byte for byte, and nothing else under
  the prefix was touched (1,000 foreign keys are all still there).

CI runs a short version (about 12 s a test, 4 tasks a process); `make soak` (IRCACHE_SOAK=1)
the full one (60 s, 16 tasks a process). Run with `-s` to see the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from ircache_tui import IRCache
from ircache_tui.cache.keys import cache_key
from ircache_tui.settings import Settings
from tests.faults.load_worker import spec_name, spec_path, spec_text
from tests.support.generators import CountingGenerator
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
SOAK = os.environ.get("IRCACHE_SOAK", "").strip().lower() in ("1", "true", "yes", "on")

PROCESSES = 8
SPECS = 200
DELAY = 0.3  # seconds per generation
DURATION = 60.0 if SOAK else 12.0
TASKS = 16 if SOAK else 4
RAMP = 0.75 * DURATION  # new specs keep coming until three quarters of the way in
KILL_AT = DURATION / 3
DOWN_FOR = 5.0 if SOAK else 3.0
PREFIX = "ir_cache"
FOREIGN = 1000
STARTUP_TIMEOUT = 60.0

pytestmark = [pytest.mark.timeout(DURATION + 120 + (60 if SOAK else 0)), pytest.mark.e2e, pytest.mark.slow]


# -- the pieces --------------------------------------------------------------------------------
def foreign_keys() -> dict[str, bytes | dict[bytes, bytes]]:
    """1,000 keys under the prefix that are not IR keys: other tools' strings, lock-like names,
    spec-like names whose hash part is not 8 hex digits, hashes."""
    keys: dict[str, bytes | dict[bytes, bytes]] = {}
    for i in range(FOREIGN):
        kind = i % 4
        if kind == 0:
            keys[f"{PREFIX}:other:{i}"] = f"other {i}".encode()
        elif kind == 1:
            keys[f"{PREFIX}:x_{i}:lock"] = f"pid {i} on elsewhere token{i}".encode()
        elif kind == 2:
            keys[f"{PREFIX}:{spec_name(i % SPECS)}_zz{i:06d}"] = f"not an IR key {i}".encode()
        else:
            keys[f"{PREFIX}:stats:{i}"] = {b"hits": str(i).encode(), b"owner": b"someone else"}
    return keys


def put_foreign(client: redis.Redis) -> None:
    pipe = client.pipeline(transaction=False)
    for key, value in foreign_keys().items():
        if isinstance(value, dict):
            pipe.hset(key, mapping=value)
        else:
            pipe.set(key, value)
    pipe.execute()


def missing_foreign(client: redis.Redis) -> list[str]:
    """The foreign keys that are gone or changed."""
    pipe = client.pipeline(transaction=False)
    items = list(foreign_keys().items())
    for key, value in items:
        pipe.hgetall(key) if isinstance(value, dict) else pipe.get(key)
    return [key for (key, value), got in zip(items, pipe.execute()) if got != value]


def worker_env() -> dict[str, str]:
    """The IR_* defaults: nothing of the caller's IR_*, REDIS_* or ANTHROPIC_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "IR_", "REDIS_"))}


def generation_log(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    return [tuple(line.split(" ", 1)) for line in path.read_text().splitlines() if line]  # type: ignore[misc]


def log_lines(path: Path) -> int:
    return len(generation_log(path))


class Workers:
    """PROCESSES load_worker processes; all killed (SIGKILL) on exit if still running."""

    def __init__(self, tmp: Path, redis_url: str, cache_dir: Path, log: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.outs = [tmp / f"worker-{i}.json" for i in range(PROCESSES)]
        self.errs = [tmp / f"worker-{i}.stderr" for i in range(PROCESSES)]
        self.args = [
            "--redis-url", redis_url, "--cache-dir", str(cache_dir), "--log", str(log),
            "--tasks", str(TASKS), "--duration", str(DURATION), "--specs", str(SPECS),
            "--delay", str(DELAY), "--ramp", str(RAMP), "--go-on-stdin",
        ]

    def __enter__(self) -> "Workers":
        env = worker_env()
        for out, err in zip(self.outs, self.errs):
            with open(err, "wb") as stderr:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "tests.faults.load_worker", *self.args, "--out", str(out)],
                    cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                ))
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            with contextlib.suppress(Exception):
                proc.wait(10)
            for stream in (proc.stdin, proc.stdout):
                with contextlib.suppress(Exception):
                    if stream is not None:
                        stream.close()

    def stderr_tails(self) -> str:
        return "\n".join(f"--- worker {i} stderr:\n{err.read_text()[-1500:]}" for i, err in enumerate(self.errs)
                         if err.exists() and err.read_text().strip())

    def wait_ready(self) -> None:
        """Until every worker printed `ready` (its cache is open)."""
        selector = selectors.DefaultSelector()
        for proc in self.procs:
            assert proc.stdout is not None
            os.set_blocking(proc.stdout.fileno(), False)
            selector.register(proc.stdout, selectors.EVENT_READ, proc)
        seen: dict[int, bytes] = {proc.pid: b"" for proc in self.procs}
        deadline = time.monotonic() + STARTUP_TIMEOUT
        waiting = set(seen)
        while waiting:
            left = deadline - time.monotonic()
            assert left > 0, f"workers not ready after {STARTUP_TIMEOUT:g}s\n{self.stderr_tails()}"
            for key, _ in selector.select(min(left, 1.0)):
                proc = key.data
                chunk = key.fileobj.read() or b""
                seen[proc.pid] += chunk
                if b"ready" in seen[proc.pid]:
                    waiting.discard(proc.pid)
                    selector.unregister(key.fileobj)
                elif not chunk and proc.poll() is not None:
                    raise AssertionError(f"worker {proc.pid} exited ({proc.returncode}) before it was ready\n"
                                         f"{self.stderr_tails()}")
        selector.close()

    def go(self) -> float:
        """Start every worker's clock; returns the time (monotonic) they were told."""
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        return time.monotonic()

    def wait_done(self) -> list[dict]:
        deadline = time.monotonic() + DURATION + 60
        for proc in self.procs:
            try:
                proc.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise AssertionError(f"worker {proc.pid} still running {DURATION + 60:g}s after go\n"
                                     f"{self.stderr_tails()}") from None
        bad = [(p.pid, p.returncode) for p in self.procs if p.returncode != 0]
        assert not bad, f"workers failed (pid, exit status): {bad}\n{self.stderr_tails()}"
        return [json.loads(out.read_text()) for out in self.outs]

    def warnings(self) -> Counter[str]:
        """The distinct warnings the workers logged (numbers and hashes folded), how often."""
        seen: Counter[str] = Counter()
        for err in self.errs:
            for line in err.read_text().splitlines() if err.exists() else []:
                seen[re.sub(r"\d+", "N", re.sub(r"_[0-9a-f]{8}", "_HASH", line))[:200]] += 1
        return seen


async def final_pass(redis_url: str, cache_dir: Path, log: Path) -> Counter[str]:
    """One more lookup of every spec (a filesystem hit warms Redis); how many by tier."""
    generator = CountingGenerator(delay=DELAY, log_path=str(log))
    tiers: Counter[str] = Counter()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=generator,
                       settings=Settings.from_env({})) as cache:
        for n in range(SPECS):
            tiers[(await cache.lookup(spec_text(n), spec_path(n))).tier] += 1
    return tiers


def totals(summaries: list[dict], seconds: range | None = None) -> tuple[int, Counter[str]]:
    """Lookups and lookups by tier (errors too), over the whole run or the given seconds of it."""
    by: Counter[str] = Counter()
    for s in summaries:
        if seconds is None:
            by.update(s["by_tier"])
            by["error"] += s["error_count"]
        else:
            for second, counts in s["timeline"].items():
                if int(second) in seconds:
                    by.update(counts)
    return sum(v for k, v in by.items() if k != "error"), by


def rate(lookups: int, seconds: float) -> str:
    return f"{lookups / seconds:,.0f}/s" if seconds > 0 else "-"


def report(title: str, summaries: list[dict], generations: list[tuple[str, str]], phases: list[tuple[str, range]],
           final: Counter[str], warnings: Counter[str], extra: list[str]) -> None:
    lookups, by = totals(summaries)
    elapsed = max(s["elapsed"] for s in summaries)
    lines = [
        f"\n== load: {title} ({PROCESSES} processes x {TASKS} tasks, {SPECS} specs, generator {DELAY:g}s, "
        f"{elapsed:.1f}s{', SOAK' if SOAK else ''})",
        f"   lookups {lookups:,} = {rate(lookups, elapsed)} overall; by tier: "
        + ", ".join(f"{t} {by[t]:,}" for t in ("redis", "filesystem", "generator")) + f"; errors {by['error']}",
        f"   generations {len(generations)} ({len({s for _, s in generations})} specs, "
        f"by {len({p for p, _ in generations})} processes); slowest lookup "
        f"{max(s['slowest'] for s in summaries):.2f}s",
    ]
    for name, seconds in phases:
        n, b = totals(summaries, seconds)
        lines.append(f"   {name} ([{seconds.start}, {seconds.stop}) s): {rate(n, len(seconds))}; "
                     + ", ".join(f"{t} {b[t]:,}" for t in ("redis", "filesystem", "generator", "error")))
    lines += extra
    lines.append("   final pass by tier: " + ", ".join(f"{t} {final[t]}" for t in ("redis", "filesystem", "generator")))
    if warnings:
        lines.append("   worker stderr (distinct lines, folded): "
                     + "; ".join(f"{n}x {w}" for w, n in warnings.most_common(8)))
    print("\n".join(lines))


def check_end_state(server: RedisServer, cache_dir: Path, log: Path, summaries: list[dict]) -> None:
    generations = generation_log(log)
    per_spec = Counter(spec for _, spec in generations)
    twice = {spec: [pid for pid, s in generations if s == spec] for spec, n in per_spec.items() if n > 1}
    errors = [e for s in summaries for e in s["errors"]]
    error_count = sum(s["error_count"] for s in summaries)
    expected = {cache_key(spec_text(n), spec_path(n)) for n in range(SPECS)}

    # each spec generated exactly once
    assert not twice, f"specs generated more than once (spec: pids that generated it): {twice}"
    assert sorted(per_spec) == sorted(spec_name(n) for n in range(SPECS)), (
        f"generated specs differ from the {SPECS}: missing "
        f"{sorted({spec_name(n) for n in range(SPECS)} - set(per_spec))[:10]}, extra {sorted(set(per_spec) - {spec_name(n) for n in range(SPECS)})[:10]}"
    )
    assert len(generations) == SPECS
    # no errors
    assert error_count == 0, f"{error_count} lookups raised; the first ones: " + "\n".join(errors[:20])

    # Redis and the filesystem agree, byte for byte, on exactly the expected entries
    files = {str(p.relative_to(cache_dir)) for p in cache_dir.rglob("*") if not p.is_dir()}
    wanted = {f"{k}.json" for k in expected}
    assert files == wanted, (f"files in the cache dir: missing {sorted(wanted - files)[:5]}, "
                             f"extra (temp, quarantined, locks...) {sorted(files - wanted)[:5]}")
    client = redis.Redis.from_url(server.url)
    try:
        ir_keys = {k.decode()[len(PREFIX) + 1:] for k in client.scan_iter(f"{PREFIX}:spec-*", count=1000)
                   if re.fullmatch(rf"{PREFIX}:spec-\d{{3}}_[0-9a-f]{{8}}", k.decode())}
        assert ir_keys == expected, (f"IR keys in Redis: missing {sorted(expected - ir_keys)[:5]}, "
                                     f"extra {sorted(ir_keys - expected)[:5]}")
        ordered = sorted(expected)
        stored = client.mget([f"{PREFIX}:{k}" for k in ordered])
        differ = [k for k, raw in zip(ordered, stored) if raw != (cache_dir / f"{k}.json").read_bytes()]
        assert not differ, f"{len(differ)} entries differ between Redis and the filesystem: {differ[:5]}"
        ttls = client.pipeline(transaction=False)
        for k in ordered:
            ttls.ttl(f"{PREFIX}:{k}")
        assert all(t > 0 for t in ttls.execute()), "an IR key without its TTL"
        # nothing else was deleted or changed; no generation lock left behind
        gone = missing_foreign(client)
        assert not gone, f"{len(gone)} of the {FOREIGN} foreign keys are gone or changed: {gone[:10]}"
        left_locks = [k for k in client.scan_iter(f"{PREFIX}:spec-*:lock", count=1000)]
        assert not left_locks, f"generation locks left in Redis: {left_locks[:5]}"
    finally:
        client.close()


# -- the tests ---------------------------------------------------------------------------------
@pytest.fixture
def load(tmp_path):
    server = RedisServer(directory=tmp_path / "redis")
    server.start()
    try:
        yield server, tmp_path / "cache" / "ir", tmp_path / "generations.log"
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)
        server.process = None


def test_load_redis_up(load, tmp_path):
    server, cache_dir, log = load
    client = redis.Redis.from_url(server.url)
    put_foreign(client)
    client.close()
    with Workers(tmp_path, server.url, cache_dir, log) as workers:
        workers.wait_ready()
        workers.go()
        summaries = workers.wait_done()
    final = asyncio.run(final_pass(server.url, cache_dir, log))
    warnings = workers.warnings()
    report("Redis up throughout", summaries, generation_log(log), [], final, warnings, [])
    check_end_state(server, cache_dir, log, summaries)
    assert final["redis"] == SPECS, f"Redis was up throughout, yet the final pass answered {dict(final)}"


def test_load_redis_killed_and_restarted(load, tmp_path):
    server, cache_dir, log = load
    client = redis.Redis.from_url(server.url)
    put_foreign(client)
    client.close()
    with Workers(tmp_path, server.url, cache_dir, log) as workers:
        workers.wait_ready()
        started = workers.go()
        time.sleep(max(0.0, started + KILL_AT - time.monotonic()))
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        killed = time.monotonic() - started
        generated_before = log_lines(log)
        time.sleep(DOWN_FOR)
        generated_while_down = log_lines(log) - generated_before
        server.start()  # the same port, empty (it saves nothing)
        restarted = time.monotonic() - started
        client = redis.Redis.from_url(server.url)
        put_foreign(client)  # the kill took the first ones; these must survive the rest of the run
        client.close()
        summaries = workers.wait_done()
    final = asyncio.run(final_pass(server.url, cache_dir, log))
    warnings = workers.warnings()
    phases = [("before the kill", range(0, int(killed))),
              ("Redis down", range(int(killed) + 1, int(restarted))),
              ("after the restart", range(int(restarted) + 1, int(DURATION)))]
    report("Redis SIGKILLed and restarted empty", summaries, generation_log(log), phases, final, warnings, [
        f"   Redis killed at {killed:.1f}s, restarted at {restarted:.1f}s; generations: {generated_before} before "
        f"the kill, {generated_while_down} while down, {len(generation_log(log)) - generated_before - generated_while_down} after",
    ])
    check_end_state(server, cache_dir, log, summaries)
    # the run did what it is for: specs were generated while Redis was down, and Redis was used
    # again once it was back
    assert generated_while_down > 0, "no spec was generated while Redis was down: the test missed its point"
    _, after = totals(summaries, range(math.ceil(restarted), 10**6))
    assert after["redis"] > 0, f"no Redis hit after the restart: {dict(after)}"
