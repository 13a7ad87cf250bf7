"""The audit trail's Redis side (IR_AUDIT_REDIS=1): one capped stream, `{prefix}:audit`.

Each record is one entry with one field, `record`: the same JSON line the file gets (audit.py), so
the two never disagree on a record's shape. XADD trims to STREAM_MAXLEN exactly (`MAXLEN n`, not
`~`): actions are rare, and an exact cap is what the README can promise. Entry ids are the
server's milliseconds, so `--since` is an XRANGE from that millisecond.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..keys import KeySpace
from .door import Door

#: the records the stream keeps (the oldest go first)
STREAM_MAXLEN = 10_000
#: read a page at a time (XRANGE COUNT)
_PAGE = 1_000


class AuditStream:
    def __init__(self, door: Door, keys: KeySpace) -> None:
        self._door = door
        self.key = keys.audit_key

    async def add(self, line: bytes) -> None:
        self._door.writable("XADD (audit)")
        await self._door.run(lambda: self._door.nodes.client.xadd(self.key, {"record": line}, maxlen=STREAM_MAXLEN,
                                                                  approximate=False), sent="xadd")

    async def read(self, since: datetime | None = None) -> list[bytes]:
        """Every record line from `since` on (all when None), oldest first."""
        start = f"{int(since.timestamp() * 1000)}-0" if since is not None else "-"
        lines: list[bytes] = []
        while True:
            first = start

            async def page() -> Any:
                return await self._door.nodes.client.xrange(self.key, min=first, max="+", count=_PAGE)

            entries = await self._door.run(page, sent="xrange")
            lines += [fields.get(b"record", b"") for _, fields in entries]
            if len(entries) < _PAGE:
                return lines
            start = "(" + entries[-1][0].decode()  # exclusive: after the last one read (Redis 6.2+)
