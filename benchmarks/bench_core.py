"""Core benchmarks: cache hits, flush and stats, each next to a baseline measured in the same run.

    make bench                                   # or: .venv/bin/python benchmarks/bench_core.py
    .venv/bin/python benchmarks/bench_core.py --keys 20000 --json out.json

Everything runs against a private redis-server started for the run with
`ircache_tui.cache.EmbeddedRedis(<temp dir>)` (unix socket, the product's own
configuration, except that RDB snapshots are off so that a background save
cannot fork in the middle of a measurement). The server and the temp dir are
removed at the end.

Figures (ours vs baseline):

- Redis hit: `IRCache.get_application_ir` on a pre-populated key, against the
  floor of a raw `redis.asyncio` GET of the same key plus `json.loads` of the
  same bytes (the same client object, the same event loop). The two are timed
  in alternating blocks so that machine noise hits both alike. Repeated hits
  reuse the entry's decode (the stored bytes are compared, not re-validated);
  "first read" rows empty that memo before every call (untimed), so each call
  parses and validates the whole entry, as a process reading it once does.
- Filesystem hit: `IRCache.get_application_ir` with the Redis key UNLINKed
  before every call (untimed), so it misses Redis, reads the file and warms
  Redis again; against a raw file read plus `json.loads`. Also with the memo
  emptied before every call.
- Flush of `--keys` IR keys, alone (the issue's figure) and then among as many
  unrelated keys (which must survive, and are checked to): wall time and the worst latency that a PING loop in a
  separate process (its own connection, pinging back to back) sees during the
  flush. Ours is `RedisTier.clear_ir_cache()`; the baselines are KEYS + DEL in
  batches, and the seed's SCAN COUNT 100 + DEL of each page.
- Selective flush of one spec (~1/97 of `--keys` IR keys): `RedisTier.clear_ir_cache(spec)`
  against the floor of a plain `SCAN MATCH <exact glob> COUNT 1000` + UNLINK
  loop, same server, alternating which goes first, medians of `--spec-repeats`;
  worst PING as for the flush (target ≤ 1.1× the floor and ≤ 2 ms).
- Stats over the same keyspaces: `RedisTier.get_ir_cache_stats()` (scripted
  steps) against one MEMORY USAGE round trip per key (SCAN COUNT 100 pages,
  not pipelined), and against our unscripted fallback (where EVAL is refused).

It prints a markdown table and exits 0 even when a target is missed; missed
targets are marked MISSED and listed under the table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from report import PingLoop, Row, percentile, print_table  # noqa: E402  (benchmarks/report.py)
from ircache_tui.ir.envelope import ENTRY_HEAD  # noqa: E402



# ---------------------------------------------------------------------------
# The PING loop: a separate process, so that it measures how long Redis makes
# another client wait, not how busy our own event loop is.
# ---------------------------------------------------------------------------
def ping_worker(socket_path: str) -> None:
    """PING back to back on a raw socket; on a stdin line `t0 t1`, report the pings in that window."""
    import threading

    window: list[float] = []
    stop = threading.Event()

    def wait_for_window() -> None:
        line = sys.stdin.readline()  # empty: the parent went away
        window.extend([float(x) for x in line.split()] if line.strip() else [0.0, math.inf])
        stop.set()

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(socket_path)
    starts: list[float] = []
    ends: list[float] = []
    clock = time.perf_counter  # CLOCK_MONOTONIC on Linux: comparable across processes
    threading.Thread(target=wait_for_window, daemon=True).start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while not stop.is_set():
        t0 = clock()
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        reply = s.recv(64)
        while not reply.endswith(b"\r\n"):
            reply += s.recv(64)
        starts.append(t0)
        ends.append(clock())
    s.close()
    lo, hi = window
    lat = [e - b for b, e in zip(starts, ends) if e >= lo and b <= hi]
    lat.sort()
    out = {
        "count": len(lat),
        "max_s": lat[-1] if lat else None,
        "p99_s": percentile(lat, 0.99) if lat else None,
        "p50_s": lat[len(lat) // 2] if lat else None,
    }
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------
# ---------------------------------------------------------------------------
# Specs and IRs
# ---------------------------------------------------------------------------
_ENTITIES = [
    ("Customer", ["email: string (required, unique)", "name: string (required)", "phone: string",
                  "created_at: datetime (required)", "loyalty_points: integer", "active: boolean"]),
    ("Address", ["customer_id: uuid (required)", "line1: string (required)", "line2: string",
                 "city: string (required)", "postcode: string (required)", "country: string (required)"]),
    ("Product", ["sku: string (required, unique)", "name: string (required)", "description: text",
                 "price: float (required)", "stock: integer (required)", "active: boolean"]),
    ("Category", ["name: string (required, unique)", "parent_id: uuid", "slug: string (required, unique)"]),
    ("Cart", ["customer_id: uuid (required)", "items: json", "updated_at: datetime"]),
    ("Order", ["customer_id: uuid (required)", "cart_id: uuid (required)", "placed_at: datetime (required)",
               "status: enum", "total: float (required)", "currency: string (required)"]),
    ("OrderLine", ["order_id: uuid (required)", "product_id: uuid (required)", "quantity: integer (required)",
                   "unit_price: float (required)"]),
    ("Payment", ["order_id: uuid (required)", "amount: float (required)", "provider: string (required)",
                 "status: enum", "captured_at: datetime"]),
    ("Shipment", ["order_id: uuid (required)", "carrier: string (required)", "tracking_code: string",
                  "shipped_at: datetime", "delivered_at: datetime"]),
    ("Review", ["product_id: uuid (required)", "customer_id: uuid (required)", "rating: integer (required)",
                "body: text", "created_at: datetime (required)"]),
]


def generated_spec() -> str:
    """A ten-entity shop spec in the markdown shape the offline generator reads."""
    out = ["# Shop Platform API", "", "Customers, catalogue, orders, payments and shipping for an online shop.",
           "Stored in PostgreSQL.", "", "## Data Model", ""]
    for name, attrs in _ENTITIES:
        out += [f"### {name}", "- id: uuid (primary key)", *[f"- {a}" for a in attrs], ""]
    out += ["## Relationships",
            "- Customer one_to_many Address", "- Customer one_to_many Order", "- Category one_to_many Product",
            "- Order one_to_many OrderLine", "- OrderLine many_to_one Product", "- Order one_to_one Payment",
            "- Order one_to_many Shipment", "- Product one_to_many Review", "- Customer one_to_many Review",
            "- Customer one_to_one Cart", ""]
    out += ["## API"]
    for name, _ in _ENTITIES:
        path = "/" + name.lower() + "s"
        out += [f"- GET {path} - List {name.lower()}s", f"- GET {path}/{{id}} - Get a {name.lower()}",
                f"- POST {path} - Create a {name.lower()} (auth)", f"- PATCH {path}/{{id}} - Update a {name.lower()} (auth)",
                f"- DELETE {path}/{{id}} - Remove a {name.lower()} (auth)"]
    out += ["", "## Business Flows", ""]
    flows = {
        "Checkout": ("POST /orders", ["Load the cart", "Verify stock for every line", "Reserve stock",
                                      "Create the order and its lines", "Request payment", "Empty the cart"]),
        "Capture payment": ("PATCH /payments/{id}", ["Verify the provider callback", "Mark the payment captured",
                                                    "Mark the order paid"]),
        "Ship": ("POST /shipments", ["Pick the lines", "Book the carrier", "Store the tracking code",
                                     "Notify the customer"]),
        "Restock": ("PATCH /products/{id}", ["Update stock", "Reactivate the product when stock is above 0"]),
        "Review": ("POST /reviews", ["Check the customer bought the product", "Store the review",
                                     "Recompute the product rating"]),
    }
    for name, (trigger, steps) in flows.items():
        out += [f"### {name}", f"Trigger: {trigger}", *[f"{i}. {s}" for i, s in enumerate(steps, 1)], ""]
    out += ["## Validation Rules",
            "- Product.price: must be greater than 0", "- Product.sku: must be unique",
            "- Product.stock: must be at least 0 \"Stock cannot be negative\"", "- Customer.email: must be a valid email",
            "- Review.rating: must be between 1 and 5", "- OrderLine.quantity: must be at least 1",
            "- Payment.amount: must equal the order total", "- Cart.items: must not be empty at checkout", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------
# Hits
# ---------------------------------------------------------------------------
async def interleaved(ours, floor, iterations: int, warmup: int, block: int = 100, *, setup=None,
                      blocks: list[float] | None = None) -> tuple[list[float], list[float]]:
    """Time `ours()` and `floor()` in alternating blocks (alternating which goes first), with an
    untimed `setup()` before every call of `ours` when given. With `blocks`, each block pair's
    p50 ratio (ours / floor) is appended to it: a ratio of neighbours, which a machine that gets
    busier or quieter during the run moves far less than one ratio of the two whole runs."""
    clock = time.perf_counter

    async def timed_ours() -> float:
        if setup is not None:
            await setup()
        t0 = clock()
        await ours()
        return clock() - t0

    async def timed_floor() -> float:
        t0 = clock()
        await floor()
        return clock() - t0

    for _ in range(warmup):
        await timed_ours()
        await timed_floor()
    a: list[float] = []
    b: list[float] = []
    done = 0
    flip = False
    while done < iterations:
        n = min(block, iterations - done)
        got: dict[str, list[float]] = {"ours": [], "floor": []}
        order = [("floor", timed_floor), ("ours", timed_ours)] if flip else [("ours", timed_ours), ("floor", timed_floor)]
        for name, fn in order:
            for _ in range(n):
                got[name].append(await fn())
        a += got["ours"]
        b += got["floor"]
        if blocks is not None:
            blocks.append(statistics.median(got["ours"]) / statistics.median(got["floor"]))
        flip = not flip
        done += n
    a.sort()
    b.sort()
    return a, b


async def interleaved_with_setup(ours, floor, setup, iterations: int, warmup: int, block: int = 100,
                                 blocks: list[float] | None = None):
    """Like `interleaved`, with an untimed `setup()` before every call of `ours`."""
    return await interleaved(ours, floor, iterations, warmup, block, setup=setup, blocks=blocks)


async def bench_hits(url: str, workdir: Path, iterations: int, warmup: int) -> tuple[list[Row], dict[str, Any]]:
    from ircache_tui.cache import IRCache
    from ircache_tui.cache.keys import cache_key
    from ircache_tui.ir.envelope import StoredEntry
    from ircache_tui.settings import Settings

    rows: list[Row] = []
    info: dict[str, Any] = {}
    specs = {
        "10-entity generated spec": ("shop-platform.md", generated_spec()),
        "examples/specs/ecommerce-api-spec-human.md": (
            "ecommerce-api-spec-human.md",
            (ROOT / "examples/specs/ecommerce-api-spec-human.md").read_text(encoding="utf-8"),
        ),
    }
    settings = Settings(redis_url=url, cache_dir=workdir / "fs", generator="offline")
    async with IRCache(settings=settings) as cache:
        client = cache.redis.client  # the floor uses the very same client object
        for label, (path, text) in specs.items():
            first = await cache.lookup(text, path)
            assert first.tier == "generator", first.tier
            key = cache_key(text, path)
            rkey = cache.keys.redis_key(key)
            raw = await client.get(rkey)
            entities = len(first.ir.domain_model.entities)
            info[label] = {"entry_bytes": len(raw), "entities": entities}
            assert (await cache.lookup(text, path)).tier == "redis"

            async def ours() -> None:
                await cache.get_application_ir(text, path)

            async def floor() -> None:
                json.loads(await client.get(rkey))

            async def forget_decodes() -> None:
                cache.decoded.clear()

            reused = cache.decoded.reused
            a, b = await interleaved(ours, floor, iterations, warmup)
            assert cache.decoded.reused - reused >= iterations, "repeated hits reuse the decode"
            size = f"{len(raw) / 1024:.1f} KB entry, {entities} entities"
            p50_ok = percentile(a, 0.5) <= 0.5e-3 and percentile(a, 0.5) <= 1.25 * percentile(b, 0.5)
            rows.append(Row(f"Redis hit p50 — {label} ({size})", percentile(a, 0.5), percentile(b, 0.5), "ms",
                            "≤ 0.5 ms and ≤ 1.25× floor", p50_ok, "GET + json.loads"))
            rows.append(Row(f"Redis hit p99 — {label}", percentile(a, 0.99), percentile(b, 0.99), "ms",
                            note="GET + json.loads"))
            decoded = cache.decoded.decoded
            a, b = await interleaved_with_setup(ours, floor, forget_decodes, iterations, warmup)
            assert cache.decoded.decoded - decoded >= iterations, "first reads validate every time"
            rows.append(Row(f"Redis hit p50, first read (validated) — {label}", percentile(a, 0.5),
                            percentile(b, 0.5), "ms", note="GET + json.loads"))

            async def validated_floor() -> None:  # the floor that validates too: what a first read must do
                StoredEntry.model_validate_json(await client.get(rkey))

            pairs: list[float] = []
            a, b = await interleaved_with_setup(ours, validated_floor, forget_decodes, iterations, warmup, blocks=pairs)
            ratio = statistics.median(pairs)
            rows.append(Row(f"Redis hit p50, first read, beside a validating floor — {label}", percentile(a, 0.5),
                            percentile(b, 0.5), "ms", "≤ 1.05× floor (median of block ratios)", ratio <= 1.05,
                            f"GET + StoredEntry.model_validate_json; block ratio {ratio:.3f}"))

            # Filesystem hit: the Redis key is gone before every call (untimed).
            file_path = cache.fs.path_for(key)
            assert file_path.is_file()

            async def drop_redis_key() -> None:
                await client.unlink(rkey)

            async def fs_floor() -> None:
                json.loads(file_path.read_bytes())

            await drop_redis_key()
            assert (await cache.lookup(text, path)).tier == "filesystem"
            a, b = await interleaved_with_setup(ours, fs_floor, drop_redis_key, iterations, warmup)
            assert await client.exists(rkey), "a filesystem hit warms Redis"
            rows.append(Row(f"Filesystem hit p50 — {label}", percentile(a, 0.5), percentile(b, 0.5), "ms",
                            "≤ 1 ms", percentile(a, 0.5) <= 1e-3, "read + json.loads"))
            rows.append(Row(f"Filesystem hit p99 — {label}", percentile(a, 0.99), percentile(b, 0.99), "ms",
                            note="read + json.loads"))

            async def drop_redis_key_and_decodes() -> None:
                await drop_redis_key()
                await forget_decodes()

            a, b = await interleaved_with_setup(ours, fs_floor, drop_redis_key_and_decodes, iterations, warmup)
            rows.append(Row(f"Filesystem hit p50, first read (validated) — {label}", percentile(a, 0.5),
                            percentile(b, 0.5), "ms", "≤ 1 ms", percentile(a, 0.5) <= 1e-3, "read + json.loads"))
    return rows, info


async def bench_hit_counting(url: str, workdir: Path, iterations: int, warmup: int) -> list[Row]:
    """A Redis hit with hits counted (cache/hits.py: memory only, flushed every second here) beside
    the same hit uncounted: on one cache (the same client, connection and entry), whose counter is
    switched on and off before each call (`events.tally`, what `count_hits=False` leaves unset), so
    that the two differ by the counting alone; and beside a second cache opened with
    `count_hits=False` (two clients: that ratio carries their difference too)."""
    from ircache_tui.cache import IRCache
    from ircache_tui.settings import Settings

    text, path = generated_spec(), "shop-platform.md"
    settings = Settings(redis_url=url, cache_dir=workdir / "fs-counting", generator="offline")
    async with IRCache(settings=settings, hit_flush_interval=1.0) as on, \
            IRCache(settings=settings, count_hits=False) as off:
        await on.lookup(text, path)
        assert (await off.lookup(text, path)).tier == "redis" and off.hits is None and on.hits is not None
        record = on.hits.record
        before = (await on.hit_totals()).redis

        async def counted() -> None:
            on.events.tally = record
            await on.get_application_ir(text, path)

        async def uncounted() -> None:
            on.events.tally = None
            await on.get_application_ir(text, path)

        def nothing(*_: object) -> None:
            pass

        async def told_nobody() -> None:  # the control: a counter that does nothing
            on.events.tally = nothing
            await on.get_application_ir(text, path)

        async def other_cache() -> None:
            await off.get_application_ir(text, path)

        pairs: list[float] = []
        a, b = await interleaved(counted, uncounted, iterations, warmup, blocks=pairs)
        controls: list[float] = []
        e, f = await interleaved(told_nobody, uncounted, iterations, warmup, blocks=controls)
        instances: list[float] = []
        c, d = await interleaved(counted, other_cache, iterations, warmup, blocks=instances)
        on.events.tally = record
        totals = await on.hit_totals()
        # they were counted (and flushed meanwhile), and only when counting was on
        assert totals.redis - before == 2 * (iterations + warmup), (before, totals)
    ratio = statistics.median(pairs)
    return [Row("Redis hit p50 with hit counting on (flushed every 1 s here)", percentile(a, 0.5),
                percentile(b, 0.5), "ms", "≤ 1.03× counting off (median of block ratios)", ratio <= 1.03,
                f"the same cache, counting off; block ratio {ratio:.3f}"),
            Row("Redis hit p50 with a counter that does nothing (the control: what A/A moves)", percentile(e, 0.5),
                percentile(f, 0.5), "ms", note=f"the same cache, counting off; block ratio {statistics.median(controls):.3f}"),
            Row("Redis hit p50 with hit counting on, beside a second cache", percentile(c, 0.5), percentile(d, 0.5),
                "ms", note=f"a cache opened with count_hits=False; block ratio {statistics.median(instances):.3f}")]


# ---------------------------------------------------------------------------
# Flush and stats
# ---------------------------------------------------------------------------
PREFIX = "ir_cache"
TTL = 604_800


def ir_keys(n: int) -> list[bytes]:
    return [f"{PREFIX}:spec{i % 97}_{i:08x}".encode() for i in range(n)]


def unrelated_keys(n: int) -> list[bytes]:
    """Keys a flush must not touch: locks, look-alikes under the prefix, and other applications' keys.

    Some of them match the SCAN pattern and are turned away only by `keep`
    (a control character in the spec name); ten have a newline in them.
    """
    shapes = [
        lambda i: f"{PREFIX}:spec{i % 97}_{i:08x}:lock",                 # our own locks
        lambda i: f"{PREFIX}:spec{i % 97}_{0xA0000000 + i:08X}",         # upper-case hash: not an IR key
        lambda i: f"{PREFIX}:notes-{i}",                                 # no hash at all
        lambda i: f"{PREFIX}:spec{i % 97}_{i:07x}g",                     # nine-character near miss
        lambda i: f"{PREFIX}:bad\tname{i % 97}_{i:08x}",                 # matches the pattern, keep() says no
        lambda i: f"other_app:session:{i}",                              # another application's keys
        lambda i: f"{PREFIX}x:spec{i % 97}_{i:08x}",                     # a neighbouring prefix
    ]
    keys = [shapes[i % len(shapes)](i).encode() for i in range(n)]
    for i in range(min(10, n)):
        keys[i] = f"{PREFIX}:bad\nname{i}_{i:08x}".encode()              # a newline: keep() says no
    return keys


def _resp(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def populate(socket_path: str, n_ir: int, n_other: int) -> None:
    """FLUSHALL, then `n_ir` IR keys (1–2 KB values, with a TTL) and `n_other` small unrelated keys.

    Raw RESP on a socket of its own, pipelined in chunks: a redis-py pipeline
    would spend most of the benchmark's time filling the database.
    """
    rng = random.Random(42)
    # entries as the cache sees them: the envelope's first bytes (a key of our name holding anything
    # else is another tool's, which a flush keeps), then 1-2 KB
    payloads = [ENTRY_HEAD + os.urandom(rng.randint(1024, 2048)) for _ in range(64)]
    small = [os.urandom(rng.randint(16, 128)) for _ in range(16)]
    ttl = str(TTL).encode()
    commands = [_resp(b"SET", k, payloads[i % 64], b"EX", ttl) for i, k in enumerate(ir_keys(n_ir))]
    commands += [_resp(b"SET", k, small[i % 16]) for i, k in enumerate(unrelated_keys(n_other))]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(socket_path)

        def send(batch: list[bytes], replies: int) -> None:
            s.sendall(b"".join(batch))
            got = b""
            while got.count(b"\r\n") < replies:
                chunk = s.recv(1 << 16)
                if not chunk:
                    raise ConnectionError("redis-server closed the connection")
                got += chunk
            if got.count(b"+OK\r\n") != replies:
                raise RuntimeError(f"populate: unexpected reply {got[:200]!r}")

        send([_resp(b"FLUSHALL")], 1)
        chunk = 5000
        for start in range(0, len(commands), chunk):
            batch = commands[start:start + chunk]
            send(batch, len(batch))
        s.sendall(_resp(b"DBSIZE"))
        reply = s.recv(64)
    if reply != b":%d\r\n" % (n_ir + n_other):
        raise RuntimeError(f"populate: DBSIZE answered {reply!r}, expected {n_ir + n_other}")


async def flush_keys_del(client: Any, pattern: str, keep, batch: int = 1000) -> int:
    """Baseline: KEYS (one blocking command) then DEL in batches."""
    keys = [k for k in await client.keys(pattern) if keep(k)]
    deleted = 0
    for start in range(0, len(keys), batch):
        deleted += await client.delete(*keys[start:start + batch])
    return deleted


async def flush_seed_scan(client: Any, pattern: str, keep) -> int:
    """Baseline: the seed's SCAN COUNT 100, DEL of each page, one page after another."""
    cursor = 0
    deleted = 0
    while True:
        cursor, keys = await client.scan(cursor, match=pattern, count=100)
        keys = [k for k in keys if keep(k)]
        if keys:
            deleted += await client.delete(*keys)
        if cursor == 0:
            return deleted


