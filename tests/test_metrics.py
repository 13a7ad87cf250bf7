"""Prometheus metrics: CacheMetrics over a real IRCache (real Redis), scraped over real HTTP, and
`ircache-tui watch --metrics-port` as a subprocess of the installed entry point."""

from __future__ import annotations

import asyncio
import errno
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from ircache_tui import IRCache
from ircache_tui.cache.metrics import DURATION_BUCKETS, CacheMetrics
from ircache_tui.cache.metrics_server import FailureReport
from ircache_tui.cache.results import CacheInfo
from ircache_tui.ir.generators import GenerationError, OfflineGenerator
from ircache_tui.ir.usage import Usage
from ircache_tui.settings import Settings, SettingsError
from ircache_tui.watch.metrics import KINDS, WatchCollector
from ircache_tui.watch.status import WatchStats
from tests.conftest import EXAMPLES
from tests.support.cli import ENTRY_POINT, cli_env, run_cli
from tests.support.generators import SPEC, CountingGenerator

PETSTORE = EXAMPLES / "petstore-spec.md"
EXAMPLE_SPECS = sorted(EXAMPLES.glob("*.md"))
COST, SECONDS = 0.0123, 2.5
TOKENS = {"input": 1000, "output": 500, "cache_read": 200, "cache_creation": 100}


class PricedGenerator(OfflineGenerator):
    """The offline generator, reporting fixed usage as an LLM generator would."""

    name = "priced"
    model = "test-model"
    uses_llm = True

    async def generate_with_usage(self, spec_markdown: str, spec_name: str):
        ir = await self.generate(spec_markdown, spec_name)
        return ir, Usage(input_tokens=TOKENS["input"], output_tokens=TOKENS["output"],
                         cache_read_input_tokens=TOKENS["cache_read"],
                         cache_creation_input_tokens=TOKENS["cache_creation"], duration_s=SECONDS, cost_usd=COST)


