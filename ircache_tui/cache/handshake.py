"""Connections that work for a least-privilege ACL user.

redis-py names each connection with CLIENT SETNAME (so `CLIENT LIST` shows
`ircache-tui`). A user whose ACL refuses CLIENT (it is in @dangerous) would
then fail every connection; here a refused SETNAME is dropped and the
connection goes on unnamed, said once per process.
"""

from __future__ import annotations

import logging
from functools import cache

from redis.exceptions import NoPermissionError

from .packing import with_hiredis_packing

log = logging.getLogger("ircache")
_said = False


class NameOptional:
    """Mixin for a redis.asyncio connection class: connect unnamed when SETNAME is refused."""

    client_name: str | None

    async def on_connect_check_health(self, check_health: bool = True) -> None:
        try:
            await super().on_connect_check_health(check_health)  # type: ignore[misc]
        except NoPermissionError:
            if not self.client_name:
                raise
            global _said
            if not _said:
                _said = True
                log.info("Redis refuses CLIENT SETNAME for this user: connections stay unnamed")
            self.client_name = None
            # The socket is still open and authenticated: run the handshake again, without the name.
            await super().on_connect_check_health(check_health)  # type: ignore[misc]


@cache
def connection_class_for(connection_class: type) -> type:
    """`connection_class` (plain, unix socket or TLS), packing with hiredis and tolerating a refused SETNAME."""
    packed = with_hiredis_packing(connection_class)
    if issubclass(packed, NameOptional):
        return packed
    return type(f"Tolerant{packed.__name__}", (NameOptional, packed), {})
