"""Entries decoded before, reused while the stored bytes stay the same.

Validating an entry into models costs more than the round trip that fetched
it (an 18 KB entry: ~0.1 ms over json.loads). A long-lived process reads the
same entries again and again, so the last decode of each key is kept with the
exact bytes it came from. A read whose bytes equal them (a full comparison,
not a hash) gets the same StoredEntry back; any other bytes are decoded and
validated afresh. It can therefore never answer with something that decoding
the bytes would not, and sharing is safe because the models are immutable.
"""

from __future__ import annotations

from collections import OrderedDict

from ..ir.envelope import StoredEntry, decode_entry
from .keys import HASH_LEN


class DecodedEntries:
    """A bounded LRU of (stored bytes, decoded entry) per cache key."""

    def __init__(self, max_entries: int = 128, max_bytes: int = 4 * 1024 * 1024) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("max_entries and max_bytes must be >= 0")
        self.max_entries = max_entries
        self.max_bytes = max_bytes  # of stored bytes; their models take ~9× that (18 KB → 170 KB)
        self._items: OrderedDict[str, tuple[bytes, StoredEntry]] = OrderedDict()
        self._bytes = 0
        self.reused = 0
        self.decoded = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def decode(self, cache_key: str, raw: bytes | bytearray | str, *, remember: bool = True) -> StoredEntry:
        """The entry stored as `raw` under `cache_key`; raises CorruptEntry like decode_entry.

        remember=False still reuses a decode it has, but keeps no new one: for
        one-off walks over every entry (warming Redis) that would otherwise
        push out the entries callers keep reading.
        """
        # Immutable bytes from here on: what is kept must not change under the comparison.
        data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        item = self._items.get(cache_key)
        if item is not None and item[0] == data:
            self._items.move_to_end(cache_key)
            self.reused += 1
            return item[1]
        if item is not None:
            self.forget(cache_key)  # the key now holds other bytes: the old decode is dead weight
        entry = decode_entry(data, cache_key[-HASH_LEN:])
        self.decoded += 1
        if remember:
            self._remember(cache_key, data, entry)
        return entry

    def forget(self, cache_key: str) -> None:
        item = self._items.pop(cache_key, None)
        if item is not None:
            self._bytes -= len(item[0])

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0

    def _remember(self, cache_key: str, raw: bytes, entry: StoredEntry) -> None:
        if self.max_entries == 0 or len(raw) > self.max_bytes:
            return
        self._items[cache_key] = (raw, entry)
        self._bytes += len(raw)
        while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
            _, (old, _) = self._items.popitem(last=False)
            self._bytes -= len(old)