# -- helpers --------------------------------------------------------------------------------
def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """GET the endpoint and parse it: (sample name, labels) → value."""
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_addresses(port: int) -> list[str]:
    """The local addresses of the LISTEN sockets on `port` (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.append(address)
    return found


LOOPBACK_V4 = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it (little-endian hex)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


# -- the library ------------------------------------------------------------------------------
async def test_lookups_generations_tokens_and_savings_over_http(redis_url, sync_redis, cache_dir):
    spec = PETSTORE.read_text()
    metrics = CacheMetrics()
    with metrics.serve(0) as server:
        assert server.host == "127.0.0.1"
        if Path("/proc/net/tcp").exists():
            assert listening_addresses(server.port) == [LOOPBACK_V4]
        async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=PricedGenerator()) as cache:
            detach = metrics.attach(cache)
            assert (await cache.lookup(spec, str(PETSTORE))).tier == "generator"
            assert (await cache.lookup(spec, str(PETSTORE))).tier == "redis"
            assert (await cache.lookup(spec, str(PETSTORE))).tier == "redis"
            [key] = sync_redis.keys("ir_cache:*")
            sync_redis.delete(key)
            assert (await cache.lookup(spec, str(PETSTORE))).tier == "filesystem"

            got = scrape(server.url)
            assert value(got, "ircache_lookups_total", tier="generator") == 1
            assert value(got, "ircache_lookups_total", tier="redis") == 2
            assert value(got, "ircache_lookups_total", tier="filesystem") == 1
            assert value(got, "ircache_generations_total", generator="priced", outcome="ok") == 1
            assert value(got, "ircache_generations_total", generator="priced", outcome="error") == 0
            h = "ircache_generation_duration_seconds"
            assert value(got, f"{h}_count", generator="priced") == 1
            assert value(got, f"{h}_sum", generator="priced") == pytest.approx(SECONDS)
            assert value(got, f"{h}_bucket", generator="priced", le="1.0") == 0
            assert value(got, f"{h}_bucket", generator="priced", le="2.5") == 1
            assert value(got, f"{h}_bucket", generator="priced", le="300.0") == 1
            for kind, count in TOKENS.items():
                assert value(got, "ircache_tokens_total", kind=kind) == count, kind
            assert value(got, "ircache_generation_cost_usd_total") == pytest.approx(COST)
            # three hits (two in Redis, one on disk) of an entry that cost COST and SECONDS
            assert value(got, "ircache_saved_usd_total", lever="hits") == pytest.approx(3 * COST)
            for lever in ("batch", "prompt_cache", "incremental"):  # every series from 0
                assert value(got, "ircache_saved_usd_total", lever=lever) == 0, lever
            assert value(got, "ircache_saved_seconds_total") == pytest.approx(3 * SECONDS)
            # the gauges come from the stats walk, never from a scrape: none before the first refresh
            assert value(got, "ircache_redis_up") is None
            assert not [k for k in got if k[0] == "ircache_entries"]

            stats = await metrics.refresh(cache)
            assert stats.redis_up and stats.entries == {"redis": 1, "filesystem": 1}
            got = scrape(server.url)
            assert value(got, "ircache_redis_up") == 1
            assert value(got, "ircache_entries", tier="redis") == 1
            assert value(got, "ircache_entries", tier="filesystem") == 1
            sync_redis.flushall()
            assert value(scrape(server.url), "ircache_entries", tier="redis") == 1  # not walked per scrape

            detach()
            await cache.lookup(spec, str(PETSTORE))  # a filesystem hit nobody counts now
            assert value(scrape(server.url), "ircache_lookups_total", tier="filesystem") == 1
    assert refused(server.port)


async def test_a_failed_generation_counts_as_an_error(redis_url, cache_dir):
    metrics = CacheMetrics()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator(fail=True)) as cache:
        metrics.attach(cache)
        with pytest.raises(GenerationError):
            await cache.lookup(SPEC, "shop.md")
    get = metrics.registry.get_sample_value
    assert get("ircache_generations_total", {"generator": "counting", "outcome": "error"}) == 1
    assert get("ircache_generations_total", {"generator": "counting", "outcome": "ok"}) == 0
    assert get("ircache_lookups_total", {"tier": "generator"}) == 1
    assert get("ircache_generation_duration_seconds_count", {"generator": "counting"}) == 0
    assert get("ircache_generation_cost_usd_total") == 0


async def test_redis_down_reads_as_0_and_no_redis_entries(tmp_path, cache_dir):
    cache_dir.mkdir(parents=True)
    (cache_dir / "petstore-spec_0123abcd.json").write_text("{}")  # counted as an entry file, never read
    async with IRCache(redis_url=f"unix://{tmp_path}/no-redis.sock", cache_dir=cache_dir) as cache:
        metrics = CacheMetrics()
        stats = await metrics.refresh(cache)
    assert not stats.redis_up
    get = metrics.registry.get_sample_value
    assert get("ircache_redis_up") == 0
    assert get("ircache_entries", {"tier": "redis"}) is None  # unknown, not 0
    assert get("ircache_entries", {"tier": "filesystem"}) == 1


class SlowStats:
    """Stands in for an IRCache: a stats walk that takes a while, and counts overlaps."""

    def __init__(self) -> None:
        self.running = self.most = self.walks = 0

    async def get_cache_info(self):
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(0.05)
        finally:
            self.running -= 1
        self.walks += 1
        return CacheInfo({"reachable": True, "total_keys": self.walks}, {"file_count": 0})


async def test_refreshes_never_overlap():
    cache = SlowStats()
    metrics = CacheMetrics()
    runner = asyncio.create_task(metrics.run_refresh(cache, interval=0.001))  # type: ignore[arg-type]
    await asyncio.gather(*(metrics.refresh(cache) for _ in range(10)))  # type: ignore[arg-type]
    await asyncio.sleep(0.3)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert cache.most == 1
    assert 3 <= cache.walks < 10  # the ten manual calls shared walks; the loop went on walking
    with pytest.raises(ValueError):
        await metrics.run_refresh(cache, interval=0)  # type: ignore[arg-type]


def test_watch_collector_reads_the_stats_at_scrape_time():
    registry = CollectorRegistry()
    stats = WatchStats()
    unregister = WatchCollector(stats).register(registry)
    assert registry.get_sample_value("ircache_watch_events_total", {"kind": "generated"}) == 0
    stats.events, stats.batches, stats.warmed, stats.rewarmed = 7, 2, 3, 1
    stats.generated, stats.errors, stats.restarts = 4, 1, 1
    stats.checked.update([Path("a.md"), Path("a.md"), Path("b.md")])
    expected = {"file_event": 7, "batch": 2, "check": 3, "warmed": 3, "rewarmed": 1, "generated": 4,
                "error": 1, "restart": 1}
    assert set(expected) == set(KINDS)
    for kind, n in expected.items():
        assert registry.get_sample_value("ircache_watch_events_total", {"kind": kind}) == n, kind
    with pytest.raises(ValueError):  # described, so a second one with the same name is refused
        WatchCollector(stats).register(registry)
    unregister()
    assert registry.get_sample_value("ircache_watch_events_total", {"kind": "check"}) is None


def test_buckets_cover_offline_to_the_generation_deadline():
    assert DURATION_BUCKETS[0] == 0.1 and DURATION_BUCKETS[-1] == 300
    assert list(DURATION_BUCKETS) == sorted(set(DURATION_BUCKETS))


def test_settings_read_and_check_the_metrics_variables():
    s = Settings.from_env({})
    assert s.metrics_port is None and s.metrics_host == "127.0.0.1"
    s = Settings.from_env({"IR_METRICS_PORT": " 9464 ", "IR_METRICS_HOST": "[::1]"})
    assert s.metrics_port == 9464 and s.metrics_host == "::1"
    for env, named in [({"IR_METRICS_PORT": "http"}, "IR_METRICS_PORT"),
                       ({"IR_METRICS_PORT": "65536"}, "IR_METRICS_PORT"),
                       ({"IR_METRICS_PORT": "-1"}, "IR_METRICS_PORT"),
                       ({"IR_METRICS_HOST": "a b"}, "IR_METRICS_HOST"),
                       ({"IR_METRICS_HOST": "[]"}, "IR_METRICS_HOST")]:
        with pytest.raises(SettingsError, match=named):
            Settings.from_env(env)


def test_the_cli_default_refresh_is_the_librarys():
    from ircache_tui.cache.metrics import DEFAULT_REFRESH_INTERVAL
    from ircache_tui.cli.commands import watch

    assert watch.DEFAULT_REFRESH_INTERVAL == DEFAULT_REFRESH_INTERVAL


# -- the real CLI -------------------------------------------------------------------------------
class Watch:
    """`ircache-tui watch ...` running; its stderr read on a thread."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([ENTRY_POINT, "watch", *args], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}; got:\n" + "\n".join(self.lines)) from None
            if line is None:
                raise AssertionError(f"exited ({self.proc.wait()}) before {pattern!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if m := re.search(pattern, line):
                return m

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        code = self.proc.wait(20)
        while (line := self._queue.get(timeout=5)) is not None:
            self.lines.append(line)
        return code, "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_for(url: str, check, what: str, timeout: float = 30.0) -> dict:
    """Scrape until `check(samples)` holds (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        got = scrape(url)
        if check(got):
            return got
        if time.monotonic() > deadline:
            shown = {k: v for k, v in got.items() if k[0].startswith("ircache_")}
            raise AssertionError(f"/metrics never showed {what}; last scrape:\n{shown}")
        time.sleep(0.1)


@pytest.fixture
def busy_port():
    """A port something else listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.e2e
def test_watch_serves_metrics_while_it_watches(redis_url, sync_redis, cache_dir, specs, busy_port):
    port = free_port()
    # the flag wins over IR_METRICS_PORT (a port in use here: it would fail)
    env = cli_env(redis_url, cache_dir, IR_GENERATOR="offline", IR_METRICS_REFRESH="0.2",
                  IR_METRICS_PORT=str(busy_port))
    w = Watch(str(specs), "--debounce-ms", "50", "--metrics-port", str(port), env=env)
    try:
        w.expect(rf"INFO: serving Prometheus metrics at http://127\.0\.0\.1:{port}/metrics")
        url = f"http://127.0.0.1:{port}/metrics"
        n = len(EXAMPLE_SPECS)
        assert n >= 2
        if Path("/proc/net/tcp").exists():
            assert listening_addresses(port) == [LOOPBACK_V4]  # loopback unless asked

        ok = {"generator": "offline", "outcome": "ok"}
        got = wait_for(url, lambda g: value(g, "ircache_generations_total", **ok) == n
                       and value(g, "ircache_entries", tier="redis") == n, f"{n} generations and {n} Redis keys")
        assert value(got, "ircache_redis_up") == 1
        assert value(got, "ircache_entries", tier="filesystem") == n
        assert value(got, "ircache_lookups_total", tier="generator") == n
        assert value(got, "ircache_watch_events_total", kind="generated") == n
        assert value(got, "ircache_watch_events_total", kind="check") >= n
        assert value(got, "ircache_generation_duration_seconds_count", generator="offline") == n
        assert value(got, "process_resident_memory_bytes") is not None
        before = got

        spec = specs / "petstore-spec.md"
        spec.write_text(spec.read_text() + "\n## Notes\n- edited while watching\n")
        # a new version: generated once more; the old key stays (stale) until a prune
        got = wait_for(url, lambda g: value(g, "ircache_generations_total", **ok) == n + 1
                       and value(g, "ircache_entries", tier="redis") == n + 1, "the edited spec generated")
        assert value(got, "ircache_watch_events_total", kind="generated") == n + 1
        for kind in ("file_event", "batch", "check"):
            assert value(got, "ircache_watch_events_total", kind=kind) > \
                value(before, "ircache_watch_events_total", kind=kind), kind
        assert value(got, "ircache_watch_events_total", kind="error") == 0
        assert value(got, "ircache_lookups_total", tier="generator") == n + 1
        assert value(got, "ircache_redis_up") == 1
        assert len(sync_redis.keys("ir_cache:*")) == n + 1

        code, output = w.stop(signal.SIGTERM)
        assert code == 0, output
        assert "Traceback" not in output
    finally:
        w.kill()
    assert refused(port)
    assert listening_addresses(port) == [] if Path("/proc/net/tcp").exists() else True
    with socket.socket() as s:  # released: a new server can take it at once
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_failed_requests_are_said_at_most_once_per_period(ircache_logs):
    report = FailureReport(every=3600)
    for i in range(250):
        report.failed(ConnectionResetError("reset"), f"127.0.0.1:{40000 + i}")
    report.close()
    lines = [r.getMessage() for r in ircache_logs.records if r.name == "ircache.metrics"]
    assert lines == ["metrics server: 1 request failed (the last: ConnectionResetError, from 127.0.0.1:40000); "
                     "at most one such line every 3600 s",
                     "metrics server: 249 requests failed since the last report"], lines
    assert report.total == 250


@pytest.mark.e2e
def test_metrics_host_flag_binds_elsewhere(redis_url, cache_dir, specs):
    port = free_port()
    env = cli_env(redis_url, cache_dir, IR_GENERATOR="offline", IR_METRICS_HOST="127.0.0.1")
    w = Watch(str(specs), "--no-generate", "--metrics-port", str(port), "--metrics-host", "0.0.0.0", env=env)
    try:
        w.expect(rf"serving Prometheus metrics at http://0\.0\.0\.0:{port}/metrics")
        if Path("/proc/net/tcp").exists():
            assert listening_addresses(port) == ["00000000"]
        got = scrape(f"http://127.0.0.1:{port}/metrics")
        assert value(got, "ircache_lookups_total", tier="redis") == 0
        code, output = w.stop(signal.SIGINT)
        assert code == 0, output
    finally:
        w.kill()


@pytest.mark.e2e
def test_a_port_in_use_is_one_line_and_exit_1(redis_url, sync_redis, cache_dir, specs, busy_port):
    env = cli_env(redis_url, cache_dir, IR_GENERATOR="offline")
    out = run_cli("watch", str(specs), "--metrics-port", str(busy_port), env=env)
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"ircache-tui watch: cannot serve metrics on 127.0.0.1:{busy_port}: {os.strerror(errno.EADDRINUSE)}"
    ]
    assert not sync_redis.keys("*") and not cache_dir.exists()  # it failed before opening the cache


