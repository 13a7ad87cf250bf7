"""SCAN-paged browsing of IR keys, for the dashboard's key pane.

A page holds `page_size` IR keys with their TTL, MEMORY USAGE and the
generated_at/generator of their entry, fetched in one pipelined round trip.
Only the page and a small carry-over are ever in memory, whatever the size
of the keyspace: SCAN returns keys in batches, so the keys a batch returns
beyond a full page are carried into the next page instead of being lost.

Each page remembers the cursor (and carry) it started from, so "previous"
replays exactly. A page that takes longer than `time_budget` to fill (IR
keys are rare in a huge keyspace) is returned partial and the scan goes on
from there on "next".
"""

from __future__ import annotations

import fnmatch
import json
import re
import time
from dataclasses import dataclass, field

from ..ir.envelope import SCHEMA_VERSION, generated_epoch, is_entry_head
from ..ir.usage import usage_from_head
from .keys import HASH_LEN, ParsedKey, glob_escape, parse_cache_key, validate_spec_name
from .redis import RedisTier
from .redis.pager import nodes_done


# The envelope's metadata is serialized before the IR, so the first KiB of a
# value is enough to show when and by what it was generated.
_HEAD_BYTES = 1024
_GENERATED_AT = re.compile(rb'"generated_at"\s*:\s*"([^"]+)"')
_GENERATOR = re.compile(rb'"generator"\s*:\s*\{\s*"name"\s*:\s*"([^"]*)"\s*,\s*"model"\s*:\s*(?:"([^"]*)"|null)')
_SCHEMA = re.compile(rb'"schema_version"\s*:\s*(-?\d+)')
_SPEC_HASH = re.compile(rb'"spec_hash"\s*:\s*"([^"]*)"')
_MAX_COUNT = 10_000


@dataclass(frozen=True, slots=True)
class KeyRow:
    cache_key: str
    spec_name: str
    hash8: str
    ttl: int  # seconds; -1 no expiry; -2 gone
    memory: int | None
    generated_at: str | None
    generator: str | None
    fetched_at: float  # time.monotonic() when ttl was read, for a live countdown
    #: what is visibly wrong with the value from its first KiB ("foreign": another tool's value under
    #: our name, never touched; "corrupt", "old schema", "hash ≠ key": an entry of ours that reads as
    #: a miss); None when it looks fine.
    problem: str | None = None
    #: what its generation cost (None: unknown), from the usage in its first KiB
    cost_usd: float | None = None
    #: hits across processes as last flushed to Redis (cache/hits.py), and when the last was
    hits: int | None = None
    last_hit: float | None = None


@dataclass(frozen=True, slots=True)
class Page:
    number: int  # 1-based
    rows: list[KeyRow]
    complete: bool  # the scan reached the end of the keyspace with this page
    partial: bool  # the time budget ran out before the page was full
    scanned: int  # IR keys seen so far in this scan, up to the end of this page
    #: on a cluster, the primaries walked to their end so far, of how many (None on one node)
    primaries_done: int | None = None
    primaries: int | None = None


@dataclass(slots=True)
class _Start:
    cursor: int
    carry: list[ParsedKey] = field(default_factory=list)
    scanned_before: int = 0
    scan_done: bool = False  # the scan already reached its end; only the carry is left


_GLOB = "*?["
_HASH_GLOB = "_" + "[0-9a-f]" * HASH_LEN


def filter_pattern(prefix: str, text: str | None) -> tuple[str | None, str | None]:
    """(spec_name, match) for the `/` filter, as an operator types it:

    - `pet`: spec names containing "pet" (SCAN MATCH `{prefix}:*pet*_{hash8}`);
    - `=petstore-spec`: exactly that spec (not its `_v2` cousins);
    - `pet*`, `*_0a1b*`: a glob over `{spec}_{hash8}`.
    """
    if not text:
        return None, None
    if text.startswith("="):
        return validate_spec_name(text[1:]), None
    if any(c in text for c in _GLOB):
        return None, f"{glob_escape(prefix)}:{text}"
    return None, f"{glob_escape(prefix)}:*{glob_escape(text)}*{_HASH_GLOB}"


