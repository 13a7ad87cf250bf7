"""Connections that work for a least-privilege ACL user.

redis-py names each connection with CLIENT SETNAME (so `CLIENT LIST` shows
`ircache-tui`). A user whose ACL refuses CLIENT (it is in @dangerous) would
then fail every connection; here a refused SETNAME is dropped and the
connection goes on unnamed, said once per process.

An error raised while connecting (refused, timed out, AUTH refused) carries
the address of the server that raised it (`SERVER`): on a cluster, a refused
password or a dead node must be told by that node's address, and redis-py's
own text names it only for some of them.
"""

from __future__ import annotations

import contextlib
import logging
from functools import cache
from typing import Any

from redis.exceptions import NoPermissionError

from .packing import with_hiredis_packing

log = logging.getLogger("ircache")
_said = False
#: the attribute an error raised while connecting carries: `host:port` (or the socket's path) of that server
SERVER = "ircache_server"


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


class NamesServer:
    """Mixin for a redis.asyncio connection class: an error while connecting says which server raised it."""

    async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().connect_check_health(*args, **kwargs)  # type: ignore[misc]
        except Exception as exc:
            host, port = getattr(self, "host", None), getattr(self, "port", None)
            where = f"{host}:{port}" if host else getattr(self, "path", None)
            if where and getattr(exc, SERVER, None) is None:
                with contextlib.suppress(AttributeError):  # (an exception class with __slots__)
                    setattr(exc, SERVER, where)
            raise


@cache
def connection_class_for(connection_class: type) -> type:
    """`connection_class` (plain, unix socket or TLS), packing with hiredis, tolerating a refused SETNAME
    and naming the server in an error raised while connecting."""
    packed = with_hiredis_packing(connection_class)
    if issubclass(packed, NameOptional):
        return packed
    return type(f"Tolerant{packed.__name__}", (NamesServer, NameOptional, packed), {})