@pytest.mark.parametrize("args, env_extra, named", [
    (["--metrics-port", "70000"], {}, "--metrics-port"),
    (["--metrics-port", "http"], {}, "--metrics-port"),
    (["--metrics-host", "0.0.0.0"], {}, "--metrics-host"),
    (["--metrics-refresh", "5"], {}, "--metrics-refresh"),
    (["--metrics-port", "0", "--metrics-refresh", "0"], {}, "--metrics-refresh"),
    ([], {"IR_METRICS_PORT": "http"}, "IR_METRICS_PORT"),
    (["--metrics-port", "0"], {"IR_METRICS_REFRESH": "soon"}, "IR_METRICS_REFRESH"),
], ids=["port-range", "port-word", "host-without-port", "refresh-without-port", "refresh-0", "env-port",
        "env-refresh"])
@pytest.mark.e2e
def test_bad_metrics_options_exit_2(args, env_extra, named, redis_url, cache_dir, specs):
    env = cli_env(redis_url, cache_dir, IR_GENERATOR="offline", **env_extra)
    out = run_cli("watch", str(specs), *args, env=env)
    assert out.returncode == 2, out.stderr
    assert named in out.stderr and "Traceback" not in out.stderr


def test_importing_the_cli_does_not_load_prometheus_client():
    code = "import sys, ircache_tui.cli.main; print('prometheus_client' in sys.modules)"
    out = subprocess.run([str(Path(ENTRY_POINT).parent / "python"), "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "False", out.stderr

