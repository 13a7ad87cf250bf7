"""One load process for tests/faults/test_load.py: an IRCache and K tasks looking up specs at random.

    python -m tests.faults.load_worker --redis-url URL --cache-dir DIR --log LOG --out OUT.json \
        [--tasks 4] [--duration 12] [--specs 200] [--delay 0.3] [--ramp 0] [--go-on-stdin]

The process opens an `IRCache(redis_url, cache_dir, generator=CountingGenerator(delay, log))`
(every other setting is the IR_* default), prints `ready` and, with --go-on-stdin, waits for a
line on stdin, so that all the processes of a run start their clock together. Then its tasks
look up `specs/spec-NNN.md` (text: `spec_text(N)`) picked at random until the deadline.
`--ramp S` widens the pool the picks come from linearly over S seconds (spec 0 first, all of
them by S), so that new specs keep being generated through the run rather than all in its
first seconds; 0 picks from every spec from the start.

A lookup that raises is recorded and the task goes on. At the end the summary is written as
JSON to --out (and `done` is printed): lookups, by tier, errors (as strings, with the spec),
the slowest lookup, and a per-second timeline of lookups by tier.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tests` and `ircache_tui` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ircache_tui import IRCache  # noqa: E402
from tests.support.generators import CountingGenerator  # noqa: E402

SPECS = 200
MAX_ERRORS_KEPT = 100


def spec_text(n: int) -> str:
    """Spec number `n`'s markdown: deterministic, different for every n."""
    return f"# Spec {n}\n\n## Entities\n\n### Thing{n}\n- id: uuid (primary key)\n- name: str (required)\n"


def spec_path(n: int) -> str:
    return f"specs/spec-{n:03d}.md"


def spec_name(n: int) -> str:
    return f"spec-{n:03d}"


class Tally:
    def __init__(self, start: float) -> None:
        self.start = start
        self.lookups = 0
        self.by_tier: Counter[str] = Counter()
        self.errors: list[str] = []
        self.error_count = 0
        self.slowest = 0.0
        self.timeline: dict[int, Counter[str]] = {}

    def add(self, tier: str, began: float, ended: float) -> None:
        self.lookups += 1
        self.by_tier[tier] += 1
        self.slowest = max(self.slowest, ended - began)
        self.timeline.setdefault(int(ended - self.start), Counter())[tier] += 1

    def error(self, n: int, exc: BaseException, ended: float) -> None:
        self.error_count += 1
        self.timeline.setdefault(int(ended - self.start), Counter())["error"] += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(f"{spec_name(n)} at {ended - self.start:.2f}s: {exc.__class__.__name__}: {exc}")


async def run(args: argparse.Namespace) -> dict:
    texts = [spec_text(n) for n in range(args.specs)]
    generator = CountingGenerator(delay=args.delay, log_path=args.log)
    async with IRCache(redis_url=args.redis_url, cache_dir=args.cache_dir, generator=generator,
                       lock_poll_interval=args.lock_poll) as cache:
        print("ready", flush=True)
        if args.go_on_stdin:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + args.duration
        tally = Tally(start)
        rng = random.Random(f"{os.getpid()} {time.time_ns()}")

        def pick() -> int:
            if args.ramp <= 0:
                return rng.randrange(args.specs)
            pool = min(args.specs, 1 + int(args.specs * (loop.time() - start) / args.ramp))
            return rng.randrange(pool)

        async def task() -> None:
            while loop.time() < deadline:
                n = pick()
                began = loop.time()
                try:
                    found = await cache.lookup(texts[n], spec_path(n))
                except Exception as exc:  # recorded, and the task goes on
                    tally.error(n, exc, loop.time())
                    await asyncio.sleep(0.01)  # a failing lookup must not spin
                else:
                    tally.add(found.tier, began, loop.time())
                if args.think:
                    await asyncio.sleep(args.think)

        await asyncio.gather(*(task() for _ in range(args.tasks)))
        elapsed = loop.time() - start
    return {
        "pid": os.getpid(),
        "tasks": args.tasks,
        "elapsed": elapsed,
        "lookups": tally.lookups,
        "by_tier": dict(tally.by_tier),
        "generator_calls": generator.calls,
        "errors": tally.errors,
        "error_count": tally.error_count,
        "slowest": tally.slowest,
        "timeline": {str(k): dict(v) for k, v in sorted(tally.timeline.items())},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--redis-url", required=True)
    p.add_argument("--cache-dir", required=True)
    p.add_argument("--log", required=True, help="the CountingGenerator's log: one line per generation")
    p.add_argument("--out", required=True, help="where the JSON summary goes")
    p.add_argument("--tasks", type=int, default=4)
    p.add_argument("--duration", type=float, default=12.0)
    p.add_argument("--specs", type=int, default=SPECS)
    p.add_argument("--delay", type=float, default=0.3, help="seconds each generation takes")
    p.add_argument("--ramp", type=float, default=0.0, help="seconds over which the pool of specs widens to all")
    p.add_argument("--think", type=float, default=0.0, help="seconds each task sleeps between lookups")
    p.add_argument("--lock-poll", type=float, default=0.05, help="the cache's lock_poll_interval")
    p.add_argument("--go-on-stdin", action="store_true", help="after `ready`, wait for a line on stdin")
    args = p.parse_args(argv)
    summary = asyncio.run(run(args))
    tmp = f"{args.out}.tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f)
    os.replace(tmp, args.out)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
