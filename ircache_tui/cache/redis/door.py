"""The one door: every Redis call goes through `Door.run`, and this is where redis-py's
exceptions stop.

`run` turns them into the cache's own errors (errors.py): an outage into RedisUnavailable (and
Redis marked down in `health`, logged once; while it is down calls fail fast without touching
the network, and the first success marks it up again), a refused ACL rule into a
RedisPermissionError that names the rule to add. It is also where read-only is enforced: every
method that writes calls `writable` first, so a read-only tier sends no write command at all.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from redis.exceptions import RedisClusterException, RedisError, ResponseError

from ..errors import ClusterRefused, ReadOnlyError, RedisBusy, RedisUnavailable
from ..health import RedisHealth
from ..refusals import command_error
from ..server import ServerInfo, from_hello, from_info
from ..urls import mask_url
from .clients import execute
from .diagnose import DOWN_ERRORS, auth_refused, pool_exhausted
from .nodes import Nodes

log = logging.getLogger("ircache")

T = TypeVar("T")


class Door:
    def __init__(self, url: str, prefix: str, nodes: Nodes, *, read_only: bool, pool_wait: float = 30.0) -> None:
        """`pool_wait`: how long a command waits for a free connection of a cluster node's pool (a
        single node's blocking pool waits as long: clients.make_client)."""
        self.url = url
        self.pool_wait = pool_wait
        self.prefix = prefix
        self.read_only = read_only
        self.nodes = nodes  # replaced once the URL is found to be a cluster node (RedisTier)
        self.health = RedisHealth(mask_url(url))
        #: raised by every call once the URL was found to be a cluster node that may not be used
        self.refusal: ClusterRefused | None = None
        #: asks whether the URL is a cluster node, while that is still to be asked
        self.settle: Callable[[], Awaitable[None]] | None = None
        #: which server answers (server.py), asked once (again after an outage: it may be another
        #: one); False when it would not say
        self._server: ServerInfo | Literal[False] | None = None
        #: this tier's own keyspace listeners (one per node) still subscribed (notify.py)
        self.listening = 0

    @property
    def display_url(self) -> str:
        return self.nodes.describe(mask_url(self.url))

    def writable(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"read-only cache: not sending {what} to Redis")

    def down(self) -> RedisUnavailable:
        """One line: where, and why in words (see down_reason); the URL's password is masked."""
        return RedisUnavailable(f"Redis unavailable at {self.display_url}: {self.health.reason}")

    def mark_down(self, exc: BaseException) -> RedisUnavailable:
        self.health.mark_down(exc, self.nodes.reason(exc))
        self._server = None  # the one that comes back may be another server (an upgrade, a failover)
        return self.down()

    def mapped(self, exc: RedisError | RedisClusterException | OSError) -> Exception:
        """`exc` as the cache's own error (for a stream that ends with it)."""
        if isinstance(exc, DOWN_ERRORS) or auth_refused(exc):
            return self.mark_down(exc)
        return command_error(exc)

    async def run(self, op: Callable[[], Awaitable[T]], *, probe: bool = False, sent: str | None = None,
                  follow_failover: bool = False) -> T:
        """Run one Redis call; `probe` asks even inside the fast-fail window after a failure;
        `sent` names the subcommand, for the ACL rule a refusal asks for. `follow_failover` (an
        operation that may run twice): on a cluster, `op` waits for a failover and runs again
        (`Nodes.through_failover`), and is tried even inside the fast-fail window (a primary
        that died a moment ago, and is being replaced, must not fail it untried)."""
        if self.refusal is not None:
            raise self.refusal
        if not probe and not (follow_failover and self.nodes.fails_over) and self.health.should_skip():
            self.health.announce()
            raise self.down()
        try:
            if self.settle is not None:
                await self.settle()
            result = await self.nodes.when_free((lambda: self.nodes.through_failover(op)) if follow_failover
                                                else op, self.pool_wait)
        except DOWN_ERRORS as exc:
            if pool_exhausted(exc):  # our own burst, not an outage: Redis stays up, and nobody says down
                raise RedisBusy(f"Redis busy at {self.display_url}: every connection this process may open is "
                                "in use, and none came free in time") from None
            raise self.mark_down(exc) from None
        except RedisError as exc:
            if auth_refused(exc):  # NOAUTH / WRONGPASS on a command: unusable, not a command error
                raise self.mark_down(exc) from None
            # Redis answered (so it is up): an ACL refusal, a wrong type, a bad argument.
            self.health.mark_up()
            raise command_error(exc, sent, prefix=self.prefix) from None
        self.health.mark_up()
        return result

    async def server_info(self) -> ServerInfo | None:
        """Which server answers (Redis, Valkey, ...) and its version: asked once (HELLO, which any
        user may send; INFO server where HELLO is unknown or refused), and again after an outage.
        None when it will not say. Raises RedisUnavailable when Redis is down."""
        if self._server is None:
            self._server = await self.run(self._ask_server) or False
        return self._server or None

    def forget_server(self) -> None:
        """Ask again next time (the server may have changed under us)."""
        self._server = None

    async def _ask_server(self) -> ServerInfo | None:
        client = await self.nodes.any_node()
        try:
            # no protocol version: the connection's own (redis-py's handshake chose it) is kept
            return from_hello(await execute(client, "HELLO"))
        except ResponseError as exc:  # a server before HELLO (Redis 5), a proxy, an ACL
            log.debug("HELLO refused (%s); asking INFO server", _first_line(exc))
        try:
            return from_info(await client.info("server"))
        except ResponseError as exc:
            log.debug("INFO server refused too (%s): the server is not known", _first_line(exc))
            return None


def raising(exc: BaseException) -> Callable[[], Awaitable[Any]]:
    """An op for `run` that raises `exc`, so that it is mapped like any Redis error."""
    async def op() -> Any:
        raise exc
    return op


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
