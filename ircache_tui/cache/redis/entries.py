"""Telling our entries from another tool's keys under our names, and deleting one entry.

An entry is a key of our grammar whose value begins as an envelope (`ENTRY_HEAD`); anything else
under our names is another tool's, never counted, overwritten or deleted as ours. The keys found
to hold such values are remembered (bounded), so that a write never lands on one.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import AskError, MovedError, NoScriptError, RedisError, ResponseError

from ...ir.envelope import ENTRY_HEAD, is_entry_head
from ..errors import ForeignKey
from ..keys import KeyLike, KeySpace
from . import scripts
from .walk import busy, refused_in_script

#: how many keys found to hold another tool's value under our names are remembered (never written)
_FOREIGN_MEMORY = 1024


class EntryDeleter:
    """UNLINK one key if it holds an entry: one script (DELETE_ENTRY) where scripts are allowed,
    else GETRANGE then UNLINK."""

    def __init__(self) -> None:
        self._scripted = True  # False once the server refused DELETE_ENTRY
        self._bound: tuple[Any, Any] | None = None  # (client, the script registered on it)

    async def delete(self, client: Any, rkey: str | bytes) -> int:
        """1 deleted, 0 gone, -1 kept (not an entry)."""
        if self._scripted:
            if self._bound is None or self._bound[0] is not client:
                self._bound = (client, client.register_script(scripts.DELETE_ENTRY))
            try:
                return int(await self._bound[1](keys=[rkey], args=[ENTRY_HEAD]))
            except (NoScriptError, ResponseError) as exc:
                if not isinstance(exc, NoScriptError) and (refused_in_script(exc) or busy(exc)
                                                            or isinstance(exc, (MovedError, AskError))):
                    raise
                self._scripted = False  # scripts refused here: check, then act
        head = await client.getrange(rkey, 0, len(ENTRY_HEAD) - 1)
        if head and not is_entry_head(head):
            return -1
        if not head and await client.exists(rkey):
            return -1  # an empty string: nobody's entry
        return int(await client.unlink(rkey))


class ForeignMemory:
    """Cache keys whose Redis key was found to hold another tool's value (newest last, bounded)."""

    def __init__(self, keys: KeySpace) -> None:
        self._keys = keys
        self._found: dict[str, None] = {}

    def found(self, key: KeyLike, what: str) -> ForeignKey:
        """Remember it; the error that says so."""
        cache_key = str(key)
        self._found.pop(cache_key, None)
        self._found[cache_key] = None
        while len(self._found) > _FOREIGN_MEMORY:
            del self._found[next(iter(self._found))]
        return ForeignKey(self._keys.redis_key(cache_key), what)

    def forget(self, key: KeyLike) -> None:
        """The key is gone: the next writer may be us."""
        self._found.pop(str(key), None)

    def __contains__(self, key: object) -> bool:
        return str(key) in self._found


def shown_head(raw: bytes) -> str:
    """Another tool's string value, for a message: `a string beginning '{"user": 1…'` (its first
    bytes escaped, short)."""
    text = repr(raw[:16])[2:-1]
    return f"a string beginning '{text}…'" if len(raw) > 16 else f"the string '{text}'" if raw else "an empty string"


def head_of(reply: object) -> bytes | None:
    """A GETRANGE reply in a pipeline: the bytes; None for another type (WRONGTYPE); b"" unknown."""
    if isinstance(reply, bytes):
        return reply
    return None if isinstance(reply, RedisError) and "WRONGTYPE" in str(reply) else b""