async def stats_seed(client: Any, pattern: str, keep, limit: int) -> tuple[int, int]:
    """Baseline: SCAN COUNT 100 and one MEMORY USAGE round trip per key, up to `limit` keys."""
    cursor = 0
    count = 0
    total = 0
    while True:
        cursor, keys = await client.scan(cursor, match=pattern, count=100)
        for key in keys:
            if keep(key):
                size = await client.memory_usage(key, samples=0)
                count += 1
                total += size or 0
                if count >= limit:
                    return count, total
        if cursor == 0:
            return count, total


_NOT_WORK = (b"PING", b"CONFIG", b"SLOWLOG", b"INFO", b"DBSIZE", b"EXISTS", b"CLIENT", b"HELLO")


async def server_work(client: Any) -> dict[str, Any]:
    """Since the last reset: Redis's time in the measured commands, and its longest single command.

    INFO commandstats counts a command run from a script both on its own and
    inside EVALSHA, so with scripts only the top-level ones are summed.
    """
    stats = await client.info("commandstats")
    usec = {name.removeprefix("cmdstat_"): int(v["usec"]) for name, v in stats.items()}
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    top = {"evalsha", "eval", "unlink", "del", "keys", "script"} if "evalsha" in usec or "eval" in usec else \
          {"scan", "unlink", "del", "keys", "memory"}
    slow = [e for e in await client.slowlog_get(100_000) if not bytes(e["command"]).upper().startswith(_NOT_WORK)]
    return {
        "server_s": sum(v for k, v in usec.items() if k in top) / 1e6,
        "longest_command_s": max((e["duration"] for e in slow), default=0) / 1e6,
        "calls": {k: calls[k] for k in usec if k in top},
        "usec_per_call": {k: round(usec[k] / calls[k]) for k in usec if k in top and calls[k]},
    }


