"""One process of the single-flight tests: K tasks looking up every spec, in a shuffled order.

    python -m tests.faults.flight_worker REDIS_URL CACHE_DIR LOG_PATH N_SPECS DELAY SEED

Prints a JSON summary: lookups by tier and every error as a string.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections import Counter

from ircache_tui.cache.ircache import IRCache
from tests.faults.entries import spec_text
from tests.support.generators import CountingGenerator


async def main(url: str, cache_dir: str, log_path: str, n: int, delay: float, seed: int) -> None:
    tiers: Counter[str] = Counter()
    errors: list[str] = []
    async with IRCache(redis_url=url, cache_dir=cache_dir, generator=CountingGenerator(delay, log_path),
                       lock_poll_interval=0.02) as cache:

        async def task(order: list[int]) -> None:
            for i in order:
                try:
                    tiers[(await cache.lookup(spec_text(i), f"specs/spec-{i:03d}.md")).tier] += 1
                except Exception as exc:  # noqa: BLE001 - the summary is the point
                    errors.append(f"{type(exc).__name__}: {exc}")

        rng = random.Random(seed)
        orders = [rng.sample(range(n), n) for _ in range(4)]
        await asyncio.gather(*(task(o) for o in orders))
    print(json.dumps({"tiers": tiers, "errors": errors}))


if __name__ == "__main__":
    url, cache_dir, log_path, n, delay, seed = sys.argv[1:7]
    asyncio.run(main(url, cache_dir, log_path, int(n), float(delay), int(seed)))
