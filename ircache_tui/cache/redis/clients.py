"""Clients: a plain one for any redis URL, a RedisCluster from any node's URL, and the URL of
another node. Short timeouts and one quick retry of a dropped connection, none of a timeout:
an unreachable Redis costs milliseconds and a hung one a single timeout."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ClusterDownError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError

from ..handshake import connection_class_for


def make_client(
    url: str, *, connect_timeout: float = 0.5, socket_timeout: float = 0.5, max_connections: int | None = None,
    pool_wait: float = 30.0,
) -> aioredis.Redis:
    """A client for any redis URL (redis://, rediss://, unix://, credentials included).

    With `max_connections`, a blocking pool: a burst of work waits for one of
    those connections instead of opening more (a dashboard on a shared Redis
    must not take a hundred of them), for up to `pool_wait` seconds.
    """
    options: dict[str, Any] = dict(
        socket_connect_timeout=connect_timeout,
        socket_timeout=socket_timeout,
        # a dropped connection is retried once (a restarted server); a timeout is not:
        # a hung server would only hang again, and the filesystem can answer now
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1, supported_errors=(RedisConnectionError,)),
        retry_on_timeout=False,
        client_name="ircache-tui",
    )
    if max_connections is not None:
        # a wait longer than any single call (socket_timeout) means something is stuck
        blocking = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=pool_wait,
                                                              **options)
        client = aioredis.Redis.from_pool(blocking)  # closes the pool with the client
    else:
        client = aioredis.Redis.from_url(url, **options)
    pool = client.connection_pool  # from_url chose the class for the scheme; keep it, pack in C, SETNAME optional
    # mypy takes no class object for Hashable (python/mypy#11470), which functools.cache's stub asks
    pool.connection_class = connection_class_for(pool.connection_class)  # type: ignore[arg-type]
    return client


class _Cluster(RedisCluster):
    """RedisCluster retrying as make_client does: a dropped connection or a failover (CLUSTERDOWN,
    a slot not covered yet) once, with the topology asked again; a timeout never (a hung node
    would only hang again, and the filesystem can answer now)."""

    # redis-py leaves AbstractRedisCluster.ERRORS_ALLOW_RETRY (redis/cluster.py) unannotated, so mypy
    # takes its four classes for its type and refuses any other set, this one without TimeoutError
    ERRORS_ALLOW_RETRY = (RedisConnectionError, ClusterDownError, SlotNotCoveredError)  # type: ignore[assignment]


def make_cluster_client(
    url: str, *, connect_timeout: float = 0.5, socket_timeout: float = 0.5, max_connections: int | None = None,
    pool_wait: float = 30.0,
) -> RedisCluster:
    """A RedisCluster from the URL of any one node, credentials included, reading from primaries only.
    (Its pools do not wait for a free connection: the door does, for `pool_wait` seconds.)

    The topology (CLUSTER SLOTS) and the command table (COMMAND) are asked at its first command.
    """
    options: dict[str, Any] = dict(
        socket_connect_timeout=connect_timeout,
        socket_timeout=socket_timeout,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),  # only its count is used
        client_name="ircache-tui",
    )
    if max_connections is not None:
        options["max_connections"] = max_connections  # per node
    if "topology_refresh_min_interval" in inspect.signature(RedisCluster.__init__).parameters:
        # redis-py 8.2 waits a second between two refreshes an error asks for (default 1 s): the
        # one retry of a command that met a dead primary would then go to it again, and a failover
        # would be learned only by a later command (the seconds a refresh costs are rare here)
        options["topology_refresh_min_interval"] = 0
    client = _Cluster.from_url(url, **options)
    # as make_client: pack with hiredis, and connect unnamed where CLIENT SETNAME is refused
    tolerant = connection_class_for(client.connection_kwargs["connection_class"])
    client.connection_kwargs["connection_class"] = tolerant  # every node found from now on
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = tolerant
    return client


def node_url(url: str, host: str, port: int) -> str:
    """`url` (scheme, credentials, options) pointed at another node."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return urlunsplit((parts.scheme, f"{userinfo}{at}{where}", parts.path, parts.query, parts.fragment))



def node_name(client: aioredis.Redis) -> str:
    """`host:port` of a plain client's server."""
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


def node_address(client: aioredis.Redis) -> str:
    """`host:port`, or the socket's path, of a plain client's server: which node, in words."""
    path = client.connection_pool.connection_kwargs.get("path")
    return str(path) if path else node_name(client)


def execute(client: aioredis.Redis | RedisCluster, *args: str) -> Awaitable[Any]:
    """`client.execute_command(*args)`, whose reply is whatever the command answers. redis-py (8.2)
    leaves Redis.execute_command unannotated: its type is stated here, once."""
    command: Callable[..., Awaitable[Any]] = client.execute_command
    return command(*args)
