"""Sizes and rankings: the stats walk (how many entries, their MEMORY USAGE, their specs) and the
top walk (largest or expiring soonest), on ONE node (walk.py says why one node); a cluster's
primaries are walked at once by the Nodes strategy and added up with `merge_sizes`/`merge_top`.

Each step is one read-only script (scripts.py) that SCANs a page and sizes the entries on it,
so no key name travels to Python; where scripts are refused the walk runs client-side.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from . import scripts
from ...ir.envelope import GeneratorInfo, generator_from_object, generator_object
from ..keys import Selection
from .walk import entries_among, first_line, memory_usage, raise_if_cancelled, scan_pages

log = logging.getLogger("ircache")

STATS_COUNT = 500
#: the first bytes of an entry read for its generator (as the stats script's GETRANGE 0 1023)
HEAD_BYTES = 1024


@dataclass(slots=True)
class Sizes:
    keys: int = 0
    #: None when the server refuses MEMORY USAGE (an ACL without it): the keys are still counted
    bytes: int | None = 0
    specs: set[builtins.bytes] = field(default_factory=set)  # builtins.: the field `bytes` shadows the type
    #: spec name → [keys, bytes] (bytes stay 0 when MEMORY USAGE is refused: see `bytes`)
    per_spec: dict[builtins.bytes, list[int]] = field(default_factory=dict)
    #: whether the scripted step ran (False: refused, counted client-side)
    scripted: bool = True
    #: keys of our name that hold something else (another type, a string that is not an entry):
    #: another tool's, counted apart and never as entries
    foreign: int = 0
    #: generator object (envelope.generator_object; b"" when the head holds none) → entries it made,
    #: when the walk was asked for them
    generators: dict[builtins.bytes, int] = field(default_factory=dict)

    def add_generator(self, made_by: builtins.bytes, keys: int) -> None:
        self.generators[made_by] = self.generators.get(made_by, 0) + keys

    def outdated(self, current: GeneratorInfo) -> int:
        """Of the entries counted by generator, those outdated for `current` (an object that does
        not read as a generator is not counted: nobody can say what made it)."""
        return sum(n for made_by, n in self.generators.items()
                   if (info := generator_from_object(made_by)) is not None and info.outdated_for(current))

    def add_spec(self, spec: builtins.bytes, keys: int, size: int) -> None:
        totals = self.per_spec.get(spec)
        if totals is None:
            self.per_spec[spec] = [keys, size]
            self.specs.add(spec)
        else:
            totals[0] += keys
            totals[1] += size


async def scan_sizes(
    client: Any, selection: Selection, *, count: int = STATS_COUNT, batch: int = STATS_COUNT, scripted: bool = True,
    generators: bool = False,
) -> Sizes:
    """How many entries `selection` takes, their MEMORY USAGE in total, their spec names, and how
    many keys of our name are not entries (`foreign`).

    Each step is one read-only script (SCAN a page, tell entries from other
    keys, add up MEMORY USAGE of the entries) that returns only the page's
    totals. A server that refuses scripts (or MEMORY inside them) gets SCAN
    and pipelined GETRANGE and MEMORY USAGE, `batch` keys a round trip; the
    caller passes `scripted=False` from then on.

    `generators`: also count the entries by the generator object in their first KiB (one more
    GETRANGE each, server-side), for the outdated count.
    """
    if not scripted:
        return await _sizes_unscripted(client, selection, count=count, batch=batch, generators=generators)
    sizes = Sizes()
    total = 0  # of MEMORY USAGE: a server that refuses it inside the script refuses the whole step
    step = client.register_script(scripts.STATS_STEP)
    cursor = 0
    while True:
        try:
            cursor, n, size, specs, foreign, made_by = await step(
                args=[*_script_args(cursor, selection, count), "1" if generators else "0"])
        except ResponseError as exc:
            log.info("Redis refused the stats script (%s); counting client-side", first_line(exc))
            return await _sizes_unscripted(client, selection, count=count, batch=batch, generators=generators)
        raise_if_cancelled()
        cursor = int(cursor)
        sizes.keys += int(n)
        total += int(size)
        sizes.foreign += int(foreign)
        for i in range(0, len(specs), 3):
            sizes.add_spec(specs[i], int(specs[i + 1]), int(specs[i + 2]))
        for i in range(0, len(made_by), 2):
            sizes.add_generator(made_by[i], int(made_by[i + 1]))
        if cursor == 0:
            sizes.bytes = total
            return sizes


async def _sizes_unscripted(client: Any, selection: Selection, *, count: int, batch: int,
                            generators: bool) -> Sizes:
    sizes = Sizes(scripted=False)
    refused: ResponseError | None = None
    async for page in scan_pages(client, selection.match, count):
        named = selection.keep_many(page)
        for start in range(0, len(named), batch):
            chunk, foreign = await entries_among(client, named[start : start + batch], selection.entry)
            sizes.foreign += foreign
            sized = await memory_usage(client, chunk) if refused is None else [refused] * len(chunk)
            made_by = await _generators(client, chunk) if generators else [b""] * len(chunk)
            for key, size, gen in zip(chunk, sized, made_by):
                if size is None:
                    continue  # expired meanwhile
                if generators:
                    sizes.add_generator(gen, 1)
                if isinstance(size, ResponseError):  # MEMORY refused: count the key, its size is unknown
                    refused = size
                    sizes.bytes = None
                    size = 0
                elif sizes.bytes is not None:
                    sizes.bytes += size
                sizes.keys += 1
                sizes.add_spec(selection.spec_of(key), 1, size)
            raise_if_cancelled()
    if refused is not None:
        log.info("Redis refused MEMORY USAGE (%s): keys counted, sizes unknown", first_line(refused))
    return sizes


async def _generators(client: Any, keys: list[bytes]) -> list[bytes]:
    """Each key's generator object (envelope.generator_object of its first KiB), pipelined."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.getrange(key, 0, HEAD_BYTES - 1)
    heads = await pipe.execute(raise_on_error=False)
    return [generator_object(h) if isinstance(h, bytes) else b"" for h in heads]


