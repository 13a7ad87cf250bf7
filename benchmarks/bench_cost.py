"""Generation that costs less: `warm --batch` against sequential standard requests, for 100 specs.

    make bench                                   # or: .venv/bin/python benchmarks/bench_cost.py
    .venv/bin/python benchmarks/bench_cost.py --specs 100 --json out.json

Every request goes through the real `anthropic` SDK to the loopback Messages API of the tests
(tests/support/messages_batches.py: Message Batches, service tiers, prompt-cache accounting that
hashes the marked prefix), which answers each spec with the offline generator's IR for it. Each run
has its own cache dir and its own embedded redis-server (the product's), removed at the end. The
specs are variants of examples/specs (each its own text, so its own key).

Figures:

- Cost: the same specs generated with sequential standard requests (`IRCache.lookup`, one after the
  other) and with one batch (`IRCache.warm_batch`), summed from the stored entries' usage. Both
  with the 1 h prompt cache (a batch's TTL), so both send the same tokens and only the tier differs:
  the batch must cost exactly half, to the micro-dollar.
- Prompt-cache reads: the share of requests 2…N (of the standard run, and of the batch) whose
  marked prefix was read from the cache (target ≥ 95 %).
- Wall time of `warm_batch` of the specs over a loopback that answers a direct request in 2 s and
  ends a batch 2 s after its creation, with IR_BATCH_POLL_INTERVAL = IR_BATCH_POLL_MAX = 0.5 s
  (set small for the run: the default is 10 s doubling to 60 s); baseline: one direct request's time
  on the same loopback, measured, plus the 0.5 s polling interval (target ≤ 1.2× that).

Prints a markdown table; exits 0 even when a target is missed (marked MISSED).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from report import Row, print_table  # noqa: E402  (benchmarks/report.py)
from ircache_tui.cache.ircache import IRCache  # noqa: E402
from ircache_tui.ir.generators.anthropic import AnthropicGenerator  # noqa: E402
from ircache_tui.settings import Settings  # noqa: E402
from tests.support.messages_batches import AnsweringAPI, offline_responder  # noqa: E402

KEY = "bench-loopback-key"
MODEL = "claude-sonnet-4-6"
POLL = 0.5
ANSWER_DELAY = 2.0
READS_TARGET = 95.0
WALL_TARGET = 1.2


def make_specs(root: Path, n: int) -> list[tuple[str, str]]:
    bases = [p.read_text() for p in sorted((ROOT / "examples" / "specs").glob("*.md"))]
    root.mkdir(parents=True)
    specs = []
    for i in range(n):
        path = root / f"bench-spec-{i:03d}.md"
        path.write_text(bases[i % len(bases)] + f"\n\nBench variant {i}.\n")
        specs.append((path.read_text(), str(path)))
    return specs


def cache_for(api: AnsweringAPI, cache_dir: Path, *, cache_ttl: str = "1h") -> IRCache:
    settings = Settings(redis_url=None, cache_dir=cache_dir, batch_poll_interval=POLL, batch_poll_max=POLL)
    generator = AnthropicGenerator(model=MODEL, api_key=KEY, base_url=api.base_url, max_retries=0,
                                   cache_ttl=cache_ttl)  # type: ignore[arg-type]
    return IRCache(settings=settings, generator=generator, count_hits=False)


def dollars(costs: list[float | None]) -> Decimal:
    if any(c is None for c in costs):
        raise RuntimeError("an entry has no cost")
    return sum((Decimal(repr(c)) for c in costs), Decimal(0))


def read_share(answered: list[dict[str, Any]]) -> float:
    later = answered[1:]
    return 100.0 * sum(1 for u in later if u["cache_read_input_tokens"] > 0) / max(1, len(later))


async def standard_run(specs: list[tuple[str, str]], cache_dir: Path) -> tuple[Decimal, float, float]:
    with AnsweringAPI(KEY, responder=offline_responder()) as api:
        async with cache_for(api, cache_dir) as cache:
            t0 = time.perf_counter()
            made = [await cache.lookup(text, path) for text, path in specs]
            seconds = time.perf_counter() - t0
    if {m.tier for m in made} != {"generator"} or len(api.requests) != len(specs):
        raise RuntimeError("the standard run did not generate every spec once")
    return dollars([m.entry.usage.cost_usd if m.entry.usage else None for m in made]), read_share(api.answered), seconds


async def batch_run(specs: list[tuple[str, str]], cache_dir: Path) -> tuple[Decimal, float]:
    with AnsweringAPI(KEY, responder=offline_responder()) as api:
        async with cache_for(api, cache_dir) as cache:
            result = await cache.warm_batch(specs)
            entries = [await cache.lookup(text, path) for text, path in specs]  # Redis hits: no request
    if (len(api.batch_creates), result.succeeded, len(api.requests)) != (1, len(specs), 0):
        raise RuntimeError(f"the batch run did not make every spec in one batch: {result}")
    if {e.entry.usage.service_tier if e.entry.usage else None for e in entries} != {"batch"}:
        raise RuntimeError("an entry of the batch run is not of the batch tier")
    return dollars([e.entry.usage.cost_usd if e.entry.usage else None for e in entries]), read_share(api.answered)


async def wall_run(specs: list[tuple[str, str]], tmp: Path) -> tuple[float, float]:
    """(one direct request's seconds, the batch warm's seconds) over the 2 s loopback."""
    with AnsweringAPI(KEY, responder=offline_responder(), delay=ANSWER_DELAY, batch_delay=ANSWER_DELAY) as api:
        generator = AnthropicGenerator(model=MODEL, api_key=KEY, base_url=api.base_url, max_retries=0)
        t0 = time.perf_counter()
        await generator.generate_with_usage(*specs[0])
        one = time.perf_counter() - t0
        await generator.aclose()
        async with cache_for(api, tmp / "wall") as cache:
            t0 = time.perf_counter()
            result = await cache.warm_batch(specs)
            warm = time.perf_counter() - t0
    if result.succeeded != len(specs):
        raise RuntimeError(f"the timed batch warm did not make every spec: {result}")
    return one, warm


async def run(n: int) -> tuple[list[Row], dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp_name:
        tmp = Path(tmp_name)
        specs = make_specs(tmp / "specs", n)
        standard, standard_reads, standard_s = await standard_run(specs, tmp / "standard")
        batch, batch_reads = await batch_run(specs, tmp / "batch")
        one, warm = await wall_run(specs, tmp)
    ratio = batch / standard
    exact = abs(standard - 2 * batch) < Decimal("0.000001")
    baseline = one + POLL
    rows = [
        Row(f"cost of {n} specs: one batch vs sequential standard requests", float(batch), float(standard), "usd",
            "exactly 0.5× (to the µ$)", exact,
            note=f"ratio {ratio:.9f}; ${batch} vs ${standard}"),
        Row(f"prompt-cache reads, standard requests 2…{n}", standard_reads, None, "%", f"≥ {READS_TARGET:g} %",
            standard_reads >= READS_TARGET),
        Row(f"prompt-cache reads, batch requests 2…{n}", batch_reads, None, "%", f"≥ {READS_TARGET:g} %",
            batch_reads >= READS_TARGET),
        Row(f"wall time, warm --batch of {n} specs (2 s loopback, poll {POLL:g} s)", warm, baseline, "s",
            f"≤ {WALL_TARGET:g}×", warm <= WALL_TARGET * baseline, note=f"one request {one:.3f} s + poll {POLL:g} s"),
    ]
    facts = {"specs": n, "standard_usd": str(standard), "batch_usd": str(batch), "ratio": str(ratio),
             "standard_reads_pct": standard_reads, "batch_reads_pct": batch_reads,
             "standard_sequential_s_no_delay": standard_s, "one_request_s": one, "batch_warm_s": warm,
             "poll_interval_s": POLL, "python": sys.version, "cpus": os.cpu_count()}
    return rows, facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", type=int, default=100, help="specs per run (default 100)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    rows, facts = asyncio.run(run(args.specs))
    print_table(rows)
    missed = [r.figure for r in rows if r.met is False]
    print("All targets met." if not missed else "MISSED targets:\n" + "\n".join(f"  MISSED: {m}" for m in missed))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": [r.__dict__ for r in rows], **facts}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
