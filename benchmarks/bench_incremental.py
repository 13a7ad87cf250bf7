"""Incremental regeneration against full generation, over scripted edits of the example specs.

    .venv/bin/python benchmarks/bench_incremental.py [--tps 1000] [--first-token 0.1] [--json out.json]

The loopback Messages API (tests/support/messages_api.py) answers the real `anthropic` SDK as an
oracle (tests/support/ir_oracle.py): a full request with the offline generator's IR of the spec in
it (the "expected" IR of that version), a patch request with jsonpatch's diff from the previous IR
in it to that expected IR. It bills tokens by length (len(text) // 4) and answers after
first_token + output_tokens / tps seconds: a model's delay, scaled (the defaults are a tenth of a
real model's ~1 s to its first token and ~100 tokens a second, so a run takes a minute, not ten).

For each of EDITS (added, removed and renamed attributes, endpoints, flow steps and rules, an
entity, a database, and two edits at once, on both example specs), each checked to change the
offline IR:

- incremental: an IRCache (a private redis-server and a temp cache dir) holding the spec's entry
  looks up the edited spec: it is regenerated from a patch;
- full: an IRCache over an empty cache dir looks up the edited spec: a full generation.

Printed side by side: the share of the spec's lines and of the IR's (indented JSON lines) that the
edit changed, output tokens incremental vs full, wall time of the lookup, and whether the
incremental IR equals the full one. Targets: output tokens at most 25% of the full generation's
for edits touching at most 10% of the IR; at least 3x faster; the incremental IR equal to the full
IR for every edit (and the patch path taken: usage.mode "incremental").

Then the fallback run: the same edits with an oracle whose patches do not apply (a failing `test`
op first): every lookup must fall back to a full generation (mode "full", the expected IR) and
every entry left in both tiers must decode as a valid entry. Exits 0 even when a target is missed
(marked MISSED).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from ircache_tui.cache.embedded import EmbeddedRedis  # noqa: E402
from ircache_tui.cache.ircache import IRCache  # noqa: E402
from ircache_tui.ir.envelope import decode_entry  # noqa: E402
from ircache_tui.ir.generators.anthropic import AnthropicGenerator  # noqa: E402
from ircache_tui.ir.generators.offline import parse_spec  # noqa: E402
from ircache_tui.ir.patch import spec_diff  # noqa: E402
from tests.support.ir_oracle import IROracle, expected_ir  # noqa: E402
from tests.support.messages_api import MessagesAPI  # noqa: E402

KEY = "bench-key"
MODEL = "claude-sonnet-5-5"
SPECS = ROOT / "examples" / "specs"
PET, SHOP = "petstore-spec", "ecommerce-api-spec-human"
TOKEN_TARGET = 0.25  # output tokens, incremental over full, for edits touching at most SMALL of the IR
SMALL = 0.10
SPEED_TARGET = 3.0


def swap(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        if old not in text:
            raise ValueError(f"the edit's text is not in the spec: {old!r}")
        return text.replace(old, new, 1)
    return edit


def both(*edits: Callable[[str], str]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        for one in edits:
            text = one(text)
        return text
    return edit


#: (spec, what the edit is, the edit)
EDITS: list[tuple[str, str, Callable[[str], str]]] = [
    (PET, "add attribute Pet.color", swap("- born_at: datetime (optional)\n", "- born_at: datetime (optional)\n- color: string\n")),
    (PET, "remove attribute Pet.born_at", swap("- born_at: datetime (optional)\n", "")),
    (PET, "rename attribute Order.total to amount (and its rule)",
     both(swap("- total: decimal (required)", "- amount: decimal (required)"), swap("- Order.total:", "- Order.amount:"))),
    (PET, "retype attribute Pet.price", swap("- price: decimal (required)", "- price: integer (required)")),
    (PET, "add endpoint DELETE /pets/{id}", swap("- POST /pets - Add a pet (auth)\n", "- POST /pets - Add a pet (auth)\n- DELETE /pets/{id} - Remove a pet (auth)\n")),
    (PET, "remove endpoint GET /orders/{id}", swap("- GET /orders/{id} - Fetch an order (auth)\n", "")),
    (PET, "rename endpoint path /pets/{id} to /pets/{pet_id}", swap("- GET /pets/{id} - Fetch one pet", "- GET /pets/{pet_id} - Fetch one pet")),
    (PET, "add flow step", swap("3. Reserve the pets and create the order as pending\n", "3. Reserve the pets and create the order as pending\n4. Email the customer a confirmation\n")),
    (PET, "remove flow step", swap("2. Compute the total\n", "")),
    (PET, "reword flow step", swap("1. Check every pet is still available", "1. Check that every pet is still for sale")),
    (PET, "add rule Pet.name", swap("## Validation\n", "## Validation\n- Pet.name: must not be empty\n")),
    (PET, "remove rule Customer.email", swap("- Customer.email: must be a valid email format\n", "")),
    (PET, "change a rule's message", swap('"Price must be positive"', '"A pet needs a price above zero"')),
    (PET, "add entity Tag", swap("## Relationships\n", "### Tag\n- id: uuid (primary key)\n- label: string (required)\n\n## Relationships\n")),
    (PET, "two at once: add attribute and endpoint",
     both(swap("| full_name | string | required |\n", "| full_name | string | required |\n| phone | string | optional |\n"),
          swap("- POST /orders - Place an order (auth)\n", "- POST /orders - Place an order (auth)\n- GET /customers/{id} - Fetch a customer (auth)\n"))),
    (SHOP, "add attribute Product.weight", swap("- active: boolean\n", "- active: boolean\n- weight: float\n")),
    (SHOP, "remove attribute Product.active", swap("- active: boolean\n", "")),
    (SHOP, "rename attribute Product.sku to code (and its rule)",
     both(swap("- sku: string (required, unique)", "- code: string (required, unique)"), swap("- Product.sku:", "- Product.code:"))),
    (SHOP, "add endpoint GET /orders/{id}", swap("- POST /orders - Check out a cart (auth)\n", "- POST /orders - Check out a cart (auth)\n- GET /orders/{id} - Fetch an order (auth)\n")),
    (SHOP, "remove endpoint DELETE /products/{id}", swap("- DELETE /products/{id} - Remove a product (auth)\n", "")),
    (SHOP, "add flow step to Restock", swap("2. Reactivate the product when stock is above 0\n", "2. Reactivate the product when stock is above 0\n3. Notify waiting customers\n")),
    (SHOP, "remove flow Restock", swap("### Restock\nTrigger: PATCH /products/{id}\n1. Update stock\n2. Reactivate the product when stock is above 0\n", "")),
    (SHOP, "add rule Order.status", swap("## Validation Rules\n", "## Validation Rules\n- Order.status: must be one of pending, paid, shipped\n")),
    (SHOP, "add a database", lambda text: text + "\n## Infrastructure\nDatabase: MySQL\n"),
    (SHOP, "two at once: add endpoint and rule",
     both(swap("- POST /carts - Create a cart\n", "- POST /carts - Create a cart\n- DELETE /carts/{id} - Drop a cart\n"),
          swap("- Cart.items: must not be empty at checkout\n", "- Cart.items: must not be empty at checkout\n- Order.placed_at: must not be in the future\n"))),
]


@dataclass
class Row:
    spec: str
    edit: str
    spec_changed: float
    ir_changed: float
    incremental_tokens: int
    full_tokens: int
    incremental_s: float
    full_s: float
    mode: str
    equal: bool

    @property
    def token_ratio(self) -> float:
        return self.incremental_tokens / max(self.full_tokens, 1)

    @property
    def speedup(self) -> float:
        return self.full_s / max(self.incremental_s, 1e-9)


def _ir_changed(before: str, after: str, name: str) -> float:
    old = parse_spec(before, name).model_dump_json(indent=2)
    new = parse_spec(after, name).model_dump_json(indent=2)
    return spec_diff(old, new, name).fraction


async def _lookup(api: MessagesAPI, url: str, cache_dir: Path, text: str, path: str) -> tuple[Any, float]:
    """One lookup in an IRCache over `cache_dir` and an empty Redis (each lookup starts from its cache
    dir alone: the incremental one finds the spec's earlier entry there, the full one nothing)."""
    flush = redis.Redis.from_url(url)
    flush.flushall()
    flush.close()
    gen = AnthropicGenerator(base_url=api.base_url, api_key=KEY, model=MODEL, max_retries=0)
    async with IRCache(redis_url=url, cache_dir=cache_dir, ttl=3600, generator=gen) as cache:
        started = time.perf_counter()
        result = await cache.lookup(text, path)
        return result, time.perf_counter() - started


async def run_edit(api: MessagesAPI, url: str, work: Path, n: int, spec: str, what: str,
                   edit: Callable[[str], str]) -> Row:
    name = spec
    before = (SPECS / f"{spec}.md").read_text()
    after = edit(before)
    if expected_ir(after, name) == expected_ir(before, name):
        raise ValueError(f"edit {what!r} does not change the offline IR of {spec}")
    path = f"specs/{name}.md"
    warm, cold = work / f"warm{n}", work / f"cold{n}"
    await _lookup(api, url, warm, before, path)  # the entry the edit starts from (untimed)
    incremental, inc_s = await _lookup(api, url, warm, after, path)
    full, full_s = await _lookup(api, url, cold, after, path)  # no earlier entry: a full generation
    return Row(spec, what, spec_diff(before, after, name).fraction, _ir_changed(before, after, name),
               incremental.entry.usage.output_tokens, full.entry.usage.output_tokens, inc_s, full_s,
               incremental.entry.usage.mode or "?",
               incremental.ir == full.ir and incremental.ir.model_dump(mode="json") == expected_ir(after, name))


async def run_fallbacks(api: MessagesAPI, url: str, work: Path) -> tuple[int, int, int, list[str]]:
    """(edits, fell back to a correct full generation, entries that decode, problems)."""
    fell_back, valid, problems = 0, 0, []
    client = redis.Redis.from_url(url)
    for n, (spec, what, edit) in enumerate(EDITS):
        before = (SPECS / f"{spec}.md").read_text()
        after = edit(before)
        cache_dir = work / f"fallback{n}"
        path = f"specs/{spec}.md"
        await _lookup(api, url, cache_dir, before, path)
        result, _ = await _lookup(api, url, cache_dir, after, path)
        if result.entry.usage.mode == "full" and result.ir.model_dump(mode="json") == expected_ir(after, spec):
            fell_back += 1
        else:
            problems.append(f"{spec}: {what}: mode {result.entry.usage.mode}")
        entries = list(cache_dir.glob("*.json"))  # (Redis holds the edited spec's entry, of this lookup)
        redis_keys = [k for k in client.scan_iter(f"ir_cache:{spec}_*") if re.fullmatch(rb"ir_cache:.+_[0-9a-f]{8}", k)]
        try:
            for raw in [f.read_bytes() for f in entries] + [client.get(k) for k in redis_keys]:
                decode_entry(raw)
            valid += len(entries) == 2
        except Exception as exc:  # noqa: BLE001 - what is reported is the point
            problems.append(f"{spec}: {what}: an invalid entry was cached: {exc}")
    client.close()
    return len(EDITS), fell_back, valid, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tps", type=float, default=1000.0, help="output tokens a second of the oracle (default 1000)")
    parser.add_argument("--first-token", type=float, default=0.1, help="seconds to the first token (default 0.1)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    logging.getLogger("ircache").setLevel(logging.ERROR)  # the fallback run's lines are expected

    work = Path(tempfile.mkdtemp(prefix="ircache-bench-incremental-"))
    server = EmbeddedRedis(work / "redis", extra_args=["--save", ""])
    try:
        url = server.start()
        with MessagesAPI(api_key=KEY) as api:
            api.respond_with(IROracle(tokens_per_second=args.tps, first_token=args.first_token))
            rows = [asyncio.run(run_edit(api, url, work, n, spec, what, edit))
                    for n, (spec, what, edit) in enumerate(EDITS)]
            api.respond_with(IROracle(tokens_per_second=args.tps, first_token=args.first_token, patches="unappliable"))
            total, fell_back, valid, problems = asyncio.run(run_fallbacks(api, url, work))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"Incremental vs full regeneration: {len(rows)} edits, oracle at {args.tps:g} tokens/s after "
          f"{args.first_token:g} s, Python {sys.version.split()[0]}")
    print()
    print("| spec | edit | spec lines | IR lines | output tokens incr / full | ratio | wall incr / full | speedup | mode | equal |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    missed: list[str] = []
    for r in rows:
        small = r.ir_changed <= SMALL
        flags = []
        if small and r.token_ratio > TOKEN_TARGET:
            flags.append("tokens")
        if r.speedup < SPEED_TARGET:
            flags.append("speed")
        if not r.equal or r.mode != "incremental":
            flags.append("equality")
        if flags:
            missed.append(f"{r.spec}: {r.edit} ({', '.join(flags)})")
        mark = " **MISSED**" if flags else ""
        print(f"| {r.spec} | {r.edit}{mark} | {r.spec_changed:.0%} | {r.ir_changed:.0%} | "
              f"{r.incremental_tokens:,} / {r.full_tokens:,} | {r.token_ratio:.0%} | "
              f"{r.incremental_s:.2f} s / {r.full_s:.2f} s | {r.speedup:.1f}x | {r.mode} | {'yes' if r.equal else 'NO'} |")
    small_rows = [r for r in rows if r.ir_changed <= SMALL]
    worst_ratio = max((r.token_ratio for r in small_rows), default=0.0)
    worst_speed = min(r.speedup for r in rows)
    equal = sum(r.equal and r.mode == "incremental" for r in rows)
    print()
    print(f"- output tokens, edits touching at most {SMALL:.0%} of the IR ({len(small_rows)}): worst "
          f"{worst_ratio:.0%} of the full generation's (target at most {TOKEN_TARGET:.0%})")
    print(f"- wall time: slowest speedup {worst_speed:.1f}x (target at least {SPEED_TARGET:g}x)")
    print(f"- incremental IR equal to the full IR: {equal}/{len(rows)} (target all)")
    print(f"- fallback run (patches that do not apply): {fell_back}/{total} fell back to a correct full "
          f"generation, {valid}/{total} left exactly two valid entries and nothing invalid (target all)")
    missed += problems
    if fell_back != total or valid != total:
        missed.append("fallback run")
    if missed:
        print("\nMISSED:\n" + "\n".join(f"- {m}" for m in missed))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "tps": args.tps, "first_token": args.first_token,
            "edits": [{**r.__dict__, "token_ratio": r.token_ratio, "speedup": r.speedup} for r in rows],
            "fallback": {"edits": total, "fell_back": fell_back, "valid": valid, "problems": problems},
            "missed": missed,
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