async def scan_top(
    client: Any, selection: Selection, by: str, n: int, *, count: int = STATS_COUNT, scripted: bool = True
) -> tuple[list[tuple[bytes, int]], bool]:
    """The `n` IR keys with the most MEMORY USAGE (by="memory") or the least PTTL (by="ttl") over
    the whole selection, and whether the scripted step ran. One short step per page, as the stats.

    Ties are broken by the key's name (its bytes), so every server, whatever its SCAN order, ranks
    the same keys the same way (`merge_top` too). A page's step returns every key tied with its
    last one (scripts.TOP_STEP), so the choice among ties is made here."""
    best: list[tuple[int, bytes]] = []  # (rank, key), best first once trimmed: the n best so far
    sign = 1 if by == "memory" else -1  # the largest sizes first, the smallest TTLs first

    def offer(key: bytes, value: int) -> None:
        best.append((-sign * value, key))

    def trim() -> None:  # after each page: bounded by n and one page
        best.sort()
        del best[n:]

    if scripted:
        step = client.register_script(scripts.TOP_STEP)
        cursor = 0
        try:
            while True:
                reply = await step(args=[*_script_args(cursor, selection, count), by, n])
                raise_if_cancelled()
                cursor = int(reply[0])
                for key, value in zip(reply[1::2], reply[2::2]):
                    offer(key, int(value))
                trim()
                if cursor == 0:
                    break
        except ResponseError as exc:
            log.info("Redis refused the top-keys script (%s); walking client-side", first_line(exc))
            best.clear()
            scripted = False
    if not scripted:
        async for page in scan_pages(client, selection.match, count):
            kept, _ = await entries_among(client, selection.keep_many(page), selection.entry)
            pipe = client.pipeline(transaction=False)
            for key in kept:
                pipe.memory_usage(key, samples=0) if by == "memory" else pipe.pttl(key)
            for key, value in zip(kept, await pipe.execute(raise_on_error=False)):
                if isinstance(value, int) and (by == "memory" or value >= 0):
                    offer(key, value)
            trim()
            raise_if_cancelled()
    trim()
    return [(key, -sign * rank) for rank, key in best], scripted


def merge_sizes(parts: Sequence[Sizes]) -> Sizes:
    """The sizes of several nodes' walks (a cluster's primaries) as one."""
    total = Sizes(scripted=all(p.scripted for p in parts))
    for part in parts:
        total.keys += part.keys
        total.foreign += part.foreign
        for made_by, keys in part.generators.items():
            total.add_generator(made_by, keys)
        total.bytes = None if total.bytes is None or part.bytes is None else total.bytes + part.bytes
        for spec, (keys, size) in part.per_spec.items():
            total.add_spec(spec, keys, size)
    return total


def merge_top(parts: Sequence[list[tuple[bytes, int]]], by: str, n: int) -> list[tuple[bytes, int]]:
    """The `n` best of several nodes' `scan_top` rankings, ranked the same way (ties by name)."""
    found = [item for part in parts for item in part]
    if by == "memory":
        found.sort(key=lambda item: (-item[1], item[0]))
    else:
        found.sort(key=lambda item: (item[1], item[0]))
    return found[:n]


def _script_args(cursor: int, selection: Selection, count: int) -> list[Any]:
    return [cursor, count, selection.head, selection.spec_name or "", selection.max_spec_bytes, selection.entry]
