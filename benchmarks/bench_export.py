"""`ircache-tui keys --json` at scale: peak memory at 10,000 and 100,000 entries, beside a SCAN-only baseline.

    .venv/bin/python benchmarks/bench_export.py [--sizes 10000,100000] [--others 10000] [--json out.json]

Against a private redis-server (EmbeddedRedis in a temp dir, RDB snapshots off), for each size:
FLUSHALL, then that many entries (1-2 KB values beginning as the envelope does, with a TTL:
bench_core.populate) among `--others` keys that are not entries (locks, look-alikes, other
applications' keys). Then two child processes, each measured by its own peak RSS (ru_maxrss of
os.wait4 on that child, so nothing else the run started counts):

- ours: `python -m ircache_tui.cli.main keys --json`, its stdout read and counted by this
  process (the child writes to a pipe, as `> /dev/null` or `| jq` would have it write), checked to
  list exactly the entries;
- baseline: a python that imports redis-py, SCANs the same prefix (MATCH {prefix}:*, COUNT 500)
  to its end and discards every key: the least any listing over SCAN must hold.

Target: flat memory. Our peak RSS at the largest size within 1.2x of ours at the smallest (the
baseline's own ratio is printed beside it: what the interpreter and the client alone do).
Prints a markdown table; exits 0 even when the target is missed (marked MISSED).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_core import PREFIX, populate  # noqa: E402  (benchmarks/bench_core.py)

from ircache_tui.cache.embedded import EmbeddedRedis  # noqa: E402

MIB = 1024 * 1024
FLAT = 1.2  # the target: our peak RSS at the largest size over ours at the smallest

SCAN_ONLY = """
import sys, redis
client = redis.Redis(unix_socket_path=sys.argv[1])
cursor, seen = 0, 0
while True:
    cursor, keys = client.scan(cursor, match=sys.argv[2], count=500)
    seen += len(keys)
    del keys
    if cursor == 0:
        break
print(seen)
"""


def child_env(url: str, cache_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "IR_", "REDIS_"))}
    env.update(REDIS_URL=url, IR_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT))
    return env


# Starts the measured command and prints its ru_maxrss (KiB on Linux) on stderr's last line. A child's
# ru_maxrss starts at the high-water mark of the process that forked it (Linux keeps it across
# exec): forked from this process, which has held the whole keyspace's SET commands, every child
# would "peak" at our size. Forked from this small launcher, it is the child's own.
LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, file=sys.stderr)
"""


def peak_rss(argv: list[str], env: dict[str, str]) -> tuple[int, float, int, str]:
    """Run `argv`; (its peak RSS in bytes, seconds, lines it printed, its stderr). Its stdout is
    read here as it comes, so the child never waits on a full pipe."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stderr is not None
    lines, last = 0, b""
    while chunk := proc.stdout.read(1 << 16):
        lines += chunk.count(b"\n")
        last = chunk[-200:]
    *err, tail = proc.stderr.read().decode(errors="replace").splitlines() or [""]
    proc.wait()
    elapsed = time.perf_counter() - started
    code, maxrss = (int(word) for word in tail.split())
    if code != 0:
        raise RuntimeError(f"{argv[:4]} exited {code}: {' '.join(err)[:500]}")
    if argv[-1] not in ("--json", "--help"):  # the baseline prints its count
        lines = int(last.strip() or b"0")
    return maxrss * 1024, elapsed, lines, "\n".join(err)


def measure(server: EmbeddedRedis, url: str, workdir: Path, n: int, others: int) -> dict[str, Any]:
    populate(server.socket_path, n, others)
    env = child_env(url, workdir / "cache")
    ours = peak_rss([sys.executable, "-m", "ircache_tui.cli.main", "keys", "--json"], env)
    base = peak_rss([sys.executable, "-c", SCAN_ONLY, server.socket_path, f"{PREFIX}:*"], env)
    if ours[2] != n:
        raise RuntimeError(f"keys --json listed {ours[2]:,} entries of {n:,}")
    return {"entries": n, "others": others, "ours_rss": ours[0], "ours_s": ours[1], "ours_stderr": ours[3],
            "baseline_rss": base[0], "baseline_s": base[1], "baseline_keys": base[2]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="entries per run, comma-separated (default 10000,100000)")
    parser.add_argument("--others", type=int, default=10_000, help="keys that are not entries, beside them (default 10000)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))

    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="ircache-bench-export-"))
    server = EmbeddedRedis(workdir, extra_args=["--save", ""])
    try:
        url = server.start()
        results = [measure(server, url, workdir, n, args.others) for n in sizes]
        # what the interpreter and our imports alone take: the floor under any listing of ours
        imports = peak_rss([sys.executable, "-m", "ircache_tui.cli.main", "keys", "--help"], child_env(url, workdir))[0]
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"ircache-tui keys --json: peak RSS — Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"{args.others:,} other keys beside the entries (load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after)\n")
    print("| entries | ours: keys --json | baseline: SCAN only | ours / baseline | ours wall | baseline wall |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['entries']:,} | {r['ours_rss'] / MIB:.1f} MiB | {r['baseline_rss'] / MIB:.1f} MiB | "
              f"{r['ours_rss'] / r['baseline_rss']:.2f}× | {r['ours_s']:.2f} s | {r['baseline_s']:.2f} s |")
    small, large = results[0], results[-1]
    growth = large["ours_rss"] / small["ours_rss"]
    base_growth = large["baseline_rss"] / small["baseline_rss"]
    met = growth <= FLAT
    print(f"\nflat memory: ours at {large['entries']:,} / ours at {small['entries']:,} = {growth:.3f}× "
          f"(target ≤ {FLAT}×: {'met' if met else '**MISSED**'}); the baseline's = {base_growth:.3f}×")
    print(f"our imports alone (`keys --help`): {imports / MIB:.1f} MiB; a page of {500} rows and its output "
          f"above that: {(large['ours_rss'] - imports) / MIB:.1f} MiB at {large['entries']:,} entries")
    print("All targets met." if met else "MISSED targets:\n  MISSED: keys --json peak RSS flat over the entries")
    if args.json:
        payload = {"results": results, "growth": growth, "baseline_growth": base_growth, "target": FLAT, "met": met, "imports_rss": imports,
                   "python": sys.version, "cpus": os.cpu_count(), "load_average_before_after": [load_before, os.getloadavg()[0]]}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
