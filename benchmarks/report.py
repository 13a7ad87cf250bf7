"""The result table every benchmark here prints: each figure beside its baseline from the same run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MS = 1e3


@dataclass
class Row:
    figure: str
    ours: float | None
    baseline: float | None
    unit: str  # "ms" or "s"
    target: str = "—"
    met: bool | None = None  # None: no target on this row
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def cells(self) -> list[str]:
        def fmt(v: float | None) -> str:
            if v is None:
                return "—"
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
