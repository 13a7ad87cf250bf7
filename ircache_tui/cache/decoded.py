"""Entries decoded before, reused while the stored bytes stay the same.

Validating an entry into models costs more than the round trip that fetched
it (an 18 KB entry: ~0.1 ms over json.loads). A long-lived process reads the
same entries again and again, so the last decode of each key is kept with the
exact bytes it came from. A read whose bytes equal them (a full comparison,
not a hash) gets the same StoredEntry back; any other bytes are decoded and
validated afresh. It can therefore never answer with something that decoding
the bytes would not, and sharing is safe because the models are immutable.
The memo may be used from worker threads: its bookkeeping is done under a lock
(the decoding itself is not, so two threads can decode at once).

Big entries (`SLICED_MIN` bytes and up) can be decoded in slices instead
(`decode(..., sliced=True)`, meant for a worker thread). Validating a 5 MB
entry in one `model_validate_json` call takes ~0.2 s in pydantic-core, which
holds the GIL throughout: run in a thread, it would still stop the event loop
for that long. `decode_sliced` finds the entry's four long lists (entities,
endpoints, flows, rules) with the stdlib JSON scanner, validates the rest of
the entry with those lists emptied, then validates the lists' items a slice
of ~8 KiB at a time (in JSON mode, from the stored text, by the same
models) and puts the items back into the validated entry. Every C call is
bounded by a slice, so the thread hands the GIL back between slices. The
result equals what `decode_entry` returns for the same bytes; so does the
CorruptEntry reason (the slices' errors are merged back in validation order).
Shapes it does not expect (not an object, duplicate keys on the path to a
list, not JSON by the stdlib's reading) are decoded by `decode_entry` in one
piece, so they answer exactly as before.

Slicing keeps pydantic's calls short, but a whole model of a 5 MB entry is
still ~45 MB in ~1M Python objects, and CPython's full garbage-collector pass
over them pauses every thread for ~0.2 s. So a viewer asks for an
`EntryDigest` instead (`digest_sliced`): each slice is validated, written out
as indented JSON and dropped, and only the entry's head, its counts and the
JSON text are kept: ~3× the stored bytes, a handful of objects.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails

from ..ir.envelope import CorruptEntry, StoredEntry, _check, _describe, _loads_or_none, decode_entry
from ..ir.model import ApplicationIR, Endpoint, Entity, Flow, ValidationRule
from .keys import HASH_LEN

#: From this many stored bytes on, an entry is decoded in slices in a worker thread (IRCache.read_entry).
SLICED_MIN = 256 * 1024
#: About how much stored JSON one slice of list items holds. Small on purpose: a slice's
#: objects then die young (a digest drops them at once), before the garbage collector
#: promotes them; with 128 KiB slices they reached its oldest generation and set off
#: its full passes (~30 ms each in a test process) ten times per 5 MB.
SLICE_CHARS = 8 * 1024


class DecodeAbandoned(Exception):
    """A sliced decode whose caller went away (its `stop()` said so) before it finished."""


class DecodedEntries:
    """A bounded LRU of (stored bytes, decoded entry) per cache key."""

    def __init__(self, max_entries: int = 128, max_bytes: int = 4 * 1024 * 1024) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("max_entries and max_bytes must be >= 0")
        self.max_entries = max_entries
        self.max_bytes = max_bytes  # of stored bytes; their models take ~9× that (18 KB → 170 KB)
        self._items: OrderedDict[str, tuple[bytes, StoredEntry]] = OrderedDict()
        self._lock = threading.Lock()  # decode() may run in worker threads
        self._bytes = 0
        self.reused = 0
        self.decoded = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def decode(
        self,
        cache_key: str,
        raw: bytes | bytearray | str,
        *,
        remember: bool = True,
        sliced: bool = False,
        stop: Callable[[], bool] | None = None,
    ) -> StoredEntry:
        """The entry stored as `raw` under `cache_key`; raises CorruptEntry like decode_entry.

        remember=False still reuses a decode it has, but keeps no new one: for
        one-off walks over every entry (warming Redis) that would otherwise
        push out the entries callers keep reading.

        sliced=True decodes with `decode_sliced` (same answer; for a worker
        thread, which then lets the event loop run between slices); `stop`
        is asked between slices and, once true, abandons the decode
        (DecodeAbandoned). Safe to call from several threads at once.
        """
        # Immutable bytes from here on: what is kept must not change under the comparison.
        data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        with self._lock:
            item = self._items.get(cache_key)
            if item is not None and item[0] == data:
                self._items.move_to_end(cache_key)
                self.reused += 1
                return item[1]
            if item is not None:
                self._forget(cache_key)  # the key now holds other bytes: the old decode is dead weight
        expect = cache_key[-HASH_LEN:]
        entry = decode_sliced(data, expect, stop=stop) if sliced else decode_entry(data, expect)
        with self._lock:
            self.decoded += 1
            if remember:
                self._remember(cache_key, data, entry)
        return entry

    def forget(self, cache_key: str) -> None:
        with self._lock:
            self._forget(cache_key)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def _forget(self, cache_key: str) -> None:
        item = self._items.pop(cache_key, None)
        if item is not None:
            self._bytes -= len(item[0])

    def _remember(self, cache_key: str, raw: bytes, entry: StoredEntry) -> None:
        if self.max_entries == 0 or len(raw) > self.max_bytes:
            return
        self._forget(cache_key)  # another thread may have remembered this key meanwhile
        self._items[cache_key] = (raw, entry)
        self._bytes += len(raw)
        while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
            _, (old, _) = self._items.popitem(last=False)
            self._bytes -= len(old)


# -- big entries, in slices ---------------------------------------------------------------
# The long lists of an entry, by their path from the top of the stored object.
_LISTS: dict[tuple[str, ...], type[BaseModel]] = {
    ("application_ir", "domain_model", "entities"): Entity,
    ("application_ir", "api_model", "endpoints"): Endpoint,
    ("application_ir", "behavior_model", "flows"): Flow,
    ("application_ir", "validation_model", "rules"): ValidationRule,
}
_OBJECTS = {path[:n] for path in _LISTS for n in range(len(path))}  # the objects on the way to them
_WALKED = _OBJECTS | set(_LISTS)
_ADAPTERS: dict[tuple[str, ...], TypeAdapter[Any]] = {
    path: TypeAdapter(tuple[model, ...]) for path, model in _LISTS.items()  # type: ignore[valid-type]
}
_WS = re.compile(r"[ \t\n\r]*")
_SCAN = json.JSONDecoder()
# The stdlib's string scanner (C, the one JSONDecoder uses). typeshed's json/decoder.pyi leaves it
# out (it is not in the module's __all__), so it is typed here.
_scanstring = cast(Callable[[str, int], tuple[str, int]], getattr(json.decoder, "scanstring"))


class _Unsliceable(Exception):
    """Not the shape decode_sliced expects: decode in one piece instead."""


def decode_sliced(
    raw: bytes | str, expect_hash8: str | None = None, *, stop: Callable[[], bool] | None = None
) -> StoredEntry:
    """What `decode_entry(raw, expect_hash8)` returns or raises, validated a slice at a time.

    See the module docstring. Meant for a worker thread; `stop()` is asked
    between slices and, once true, raises DecodeAbandoned.
    """
    items: dict[tuple[str, ...], list[Any]] = {}
    shell = _in_slices(raw, expect_hash8, stop, lambda path, got: items.setdefault(path, []).extend(got))
    if shell is None:
        return decode_entry(raw, expect_hash8)
    entry: BaseModel = shell
    for path, got in items.items():
        entry = _replaced(entry, path, tuple(got))
    return entry  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class EntryDigest:
    """What a viewer shows of a stored entry, without keeping its whole model.

    `head` is the entry itself for a small one; for a big one (`digest_sliced`)
    it is the entry with its long lists (entities, endpoints, flows, rules)
    left empty: `counts` has their lengths and `pretty` the whole IR as
    indented JSON. Use `summary()` and `pretty_json()`, not `head`'s lists.
    """

    head: StoredEntry = field(repr=False)
    size: int | None = None  # stored bytes, when known
    counts: dict[str, int] | None = None  # ApplicationIR.summary() of the whole entry; None: head's
    pretty: bytes | None = field(default=None, repr=False)  # application_ir as `model_dump_json(indent=2)`;
    # None: made from head. (Not in the repr: Textual's @work describes a worker by repr()ing its arguments.)

    def summary(self) -> dict[str, int]:
        return dict(self.counts) if self.counts is not None else self.head.application_ir.summary()

    def pretty_json(self) -> bytes:
        """The IR, indented as `model_dump_json(indent=2)` writes it (UTF-8)."""
        if self.pretty is not None:
            return self.pretty
        return self.head.application_ir.model_dump_json(indent=2).encode("utf-8")


def digest_sliced(
    raw: bytes | str, expect_hash8: str | None = None, *, stop: Callable[[], bool] | None = None
) -> EntryDigest:
    """An EntryDigest of a big entry, validated like `decode_sliced` and never held whole.

    Each slice of items is validated, written out as indented JSON and
    dropped: the whole model (~9× the stored bytes, ~200k Python objects per
    MB, whose garbage-collector passes would pause the event loop for as long
    as the model is big) is never built. Raises CorruptEntry exactly as
    decode_entry would, and DecodeAbandoned once `stop()` is true.
    """
    size = len(raw)
    counts: dict[tuple[str, ...], int] = {}
    bodies: dict[tuple[str, ...], list[bytes]] = {}

    def take(path: tuple[str, ...], got: tuple[Any, ...]) -> None:
        counts[path] = counts.get(path, 0) + len(got)
        bodies.setdefault(path, []).append(_indented_items(path, got))

    shell = _in_slices(raw, expect_hash8, stop, take)
    if shell is None:
        return EntryDigest(decode_entry(raw, expect_hash8), size)
    summary = shell.application_ir.summary()
    for path, n in counts.items():
        summary[path[-1]] = n
    pretty = _stitched(shell.application_ir.model_dump_json(indent=2).encode("utf-8"), bodies)
    if pretty is None:  # pragma: no cover - the shell writes each list once, as `"key": []`
        return EntryDigest(decode_entry(raw, expect_hash8), size)
    return EntryDigest(shell, size, summary, pretty)


def _stitched(shell: bytes, bodies: dict[tuple[str, ...], list[bytes]]) -> bytes | None:
    """The shell's indented JSON with each list's items put into its `[]`, in one join (one copy)."""
    cuts = []
    for path in bodies:
        pad = b"  " * (len(path) - 1)  # the key's indent below application_ir
        needle = b"\n" + pad + json.dumps(path[-1]).encode() + b": []"
        at = shell.find(needle)
        if at == -1 or shell.find(needle, at + 1) != -1:
            return None
        cuts.append((at + len(needle) - 2, pad, path))
    pieces, done = [], 0
    for at, pad, path in sorted(cuts):
        pieces += [shell[done:at], b"[\n"]
        for n, part in enumerate(bodies[path]):
            pieces += [b",\n", part] if n else [part]
        pieces.append(b"\n" + pad + b"]")
        done = at + 2
    pieces.append(shell[done:])
    return b"".join(pieces)


def _indented_items(path: tuple[str, ...], items: tuple[Any, ...]) -> bytes:
    """`items` as they appear inside the indented IR: one per line group, no brackets, no trailing comma."""
    dumped = _ADAPTERS[path].dump_json(items, indent=2)  # b'[\n  {...},\n  {...}\n]'
    extra = b"  " * (len(path) - 1)  # dumped, the items sit at depth 1; in the IR at len(path) (its lists' depth + 1)
    return extra + dumped[2:-2].replace(b"\n", b"\n" + extra)  # JSON strings hold no raw newline


def _in_slices(
    raw: bytes | str,
    expect_hash8: str | None,
    stop: Callable[[], bool] | None,
    take: Callable[[tuple[str, ...], tuple[Any, ...]], None],
) -> StoredEntry | None:
    """Validate `raw` a slice at a time, handing each slice's items to `take(path, items)`.

    Returns the shell (the entry with its long lists empty), raises CorruptEntry
    as decode_entry would, or returns None when `raw` is not of the shape this
    expects (the caller then decodes it with decode_entry).
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
        lists = _find_lists(text)
    except (_Unsliceable, ValueError, IndexError, RecursionError):  # ValueError: UnicodeDecodeError, JSONDecodeError
        return None
    # The entry with its long lists emptied: everything else validated as decode_entry would.
    parts, at = [], 0
    for start, end, _ in sorted(lists.values()):
        parts += [text[at:start], "[]"]
        at = end
    parts.append(text[at:])
    shell_json = "".join(parts)
    errors: list[ErrorDetails] = []
    shell: StoredEntry | None = None
    try:
        shell = StoredEntry.model_validate_json(shell_json)
    except ValidationError as exc:
        errors += exc.errors()
    for path, (_, _, spans) in lists.items():
        adapter, first = _ADAPTERS[path], 0
        while first < len(spans):
            if stop is not None and stop():
                raise DecodeAbandoned()
            last, size = first, 0
            while last < len(spans) and (last == first or size < SLICE_CHARS):
                size += spans[last][1] - spans[last][0]
                last += 1
            piece = "[" + ",".join(text[s:e] for s, e in spans[first:last]) + "]"
            try:
                got = adapter.validate_json(piece)
            except ValidationError as exc:
                for error in exc.errors():
                    loc = error["loc"]
                    if loc and isinstance(loc[0], int):  # an item's error: its index within this slice
                        loc = (first + loc[0], *loc[1:])
                    errors.append({**error, "loc": (*path, *loc)})
            else:
                if not errors:  # once anything failed, the entry is corrupt: stop handing out items
                    take(path, got)
            first = last
    if any(e["type"].startswith("json") for e in errors):  # the stdlib read JSON that pydantic does not
        return None
    if errors or shell is None:
        errors.sort(key=_validation_order)  # stable: each part keeps its own order
        details = [_init_details(e) for e in errors]
        merged = ValidationError.from_exception_data(StoredEntry.__name__, details)
        raise CorruptEntry(_describe(merged, _loads_or_none(shell_json))) from None
    return _check(shell, expect_hash8)