class KeyBrowser:
    def __init__(self, redis: RedisTier, page_size: int = 100, *, time_budget: float = 0.5) -> None:
        self.redis = redis
        self.page_size = max(1, page_size)
        self.time_budget = time_budget
        self.spec_name: str | None = None
        self.match: str | None = None
        self._text = ""
        self._history: list[_Start] = [_Start(0)]
        self._index = 0  # page shown = _history[_index]
        self._next: _Start | None = None  # where the following page starts, None when complete
        self.page: Page | None = None
        self._loads = 0  # loads started: only the latest one moves the walk (see _load)

    def set_filter(self, text: str | None) -> None:
        """Filter by `text` (see filter_pattern; raises InvalidSpecName for a bad exact name) and start over."""
        self.spec_name, self.match = filter_pattern(self.redis.keys.prefix, text)
        self._text = text or ""
        self.reset()

    def reset(self) -> None:
        """Forget every cursor: the next load starts the scan again (after a restart, say)."""
        self._history, self._index, self._next = [_Start(0)], 0, None
        self.page = None

    @property
    def filter_text(self) -> str:
        return self._text

    def wants(self, key: ParsedKey) -> bool:
        """Whether the filter takes this key (for a key that changed while the page is shown)."""
        text = self._text
        if not text:
            return True
        if self.spec_name is not None:
            return key.spec_name == self.spec_name
        if any(c in text for c in _GLOB):
            return fnmatch.fnmatchcase(key.cache_key, text)
        return text in key.spec_name

    @property
    def has_next(self) -> bool:
        return self._next is not None

    @property
    def has_prev(self) -> bool:
        return self._index > 0

    async def first(self) -> Page:
        self._index = 0
        return await self._load()

    async def reload(self) -> Page:
        return await self._load()

    async def next(self) -> Page:
        if self._next is None:
            return self.page or await self._load()
        if self._index + 1 < len(self._history):
            self._history[self._index + 1] = self._next
        else:
            self._history.append(self._next)
        self._index += 1
        return await self._load()

    async def prev(self) -> Page:
        if self._index > 0:
            self._index -= 1
        return await self._load()

    async def _load(self) -> Page:
        """The page at the current index. A load that another started after it (a reload of page 1
        still on its way when `n` asked for page 2, its cancel not yet landed) hands its page back
        but leaves the walk alone: applied late, it would rewind the walk to the page it read."""
        self._loads += 1
        mine, index = self._loads, self._index
        start = self._history[index]
        keys = list(start.carry)
        cursor, done = start.cursor, start.scan_done
        started = time.monotonic()
        count = self.page_size
        while len(keys) < self.page_size and not done:
            cursor, found = await self.redis.scan_ir_page(cursor, count, self.spec_name, self.match)
            keys.extend(found)
            if cursor == 0:
                done = True  # SCAN returns cursor 0 exactly once: at the end
            elif time.monotonic() - started > self.time_budget:
                break
            elif len(found) < max(1, self.page_size // 4):  # sparse keyspace: ask for bigger batches
                count = min(count * 2, _MAX_COUNT)
        page_keys, carry = keys[: self.page_size], keys[self.page_size :]
        scanned = start.scanned_before + len(page_keys)
        complete = done and not carry
        rows = await self._details(page_keys)
        page = Page(index + 1, rows, complete, not done and len(page_keys) < self.page_size, scanned,
                    *self._primaries_done(cursor, done))
        if mine == self._loads:
            self._next = None if complete else _Start(cursor, carry, scanned, done)
            self.page = page
        return page

    def _primaries_done(self, cursor: int, done: bool) -> tuple[int | None, int | None]:
        """On a cluster the cursor walks the primaries in turn, the current one's index in its low
        bits (redis/pager.py's composite cursor): those before it are done."""
        info = self.redis.cluster_info
        if not info or not info.get("primaries"):
            return None, None
        total = info["primaries"]
        return (total if done else min(total, nodes_done(cursor))), total

    async def row_for(self, cache_key: str) -> KeyRow | None:
        """Fresh details of one key (after a live change); None if it is gone or not an IR key."""
        rows = await self.rows_for([cache_key])
        return rows[0] if rows else None

    async def rows_for(self, cache_keys: list[str]) -> list[KeyRow]:
        """Fresh details of these keys in one round trip; the gone ones are left out."""
        parsed = [p for p in map(parse_cache_key, cache_keys) if p is not None]
        return [row for row in await self._details(parsed) if row.ttl != -2]

    async def top(self, by: str, n: int) -> Page:
        """The `n` largest keys (by="largest") or those expiring first (by="expiring"), over the whole prefix."""
        keys = await self.redis.top_ir_keys("memory" if by == "largest" else "ttl", n)
        rows = await self._details(keys)
        return Page(1, [r for r in rows if r.ttl != -2], True, False, len(rows))

    async def _details(self, keys: list[ParsedKey]) -> list[KeyRow]:
        if not keys:
            return []
        heads = await self.redis.key_details_with_head([k.cache_key for k in keys], _HEAD_BYTES)
        now = time.monotonic()
        rows = []
        for parsed, (ttl, memory, head, counts) in zip(keys, heads):
            generated_at = generator = None
            usage = usage_from_head(head) if head else None
            hits, last_hit, counted_on = counts if counts is not None else (None, None, None)
            made = generated_epoch(head) if head else None
            if counted_on is not None and made is not None and abs(made - counted_on) > 1e-3:
                hits, last_hit = 0, None  # counts of an earlier generation of this key (deleted, made again)
            problem = _problem(parsed, head)
            if head:
                if m := _GENERATED_AT.search(head):
                    generated_at = m.group(1).decode(errors="replace")
                if m := _GENERATOR.search(head):
                    name = m.group(1).decode(errors="replace")
                    model = m.group(2).decode(errors="replace") if m.group(2) else None
                    generator = f"{name} ({model})" if model else name
            rows.append(KeyRow(parsed.cache_key, parsed.spec_name, parsed.hash8[:HASH_LEN], ttl, memory,
                               generated_at, generator, now, problem,
                               usage.cost_usd if usage else None, hits, last_hit))
        return rows


def _problem(key: ParsedKey, head: bytes | None) -> str | None:
    """What the first KiB already shows to be wrong (the full check happens when it is read)."""
    if head is None or (head and not is_entry_head(head)):
        return "foreign"  # another type, or a string that is not our envelope: another tool's key
    if not head:
        return None  # gone, or the head could not be read: nothing to say
    if len(head) < _HEAD_BYTES and (_whole_value_missing_fields(head)):
        return "corrupt"  # the head is the whole value, and it is not an entry
    if (m := _SCHEMA.search(head)) and int(m.group(1)) != SCHEMA_VERSION:
        return "old schema"
    if (m := _SPEC_HASH.search(head)) and not m.group(1).startswith(key.hash8.encode()):
        return "hash ≠ key"
    return None


_REQUIRED = (b'"spec_hash"', b'"generated_at"', b'"application_ir"')


def _whole_value_missing_fields(value: bytes) -> bool:
    """A complete (short) value that is not JSON, or lacks a field every entry has."""
    try:
        json.loads(value)
    except ValueError:
        return True
    return not all(field in value for field in _REQUIRED)
