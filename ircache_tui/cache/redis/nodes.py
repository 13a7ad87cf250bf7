"""How commands and walks reach Redis: one strategy per mode, behind one interface.

`SingleNode` is a standalone server (or the embedded one); `ClusterNodes` (cluster.py) is every
primary of a Redis Cluster, with its topology, failovers and reshardings. The tier above never
asks which one it holds: a walk is `each(work)`, a pipeline `pipelined(calls)`, a flush
`flush(...)`, and each strategy does what its mode needs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..keys import Selection
from .diagnose import down_reason
from .walk import Reroute, Tally, scan_page, scan_unlink, script_sha, unlink_keys

T = TypeVar("T")
#: (the key a command routes by, the pipeline method, its args, its kwargs)
Call = tuple[str, str, tuple[Any, ...], dict[str, Any]]
#: (Redis key, event) as keyspace notifications arrive; a generator, so that aclosing() ends it at once
Events = AsyncGenerator[tuple[bytes, str], None]
#: listens to one node's keyspace events: (node, told when subscribed) → (Redis key, event)
Listen = Callable[[aioredis.Redis, Callable[[], None] | None], Events]


class FlushProgress:
    """What a flush's walks deleted so far, per walk, told to `on_progress` as it grows.

    Every walk has an index of its own, never reused: not after a resharding, nor when the whole
    flush runs again after a failover, so the partial counts of a round cut short stay counted."""

    def __init__(self, on_progress: Callable[[int], None] | None) -> None:
        self._on_progress = on_progress
        self._per_walk: dict[int, int] = {}
        self._rounds = 0
        self.total = 0

    def new_round(self) -> int:
        """The first index of a new round of walks (each round has 2**20 of its own)."""
        first, self._rounds = self._rounds << 20, self._rounds + 1
        return first

    def of(self, walk: int) -> Callable[[int], None]:
        def progress(n: int) -> None:
            self._per_walk[walk] = n
            self.total = sum(self._per_walk.values())
            if self._on_progress is not None:
                self._on_progress(self.total)
        return progress


class Nodes(ABC):
    """The client commands go through (plain, or a RedisCluster), and the nodes walks cover."""

    is_cluster = False
    #: what the server facts call this mode
    mode = "standalone"
    #: whether a flush leaves the deleted entries' hit counts for a walk of their own (a cluster node's
    #: script cannot reach a hit key another node serves; one server's deletes them with the entry)
    hits_left_by_flush = False
    #: whether a command may wait for a failover (then it is tried even inside the fast-fail window)
    fails_over = False

    def __init__(self, client: Any) -> None:
        self.client = client

    @abstractmethod
    def describe(self, url: str) -> str:
        """The masked URL as shown, with what this mode adds to it."""

    @property
    def info(self) -> dict[str, Any] | None:
        """`{"primaries": N}` on a cluster, None on a single node."""
        return None

    @property
    def known(self) -> bool:
        """Whether what `learn` asks is known already."""
        return True

    async def learn(self) -> None:
        """Ask what the mode needs to know before the first command (a cluster's primaries)."""

    @property
    @abstractmethod
    def db(self) -> int: ...

    @abstractmethod
    async def aclose(self) -> None: ...

    @abstractmethod
    def reason(self, exc: BaseException) -> str:
        """Why Redis cannot be used, in words (down_reason), naming the node where there are several."""

    def label(self, node: aioredis.Redis) -> str:
        """` on host:port` where a message must say which node, else ''."""
        return ""

    @abstractmethod
    def when_free(self, op: Callable[[], Awaitable[T]], pool_wait: float) -> Awaitable[T]:
        """`op()`, waiting up to `pool_wait` seconds for a free connection of the pool it needs."""

    @abstractmethod
    async def through_failover(self, op: Callable[[], Awaitable[T]]) -> T:
        """`op()`, again after a failover where there can be one."""

    @abstractmethod
    async def each(self, work: Callable[[int, aioredis.Redis], Awaitable[T]], *,
                   follow_failover: bool = False) -> list[T]:
        """`work(index, client)` on every node a walk covers; the results in order."""

    @abstractmethod
    async def walk_nodes(self) -> list[aioredis.Redis]:
        """The plain clients of the nodes a walk covers, as they are now."""

    @abstractmethod
    async def any_node(self) -> aioredis.Redis:
        """A plain client of one node (to ask the server what it is)."""

    @abstractmethod
    async def client_for_key(self, key: str | bytes) -> aioredis.Redis:
        """The plain client of the node that serves `key`."""

    @abstractmethod
    async def pipelined(self, calls: list[Call], *, raise_on_error: bool = True) -> list[Any]:
        """`calls` in one pipelined round trip (one per node); the replies in the order of `calls`."""

    @abstractmethod
    async def unlink_exact(self, keys: list[bytes] | list[str], went: list[int] | None = None, *,
                           entry: bytes | None = None, kept: Tally | None = None) -> int:
        """UNLINK exactly `keys` (with `entry`: those that hold entries); how many went, added up in
        `went[0]` as they go (a node that failed leaves the others' count)."""

    @abstractmethod
    async def flush(self, selection: Selection, progress: FlushProgress, on_kept: Tally | None,
                    refused: dict[bytes, RedisError]) -> int:
        """UNLINK every entry `selection` takes; how many went. `refused` collects keys the ACL would
        not let a cluster walk follow to their new node (left, and said)."""

    async def still_left(self, refused: dict[bytes, RedisError]) -> None:
        """Drop from `refused` the keys a later walk deleted after all."""

    @abstractmethod
    async def scan_step(self, cursor: int, pattern: str, count: int) -> tuple[int, list[bytes]]:
        """One page of a walk over keys matching `pattern` (cursor: see pager.py)."""

    @property
    def rerouter(self) -> Reroute | None:
        """What deletes keys a node no longer serves (a cluster's resharding); None on one server."""
        return None

    @abstractmethod
    def script_clients(self) -> list[Any]:
        """Every client a script may be loaded on."""

    @abstractmethod
    async def scripts_on(self, name: str, body: str, keys: list[str]) -> bool:
        """Load script `name` where `keys` live; False when a node refuses scripts."""

    @abstractmethod
    def events(self, listen: Listen, on_subscribed: Callable[[], None] | None) -> Events:
        """Keyspace events of every node, as one stream."""


class SingleNode(Nodes):
    """A standalone server: every command and walk goes to the one client."""

    def describe(self, url: str) -> str:
        return url

    @property
    def db(self) -> int:
        return int(self.client.connection_pool.connection_kwargs.get("db", 0) or 0)

    async def aclose(self) -> None:
        await self.client.aclose()

    def reason(self, exc: BaseException) -> str:
        return down_reason(exc)

    async def through_failover(self, op: Callable[[], Awaitable[T]]) -> T:
        return await op()

    def when_free(self, op: Callable[[], Awaitable[T]], pool_wait: float) -> Awaitable[T]:
        """`op()` (a single node's blocking pool waits up to `pool_wait` for a free connection
        itself, so no coroutine of ours wraps the call: this is on every cache hit)."""
        return op()

    async def each(self, work: Callable[[int, aioredis.Redis], Awaitable[T]], *,
                   follow_failover: bool = False) -> list[T]:
        return [await work(0, self.client)]

    async def walk_nodes(self) -> list[aioredis.Redis]:
        return [self.client]

    async def any_node(self) -> aioredis.Redis:
        return self.client  # type: ignore[no-any-return]

    async def client_for_key(self, key: str | bytes) -> aioredis.Redis:
        return self.client  # type: ignore[no-any-return]

    async def pipelined(self, calls: list[Call], *, raise_on_error: bool = True) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for _, method, args, kwargs in calls:
            getattr(pipe, method)(*args, **kwargs)
        return list(await pipe.execute(raise_on_error=raise_on_error))

    async def unlink_exact(self, keys: list[bytes] | list[str], went: list[int] | None = None, *,
                           entry: bytes | None = None, kept: Tally | None = None) -> int:
        return await unlink_keys(self.client, keys, entry=entry, kept=kept)  # (one node: all or its error)

    async def flush(self, selection: Selection, progress: FlushProgress, on_kept: Tally | None,
                    refused: dict[bytes, RedisError]) -> int:
        await scan_unlink(self.client, selection, on_progress=progress.of(progress.new_round()), on_kept=on_kept)
        return progress.total

    async def scan_step(self, cursor: int, pattern: str, count: int) -> tuple[int, list[bytes]]:
        return await scan_page(self.client, cursor, pattern, count)

    def script_clients(self) -> list[Any]:
        return [self.client]

    async def scripts_on(self, name: str, body: str, keys: list[str]) -> bool:
        return await script_sha(self.client, name, body) is not False

    def events(self, listen: Listen, on_subscribed: Callable[[], None] | None) -> Events:
        return listen(self.client, on_subscribed)