def _init_details(error: ErrorDetails) -> InitErrorDetails:
    """What ValidationError.from_exception_data takes back of an error it reported: no msg or url."""
    details = InitErrorDetails(type=error["type"], loc=error["loc"], input=error["input"])
    if "ctx" in error:
        details["ctx"] = error["ctx"]
    return details


def _validation_order(error: ErrorDetails) -> tuple[int, int]:
    """Where pydantic reports an error: by the envelope's field order, then the IR's."""
    loc = error["loc"]
    fields = list(StoredEntry.model_fields)
    top = fields.index(loc[0]) if loc and loc[0] in fields else -1
    inner = -1
    if top == fields.index("application_ir") and len(loc) > 1 and loc[1] in ApplicationIR.model_fields:
        inner = list(ApplicationIR.model_fields).index(loc[1])
    return top, inner


def _replaced(model: BaseModel, path: tuple[str, ...], value: Any) -> BaseModel:
    """A copy of `model` with the field at `path` set to `value` (already validated)."""
    head = path[0]
    new = value if len(path) == 1 else _replaced(getattr(model, head), path[1:], value)
    return model.model_copy(update={head: new})


#: Path -> (where its '[' is, just past its ']', (start, end) of each item) for each long list.
_Found = dict[tuple[str, ...], tuple[int, int, list[tuple[int, int]]]]