async def reset_server_stats(client: Any) -> None:
    await client.config_resetstat()
    await client.slowlog_reset()


async def bench_flush_stats(url: str, socket_path: str, n: int, n_other: int, repeats: int,
                            stats_limit: int) -> tuple[list[Row], dict[str, Any], list[str]]:
    from ircache_tui.cache import KeySpace, RedisTier
    from ircache_tui.cache.redis import make_client, sizes

    keyspace = KeySpace(PREFIX)
    tier = RedisTier(url, keyspace, TTL)
    admin = make_client(url, socket_timeout=60)
    baseline_client = make_client(url, socket_timeout=60)  # same type and options as the tier's
    pattern = keyspace.match_pattern()
    keep = keyspace.belongs
    info: dict[str, Any] = {"ir_keys": n, "unrelated_keys": n_other, "repeats": repeats}
    clock = time.perf_counter
    sample = unrelated_keys(n_other)[:: max(1, n_other // 1000)]

    variants = {
        "ours": lambda: tier.clear_ir_cache(),
        "keys_del": lambda: flush_keys_del(baseline_client, pattern, keep),
        "seed_scan100": lambda: flush_seed_scan(baseline_client, pattern, keep),
    }
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in [*variants, "idle"]}
    try:
        await tier.ping()
        await baseline_client.ping()
        # Commands over 0.2 ms go to the SLOWLOG (a PING takes a few µs): the longest one is
        # how long Redis itself kept every other client waiting, without the machine's noise.
        await admin.config_set("slowlog-log-slower-than", 200)
        await admin.config_set("slowlog-max-len", 100_000)

        for _ in range(repeats):
            for name, flush in variants.items():  # interleaved: a, b, c, a, b, c, ...
                populate(socket_path, n, n_other)
                gc.collect()
                await reset_server_stats(admin)
                pinger = PingLoop(__file__, socket_path)
                try:
                    await asyncio.sleep(0.1)
                    t0 = clock()
                    deleted = await flush()
                    t1 = clock()
                    ping = pinger.window(t0, t1)
                finally:
                    pinger.kill()
                work = await server_work(admin)
                remaining = await admin.dbsize()
                survivors = await admin.exists(*sample) if sample else 0
                if deleted != n or remaining != n_other or survivors != len(sample):
                    raise AssertionError(f"{name}: deleted {deleted} of {n}, {remaining} keys left "
                                         f"(expected {n_other}), {survivors}/{len(sample)} sampled survivors")
                runs[name].append({"wall_s": t1 - t0, "worst_ping_s": ping["max_s"], "p99_ping_s": ping["p99_s"],
                                   "pings": ping["count"], "deleted": deleted, "unrelated_left": remaining, **work})
            # The same PING loop with nothing else going on, as long as our flush took: the noise floor.
            pinger = PingLoop(__file__, socket_path)
            try:
                await asyncio.sleep(0.1)
                t0 = clock()
                await asyncio.sleep(runs["ours"][-1]["wall_s"])
                ping = pinger.window(t0, clock())
            finally:
                pinger.kill()
            runs["idle"].append({"worst_ping_s": ping["max_s"], "p99_ping_s": ping["p99_s"], "pings": ping["count"]})
        info["flush_runs"] = runs

        # Stats: ours over everything, the seed's per-key round trips over `stats_limit` keys.
        populate(socket_path, n, n_other)
        stats_ours: list[float] = []
        stats_client: list[float] = []
        stats_work: list[dict[str, Any]] = []
        stats_base: list[float] = []
        limit = min(n, stats_limit)
        result: dict[str, Any] = {}
        for _ in range(repeats):
            gc.collect()
            await reset_server_stats(admin)
            t0 = clock()
            result = await tier.get_ir_cache_stats()
            stats_ours.append(clock() - t0)
            stats_work.append(await server_work(admin))
            t0 = clock()
            client_side = await sizes.scan_sizes(tier.client, keyspace.select(), scripted=False)
            stats_client.append(clock() - t0)
            if client_side.keys != n:
                raise AssertionError(f"client-side stats counted {client_side.keys} IR keys, expected {n}")
            t0 = clock()
            counted, _ = await stats_seed(baseline_client, pattern, keep, limit)
            stats_base.append((clock() - t0) * n / counted)
        if result["total_keys"] != n:
            raise AssertionError(f"stats counted {result['total_keys']} IR keys, expected {n}")
        pipe = admin.pipeline(transaction=False)  # check the sizes against MEMORY USAGE of every key
        for key in ir_keys(n):
            pipe.memory_usage(key, samples=0)
        expected = sum(await pipe.execute())
        if result["total_size_bytes"] != expected or client_side.bytes != expected:
            raise AssertionError(f"stats total {result['total_size_bytes']} bytes, MEMORY USAGE says {expected}")
        info["stats"] = {"ours_s": stats_ours, "client_side_s": stats_client, "baseline_s": stats_base,
                         "baseline_keys_measured": limit, "ours_server": stats_work, "total_size_bytes": result["total_size_bytes"],
                         "specs": len(result["specs"])}
        await admin.flushall()
    finally:
        await tier.aclose()
        await admin.aclose()
        await baseline_client.aclose()

    def med(name: str, field: str) -> float:
        return statistics.median(r[field] for r in runs[name])

    rows: list[Row] = []
    scenario = f"{n:,} IR keys" + (f" among {n_other:,} others" if n_other else " alone")
    labels = {"keys_del": "KEYS + DEL ×1000", "seed_scan100": "seed SCAN 100 + DEL"}
    wall = med("ours", "wall_s")
    for name, label in labels.items():
        rows.append(Row(f"Flush {scenario}: wall", wall, med(name, "wall_s"), "s", "≤ 0.5 s", wall <= 0.5, label))
    floor = med("keys_del", "wall_s")  # issue 19's target: a paged, checked walk within 1.3x one KEYS
    rows.append(Row(f"Flush {scenario}: wall beside KEYS + DEL", wall, floor, "s", "≤ 1.3× KEYS + DEL",
                    wall <= 1.3 * floor, labels["keys_del"]))
    ping = med("ours", "worst_ping_s")
    for name, label in labels.items():
        rows.append(Row(f"Flush {scenario}: worst PING of a concurrent client", ping, med(name, "worst_ping_s"), "ms",
                        "≤ 5 ms", ping <= 5e-3, label))
    rows.append(Row("PING loop alone, no flush (noise floor): worst", med("idle", "worst_ping_s"), None, "ms"))
    for name, label in labels.items():
        rows.append(Row("Flush: longest single Redis command (SLOWLOG)", med("ours", "longest_command_s"),
                        med(name, "longest_command_s"), "ms", note=label))
    stats_wall = statistics.median(stats_ours)
    note = "1 MEMORY USAGE per key" + (f", measured on {limit:,} keys, ×{n / limit:g}" if limit < n else "")
    rows.append(Row(f"Stats over {scenario}", stats_wall, statistics.median(stats_base),
                    "s", "≤ 0.5 s", stats_wall <= 0.5, note))
    rows.append(Row(f"Stats over {scenario}", stats_wall, statistics.median(stats_client),
                    "s", "≤ 0.5 s", stats_wall <= 0.5, "ours unscripted (the fallback)"))

    notes = [
        f"{scenario}: flush, Redis's own time in the flush commands (INFO commandstats, median): ours "
        f"{med('ours', 'server_s'):.3f} s, KEYS + DEL {med('keys_del', 'server_s'):.3f} s, "
        f"seed SCAN 100 + DEL {med('seed_scan100', 'server_s'):.3f} s.",
        f"Ours per command (last run): {runs['ours'][-1]['usec_per_call']} µs on average, "
        f"calls {runs['ours'][-1]['calls']}.",
        f"{scenario}: stats, Redis's own time: {statistics.median(w['server_s'] for w in stats_work):.3f} s "
        f"(per command {stats_work[-1]['usec_per_call']} µs, calls {stats_work[-1]['calls']}).",
        "Wall times and PINGs are medians over the runs; each flush ran with a PING loop (a separate "
        "process, back to back on its own connection) and after a fresh FLUSHALL + repopulation.",
    ]
    return rows, info, notes


async def flush_exact_scan(client: Any, pattern: str, keep, count: int = 1000) -> int:
    """Floor of a one-spec flush: `SCAN MATCH <exact glob> COUNT 1000` + UNLINK of each page, in turn."""
    cursor = 0
    deleted = 0
    while True:
        cursor, keys = await client.scan(cursor, match=pattern, count=count)
        keys = [k for k in keys if keep(k)]
        if keys:
            deleted += await client.unlink(*keys)
        if cursor == 0:
            return deleted


async def bench_spec_flush(url: str, socket_path: str, n: int, repeats: int) -> tuple[list[Row], dict[str, Any], list[str]]:
    """A selective flush of one spec among `n` IR keys (97 specs, so ~n/97 keys go), beside the floor loop."""
    from ircache_tui.cache import IRCache, KeySpace, RedisTier
    from ircache_tui.cache.redis import make_client, walk
    from ircache_tui.ir.generators import OfflineGenerator

    spec = "spec0"
    keyspace = KeySpace(PREFIX)
    tier = RedisTier(url, keyspace, TTL)
    # the public call (entries and their hit counts), as a pipeline calls it: Redis only
    cache = IRCache(redis_url=url, cache_dir=Path(tempfile.mkdtemp(prefix="bench-spec-flush-")), prefix=PREFIX,
                    generator=OfflineGenerator(), count_hits=False)

    async def public() -> int:
        return (await cache.clear_cache(redis=True, filesystem=False, spec_name=spec)).redis or 0

    admin = make_client(url, socket_timeout=60)
    baseline_client = make_client(url, socket_timeout=60)
    pattern = keyspace.match_pattern(spec)
    expected = sum(1 for i in range(n) if i % 97 == 0)
    clock = time.perf_counter
    variants = {
        "ours": lambda: tier.clear_ir_cache(spec),
        "public": public,
        "floor": lambda: flush_exact_scan(baseline_client, pattern, lambda k: keyspace.belongs(k, spec)),
    }
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in [*variants, "idle"]}
    try:
        await cache.open()
        await tier.ping()
        await baseline_client.ping()
        await admin.config_set("slowlog-log-slower-than", 200)
        await admin.config_set("slowlog-max-len", 100_000)
        for r in range(repeats):
            order = list(variants.items())
            for name, flush in (order if r % 2 == 0 else order[::-1]):  # alternate which goes first
                populate(socket_path, n, 0)
                gc.collect()
                await reset_server_stats(admin)
                pinger = PingLoop(__file__, socket_path)
                try:
                    await asyncio.sleep(0.1)
                    t0 = clock()
                    deleted = await flush()
                    t1 = clock()
                    ping = pinger.window(t0, t1)
                finally:
                    pinger.kill()
                work = await server_work(admin)
                remaining = await admin.dbsize()
                if deleted != expected or remaining != n - expected:
                    raise AssertionError(f"spec flush {name}: deleted {deleted} of {expected}, {remaining} left")
                runs[name].append({"wall_s": t1 - t0, "worst_ping_s": ping["max_s"], "pings": ping["count"],
                                   "deleted": deleted, **work})
            pinger = PingLoop(__file__, socket_path)
            try:
                await asyncio.sleep(0.1)
                t0 = clock()
                await asyncio.sleep(runs["ours"][-1]["wall_s"])
                ping = pinger.window(t0, clock())
            finally:
                pinger.kill()
            runs["idle"].append({"worst_ping_s": ping["max_s"], "pings": ping["count"]})
        await admin.flushall()
    finally:
        await cache.close()
        await tier.aclose()
        await admin.aclose()
        await baseline_client.aclose()

    def med(name: str, field: str) -> float:
        return statistics.median(r[field] for r in runs[name])

    label = f"Selective flush of one spec ({expected:,} keys) among {n:,} IR keys"
    floor = "`SCAN MATCH <exact glob> COUNT 1000` + UNLINK"
    wall, base = med("ours", "wall_s"), med("floor", "wall_s")
    ping = med("ours", "worst_ping_s")
    rows = [
        Row(f"{label}: wall", wall, base, "s", "≤ 1.1× floor", wall <= 1.1 * base, floor),
        Row(f"{label}: wall of the public IRCache.clear_cache(spec_name=…), hit counts included", med("public", "wall_s"),
            base, "s", "≤ 1.1× floor", med("public", "wall_s") <= 1.1 * base, floor),
        Row(f"{label}: worst PING of a concurrent client", ping, med("floor", "worst_ping_s"), "ms",
            "≤ 2 ms", ping <= 2e-3, floor),
        Row(f"{label}: longest single Redis command (SLOWLOG)", med("ours", "longest_command_s"),
            med("floor", "longest_command_s"), "ms", note=floor),
        Row("PING loop alone, as long as that flush (noise floor): worst", med("idle", "worst_ping_s"), None, "ms"),
    ]
    notes = [f"{label}: SCAN COUNT {walk.SPEC_SCAN_COUNT} (all-IR walks: {walk.SCAN_COUNT}); Redis's own time "
             f"(median) ours {med('ours', 'server_s') * 1e3:.1f} ms, floor {med('floor', 'server_s') * 1e3:.1f} ms; "
             f"ours per command (last run) {runs['ours'][-1]['usec_per_call']} µs, calls {runs['ours'][-1]['calls']}."]
    return rows, {"ir_keys": n, "spec_keys": expected, "runs": runs}, notes


