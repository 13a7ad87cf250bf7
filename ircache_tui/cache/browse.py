"""SCAN-paged browsing of IR keys, for the dashboard's key pane.

A page holds `page_size` IR keys with their TTL, MEMORY USAGE and the
generated_at/generator of their entry, fetched in one pipelined round trip.
Only the page and a small carry-over are ever in memory, whatever the size
of the keyspace: SCAN returns keys in batches, so the keys a batch returns
beyond a full page are carried into the next page instead of being lost.

Each page remembers the cursor (and carry) it started from, so "previous"
replays exactly. A page fills itself: it scans until it holds `page_size`
keys or the scan is complete, however long that takes (IR keys of one spec
are rare under a shared prefix of 100,000 keys). It is never handed back
partial. The time budget only slices the work: after each slice of about
`time_budget` seconds the caller hears how far the page has got (`Filling`)
and the event loop gets a turn.

The walk asks SCAN for every key under the prefix (`MATCH {prefix}:*`) and
applies the filter here, so that "scanned" is true: it counts the keys under
the prefix the walk has examined (entries, other tools' keys, our hit counters
and locks), not only those the filter takes. With a filter in MATCH the server
would examine keys it never hands back, and nobody could say how many.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

from ..ir.envelope import SCHEMA_VERSION, GeneratorInfo, generated_epoch, generator_in_head, is_entry_head
from ..ir.usage import usage_from_head
from .keys import HASH_LEN, CacheKey, glob_escape, parse_cache_key, validate_spec_name
from .redis import RedisTier
from .redis.pager import nodes_done


# The envelope's metadata is serialized before the IR, so the first KiB of a
# value is enough to show when and by what it was generated.
_HEAD_BYTES = 1024
_STRING = rb'"((?:[^"\\]|\\.)*)"'  # a JSON string's inside, escapes and all
_GENERATED_AT = re.compile(rb'"generated_at"\s*:\s*' + _STRING)
_GENERATOR = re.compile(rb'"generator"\s*:\s*\{\s*"name"\s*:\s*' + _STRING + rb'\s*,\s*"model"\s*:\s*(?:' + _STRING + rb'|null)')
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
    #: made by another generator, model or prompt than the cache's (GeneratorInfo.outdated_for)
    outdated: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    """A whole page: `page_size` rows, or fewer only when the scan reached its end with it."""

    number: int  # 1-based
    rows: list[KeyRow]
    complete: bool  # the scan reached the end of the keyspace with this page
    #: keys under the prefix the walk has examined, from page 1 to the end of this page (every key
    #: SCAN returned, before the filter: a key SCAN returns twice, as it may while the server
    #: resizes its table, counts twice); 0 for the largest/expiring views (a server-side walk)
    scanned: int
    #: on a cluster, the primaries walked to their end so far, of how many (None on one node)
    primaries_done: int | None = None
    primaries: int | None = None


@dataclass(frozen=True, slots=True)
class Filling:
    """How far a page that is still filling has got: told once per time budget, never an answer."""

    number: int  # the page being filled, 1-based
    found: int  # keys the filter took so far (carried over from the page before included)
    scanned: int  # as Page.scanned, so far
    primaries_done: int | None = None
    primaries: int | None = None


OnFilling = Callable[[Filling], None]


@dataclass(slots=True)
class _Start:
    cursor: int
    carry: list[CacheKey] = field(default_factory=list)
    scanned_before: int = 0  # keys examined before this page's cursor (its carry among them)
    scan_done: bool = False  # the scan already reached its end; only the carry is left


_GLOB = "*?["


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Redis's glob (what SCAN MATCH understands: `*`, `?`, `[abc]`, `[^a-z]`, `\\x`) as a regex
    for the whole name, so the filter takes here what MATCH would have taken (`?` is one character
    here, where Redis counts bytes)."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            i, klass = _glob_class(pattern, i + 1)
            out.append(klass)
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _glob_class(pattern: str, i: int) -> tuple[int, str]:
    """The `[...]` starting at `i` (after the `[`) as a regex class, and the index of its `]` (an
    unclosed class ends with the pattern, as in Redis)."""
    n = len(pattern)
    negate = i < n and pattern[i] == "^"
    i += negate
    items = []
    while i < n and pattern[i] != "]":
        if pattern[i] == "\\" and i + 1 < n:
            items.append(re.escape(pattern[i + 1]))
            i += 2
        elif i + 2 < n and pattern[i + 1] == "-":
            low, high = sorted((pattern[i], pattern[i + 2]))
            items.append(f"{re.escape(low)}-{re.escape(high)}")
            i += 3
        else:
            items.append(re.escape(pattern[i]))
            i += 1
    if not items:
        return i, "." if negate else "(?!)"  # `[^]` takes any character, `[]` none
    return i, f"[{'^' if negate else ''}{''.join(items)}]"


def filter_rule(text: str) -> Callable[[CacheKey], bool]:
    """What the `/` filter `text` takes (see KeyBrowser.set_filter); InvalidSpecName for a bad `=name`."""
    if not text:
        return lambda key: True
    if text.startswith("="):
        name = validate_spec_name(text[1:])
        return lambda key: key.spec_name == name
    if any(c in text for c in _GLOB):
        matches = glob_regex(text).fullmatch
        return lambda key: matches(key.cache_key) is not None
    return lambda key: text in key.spec_name


class KeyBrowser:
    def __init__(self, redis: RedisTier, page_size: int = 100, *, time_budget: float = 0.5,
                 current: GeneratorInfo | None = None) -> None:
        """`time_budget`: seconds of scanning between two reports of a filling page (0: after
        every SCAN step); the page itself always comes back whole. `current`: the cache's
        generator, which rows are `outdated` against (None: none is)."""
        self.redis = redis
        self.current = current
        self.page_size = max(1, page_size)
        self.time_budget = time_budget
        self._pattern = f"{glob_escape(redis.keys.prefix)}:*"
        self._text = ""
        self._takes = filter_rule("")
        self._starts = f"{redis.keys.prefix}:".encode()
        self._history: list[_Start] = [_Start(0)]
        self._next: _Start | None = None  # where the page after `page` starts, None when complete
        self.page: Page | None = None  # the page last loaded whole: where the walk is
        self._loads = 0  # loads started: only the latest one moves the walk (see _load)

    def set_filter(self, text: str | None) -> None:
        """Filter as an operator types it, and start over (raises InvalidSpecName for a bad exact name):

        - `pet`: spec names containing "pet";
        - `=petstore-spec`: exactly that spec (not its `_v2` cousins);
        - `pet*`, `*_0a1b*`: a glob (Redis's) over `{spec}_{hash8}`.
        """
        text = text or ""
        self._text, self._takes = text, filter_rule(text)
        # what every key the filter takes begins with: one spec's keys are told apart in C, before
        # any is parsed (a page of one spec among 100,000 keys parses only that spec's)
        spec = text[1:] if text.startswith("=") else ""
        self._starts = f"{self.redis.keys.prefix}:{spec}{'_' if spec else ''}".encode()
        self.reset()

    def reset(self) -> None:
        """Forget every cursor: the next load starts the scan again (after a restart, say)."""
        self._history, self._next = [_Start(0)], None
        self.page = None

    @property
    def filter_text(self) -> str:
        return self._text

    def wants(self, key: CacheKey) -> bool:
        """Whether the filter takes this key (one the walk met, or one that changed while the page is shown)."""
        return self._takes(key)

    @property
    def _at(self) -> int:
        """The index of the page the walk is at (the last one loaded whole)."""
        return self.page.number - 1 if self.page is not None else 0

    @property
    def has_next(self) -> bool:
        return self._next is not None

    @property
    def has_prev(self) -> bool:
        return self._at > 0

    async def first(self, on_filling: OnFilling | None = None) -> Page:
        return await self._load(0, on_filling)

    async def reload(self, on_filling: OnFilling | None = None) -> Page:
        return await self._load(self._at, on_filling)

    async def next(self, on_filling: OnFilling | None = None) -> Page:
        """The page after the one the walk is at (that one again when the scan is complete)."""
        if self._next is None:
            return self.page or await self._load(0, on_filling)
        index = self._at + 1
        if index < len(self._history):
            self._history[index] = self._next
        else:
            self._history.append(self._next)
        return await self._load(index, on_filling)

    async def prev(self, on_filling: OnFilling | None = None) -> Page:
        return await self._load(max(0, self._at - 1), on_filling)

    async def _load(self, index: int, on_filling: OnFilling | None) -> Page:
        """The page at `index`, whole: scanned until it holds `page_size` keys or the scan is
        complete, with `on_filling` told how far it got after each time-budget slice.

        Until it comes back the walk stays where it was: a load that fails or is cancelled moves
        nothing. A load that another started after it (a reload of page 1 still on its way when
        `n` asked for page 2, its cancel not yet landed) hands its page back but leaves the walk
        alone: applied late, it would rewind the walk to the page it read."""
        self._loads += 1
        mine, takes, starts = self._loads, self._takes, self._starts
        start = self._history[index]
        keys = list(start.carry)
        cursor, done, scanned = start.cursor, start.scan_done, start.scanned_before
        count = self.page_size
        slice_started = time.monotonic()
        while len(keys) < self.page_size and not done:
            cursor, raw = await self._scan_step(cursor, count)
            scanned += len(raw)
            found = [key for key in map(self.redis.keys.cache_key_of, (k for k in raw if k.startswith(starts)))
                     if key is not None and takes(key)]
            keys.extend(found)
            if cursor == 0:
                done = True  # SCAN returns cursor 0 exactly once: at the end
            elif len(found) < max(1, self.page_size // 4):  # sparse keyspace: ask for bigger batches
                count = min(count * 2, _MAX_COUNT)
            if not done and len(keys) < self.page_size and time.monotonic() - slice_started >= self.time_budget:
                if on_filling is not None:
                    on_filling(Filling(index + 1, len(keys), scanned, *self._primaries_done(cursor, False)))
                await asyncio.sleep(0)  # the event loop's turn (the UI draws the progress)
                slice_started = time.monotonic()
        page_keys, carry = keys[: self.page_size], keys[self.page_size :]
        complete = done and not carry
        rows = await self._details(page_keys)
        page = Page(index + 1, rows, complete, scanned, *self._primaries_done(cursor, done))
        if mine == self._loads:
            self._next = None if complete else _Start(cursor, carry, scanned, done)
            self.page = page
        return page

    async def walk(self, page_size: int | None = None) -> AsyncGenerator[list[KeyRow], None]:
        """Every row the filter takes, `page_size` at a time (the browser's by default), from a
        walk of its own: the pager's place is left alone and no cursor is remembered, so memory
        stays one page and the keys of one SCAN step, however many keys the prefix holds.

        Rows come as the pages would show them: foreign values included (problem "foreign"), a
        key gone between SCAN and its details left out. A key SCAN returns twice (as it may while
        the server resizes its table) comes twice: telling them apart would hold every key seen.
        """
        size = max(1, page_size or self.page_size)
        takes, starts = self._takes, self._starts
        keys: list[CacheKey] = []
        cursor, count = 0, size
        while True:
            cursor, raw = await self._scan_step(cursor, count)
            found = [key for key in map(self.redis.keys.cache_key_of, (k for k in raw if k.startswith(starts)))
                     if key is not None and takes(key)]
            keys.extend(found)
            if cursor != 0 and len(found) < max(1, size // 4):  # sparse keyspace: bigger batches, as _load
                count = min(count * 2, _MAX_COUNT)
            while len(keys) >= size or (cursor == 0 and keys):
                page, keys = keys[:size], keys[size:]
                yield [row for row in await self._details(page) if row.ttl != -2]
            if cursor == 0:
                return

    async def _scan_step(self, cursor: int, count: int) -> tuple[int, list[bytes]]:
        """One SCAN step over every key under the prefix ("scanned" counts them all)."""
        return await self.redis.scan_step(cursor, self._pattern, count)

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

    async def newest_of(self, spec_name: str) -> tuple[KeyRow | None, int]:
        """One spec's newest entry (by generated_at; one without it counts as oldest) and how many
        entries it has: its keys by the spec-scoped walk (MATCH on the exact name, another tool's
        values left out), their details a SCAN page at a time, so memory stays one page."""
        newest: KeyRow | None = None
        count = 0
        async with contextlib.aclosing(self.redis.scan_ir_keys(spec_name)) as pages:
            async for keys in pages:
                for row in await self._details(keys):
                    if row.ttl == -2:
                        continue  # gone since the walk saw it
                    count += 1
                    if newest is None or (row.generated_at or "", row.hash8) > (newest.generated_at or "", newest.hash8):
                        newest = row
        return newest, count

    async def top(self, by: str, n: int) -> Page:
        """The `n` largest keys (by="largest") or those expiring first (by="expiring"), over the whole prefix."""
        keys = await self.redis.top_ir_keys("memory" if by == "largest" else "ttl", n)
        rows = await self._details(keys)
        return Page(1, [r for r in rows if r.ttl != -2], True, 0)

    async def _details(self, keys: list[CacheKey]) -> list[KeyRow]:
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
                    generated_at = _json_string(m.group(1)) or None
                if m := _GENERATOR.search(head):
                    name = _json_string(m.group(1))
                    model = _json_string(m.group(2)) if m.group(2) else None
                    generator = f"{name} ({model})" if model else name
                    if usage is not None and usage.mode == "incremental":
                        generator += ", incremental"  # regenerated from a patch of the spec's previous IR
            made_by = generator_in_head(head) if head and self.current is not None else None
            rows.append(KeyRow(parsed.cache_key, parsed.spec_name, parsed.hash8[:HASH_LEN], ttl, memory,
                               generated_at, generator, now, problem,
                               usage.cost_usd if usage else None, hits, last_hit,
                               self.current is not None and made_by is not None and made_by.outdated_for(self.current)))
        return rows


def _json_string(inside: bytes) -> str:
    """A JSON string's text, its escapes decoded (`\\u001b` is ESC, as the entry means it: what
    shows it escapes it again); as it is written when it does not decode."""
    try:
        text = json.loads(b'"' + inside + b'"')
    except ValueError:
        return inside.decode(errors="replace")
    return text if isinstance(text, str) else inside.decode(errors="replace")


def _problem(key: CacheKey, head: bytes | None) -> str | None:
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