def _find_lists(text: str) -> _Found:
    """Path -> (where its '[' is, just past its ']', (start, end) of each item) for each long list."""
    found: _Found = {}
    pos = _WS.match(text, 0).end()  # type: ignore[union-attr]
    end = _walk_object(text, pos, (), found)
    if _WS.match(text, end).end() != len(text):  # type: ignore[union-attr]
        raise _Unsliceable("data after the entry")
    return found


def _walk_object(text: str, pos: int, path: tuple[str, ...], found: _Found) -> int:
    """Scan the object at `pos` (values scanned, not kept); returns the index just past it."""
    if text[pos] != "{":
        raise _Unsliceable(f"not an object at {'.'.join(path) or 'the top'}")
    seen: set[str] = set()
    pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text[pos] == "}":
        return pos + 1
    while True:
        if text[pos] != '"':
            raise _Unsliceable("a key that is not a string")
        key, pos = _scanstring(text, pos + 1)
        if key in seen and path + (key,) in _WALKED:
            raise _Unsliceable(f"duplicate key {key!r}")  # which one wins is pydantic's business
        seen.add(key)
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        if text[pos] != ":":
            raise _Unsliceable("no ':' after a key")
        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        sub = path + (key,)
        if sub in _OBJECTS and text[pos] == "{":
            pos = _walk_object(text, pos, sub, found)
        elif sub in _LISTS and text[pos] == "[":
            start = pos
            spans, pos = _walk_array(text, pos)
            found[sub] = (start, pos, spans)
        else:
            _, pos = _SCAN.raw_decode(text, pos)
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        if text[pos] == ",":
            pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        elif text[pos] == "}":
            return pos + 1
        else:
            raise _Unsliceable("expected ',' or '}'")


def _walk_array(text: str, pos: int) -> tuple[list[tuple[int, int]], int]:
    """The (start, end) of each item of the array at `pos`, and the index just past it."""
    spans: list[tuple[int, int]] = []
    pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text[pos] == "]":
        return spans, pos + 1
    while True:
        _, end = _SCAN.raw_decode(text, pos)  # one item: the C scanner, one short call
        spans.append((pos, end))
        pos = _WS.match(text, end).end()  # type: ignore[union-attr]
        if text[pos] == ",":
            pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        elif text[pos] == "]":
            return spans, pos + 1
        else:
            raise _Unsliceable("expected ',' or ']'")
