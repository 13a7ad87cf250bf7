"""Dashboard at scale: the first page of Redis keys over a 1,000,000-key keyspace.

    .venv/bin/python benchmarks/bench_dashboard.py [--ir-keys 100000 --other-keys 900000]

Measures, in one run against a private redis-server:

- time to first page on screen: the real IRCacheApp (headless, Textual's
  run_test) from start until its key table holds a full page, against a
  baseline that loads every key first (SCAN of the whole keyspace, then the
  same pipelined details for every IR key) and then shows the page;
- Python memory (tracemalloc peak) of showing the first page and paging 20
  times, against the baseline's load-everything, for two keyspace sizes: ours
  must not grow with the keyspace, the baseline does.

Targets: first page < 1 s; our peak memory at 1M keys within 1.5x of ours at
1/10 of the keyspace.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from ircache_tui import IRCache, OfflineGenerator  # noqa: E402
from ircache_tui.cache.browse import KeyBrowser  # noqa: E402
from ircache_tui.cache.embedded import EmbeddedRedis  # noqa: E402
from ircache_tui.cache.keys import KeySpace  # noqa: E402
from ircache_tui.tui.app import IRCacheApp  # noqa: E402
from ircache_tui.tui.services import Services  # noqa: E402

VALUE = (b'{"schema_version":1,"spec_name":"s","spec_hash":"' + b"a" * 64 + b'","spec_path":"s.md",'
         b'"generated_at":"2026-11-26T09:30:00Z","generator":{"name":"offline","model":null},'
         b'"application_ir":{"name":"S","description":"' + b"x" * 600 + b'"}}')


def populate(url: str, ir_keys: int, other_keys: int) -> None:
    client = redis.Redis.from_url(url)
    client.flushall()
    if other_keys:
        client.execute_command("DEBUG", "POPULATE", other_keys, "other", 16)
    pipe = client.pipeline(transaction=False)
    for i in range(ir_keys):
        pipe.set(f"ir_cache:spec{i % 997}_{i:08x}", VALUE, ex=604_800)
        if i % 20_000 == 19_999:
            pipe.execute()
    pipe.execute()
    client.close()


async def first_page_ours(url: str, cache_dir: Path, page_size: int) -> float:
    async with IRCache(redis_url=url, cache_dir=cache_dir, generator=OfflineGenerator()) as cache:
        app = IRCacheApp(Services(cache=cache, page_size=page_size, watch=False, live="poll", poll_interval=3600))
        start = time.perf_counter()
        async with app.run_test(size=(130, 40)) as pilot:
            while len(app.keys_pane.rows) < page_size:
                await pilot.pause(0.005)
            elapsed = time.perf_counter() - start
        return elapsed


async def load_everything(url: str, page_size: int) -> tuple[float, int]:
    """The baseline a naive browser does: every key, then details for every IR key."""
    from ircache_tui.cache.redis import RedisTier

    tier = RedisTier(url, KeySpace(), 604_800)
    start = time.perf_counter()
    all_keys = [k async for k in tier.client.scan_iter(count=1000)]
    parsed = [p for p in map(tier.keys.cache_key_of, all_keys) if p is not None]
    details = []
    for i in range(0, len(parsed), 1000):
        details.extend(await tier.key_details_with_head([p.cache_key for p in parsed[i:i + 1000]], 1024))
    first_page = details[:page_size]
    elapsed = time.perf_counter() - start
    await tier.aclose()
    return elapsed, len(first_page) + len(all_keys) * 0


async def memory_ours(url: str, page_size: int, pages: int) -> int:
    from ircache_tui.cache.redis import RedisTier

    tier = RedisTier(url, KeySpace(), 604_800)
    gc.collect()
    tracemalloc.start()
    browser = KeyBrowser(tier, page_size)
    await browser.first()
    for _ in range(pages):
        if browser.has_next:
            await browser.next()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    await tier.aclose()
    return peak


async def memory_baseline(url: str, page_size: int) -> int:
    gc.collect()
    tracemalloc.start()
    await load_everything(url, page_size)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ir-keys", type=int, default=100_000)
    parser.add_argument("--other-keys", type=int, default=900_000)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ircache-bench-ui-"))
    server = EmbeddedRedis(scratch / "redis", extra_args=["--save", ""])
    url = server.start()
    rows = []
    try:
        small_ir, small_other = args.ir_keys // 10, args.other_keys // 10
        populate(url, small_ir, small_other)
        mem_small = await memory_ours(url, args.page_size, 20)
        base_small = await memory_baseline(url, args.page_size)

        populate(url, args.ir_keys, args.other_keys)
        total = args.ir_keys + args.other_keys
        ours_times = [await first_page_ours(url, scratch / "ir", args.page_size) for _ in range(3)]
        populate(url, args.page_size, 0)
        boot_times = [await first_page_ours(url, scratch / "ir", args.page_size) for _ in range(3)]
        populate(url, args.ir_keys, args.other_keys)
        base_times = [(await load_everything(url, args.page_size))[0] for _ in range(3)]
        mem_big = await memory_ours(url, args.page_size, 20)
        base_big = await memory_baseline(url, args.page_size)
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    ours_t, base_t = sorted(ours_times)[1], sorted(base_times)[1]
    boot_t = sorted(boot_times)[1]
    rows.append((f"app start to a full page, {args.page_size} keys only (reference: Textual boot)",
                 f"{boot_t * 1e3:.0f} ms", "", "", "", True))
    rows.append((f"first page on screen, {total:,} keys (median of 3)", f"{ours_t * 1e3:.0f} ms",
                 f"{base_t * 1e3:.0f} ms", f"{base_t / ours_t:.1f}x faster", "< 1000 ms", ours_t < 1.0))
    growth = mem_big / max(mem_small, 1)
    rows.append((f"peak memory, first page + 20 pages, {total // 10:,} → {total:,} keys",
                 f"{mib(mem_small)} → {mib(mem_big)}", f"{mib(base_small)} → {mib(base_big)}",
                 f"ours x{growth:.2f}, baseline x{base_big / max(base_small, 1):.1f}", "ours ≤ 1.5x", growth <= 1.5))
    print("| figure | ours | baseline (load every key) | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for figure, ours, base, ratio, target, met in rows:
        print(f"| {figure} | {ours} | {base} | {ratio} | {target} | {'yes' if met else 'MISSED'} |")


if __name__ == "__main__":
    asyncio.run(main())
