"""What every benchmark here shares: the result table (each figure beside its baseline from the same
run) and the heartbeat that measures how long the event loop stalls."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

MS = 1e3


@dataclass
class Row:
    figure: str
    ours: float | None
    baseline: float | None
    unit: str  # "ms", "s", "usd" (dollars) or "%"
    target: str = "—"
    met: bool | None = None  # None: no target on this row
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def cells(self) -> list[str]:
        def fmt(v: float | None) -> str:
            if v is None:
                return "—"
            if self.unit == "usd":
                return f"${v:.6f}"
            if self.unit == "%":
                return f"{v:.1f} %"
            return f"{v * MS:.3f} ms" if self.unit == "ms" else f"{v:.3f} s"

        ratio = f"{self.ours / self.baseline:.2f}×" if self.ours and self.baseline else "—"
        met = "—" if self.met is None else ("yes" if self.met else "**MISSED**")
        base = fmt(self.baseline) + (f" ({self.note})" if self.note else "")
        return [self.figure, fmt(self.ours), base, ratio, self.target, met]


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    return sorted_values[max(0, math.ceil(p * len(sorted_values)) - 1)]


def print_table(rows: list[Row]) -> None:
    header = ["figure", "ours", "baseline", "ratio", "target", "met?"]
    for line in [header, ["---"] * len(header)] + [r.cells() for r in rows]:
        print("| " + " | ".join(line) + " |")

class PingLoop:
    """A PING worker process (the benchmark script run with `--ping-worker TARGET`), started before
    the measured region; `window(t0, t1)` returns what it saw then (worst and median reply)."""

    def __init__(self, script: str, target: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, script, "--ping-worker", target],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("PING worker did not start")

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{t0!r} {t1!r}\n")
        self.proc.stdin.flush()
        result = json.loads(self.proc.stdout.readline())
        self.proc.wait(10)
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Heartbeat:
    """A task that sleeps `period` again and again and records how late it wakes."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.worst = 0.0
        self.task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(self.period)
            self.worst = max(self.worst, loop.time() - t - self.period)

    def __enter__(self) -> "Heartbeat":
        self.task = asyncio.get_running_loop().create_task(self._beat())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