# ---------------------------------------------------------------------------
async def run(args: argparse.Namespace, url: str, socket_path: str, workdir: Path) -> tuple[list[Row], dict[str, Any]]:
    rows: list[Row] = []
    info: dict[str, Any] = {}
    notes: list[str] = []
    if "hits" in args.only:
        r, i = await bench_hits(url, workdir, args.iterations, args.warmup)
        rows += r
        info["hits"] = i
        rows += await bench_hit_counting(url, workdir, args.iterations, args.warmup)
    if "flush" in args.only:
        info["flush_stats"] = []
        for others in (0, args.keys):  # the 100k keys alone, then among as many others
            r, i, n = await bench_flush_stats(url, socket_path, args.keys, others, args.repeats, args.stats_keys)
            rows += r
            notes += n
            info["flush_stats"].append(i)
    if "flush" in args.only or "spec-flush" in args.only:
        r, i, n = await bench_spec_flush(url, socket_path, args.keys, args.spec_repeats)
        rows += r
        notes += n
        info["spec_flush"] = i
    info["notes"] = notes
    return rows, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000, help="IR keys for flush and stats (default 100000)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--iterations", type=int, default=3000, help="timed hits per figure (default 3000)")
    parser.add_argument("--warmup", type=int, default=300, help="untimed hits first (default 300)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each flush/stats variant; medians are shown")
    parser.add_argument("--stats-keys", type=int, default=10_000,
                        help="keys the per-key MEMORY USAGE baseline measures before extrapolating (default 10000)")
    parser.add_argument("--spec-repeats", type=int, default=7,
                        help="runs of each one-spec flush variant (default 7; each is short)")
    parser.add_argument("--only", default="hits,flush",
                        help="comma-separated: hits, flush (flush includes stats and spec-flush), spec-flush")
    parser.add_argument("--notifications", action="store_true",
                        help="turn keyspace notifications on, as a dashboard does (the embedded server starts without)")
    parser.add_argument("--ping-worker", metavar="SOCKET", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ping_worker:
        ping_worker(args.ping_worker)
        return 0
    args.only = set(args.only.split(","))

    from ircache_tui.cache import EmbeddedRedis

    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="ircache-bench-"))
    extra = ["--save", ""]
    if args.notifications:  # as a dashboard leaves the embedded server: every write and delete publishes
        extra += ["--notify-keyspace-events", "Kg$x"]
    server = EmbeddedRedis(workdir, extra_args=extra)
    try:
        url = server.start()
        started = time.perf_counter()
        rows, info = asyncio.run(run(args, url, server.socket_path, workdir))
        elapsed = time.perf_counter() - started
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"ircache-tui core benchmarks — Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"keyspace notifications {'on' if args.notifications else 'off'}, "
          f"{args.keys:,} keys, {args.iterations} hits per figure, medians of {args.repeats} flush/stats runs "
          f"({elapsed:.0f} s; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after)\n")
    print_table(rows)
    missed = list(dict.fromkeys(r.figure for r in rows if r.met is False))  # a figure can have two baselines
    print()
    for note in info.get("notes", []):
        print(f"- {note}")
    print()
    if missed:
        print("MISSED targets:")
        for figure in missed:
            print(f"  MISSED: {figure}")
    else:
        print("All targets met.")
    if args.json:
        payload = {
            "rows": [asdict(r) for r in rows],
            "missed": missed,
            "details": info,
            "python": sys.version,
            "cpus": os.cpu_count(),
            "keys": args.keys,
            "iterations": args.iterations,
            "load_average_before_after": [load_before, os.getloadavg()[0]],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
