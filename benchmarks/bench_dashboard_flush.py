"""The dashboard's own flush against the headless one, with keyspace notifications on.

    .venv/bin/python benchmarks/bench_dashboard_flush.py [--keys 50000 --runs 3]

Measures, in one run against a private redis-server with notifications on
(`notify-keyspace-events KEA`, as a dashboard leaves them):

- headless (the baseline): `ircache-tui flush --yes` as a process, start to
  exit, what an operator runs instead of the dashboard;
- dashboard: the real IRCacheApp (headless, Textual's run_test) listening to
  keyspace notifications, from `y` in the flush confirmation until the flush
  has finished and the key pane has reloaded empty;
- for reference, the library call alone (`IRCache.clear_cache()`), without a
  process to start or a screen to draw;
- during the dashboard flush, the most connections the dashboard held
  (CLIENT LIST, sampled every 20 ms).

Runs interleave (headless, dashboard, headless, ...); medians are compared.
Targets: dashboard ≤ 1.5× headless; connections ≤ DASHBOARD_CONNECTIONS.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from report import Row, print_table  # noqa: E402  (benchmarks/report.py)
from ircache_tui import IRCache, OfflineGenerator  # noqa: E402
from ircache_tui.cache.embedded import EmbeddedRedis  # noqa: E402
from ircache_tui.tui.app import IRCacheApp  # noqa: E402
from ircache_tui.tui.screens.flush import FlushScreen  # noqa: E402
from ircache_tui.tui.services import DASHBOARD_CONNECTIONS, Services  # noqa: E402


def populate(url: str, keys: int) -> None:
    client = redis.Redis.from_url(url)
    client.flushall()
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        pipe.set(f"ir_cache:spec{i % 997}_{i:08x}", b'{"schema_version":1}')
        if i % 20_000 == 19_999:
            pipe.execute()
    pipe.execute()
    client.close()


ENTRY_POINT = str(Path(sys.executable).parent / "ircache-tui")


def headless(url: str, cache_dir: Path) -> float:
    start = time.perf_counter()
    subprocess.run([ENTRY_POINT, "flush", "--yes", "--redis-url", url, "--cache-dir", str(cache_dir)],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


async def library(url: str, cache_dir: Path) -> float:
    async with IRCache(redis_url=url, cache_dir=cache_dir, generator=OfflineGenerator()) as cache:
        start = time.perf_counter()
        await cache.clear_cache(redis=True, filesystem=False)
        return time.perf_counter() - start


async def dashboard(url: str, cache_dir: Path) -> tuple[float, int]:
    cache = IRCache(redis_url=url, cache_dir=cache_dir, generator=OfflineGenerator(),
                    max_connections=DASHBOARD_CONNECTIONS)
    app = IRCacheApp(Services(cache=cache, watch=False, stats_interval=3600))
    most = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal most
        probe = redis.Redis.from_url(url)
        while not stop.is_set():
            most = max(most, sum(1 for c in probe.client_list() if c.get("name") == "ircache-tui"))
            stop.wait(0.02)
        probe.close()

    async with app.run_test(size=(130, 40)) as pilot:
        while not (app.first_page_shown and app.keys_pane.live_mode == "notifications"):
            await pilot.pause(0.01)
        await pilot.pause(0.3)  # the listener subscribes
        await pilot.press("F")
        while not isinstance(app.screen, FlushScreen):
            await pilot.pause(0.01)
        sampler = threading.Thread(target=sample)
        sampler.start()
        start = time.perf_counter()
        await pilot.press("y")
        while not any(n.message.startswith("Flushed ") for n in app._notifications) or app.keys_pane.rows:
            await pilot.pause(0.005)
        elapsed = time.perf_counter() - start
        stop.set()
        sampler.join()
    return elapsed, most


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ircache-bench-flush-"))
    server = EmbeddedRedis(scratch / "redis", extra_args=["--save", "", "--notify-keyspace-events", "KEA"])
    url = server.start()
    ours, base, lib, connections = [], [], [], []
    try:
        for _ in range(args.runs):
            populate(url, args.keys)
            base.append(headless(url, scratch / "ir"))
            populate(url, args.keys)
            lib.append(await library(url, scratch / "ir"))
            populate(url, args.keys)
            elapsed, most = await dashboard(url, scratch / "ir")
            ours.append(elapsed)
            connections.append(most)
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    o, b, li = statistics.median(ours), statistics.median(base), statistics.median(lib)
    print_table([
        Row(f"flush {args.keys:,} IR keys, notifications on: dashboard (y to pane empty) vs `ircache-tui flush --yes`",
            o, b, "s", "≤ 1.5×", o <= 1.5 * b),
        Row("the same flush, library call alone (IRCache.clear_cache), for reference", li, None, "s"),
        Row(f"dashboard connections during that flush, most seen (runs: {connections})", None, None, "s",
            f"≤ {DASHBOARD_CONNECTIONS}", max(connections) <= DASHBOARD_CONNECTIONS,
            note=f"{max(connections)} connections"),
    ])


if __name__ == "__main__":
    asyncio.run(main())
