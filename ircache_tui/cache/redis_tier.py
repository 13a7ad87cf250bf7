"""Tier 1: Redis. The seed's four operations, as coroutines over redis.asyncio.

Short timeouts (settings: IR_REDIS_TIMEOUT, IR_REDIS_CONNECT_TIMEOUT) and one
quick retry of a dropped connection, none of a timeout: an unreachable Redis
costs milliseconds and a hung one a single timeout, not 5 s per attempt. Connection failures mark Redis down in `health` (logged
once) and surface as RedisUnavailable; while it is down calls fail fast
without touching the network, and the first success marks it up again.

This is where redis-py's exceptions stop: every call goes through `_run`,
which turns them into the cache's own errors (errors.py), a refused ACL rule
into a RedisPermissionError that names the rule to add. It is also where
read-only is enforced: every method that writes checks `_writable` first,
so a read-only tier sends no write command at all.

Redis Cluster: REDIS_URL may name any node of a cluster. Whether it is one is
asked once (INFO cluster, on the plain connection, at open or at the first
call that reaches Redis; IR_REDIS_CLUSTER forces or forbids it). On a cluster
`client` becomes a RedisCluster (same credentials and timeouts, reads from
primaries only) for single-key commands and the lock scripts, and every walk
(flush, stats, top, count, the stale walk) runs once per primary,
concurrently, over a plain connection to that primary (`_node_clients`): the
per-node logic of scan.py is reused unchanged, each node's SCAN cursor and
EVALSHA stay on that node, and the keys a node returns live in its slots.
Pipelines are split by the node that owns each command's key (`_pipelined`),
and no multi-key UNLINK ever names keys of two slots.

Failover: every walk starts from the topology asked again (CLUSTER SLOTS), and
the per-primary clients are those of the primaries it names now. A flush
whose walk on some primary fails because that primary died (connection
refused or reset, a timeout) or no longer serves its slots (MOVED, ASK,
READONLY, CLUSTERDOWN, TRYAGAIN) waits up to FAILOVER_WAIT seconds for the
topology to change (a replica promoted), then walks every primary it names
again; otherwise it stops and FlushIncomplete says how many keys went. A
command that meets the dead primary before any walk began (the topology
asked first still names it until a replica is promoted: the flush's first
CLUSTER NODES, the PING of a command that needs Redis, warm's existence check
and SETs) waits the same way and runs again (`_run(follow_failover=True)`),
tried even inside the fast-fail window that the failure opened. An error
that comes from one node names it (host:port) after the URL given.

Resharding: while a slot migrates, its keys live on two primaries, and a key
carried from a node the flush has not walked yet to one it has walked is
behind the cursor. A node's delete of a key it no longer serves fails alone
(UNLINK_EACH runs each UNLINK under pcall) and the key goes through the
cluster client, which follows MOVED and ASK (`_reroute`). A flush compares
the slot owners and the slots in migration (`CLUSTER NODES`) before and
after its walk; if anything moved, it waits up to RESHARD_WAIT for the
migrations to end and walks again, until a walk sees nothing move. Still
migrating then, it stops with FlushIncomplete, saying which slots move.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.crc import key_slot
from redis.exceptions import AuthenticationError, AuthenticationWrongNumberOfArgsError, ClusterCrossSlotError
from redis.exceptions import AskError, BusyLoadingError, ClusterDownError, ClusterError, MovedError, TryAgainError
from redis.exceptions import ReadOnlyError as RedisReadOnlyError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoPermissionError, RedisClusterException, RedisError
from redis.exceptions import NoScriptError, ResponseError, SlotNotCoveredError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .. import redact
from ..fmt import plural
from ..ir.envelope import ENTRY_HEAD, CorruptEntry, generated_epoch, is_entry_head
from . import scan, scripts
from .errors import (
    ClusterRefused,
    FlushIncomplete,
    ForeignKey,
    IRCacheError,
    ReadOnlyError,
    RedisCommandError,
    RedisPermissionError,
    RedisUnavailable,
)
from .health import RedisHealth
from .keys import KeySpace, ParsedKey
from .refusals import command_error
from .server import ServerInfo, from_hello, from_info

if TYPE_CHECKING:
    from .hits import HitBatch
from .handshake import SERVER, connection_class_for
from .urls import mask_url

log = logging.getLogger("ircache")

T = TypeVar("T")
# Redis cannot be used: not reached, not answering, not Redis, or it refused our credentials
# (AuthenticationError is a ConnectionError; the wrong-number-of-args one is a ResponseError)
# A cluster that cannot serve: CLUSTERDOWN, a slot no node covers, no reachable node to learn the
# topology from, redirections that never settle (RedisClusterException is not a RedisError)
_DOWN_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError,
                AuthenticationWrongNumberOfArgsError, InvalidResponse, ClusterError, RedisClusterException)
# K keyspace channel; g generic (del, expire, rename); $ string (set); x expired
_NOTIFY_FLAGS = "Kg$x"

LockMode = Literal["native", "script", "watch", "none"]
#: how many keys found to hold another tool's value under our names are remembered (never written)
_FOREIGN_MEMORY = 1024


def make_client(
    url: str, *, connect_timeout: float = 0.5, socket_timeout: float = 0.5, max_connections: int | None = None
) -> aioredis.Redis:
    """A client for any redis URL (redis://, rediss://, unix://, credentials included).

    With `max_connections`, a blocking pool: a burst of work waits for one of
    those connections instead of opening more (a dashboard on a shared Redis
    must not take a hundred of them).
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
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=30, **options)
        client = aioredis.Redis.from_pool(pool)  # closes the pool with the client
    else:
        client = aioredis.Redis.from_url(url, **options)
    pool = client.connection_pool  # from_url chose the class for the scheme; keep it, pack in C, SETNAME optional
    pool.connection_class = connection_class_for(pool.connection_class)
    return client


class _Cluster(RedisCluster):
    """RedisCluster retrying as make_client does: a dropped connection or a failover (CLUSTERDOWN,
    a slot not covered yet) once, with the topology asked again; a timeout never (a hung node
    would only hang again, and the filesystem can answer now)."""

    ERRORS_ALLOW_RETRY = (RedisConnectionError, ClusterDownError, SlotNotCoveredError)


def make_cluster_client(
    url: str, *, connect_timeout: float = 0.5, socket_timeout: float = 0.5, max_connections: int | None = None
) -> RedisCluster:
    """A RedisCluster from the URL of any one node, credentials included, reading from primaries only.

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


def _node_name(client: aioredis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


#: a composite SCAN cursor over a cluster: (the node's own cursor << (_NODE_BITS + _LAYOUT_BITS)) |
#: (the walk's layout << _NODE_BITS) | the node's index in that layout
_NODE_BITS = 16
#: a layout is the primaries a walk started with, by name (the last 2**_LAYOUT_BITS are kept): a
#: cursor names its node in it, so a primary added or gone since cannot send it to another node
_LAYOUT_BITS = 8

#: how long a flush waits for a cluster's topology to change (a replica promoted) after a primary's
#: walk failed, before it stops and says how many keys went; asked again every _TOPOLOGY_POLL seconds
FAILOVER_WAIT = 5.0
_TOPOLOGY_POLL = 0.1
#: how long a flush that saw slots move between primaries waits for the resharding to end before it
#: walks again (to find keys carried behind a cursor); still moving then, it stops and says so
RESHARD_WAIT = 10.0
# a node that is gone, or no longer serves the slots its walk was for (MOVED and ASK are ResponseErrors,
# READONLY a replica refusing a write; CLUSTERDOWN, TRYAGAIN and LOADING pass during a failover)
_TOPOLOGY_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, MovedError, AskError,
                    RedisReadOnlyError, ClusterDownError, TryAgainError, BusyLoadingError)
_TOPOLOGY_REPLIES = ("MOVED ", "ASK ", "READONLY ", "CLUSTERDOWN ", "TRYAGAIN ", "LOADING ")
#: set on a topology error a wait for the failover already followed and gave up on: an enclosing
#: operation that follows failovers raises it at once instead of waiting again
_WAITED = "ircache_failover_waited"


def _topology_error(exc: BaseException) -> bool:
    """Whether `exc` says the node's walk failed because the cluster's topology changed under it
    (never a refused password or ACL rule, which a failover does not cure)."""
    if _auth_refused(exc) or isinstance(exc, NoPermissionError):
        return False
    for e in _chain(exc):
        if isinstance(e, _TOPOLOGY_ERRORS):
            return True
        if isinstance(e, ResponseError) and str(e).startswith(_TOPOLOGY_REPLIES):
            return True
    return False


async def _noop() -> None:
    return None


def _slot_probe_keys(prefix: str) -> tuple[str, str]:
    """Two keys under the prefix (never IR keys: no `_{hash8}` end) that hash to different slots."""
    first = f"{prefix}:cluster-probe:0"
    for i in range(1, 100):
        other = f"{prefix}:cluster-probe:{i}"
        if key_slot(other.encode()) != key_slot(first.encode()):
            return first, other
    raise AssertionError("unreachable: 100 keys in one slot")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the exceptions it was raised from or during (redis-py wraps the OSError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _auth_refused(exc: BaseException) -> bool:
    """A refusal of our credentials (or of their absence), whatever class redis-py gave it."""
    for e in _chain(exc):
        if isinstance(e, (AuthenticationError, AuthenticationWrongNumberOfArgsError)):
            return True
        if isinstance(e, ResponseError) and str(e).startswith(("NOAUTH", "WRONGPASS")):
            return True
    return False


# redis-py's own texts name the server: "Error 111 connecting to H:P.", "Timeout reading from H:P",
# "Error while reading from H:P : ..." (not "Timeout connecting to server", nor a refused AUTH)
_NAMED_IN_TEXT = re.compile(r"(?:connecting to|reading from|writing to) (\S+:\d+)")


def _node_of(exc: BaseException) -> str | None:
    """The `host:port` of the cluster node an error came from, when anything says it: the
    connection that raised it (handshake.SERVER), the per-node walk or pipeline it failed in
    (`_blame`), the cluster client's node (redis-py sets `.connection`), or redis-py's text."""
    for e in _chain(exc):
        named = getattr(e, SERVER, None)
        if isinstance(named, str) and named:
            return named
        node = getattr(getattr(e, "connection", None), "name", None)
        if isinstance(node, str) and node:
            return node
        if isinstance(e, (RedisError, OSError)) and (m := _NAMED_IN_TEXT.search(str(e))):
            return m.group(1)
    return None


def _blame(exc: BaseException, node: str) -> None:
    """Note that `exc` came from `node` (a walk's or a pipeline's), unless it already names one."""
    if _node_of(exc) is None:
        with contextlib.suppress(AttributeError):
            setattr(exc, SERVER, node)


def _connection_lost(exc: BaseException) -> bool:
    """Refused, reset or timed out (not a refused password): the node is gone or hung."""
    return not _auth_refused(exc) and any(
        isinstance(e, (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)) for e in _chain(exc))


_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused (nothing is listening there)",
    errno.ENOENT: "no such socket",
    errno.ETIMEDOUT: "timed out connecting",
    errno.EACCES: "permission denied on the socket",
    errno.EPERM: "permission denied on the socket",
    errno.ECONNRESET: "the connection was reset",
    errno.EHOSTUNREACH: "no route to the host",
    errno.ENETUNREACH: "the network is unreachable",
    errno.ENOTSOCK: "that path is not a socket",
    errno.ECONNABORTED: "the connection was aborted",
}


def down_reason(exc: BaseException, node: str | None = None) -> str:
    """Why Redis cannot be used, in words: wrong password, needs a password, connection
    refused, timed out, no such socket... (the server's own text only when none fits).

    `node`: the cluster node (`host:port`) the error came from, said as the one that refused or
    did not answer (the URL names another node, or none of the one that failed)."""
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    low = text.lower()
    who = node or "it"
    if _auth_refused(exc):
        texts = " ".join(str(e).lower() for e in _chain(exc))
        if "without any password configured" in texts or "no password is set" in texts or isinstance(
            exc, AuthenticationWrongNumberOfArgsError
        ):
            return f"the URL gives a password, but {node or 'the server'} has none set"
        if "invalid username-password" in texts or "invalid password" in texts or "wrongpass" in texts:
            return f"{who} refused the password (wrong password, or wrong user name)"
        if "authentication required" in texts or "already authenticated" in texts or "noauth" in texts:
            return f"{who} needs a password, and the URL gives none"
        return f"{who} refused the credentials ({redact.scrub(text)})"
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in _ERRNO_WORDS:
            words = _ERRNO_WORDS[e.errno]
            if e.errno == errno.ENOENT and e.filename:
                words = f"no such socket: {e.filename}"
            if node and e.errno == errno.ECONNREFUSED:
                return f"{node} refused the connection (nothing is listening there)"
            return f"{node}: {words}" if node else words
        if isinstance(e, OSError) and e.errno is not None and e.errno < 0 and "name" in str(e).lower():
            return "unknown host (the name does not resolve)"  # socket.gaierror
    if isinstance(exc, (RedisTimeoutError, TimeoutError)) or "timeout" in low or "timed out" in low:
        return f"{node} did not answer in time" if node else "timed out (no answer in time)"
    if isinstance(exc, InvalidResponse):
        return f"what answers {f'at {node}' if node else 'there'} is not a Redis server ({redact.scrub(text)})"
    if "max number of clients" in low:
        return f"{who} has reached its maximum number of clients"
    if "closed by server" in low or "connection closed" in low:
        return f"{node} closed the connection" if node else "the server closed the connection"
    return f"{node}: {redact.scrub(text)}" if node else redact.scrub(text)


class RedisTier:
    def __init__(
        self,
        url: str,
        keyspace: KeySpace,
        ttl: int,
        *,
        connect_timeout: float = 0.5,
        socket_timeout: float = 0.5,
        read_only: bool = False,
        private: bool = False,
        max_connections: int | None = None,
        cluster: bool | None = None,
        on_topology: Callable[[str], None] | None = None,
    ) -> None:
        """`read_only`: refuse every write. `private`: the embedded server, whose config is ours to set
        (a single node: never asked about cluster mode).
        `max_connections`: at most this many connections (per node on a cluster); callers beyond it wait.
        `cluster`: True, the URL is a cluster node (no question asked); False, refuse a cluster node;
        None, ask the server (INFO cluster) before the first call.
        `on_topology`: told, in a sentence, when a cluster's slots changed primary (a failover, a
        resharding) since the last time the topology was asked."""
        redact.register_url_password(url)
        self.url = url
        self.keys = keyspace
        self.ttl = ttl
        self.read_only = read_only
        self.private = private
        self._client_options: dict[str, Any] = dict(
            connect_timeout=connect_timeout, socket_timeout=socket_timeout, max_connections=max_connections
        )
        #: a RedisCluster once the URL is known to be a cluster node (see `cluster`), else a plain client
        self.client: Any = None
        self.cluster = False
        self._cluster_setting = cluster
        self._node_clients: dict[str, aioredis.Redis] = {}  # primary's name (host:port) → plain client
        self._retired: list[aioredis.Redis] = []  # clients of nodes that are no longer primaries (closed at aclose)
        self._primary_count: int | None = None
        self._on_topology = on_topology
        self._owners_seen: tuple[str, ...] | None = None  # the slot owners when last asked
        self._mode_pending = not private and cluster is not True  # INFO cluster still to be asked
        self._mode_lock = asyncio.Lock()
        self._refusal: ClusterRefused | None = None
        if cluster and not private:
            self._use(make_cluster_client(url, **self._client_options), cluster=True)
        else:
            self._use(make_client(url, **self._client_options), cluster=False)
        self.health = RedisHealth(mask_url(url))
        self._lock_mode: LockMode | None = None  # found on first use: native, scripts, WATCH/MULTI, or no lock
        #: which server answers (server.py), asked once (again after an outage: it may be another one);
        #: False when it would not say
        self._server: ServerInfo | Literal[False] | None = None
        self._native: str | None = None  # the server's compare-and-delete command (lock_mode), if any
        self._said_lock_refusal: set[str] = set()
        self._stats_scripted = True  # False once the server refused the stats script
        self._resharded = False  # a flush walk found a key its node no longer serves (see _reroute)
        self._layouts: dict[int, tuple[str, ...]] = {}  # see _LAYOUT_BITS
        self._layout = 0
        #: cache keys whose Redis key holds another tool's value (newest last, bounded): never SET
        self._foreign: dict[str, None] = {}
        self._entry_script = True  # False once the server refused DELETE_ENTRY (then GETRANGE + UNLINK)
        self._said_garbage: set[str] = set()  # hit-count fields said to hold garbage (once each)

    def _use(self, client: Any, *, cluster: bool) -> None:
        self.client = client
        self.cluster = cluster
        # the lock scripts name their key (KEYS[1]): a cluster client sends them to its slot's node
        self._release = client.register_script(scripts.RELEASE_LOCK)
        self._extend = client.register_script(scripts.EXTEND_LOCK)
        self._delete_entry = client.register_script(scripts.DELETE_ENTRY)

    @property
    def display_url(self) -> str:
        url = mask_url(self.url)
        if not self.cluster:
            return url
        if self._primary_count is None:
            return f"{url} (cluster)"
        return f"{url} (cluster, {self._primary_count} {'primary' if self._primary_count == 1 else 'primaries'})"

    @property
    def cluster_info(self) -> dict[str, Any] | None:
        """`{"primaries": N}` on a cluster (N None until its topology is known), None on a single node."""
        return {"primaries": self._primary_count} if self.cluster else None

    @property
    def db(self) -> int:
        if self.cluster:
            return 0  # a cluster has only db 0
        return int(self.client.connection_pool.connection_kwargs.get("db", 0) or 0)

    async def aclose(self) -> None:
        nodes, self._node_clients = [*self._node_clients.values(), *self._retired], {}
        self._retired = []
        await self.client.aclose()
        for node in nodes:
            await node.aclose()

    # -- cluster mode ------------------------------------------------------------
    async def open(self) -> None:
        """Settle cluster mode now (INFO cluster), so that a refusal (ClusterRefused) comes at open,
        and learn a cluster's topology (for display_url).

        With Redis down it stays unsettled: the first call that reaches Redis asks. That Redis
        is down is then said by the first call refused, not here (see RedisHealth.announce).
        """
        if not self._mode_pending and not (self.cluster and self._primary_count is None):
            return
        if self._refusal is not None:
            raise self._refusal
        try:
            await self._settle_mode()
            if self.cluster:
                await self._primaries()
            self.health.mark_up()
        except ClusterRefused:
            raise
        except _DOWN_ERRORS as exc:
            self.health.mark_down(exc, self._reason(exc), announce=False)
        except RedisError as exc:
            if _auth_refused(exc):
                self.health.mark_down(exc, self._reason(exc), announce=False)
            else:  # a refused command (an ACL): the first call that needs it says which rule
                log.debug("Opening Redis: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    async def _settle_mode(self) -> None:
        """Ask once whether the URL is a cluster node, and switch to the cluster client if so.

        Raises redis-py's errors (mapped by `_run`) or ClusterRefused.
        """
        async with self._mode_lock:
            if not self._mode_pending:
                return
            if not await self._is_cluster_node(self.client):
                self._mode_pending = False
                return
            if self._cluster_setting is False:
                self._mode_pending = False
                self._refusal = ClusterRefused(
                    f"{mask_url(self.url)}: this Redis is a cluster node; unset IR_REDIS_CLUSTER=0 "
                    "(or drop --no-cluster) or point at a standalone Redis"
                )
                raise self._refusal
            plain = self.client
            self._use(make_cluster_client(self.url, **self._client_options), cluster=True)
            self._mode_pending = False
            await plain.aclose()
            log.info("Redis at %s is a cluster node: using the cluster client, walks cover every primary",
                     mask_url(self.url))

    async def _is_cluster_node(self, client: aioredis.Redis) -> bool:
        """INFO cluster → cluster_enabled. A user without +info is asked with EXISTS of two keys of
        different slots under the prefix, which only a cluster node refuses (CROSSSLOT)."""
        try:
            info = await client.info("cluster")
            return str(info.get("cluster_enabled", 0)) == "1"
        except NoPermissionError:
            pass
        a, b = _slot_probe_keys(self.keys.prefix)
        try:
            await client.exists(a, b)
            return False
        except NoPermissionError:
            log.info("Cannot tell whether Redis is a cluster node (INFO and EXISTS refused): taken as a "
                     "single node; set IR_REDIS_CLUSTER=1 for a cluster")
            return False
        except ClusterCrossSlotError:
            return True

    async def _primaries(self, *, refresh: bool = False) -> list[aioredis.Redis]:
        """A plain client per primary of the cluster, in a stable order (host, port).

        `refresh` (the start of every walk): ask the topology again (CLUSTER SLOTS) rather than
        trust what the cluster client learned before (a replica may have been promoted since), and
        retire the clients of nodes that are no longer primaries.
        """
        await self.client.initialize()  # the topology, once (again after a connection error)
        if refresh:
            await self._refresh_topology()
        elif self._owners_seen is None:
            self._owners_seen = self._slot_owners()  # what a later change is told against
        nodes = sorted(self.client.get_primaries(), key=lambda n: (n.host, n.port))
        self._primary_count = len(nodes)
        if refresh:
            current = {node.name for node in nodes}
            for name in [n for n in self._node_clients if n not in current]:
                # not closed now: a walk that still holds it fails on its own (the node is gone or a replica)
                self._retired.append(self._node_clients.pop(name))
        return [self._node_client(node) for node in nodes]

    async def _refresh_topology(self) -> None:
        """Ask a primary for the slots again (CLUSTER SLOTS, on its plain connection); when they
        changed owner (or no primary answered), have the cluster client learn the topology anew,
        so that its single-key commands follow the new primaries too. (Not unconditionally: every
        refresh of the cluster client reconnects all its connections.)"""
        seen = await self._ask_slot_owners()
        if seen is not None and seen == self._owners_seen:
            return  # nothing moved since it was last asked: the common case, one CLUSTER SLOTS
        if seen is None or seen != self._slot_owners():
            await self.client.nodes_manager.initialize()
        self._note_topology(self._slot_owners())

    def _note_topology(self, owners: tuple[str, ...]) -> None:
        """Compare with the owners seen last (the cluster client may have learned a change by
        itself, on a MOVED), and tell `on_topology` what changed."""
        before, self._owners_seen = self._owners_seen, owners
        if before is None or before == owners or not all(owners) or self._on_topology is None:
            return
        self._on_topology(_describe_topology_change(before, owners))

    async def _ask_slot_owners(self) -> tuple[str, ...] | None:
        """Which primary serves each slot, by name, as the first primary that answers says; None
        when none does."""
        for client in list(self._node_clients.values()):
            try:
                reply = await client.execute_command("CLUSTER SLOTS")
            except (*_DOWN_ERRORS, RedisError):
                continue
            owners = [""] * 16384
            asked = str(client.connection_pool.connection_kwargs.get("host", ""))
            for start, end, primary, *_replicas in reply:
                host = primary[0].decode() if isinstance(primary[0], bytes) else str(primary[0])
                name = f"{host or asked}:{int(primary[1])}"
                owners[int(start): int(end) + 1] = [name] * (int(end) - int(start) + 1)
            return tuple(owners)
        return None

    def _slot_owners(self) -> tuple[str, ...]:
        """Which primary serves each slot, by name, as the cluster client knows it now."""
        slots = self.client.nodes_manager.slots_cache
        return tuple(slots[i][0].name if slots.get(i) else "" for i in range(16384))

    async def _topology_changed(self, before: tuple[str, ...], deadline: float) -> bool:
        """Ask the topology again until a slot changed owner (True) or `deadline` (loop time) passed."""
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            await asyncio.sleep(_TOPOLOGY_POLL)
            try:
                await self._refresh_topology()
            except (*_DOWN_ERRORS, RedisError):  # no node answered, or they disagree mid-failover: ask again
                continue
            if self._slot_owners() != before:
                return True
        return False

    def _node_client(self, node: Any) -> aioredis.Redis:
        client = self._node_clients.get(node.name)
        if client is None:
            client = make_client(node_url(self.url, node.host, int(node.port)), **self._client_options)
            self._node_clients[node.name] = client
        return client

    async def _client_for_key(self, key: str | bytes) -> aioredis.Redis:
        """The plain client of the primary that serves `key` (the client itself on a single node)."""
        if not self.cluster:
            return self.client
        await self._primaries()
        return self._node_client(self.client.get_node_from_key(key))

    async def _each_primary(self, work: Callable[[int, aioredis.Redis], Awaitable[T]],
                            *, follow_failover: bool = False) -> list[T]:
        """`work(index, client)` on every primary concurrently (once, on the client, on a single node),
        from the topology as it is now (asked again at the start of every walk).

        Every node's work runs to its end even when another's fails (a flush goes as far as it
        can everywhere, and counts what went); then the first error is raised.

        `follow_failover`: when every failure says the topology changed under the walk (see
        `_topology_error`), wait up to FAILOVER_WAIT for a slot to change owner (a replica
        promoted), then run `work` again on every primary there is then; the results are those of
        that last round. Each call of `work` gets an index of its own, never reused across rounds
        (a caller adding up progress per index keeps every round's share).
        """
        if not self.cluster:
            return [await work(0, self.client)]
        base = 0
        deadline: float | None = None
        loop = asyncio.get_running_loop()

        async def on(i: int, client: aioredis.Redis) -> T:
            try:
                return await work(i, client)
            except Exception as exc:
                _blame(exc, _node_name(client))  # the error names the node whose walk failed
                raise

        while True:
            nodes = await self._primaries(refresh=True)
            before = self._owners_seen or self._slot_owners()  # (just asked: see _refresh_topology)
            results = await asyncio.gather(*(on(base + i, c) for i, c in enumerate(nodes)), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if not errors:
                return results  # type: ignore[return-value]
            base += len(nodes)
            if not follow_failover or not all(_topology_error(e) for e in errors) or any(
                isinstance(e, asyncio.CancelledError) for e in errors
            ):
                raise errors[0]
            if deadline is None:
                deadline = loop.time() + FAILOVER_WAIT
            log.info("A primary's walk failed: %s; waiting up to %.3g s for the cluster's topology to change",
                     self._reason(errors[0]), max(0.0, deadline - loop.time()))
            if not await self._topology_changed(before, deadline):
                with contextlib.suppress(AttributeError):
                    setattr(errors[0], _WAITED, True)
                raise errors[0]
            log.info("The cluster's topology changed: walking every primary again")

    async def _through_failover(self, op: Callable[[], Awaitable[T]]) -> T:
        """`op()`; on a cluster, run again when it failed because a primary is gone or no longer
        serves its slots (see `_topology_error`) and the cluster replaced it within FAILOVER_WAIT
        (a replica promoted): a command started just before or while a primary dies goes on as
        one already walking does. Only for operations that may run twice (PING, reads, SET, a
        flush that counts per round)."""
        if not self.cluster:
            return await op()
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            before = self._owners_seen or self._slot_owners()
            try:
                return await op()
            except Exception as exc:
                if not _topology_error(exc) or getattr(exc, _WAITED, False):
                    raise
                if deadline is None:
                    deadline = loop.time() + FAILOVER_WAIT
                log.info("Waiting up to %.3g s for a failover: %s", max(0.0, deadline - loop.time()),
                         self._reason(exc))
                if not await self._failed_over(exc, before, deadline):
                    with contextlib.suppress(AttributeError):
                        setattr(exc, _WAITED, True)
                    raise
            log.info("The cluster failed over: trying again")

    async def _failed_over(self, exc: BaseException, before: tuple[str, ...], deadline: float) -> bool:
        """Whether, by `deadline` (loop time), the cluster replaced what `exc` met: the node that
        refused or did not answer serves no slot any more (a replica took them), or (a node that
        said CLUSTERDOWN, MOVED...) a slot changed owner since `before`. False at once when no node
        answers: that is an outage, not a failover, and waiting would only delay saying so."""
        gone = _node_of(exc) if _connection_lost(exc) else None
        if gone not in before:
            gone = None  # (a name the slot map does not use: wait for any change instead)
        loop = asyncio.get_running_loop()
        asked = False
        while True:
            try:
                await self._refresh_topology()
            except (*_DOWN_ERRORS, RedisError) as refused:  # no node answered, or they disagree mid-failover
                if not asked and _connection_lost(refused):
                    return False
            else:
                owners = self._slot_owners()
                if all(owners) and (gone not in owners if gone else owners != before):
                    return True
            asked = True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(_TOPOLOGY_POLL)

    async def _pipelined(self, calls: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]],
                         *, raise_on_error: bool = True) -> list[Any]:
        """Run `calls` — (key it routes by, pipeline method, args, kwargs) — in one pipelined round trip
        (one per node, concurrently, on a cluster: every command goes to its key's primary); the
        replies in the order of `calls`."""
        if not self.cluster:
            pipe = self.client.pipeline(transaction=False)
            for _, method, args, kwargs in calls:
                getattr(pipe, method)(*args, **kwargs)
            return list(await pipe.execute(raise_on_error=raise_on_error))
        await self._primaries()
        groups: dict[str, list[int]] = {}
        nodes: dict[str, Any] = {}
        for i, (key, *_rest) in enumerate(calls):
            node = self.client.get_node_from_key(key)
            nodes[node.name] = node
            groups.setdefault(node.name, []).append(i)

        async def run(name: str, idxs: list[int]) -> tuple[list[int], list[Any]]:
            pipe = self._node_client(nodes[name]).pipeline(transaction=False)
            for i in idxs:
                _, method, args, kwargs = calls[i]
                getattr(pipe, method)(*args, **kwargs)
            try:
                return idxs, list(await pipe.execute(raise_on_error=False))
            except Exception as exc:
                _blame(exc, name)
                raise

        out: list[Any] = [None] * len(calls)
        results = await asyncio.gather(*(run(n, ix) for n, ix in groups.items()), return_exceptions=True)
        for result in results:  # every node's share done before any error is raised
            if isinstance(result, BaseException):
                raise result
            for i, reply in zip(*result):
                out[i] = reply
        # A slot that changed primary since the topology was last asked (a resharding, a failover
        # noticed by nobody yet): its commands go again, one by one, through the cluster client,
        # which follows MOVED and ASK (and learns the new owner). Only they: the others ran.
        for i, reply in enumerate(out):
            if isinstance(reply, (MovedError, AskError)):
                _, method, args, kwargs = calls[i]
                try:
                    out[i] = await getattr(self.client, method)(*args, **kwargs)
                except ResponseError as exc:
                    out[i] = exc
        if raise_on_error:
            for reply in out:
                if isinstance(reply, ResponseError):
                    raise reply
        return out

    async def _unlink_exact(self, keys: list[bytes] | list[str], went: list[int] | None = None, *,
                            entry: bytes | None = None, kept: scan.Tally | None = None) -> int:
        """UNLINK exactly `keys` (with `entry`: those of them that hold entries; see scan.unlink_keys);
        how many went. On a cluster: by node, concurrently, one UNLINK per slot; `went[0]` adds up
        what every node deleted, even when another failed."""
        if not self.cluster:
            return await scan.unlink_keys(self.client, keys, entry=entry, kept=kept)
        await self._primaries()
        by_node: dict[str, list[Any]] = {}
        nodes: dict[str, Any] = {}
        for key in keys:
            node = self.client.get_node_from_key(key)
            nodes[node.name] = node
            by_node.setdefault(node.name, []).append(key)
        tally = went if went is not None else [0]

        def add(n: int) -> None:
            tally[0] += n

        reroute = self._reroute if entry is None else self._reroute_entries

        async def run(name: str, mine: list[Any]) -> int:
            try:
                return await scan.unlink_keys(self._node_client(nodes[name]), mine, entry=entry, reroute=reroute,
                                              tally=add, kept=kept)
            except Exception as exc:
                _blame(exc, name)
                raise

        results = await asyncio.gather(*(run(n, k) for n, k in by_node.items()), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return sum(results)  # type: ignore[arg-type]

    async def _reroute(self, keys: list[bytes]) -> int:
        """UNLINK keys that the node whose SCAN returned them no longer serves (a resharding moved
        their slot, or is moving it), one at a time through the cluster client, which follows MOVED
        and ASK; how many went. Rare: only keys in flight between two nodes come here."""
        deleted = 0
        for key in keys:
            deleted += int(await self.client.unlink(key))
        # a key found on its slot's new owner moved under the walk: the flush walks again. One the
        # owner does not hold is no sign of that (a node may keep keys of a slot it gave away,
        # unreachable: every walk would see them, and wait for a resharding that is not there)
        self._resharded = self._resharded or deleted > 0
        return deleted

    async def _reroute_entries(self, keys: list[bytes]) -> int:
        """`_reroute` for entries: each key goes only if it holds one (DELETE_ENTRY, through the
        cluster client); one that does not is left (and, in flight between nodes, not counted)."""
        deleted = 0
        for key in keys:
            deleted += max(0, await self._delete_entry_key(key))
        self._resharded = self._resharded or deleted > 0
        return deleted

    async def _delete_entry_key(self, rkey: str | bytes) -> int:
        """UNLINK one Redis key if it holds an entry: 1 deleted, 0 gone, -1 kept (not an entry).
        One script (DELETE_ENTRY) where scripts are allowed, else GETRANGE then UNLINK."""
        if self._entry_script:
            try:
                return int(await self._delete_entry(keys=[rkey], args=[ENTRY_HEAD]))
            except (NoScriptError, ResponseError) as exc:
                if not isinstance(exc, NoScriptError) and (scan._refused(exc) or scan._busy(exc)
                                                            or isinstance(exc, (MovedError, AskError))):
                    raise
                self._entry_script = False  # scripts refused here: check, then act
        head = await self.client.getrange(rkey, 0, len(ENTRY_HEAD) - 1)
        if head and not is_entry_head(head):
            return -1
        if not head and await self.client.exists(rkey):
            return -1  # an empty string: nobody's entry
        return int(await self.client.unlink(rkey))

    def _reroute_leaving_refused(self, refused: dict[bytes, RedisError]) -> scan.Reroute:
        """`_reroute` for a flush: a key the ACL may not follow to its new owner (no `+asking`) is
        left, its refusal kept in `refused`, and the walk goes on: the flush deletes all it may,
        then says how many it left and which rule would have deleted them."""
        async def reroute(keys: list[bytes]) -> int:
            deleted = 0
            for key in keys:
                try:
                    deleted += await self._reroute_entries([key])
                except NoPermissionError as exc:
                    refused[key] = exc
            return deleted
        return reroute  # type: ignore[return-value]

    async def _still_left(self, refused: dict[bytes, RedisError]) -> None:
        """Drop from `refused` the keys a later walk deleted after all (the migration ended, and
        their new owner was walked): a key that is gone, or no longer needs ASKING, is not left."""
        for key in list(refused):
            try:
                if not await self.client.exists(key):
                    del refused[key]
            except NoPermissionError:  # still in flight: still out of this user's reach
                pass

    async def _migrations(self) -> frozenset[str]:
        """The slots being moved between primaries now, as each primary says of itself in
        `CLUSTER NODES` (`[5461->-id]` migrating, `[5461-<-id]` importing): `"5461 host:port
        migrating"`. Empty when none, or when the user may not ask (`+cluster|nodes`): then a
        resharding shows only once a slot changed owner, or when a key was found moved."""
        async def ask(_i: int, client: aioredis.Redis) -> list[str]:
            try:
                reply = await client.execute_command("CLUSTER NODES")
            except ResponseError:  # NOPERM, or a proxy that hides the command
                return []
            except Exception as exc:
                _blame(exc, _node_name(client))
                raise
            return _own_migrations(reply, _node_name(client))

        nodes = await self._primaries()  # as the caller just asked them (_reshard_state)
        found = await asyncio.gather(*(ask(i, c) for i, c in enumerate(nodes)), return_exceptions=True)
        for reply in found:  # (raised once every node answered: no task left behind)
            if isinstance(reply, BaseException):
                raise reply
        return frozenset(m for node in found for m in node)  # type: ignore[union-attr]

    async def _reshard_state(self) -> tuple[tuple[str, ...], frozenset[str]]:
        """Who serves each slot now (asked again), and which slots are being moved."""
        await self._primaries(refresh=True)
        return self._owners_seen or (), await self._migrations()

    async def _migrations_over(self, deadline: float) -> frozenset[str]:
        """Wait until no slot is being moved, or `deadline` (loop time); the slots still moving."""
        loop = asyncio.get_running_loop()
        while (moving := await self._migrations()) and loop.time() < deadline:
            await asyncio.sleep(_TOPOLOGY_POLL)
            await self._primaries(refresh=True)  # a failover meanwhile: ask the primaries there are now
        return moving

    def _writable(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"read-only cache: not sending {what} to Redis")

    def _down(self) -> RedisUnavailable:
        """One line: where, and why in words (see down_reason); the URL's password is masked."""
        return RedisUnavailable(f"Redis unavailable at {self.display_url}: {self.health.reason}")

    def _mark_down(self, exc: BaseException) -> RedisUnavailable:
        self.health.mark_down(exc, self._reason(exc))
        self._server = None  # the one that comes back may be another server (an upgrade, a failover)
        return self._down()

    def _reason(self, exc: BaseException) -> str:
        """down_reason, naming the node that failed on a cluster (the URL names one node of many)."""
        return down_reason(exc, _node_of(exc) if self.cluster else None)

    async def _run(self, op: Callable[[], Awaitable[T]], *, probe: bool = False, sent: str | None = None,
                   follow_failover: bool = False) -> T:
        """Run one Redis call; `probe` asks even inside the fast-fail window after a failure;
        `sent` names the subcommand, for the ACL rule a refusal asks for. `follow_failover` (an
        operation that may run twice): on a cluster, `op` waits for a failover and runs again
        (`_through_failover`), and is tried even inside the fast-fail window (a primary that died
        a moment ago, and is being replaced, must not fail it untried)."""
        if self._refusal is not None:
            raise self._refusal
        if not probe and not (follow_failover and self.cluster) and self.health.should_skip():
            self.health.announce()
            raise self._down()
        try:
            if self._mode_pending:
                await self._settle_mode()
            result = await (self._through_failover(op) if follow_failover else op())
        except _DOWN_ERRORS as exc:
            raise self._mark_down(exc) from None
        except RedisError as exc:
            if _auth_refused(exc):  # NOAUTH / WRONGPASS on a command: unusable, not a command error
                raise self._mark_down(exc) from None
            # Redis answered (so it is up): an ACL refusal, a wrong type, a bad argument.
            self.health.mark_up()
            raise command_error(exc, sent, prefix=self.keys.prefix) from None
        self.health.mark_up()
        return result

    # -- raw access (the IRCache's hot path) ------------------------------
    async def ping(self, *, follow_failover: bool = False) -> bool:
        """PING; `follow_failover`: on a cluster, wait for a primary that died to be replaced (a
        command that needs Redis, checking first)."""
        return bool(await self._run(lambda: self.client.ping(), follow_failover=follow_failover))

    async def probe(self) -> None:
        """PING now, even inside the fast-fail window after a failure; raises if Redis is still down."""
        await self._run(self.client.ping, probe=True)

    async def get_raw(self, cache_key: str) -> bytes | None:
        """The stored bytes, or None on a miss; ForeignKey when the key holds another tool's value
        (another type, or a string that is not an entry): never an entry of ours, never deleted."""
        rkey = self.keys.redis_key(cache_key)
        try:
            raw = await self._run(lambda: self.client.get(rkey))
        except RedisCommandError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            raise self._foreign_found(cache_key, "a hash, list, set or other non-string value") from None
        if raw is None:
            self._foreign.pop(cache_key, None)  # gone: the next writer may be us
        elif not is_entry_head(raw[: len(ENTRY_HEAD)]):
            raise self._foreign_found(cache_key, _shown_head(raw))
        return raw

    def _foreign_found(self, cache_key: str, what: str) -> ForeignKey:
        self._foreign.pop(cache_key, None)
        self._foreign[cache_key] = None
        while len(self._foreign) > _FOREIGN_MEMORY:
            del self._foreign[next(iter(self._foreign))]
        return ForeignKey(self.keys.redis_key(cache_key), what)

    def known_foreign(self, cache_key: str) -> bool:
        """Whether a read found another tool's value under this key (so it must not be written)."""
        return cache_key in self._foreign

    async def set_raw(self, cache_key: str, raw: bytes, ttl: int | None = None, *,
                      follow_failover: bool = False) -> bool:
        """SET the entry with EX. ForeignKey when a read found another tool's value there: it is
        not ours to overwrite (the filesystem keeps the entry). `follow_failover`: on a cluster,
        a SET that met a dead primary waits for its replica's promotion and goes again (warm)."""
        self._writable(f"SET {cache_key}")
        ttl = self.ttl if ttl is None else ttl
        if ttl <= 0:
            return False  # TTL 0 means caching is disabled, not "SET EX 0" (an error)
        rkey = self.keys.redis_key(cache_key)
        if cache_key in self._foreign:
            raise ForeignKey(rkey, "another tool's value (found when it was read)")
        return bool(await self._run(lambda: self.client.set(rkey, raw, ex=ttl), follow_failover=follow_failover))

    async def exists(self, cache_key: str) -> bool:
        """Whether Redis holds an entry under this key (another tool's value there is not one). One
        command through the client itself (on a cluster, the cluster client: it follows MOVED and
        learns a new primary after a failover)."""
        rkey = self.keys.redis_key(cache_key)
        try:
            head = await self._run(lambda: self.client.getrange(rkey, 0, len(ENTRY_HEAD) - 1), sent="getrange")
        except RedisCommandError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            self._foreign_found(cache_key, "a non-string value")
            return False
        if head and not is_entry_head(head):
            self._foreign_found(cache_key, "a string that does not begin as an entry")
            return False
        return bool(head)

    async def exists_many(self, cache_keys: list[str], *, follow_failover: bool = False) -> list[bool]:
        """Which of `cache_keys` hold entries in Redis, in one pipelined round trip (a GETRANGE of
        the envelope's first bytes each: a key holding another tool's value is not an entry).
        `follow_failover`: on a cluster, a node's share that met a dead primary waits for its
        replica's promotion, and the reads go again (warm)."""
        if not cache_keys:
            return []

        rkeys = [self.keys.redis_key(key) for key in cache_keys]
        calls = [(rkey, "getrange", (rkey, 0, len(ENTRY_HEAD) - 1), {}) for rkey in rkeys]
        heads = await self._run(lambda: self._pipelined(calls, raise_on_error=False), sent="getrange",
                                follow_failover=follow_failover)
        out = []
        for key, head in zip(cache_keys, heads):
            if isinstance(head, ResponseError) and "WRONGTYPE" in str(head):
                self._foreign_found(key, "a non-string value")
                out.append(False)
            elif isinstance(head, RedisError):
                await self._run(_raising(head), sent="getrange")  # raises it, mapped like any other
            elif head and not is_entry_head(head):
                self._foreign_found(key, "a string that does not begin as an entry")
                out.append(False)
            else:
                out.append(bool(head))
        return out

    async def delete(self, cache_key: str) -> bool:
        """UNLINK one entry (and its hit counts); True when the entry was there. ForeignKey when the
        key holds another tool's value: left as it is."""
        self._writable(f"UNLINK {cache_key}")
        rkey, hkey = self.keys.redis_key(cache_key), self.keys.hits_key(cache_key)

        async def op() -> int:  # two keys of two slots: two single-key commands
            gone = await self._delete_entry_key(rkey)
            if gone >= 0:
                await self.client.unlink(hkey)
            return gone

        gone = await self._run(op, sent="getrange")
        if gone < 0:
            raise self._foreign_found(cache_key, "another tool's value")
        return bool(gone)

    async def ttl_of(self, cache_key: str) -> int:
        """Seconds left (-1 no expiry, -2 missing)."""
        rkey = self.keys.redis_key(cache_key)
        return int(await self._run(lambda: self.client.ttl(rkey)))

    async def reset_ttl(self, cache_key: str, ttl: int | None = None) -> bool:
        """EXPIRE one entry; False when it is gone or TTL is 0. ForeignKey when the key holds another
        tool's value (checked first: its TTL is not ours to change)."""
        self._writable(f"EXPIRE {cache_key}")
        ttl = self.ttl if ttl is None else ttl
        rkey = self.keys.redis_key(cache_key)
        if ttl <= 0:
            return False
        if not (await self.exists_many([cache_key]))[0]:
            if cache_key in self._foreign:
                raise ForeignKey(rkey, "another tool's value")
            return False
        return bool(await self._run(lambda: self.client.expire(rkey, ttl)))

    # -- the seed's four operations ---------------------------------------
    async def cache_ir(self, cache_key: str, ir_data: dict[str, Any], ttl: int | None = None) -> bool:
        """SET `ir_cache:{cache_key}` with EX; False when Redis is down or caching is off.

        `ir_data` is an entry as a dict (`StoredEntry.to_dict()`): what is stored must begin as an
        entry does, or no flush or count would take it for one (CorruptEntry says so)."""
        self._writable(f"SET {cache_key}")
        raw = json.dumps(ir_data, separators=(",", ":")).encode("utf-8")  # the envelope's own spelling
        if not is_entry_head(raw[: len(ENTRY_HEAD)]) or len(raw) < len(ENTRY_HEAD):
            raise CorruptEntry("cache_ir stores entries: a dict whose first key is schema_version "
                               "(StoredEntry.to_dict()), not any dict")
        try:
            return await self.set_raw(cache_key, raw, ttl)
        except RedisUnavailable:
            return False

    async def get_cached_ir(self, cache_key: str) -> dict[str, Any] | None:
        """The stored dict, or None on a miss or when Redis is down.

        Raises CorruptEntry when the value is not a JSON object.
        """
        try:
            raw = await self.get_raw(cache_key)
        except (RedisUnavailable, ForeignKey):
            return None
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise CorruptEntry(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CorruptEntry(f"not a JSON object but {type(data).__name__}")
        return data

    async def clear_ir_cache(
        self, spec_name: str | None = None, *, on_progress: Callable[[int], None] | None = None,
        on_kept: Callable[[int], None] | None = None,
    ) -> int:
        """UNLINK every IR entry (or exactly one spec's), found with SCAN; returns how many.

        Only keys named `{prefix}:{spec}_{hash8}` that hold an entry are touched (the script that
        deletes them checks), never anything else under the prefix, let alone outside it;
        `on_kept(n)` hears of keys of our name that hold another tool's value, left as they are.
        """
        self._writable("UNLINK (flush)")
        selection = self.keys.select(spec_name)
        so_far = 0
        per_node: dict[int, int] = {}  # what each primary's walk deleted so far
        # each walk's own range of indices in per_node (1 << 20 wide), never reused: not after a
        # resharding, nor when the whole flush runs again after a failover (_through_failover)
        rounds = 0
        refused: dict[bytes, RedisError] = {}  # keys in migrating slots the ACL may not follow (see below)
        reroute = self._reroute_leaving_refused(refused)

        def progress_of(node: int) -> Callable[[int], None]:
            def progress(n: int) -> None:
                nonlocal so_far
                per_node[node] = n
                so_far = sum(per_node.values())
                if on_progress is not None:
                    on_progress(so_far)
            return progress

        def walk(i: int, client: aioredis.Redis) -> Awaitable[int]:
            if self.cluster:
                return scan.scan_unlink_node(client, selection, reroute=reroute, on_progress=progress_of(i),
                                             on_kept=on_kept)
            return scan.scan_unlink(client, selection, on_progress=progress_of(i), on_kept=on_kept)

        async def flush() -> int:
            # what went is what every walk confirmed, including the rounds before a failover or a
            # resharding (their partial counts are in per_node, under indices never reused)
            nonlocal rounds
            if not self.cluster:
                await self._each_primary(walk)
                return so_far
            deadline: float | None = None
            while True:
                before = await self._reshard_state()
                self._resharded = False
                first, rounds = rounds << 20, rounds + 1
                await self._each_primary(lambda i, client: walk(first + i, client), follow_failover=True)
                after = await self._reshard_state()
                if not self._resharded and after == before and not after[1]:
                    return so_far  # no slot moved during the walk, so none was carried behind a cursor
                # a slot moved, or is moving: a key carried from a node not yet walked to one already
                # walked was missed. Walk again once the resharding is over.
                loop = asyncio.get_running_loop()
                if deadline is None:
                    deadline = loop.time() + RESHARD_WAIT
                moving = await self._migrations_over(deadline)
                if moving or loop.time() >= deadline:  # a rebalancer that keeps moving slots: do not chase it
                    what = (_describe_migrations(moving) if moving
                            else f"slots still changing hands after {RESHARD_WAIT:g} s")
                    raise FlushIncomplete({"redis": so_far}, (
                        f"a resharding is under way ({what}); keys it carried between primaries during "
                        "the flush may remain: run it again when it is done"))
                log.info("Slots changed hands during the flush (a resharding or a failover): "
                         "walking every primary again")

        def left_refused(reason: str = "") -> str:
            if not refused:
                return reason
            left = (f"{plural(len(refused), 'key')} in slots being migrated {'was' if len(refused) == 1 else 'were'} "
                    f"left: {command_error(next(iter(refused.values())), prefix=self.keys.prefix)}")
            return f"{reason}; and {left}" if reason else left

        try:
            deleted = await self._run(flush, follow_failover=True)  # (a primary gone before its walk began)
            if refused:
                await self._run(lambda: self._still_left(refused))
        except FlushIncomplete as exc:
            with contextlib.suppress(IRCacheError):
                await self._run(lambda: self._still_left(refused))
            raise FlushIncomplete(exc.done, left_refused(exc.reason)) from None
        except (RedisUnavailable, RedisCommandError) as exc:
            if not so_far:
                raise  # nothing went: the plain reason is the whole story
            # Redis went (or refused) midway: say exactly how many went; running it again finishes the job
            raise FlushIncomplete({"redis": so_far}, left_refused(f"Redis flush stopped: {exc}")) from None
        if refused:
            raise FlushIncomplete({"redis": deleted}, left_refused())
        log.info("Cleared IR cache from Redis %s", {"pattern": selection.match, "deleted": deleted})
        return deleted

    async def get_ir_cache_stats(self) -> dict[str, Any]:
        """`{"total_keys", "total_size_bytes", "specs", "server"}`, sizes from MEMORY USAGE (server-side per
        page), `server` as `{"name", "version"}` (None when the server will not say).

        `total_size_bytes` is None when the server refuses MEMORY USAGE: the
        keys are still counted.
        """
        sizes = await self._run(lambda: self._sizes(self.keys.select()), follow_failover=True)
        server = await self.server_info()
        specs = sorted({s.decode("utf-8") for s in sizes.specs})
        known = sizes.bytes is not None
        spec_sizes = {
            name.decode("utf-8"): {"keys": keys, "bytes": size if known else None}
            for name, (keys, size) in sizes.per_spec.items()
        }
        return {"total_keys": sizes.keys, "total_size_bytes": sizes.bytes, "specs": specs, "spec_sizes": spec_sizes,
                "foreign_keys": sizes.foreign, "server": server.as_json() if server is not None else None}

    async def count_ir_keys(self, spec_name: str | None = None) -> int:
        """How many IR entries (of one spec, or all), by the same server-side walk as the stats."""
        return (await self.count_entries(spec_name))[0]

    async def count_entries(self, spec_name: str | None = None) -> tuple[int, int]:
        """(entries, keys of our name that hold another tool's value) of one spec, or all: one walk."""
        selection = self.keys.select(spec_name)
        sizes = await self._run(lambda: self._sizes(selection), follow_failover=True)
        return sizes.keys, sizes.foreign

    async def _sizes(self, selection: Any) -> scan.Sizes:
        """The server-side stats walk, on every primary at once on a cluster, added up."""
        parts = await self._each_primary(  # read-only: after a failover, the whole walk again
            lambda _i, client: scan.scan_sizes(client, selection, scripted=self._stats_scripted),
            follow_failover=True)
        sizes = scan.merge_sizes(parts) if len(parts) > 1 else parts[0]
        self._stats_scripted = sizes.scripted
        return sizes

    async def top_ir_keys(self, by: str, n: int) -> list[ParsedKey]:
        """The `n` largest IR keys (by="memory") or the `n` expiring soonest (by="ttl"), over the whole prefix."""
        selection = self.keys.select()

        async def top() -> list[tuple[bytes, int]]:
            parts = await self._each_primary(
                lambda _i, client: scan.scan_top(client, selection, by, n, scripted=self._stats_scripted),
                follow_failover=True)
            self._stats_scripted = all(scripted for _, scripted in parts)
            return parts[0][0] if len(parts) == 1 else scan.merge_top([r for r, _ in parts], by, n)

        ranked = await self._run(top, follow_failover=True)
        return [p for p in (self.keys.cache_key_of(k) for k, _ in ranked) if p is not None]

    # -- walking the keyspace (the dashboard and prune) ----------------------
    async def scan_ir_page(
        self, cursor: int, count: int, spec_name: str | None = None, match: str | None = None
    ) -> tuple[int, list[ParsedKey]]:
        """One SCAN step over IR keys: (next cursor, parsed keys of this page).

        On a cluster the cursor is composite: the primaries the walk started with are walked
        one after the other (in host:port order), the node's own cursor in the high bits, the
        walk's layout and the node's index in it in the low ones; 0 still starts and ends the walk.
        A walk whose next primary is one no longer ends there, having asked the topology again
        (which says what changed, for the dashboard to rescan).
        """
        pattern = match or self.keys.match_pattern(spec_name)

        async def step() -> tuple[int, list[bytes]]:
            if not self.cluster:
                return await scan.scan_page(self.client, cursor, pattern, count)
            if cursor == 0:  # a new walk: the topology as it is now
                nodes = await self._primaries(refresh=True)
                layout = self._layout_of(tuple(_node_name(c) for c in nodes))
                index, node_cursor = 0, 0
            else:
                layout = (cursor >> _NODE_BITS) & ((1 << _LAYOUT_BITS) - 1)
                index, node_cursor = cursor & ((1 << _NODE_BITS) - 1), cursor >> (_NODE_BITS + _LAYOUT_BITS)
            names = self._layouts.get(layout, ())
            if index >= len(names):
                return 0, []
            by_name = {_node_name(c): c for c in await self._primaries()}
            node = by_name.get(names[index])
            if node is None:  # no longer a primary (a failover the cluster client has learned)
                await self._primaries(refresh=True)
                return 0, []
            node_next, raw = await scan.scan_page(node, node_cursor, pattern, count)
            if node_next == 0:
                index, node_next = index + 1, 0
            if index >= len(names):
                return 0, raw
            return (node_next << (_NODE_BITS + _LAYOUT_BITS)) | (layout << _NODE_BITS) | index, raw

        next_cursor, raw = await self._run(step)
        return next_cursor, self._parsed(raw, spec_name)

    def _layout_of(self, names: tuple[str, ...]) -> int:
        """The number of this list of primaries for cursors: the last one's, when unchanged."""
        if self._layouts.get(self._layout) != names:
            self._layout = (self._layout + 1) % (1 << _LAYOUT_BITS)
            self._layouts[self._layout] = names
        return self._layout

    def _parsed(self, raw: list[bytes], spec_name: str | None) -> list[ParsedKey]:
        parsed = [p for p in map(self.keys.cache_key_of, raw) if p is not None]
        if spec_name is not None:
            parsed = [p for p in parsed if p.spec_name == spec_name]
        return parsed

    async def _entries_only(self, client: aioredis.Redis, page: list[ParsedKey]) -> list[ParsedKey]:
        """The keys of `page` that hold entries (another tool's values under our names are left out)."""
        if not page:
            return page
        rkeys = [self.keys.redis_key(p.cache_key).encode() for p in page]
        ours, _ = await self._run(lambda: scan.entries_among(client, rkeys, ENTRY_HEAD), sent="getrange")
        keep = set(ours)
        return [p for p, rkey in zip(page, rkeys) if rkey in keep]

    async def scan_ir_keys(self, spec_name: str | None = None) -> AsyncIterator[list[ParsedKey]]:
        """Every IR entry's key (parsed), a SCAN page at a time; on a cluster every primary is walked
        at once, and pages come as they arrive. Keys of our name that hold another tool's value are
        left out (a GETRANGE each, pipelined with the page's others)."""
        if self._mode_pending:
            await self._run(_noop)
        if not self.cluster:
            cursor = 0
            while True:
                cursor, page = await self.scan_ir_page(cursor, scan.SCAN_COUNT, spec_name)
                page = await self._entries_only(self.client, page)
                if page:
                    yield page
                if cursor == 0:
                    return
        pattern = self.keys.match_pattern(spec_name)
        nodes = await self._run(lambda: self._primaries(refresh=True))
        pages: asyncio.Queue[list[ParsedKey] | BaseException | None] = asyncio.Queue(maxsize=4)

        async def walk(client: aioredis.Redis) -> None:
            try:
                cursor = 0
                while True:
                    cursor, raw = await self._run(lambda: scan.scan_page(client, cursor, pattern, scan.SCAN_COUNT))
                    parsed = await self._entries_only(client, self._parsed(raw, spec_name))
                    if parsed:
                        await pages.put(parsed)
                    if cursor == 0:
                        break
            except Exception as exc:  # handed to the reader, which raises it
                await pages.put(exc)
                return
            await pages.put(None)

        walkers = [asyncio.ensure_future(walk(client)) for client in nodes]
        try:
            left = len(walkers)
            while left:
                item = await pages.get()
                if item is None:
                    left -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            for task in walkers:
                task.cancel()
            await asyncio.gather(*walkers, return_exceptions=True)

    async def unlink_many(self, redis_keys: list[bytes], *, on_kept: scan.Tally | None = None) -> int:
        """UNLINK exact Redis keys that hold entries (the names already checked by the caller);
        `on_kept(n)` hears of those that hold another tool's value, left as they are."""
        self._writable("UNLINK")
        keep = [k for k in redis_keys if self.keys.belongs(k)]
        went = [0]
        try:
            return await self._run(lambda: self._unlink_exact(keep, went, entry=ENTRY_HEAD, kept=on_kept),
                                   sent="getrange")
        except (RedisUnavailable, RedisCommandError) as exc:
            if went[0]:  # other primaries deleted theirs: say exactly how many
                raise FlushIncomplete({"redis": went[0]}, f"Redis delete stopped: {exc}") from None
            raise

    async def key_details_with_head(
        self, cache_keys: list[str], head_bytes: int
    ) -> list[tuple[int, int | None, bytes | None, tuple[int, float | None, float | None] | None]]:
        """(TTL, MEMORY USAGE, first `head_bytes` of the value, (hits, last hit, the generated_at
        they were counted on) or None) per key, one round trip.

        A command the server refuses (an ACL without MEMORY, say) leaves its
        field unknown instead of failing the page. The head is None when the
        key holds another type than a string (WRONGTYPE), b"" when unknown.
        """
        if not cache_keys:
            return []

        calls: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = []
        for key in cache_keys:
            rkey, hkey = self.keys.redis_key(key), self.keys.hits_key(key)
            calls += [(rkey, "ttl", (rkey,), {}), (rkey, "memory_usage", (rkey,), {"samples": 0}),
                      (rkey, "getrange", (rkey, 0, head_bytes - 1), {}),
                      (hkey, "hmget", (hkey, "redis", "filesystem", "last", "gen"), {})]
        flat = await self._run(lambda: self._pipelined(calls, raise_on_error=False))
        return [
            (t if isinstance(t, int) else -2, m if isinstance(m, int) else None, _head(h), _hits(c))
            for t, m, h, c in zip(flat[::4], flat[1::4], flat[2::4], flat[3::4])
        ]

    # -- live changes --------------------------------------------------------
    async def enable_notifications(self, *, may_configure: bool) -> bool:
        """True if keyspace notifications for our keys are (now) on.

        Turning them on is a CONFIG SET: allowed on the private embedded
        server, or when `may_configure` and the tier is not read-only.
        """
        try:
            if self._mode_pending:
                await self._run(_noop)
            # each node of a cluster publishes only its own keys' events: every primary must have them on
            nodes = await self._run(lambda: self._primaries(refresh=True)) if self.cluster else [self.client]
            for node in nodes:
                flags = (await self._run(lambda: node.config_get("notify-keyspace-events"))).get(
                    "notify-keyspace-events", ""
                )
                if isinstance(flags, bytes):
                    flags = flags.decode()
                if _covers(flags):
                    continue
                if not may_configure or (self.read_only and not self.private):
                    return False
                wanted = "".join(sorted(set(flags) | set(_NOTIFY_FLAGS)))
                await self._run(lambda: node.config_set("notify-keyspace-events", wanted), sent="config|set")
                where = f" on {_node_name(node)}" if self.cluster else ""
                log.info("Enabled keyspace notifications (notify-keyspace-events %s)%s", wanted, where)
            return True
        except (RedisCommandError, RedisUnavailable) as exc:
            log.info("Keyspace notifications unavailable (%s); polling instead", str(exc).splitlines()[0])
            return False

    async def keyspace_events(self, on_subscribed: Callable[[], None] | None = None) -> AsyncIterator[tuple[bytes, str]]:
        """(Redis key, event) for every key under the prefix, as notifications arrive.

        Ends by raising RedisUnavailable when the connection drops. On a cluster, every
        primary is listened to (each publishes only its own keys' events).
        """
        # aclosing: closing this stream closes the one it wraps now, not when the collector
        # finds it (its subscriptions and listener tasks would outlive the caller until then)
        stream = (self._cluster_keyspace_events(on_subscribed) if self.cluster
                  else self._node_keyspace_events(self.client, on_subscribed))
        async with contextlib.aclosing(stream):
            async for change in stream:
                yield change

    async def _cluster_keyspace_events(
        self, on_subscribed: Callable[[], None] | None
    ) -> AsyncIterator[tuple[bytes, str]]:
        """Every primary's events, merged: one listener per node into one bounded queue. A node
        that fails ends the whole stream (the caller listens again, on the topology of then)."""
        nodes = await self._run(lambda: self._primaries(refresh=True))
        queue: asyncio.Queue[tuple[bytes, str] | BaseException] = asyncio.Queue(maxsize=10_000)
        subscribed = 0

        def one_subscribed() -> None:
            nonlocal subscribed
            subscribed += 1
            if subscribed == len(nodes) and on_subscribed is not None:
                on_subscribed()

        async def listen(node: aioredis.Redis) -> None:
            # Exception only: a cancel (the reader closing) must end this task even while a put
            # waits on a full queue, or the reader's gather below would wait for ever
            try:
                async with contextlib.aclosing(self._node_keyspace_events(node, one_subscribed)) as events:
                    async for change in events:
                        await queue.put(change)
            except Exception as exc:  # handed to the reader, which raises it
                await queue.put(exc)
                return
            # its subscription ended without an error: the stream would go quiet for that node
            await queue.put(RedisUnavailable(f"stopped listening for key changes on {_node_name(node)}"))

        tasks = [asyncio.create_task(listen(node)) for node in nodes]
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _node_keyspace_events(
        self, node: aioredis.Redis, on_subscribed: Callable[[], None] | None
    ) -> AsyncIterator[tuple[bytes, str]]:
        from .keys import glob_escape

        channel_prefix = f"__keyspace@{self.db}__:".encode()
        pubsub = node.pubsub(ignore_subscribe_messages=True)
        try:
            try:
                await pubsub.psubscribe(f"{glob_escape(channel_prefix.decode())}{glob_escape(self.keys.prefix)}:*")
                if on_subscribed is not None:
                    on_subscribed()
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    channel = message["channel"]
                    if isinstance(channel, str):
                        channel = channel.encode()
                    event = message["data"]
                    yield channel[len(channel_prefix):], event.decode() if isinstance(event, bytes) else str(event)
            except _DOWN_ERRORS as exc:
                raise self._mark_down(exc) from None
            except RedisError as exc:
                if _auth_refused(exc):
                    raise self._mark_down(exc) from None
                raise command_error(exc) from None
        finally:
            await pubsub.aclose()

    # -- the server -------------------------------------------------------
    async def server_info(self) -> ServerInfo | None:
        """Which server answers (Redis, Valkey, ...) and its version: asked once (HELLO, which any
        user may send; INFO server where HELLO is unknown or refused), and again after an outage.
        None when it will not say. Raises RedisUnavailable when Redis is down."""
        if self._server is None:
            self._server = await self._run(self._ask_server) or False
        return self._server or None

    async def _ask_server(self) -> ServerInfo | None:
        client = (await self._primaries())[0] if self.cluster else self.client
        try:
            # no protocol version: the connection's own (redis-py's handshake chose it) is kept
            return from_hello(await client.execute_command("HELLO"))
        except ResponseError as exc:  # a server before HELLO (Redis 5), a proxy, an ACL
            log.debug("HELLO refused (%s); asking INFO server", str(exc).splitlines()[0] if str(exc) else exc)
        try:
            return from_info(await client.info("server"))
        except ResponseError as exc:
            log.debug("INFO server refused too (%s): the server is not known", str(exc).splitlines()[0] if str(exc) else exc)
            return None

    # -- cross-process lock -----------------------------------------------
    # Released and extended by compare-and-delete / compare-and-extend: with the
    # server's own commands where it has them (DELIFEQ on Valkey 9, DELEX IFEQ on
    # Redis 8.4, and SET IFEQ: no script rights needed), else with a script where
    # the ACL allows EVALSHA, else with WATCH/MULTI/EXEC, else (none allowed) no
    # cross-process lock at all, said once.
    async def acquire_lock(self, cache_key: str, token: str, ttl_ms: int) -> bool:
        """True when we hold the lock now; False when another process does.

        Raises RedisUnavailable / RedisCommandError when there is no usable lock.
        """
        self._writable("SET NX (lock)")
        lkey = self.keys.lock_key(cache_key)
        if await self.lock_mode(lkey) == "none":
            native = f"+{self._native}, or " if self._native else ""
            raise RedisPermissionError(
                "evalsha", f"or {native}+watch +multi +exec: without any of them there is no cross-process lock")
        return bool(await self._run(lambda: self.client.set(lkey, token, nx=True, px=ttl_ms)))

    async def extend_lock(self, cache_key: str, token: str, ttl_ms: int) -> bool:
        self._writable("SET XX PX (lock)")
        lkey = self.keys.lock_key(cache_key)
        with self._lock_refusal("extend"):
            mode = await self.lock_mode(lkey)
            if mode == "native":
                with self._native_gone():
                    return bool(await self._run(
                        lambda: self.client.execute_command("SET", lkey, token, "IFEQ", token, "PX", ttl_ms),
                        sent="set"))
                return await self.extend_lock(cache_key, token, ttl_ms)
            if mode == "script":
                return bool(await self._run(lambda: self._extend(keys=[lkey], args=[token, ttl_ms])))
            return await self._run(
                lambda: self._compare_and(lkey, token, lambda pipe: pipe.set(lkey, token, xx=True, px=ttl_ms))
            )

    async def release_lock(self, cache_key: str, token: str) -> bool:
        self._writable("UNLINK (lock)")
        lkey = self.keys.lock_key(cache_key)
        with self._lock_refusal("release"):
            mode = await self.lock_mode(lkey)
            if mode == "native":
                with self._native_gone():
                    return bool(await self._run(lambda: self._native_release(lkey, token), sent=self._native))
                return await self.release_lock(cache_key, token)
            if mode == "script":
                return bool(await self._run(lambda: self._release(keys=[lkey], args=[token])))
            return await self._run(lambda: self._compare_and(lkey, token, lambda pipe: pipe.unlink(lkey)))

    @contextlib.contextmanager
    def _native_gone(self) -> Iterator[None]:
        """A native lock command the server no longer knows (another server since the probe: an
        upgrade rolled back, a failover to an older replica): forget the probe, and fall through
        for the caller to try once more the way the new probe finds."""
        try:
            yield
        except RedisCommandError as exc:
            if isinstance(exc, RedisPermissionError) or "unknown command" not in str(exc).lower():
                raise
            log.info("Redis no longer knows %s: generation locks are probed again", (self._native or "").upper())
            self._lock_mode, self._server, self._native = None, None, None

    def _native_release(self, lkey: str, token: str) -> Awaitable[Any]:
        if self._native == "delex":
            return self.client.execute_command("DELEX", lkey, "IFEQ", token)
        return self.client.execute_command("DELIFEQ", lkey, token)

    @contextlib.contextmanager
    def _lock_refusal(self, what: str) -> Iterator[None]:
        """A lock the ACL lets us take but not release or extend: say so once, loudly."""
        try:
            yield
        except RedisPermissionError as exc:
            if what not in self._said_lock_refusal:
                self._said_lock_refusal.add(what)
                log.warning("Cannot %s a generation lock: %s (until then a lock lasts its full TTL)", what, exc)
            raise

    # -- hit counts (cache/hits.py) ------------------------------------------
    async def add_hits(self, batch: "HitBatch", since: str, *, writer: str = "", final: bool = True) -> None:
        """Add one process's batch of hit counts (hits.py): one HIT_ADD script call per hash, so a
        batch is taken at most once (by `writer` and `batch.seq`), pipelined in one round trip
        (one per node on a cluster), after one that looks at the entries: the per-entry counts of
        an entry that is gone, or was generated again since, go to the totals only. Without script
        rights: plain HINCRBYs (then a batch sent again after a timeout may count twice)."""
        self._writable("HINCRBY (hit counts)")
        per_entry = await self._still_as_hit(batch)
        stats = self.keys.stats_key
        hkeys = {key: self.keys.hits_key(key) for key in per_entry}
        if not await self._run(lambda: self._scripts_on("hit_add", scripts.HIT_ADD, [stats, *hkeys.values()]),
                               sent="script|load"):
            await self._add_hits_plainly(batch, per_entry, since)
            return
        sha = scan.sha_of(scripts.HIT_ADD)
        head = (writer or "anonymous", batch.seq, final)

        def call(hkey: str, ttl: int, gen: str, since: str, last: str, fields: list[str]) -> tuple[Any, ...]:
            writer_id, seq, last_one = head
            return (hkey, "evalsha", (sha, 1, hkey, writer_id, seq, ttl, gen, "1" if last_one else "0", since, last,
                                      *fields), {})

        # every field, even at 0: a flush also starts again any field another writer left as garbage
        totals = [f for tier in ("redis", "filesystem", "generator") for f in (tier, str(batch.totals[tier]))]
        totals += ["saved_usd", f"{batch.saved_usd:.6f}", "saved_seconds", f"{batch.saved_seconds:.6f}"]
        calls = [call(stats, 0, "", since, "", totals)]
        for key, counts in per_entry.items():
            fields = [f for tier in ("redis", "filesystem") for f in (tier, str(counts[tier]))]
            born = batch.born.get(key)
            calls.append(call(hkeys[key], max(self.ttl, 0), "" if born is None else f"{born:.6f}", "",
                              f"{batch.last[key]:.3f}", fields))
        replies = await self._run(lambda: self._pipelined(calls, raise_on_error=False), sent="evalsha")
        if any(isinstance(r, NoScriptError) for r in replies):  # a restarted server: load it, send those again
            scan.forget_script(self._script_clients(), "hit_add")
            again = [c for c, r in zip(calls, replies) if isinstance(r, NoScriptError)]
            await self._run(lambda: self._scripts_on("hit_add", scripts.HIT_ADD, [c[0] for c in again]))
            fresh = iter(await self._run(lambda: self._pipelined(again, raise_on_error=False), sent="evalsha"))
            replies = [next(fresh) if isinstance(r, NoScriptError) else r for r in replies]
        for (hkey, *_), reply in zip(calls, replies):
            if isinstance(reply, RedisError):
                await self._run(_raising(reply), sent="hincrby")  # raises it, mapped
            for name in reply[1:]:
                said = f"{hkey} {name!r}"
                if said not in self._said_garbage:
                    self._said_garbage.add(said)
                    log.warning("%s field %s did not hold a count: started again from this process's hits",
                                hkey, name.decode(errors="replace") if isinstance(name, bytes) else name)

    async def _still_as_hit(self, batch: "HitBatch") -> dict[str, Any]:
        """The batch's per-entry counts whose entry is still in Redis, generated when those hits
        found it (the first KiB of each, in one round trip): counts of an entry deleted (or made
        again) since must not bring its hit key back."""
        keys = list(batch.per_entry)
        if not keys:
            return {}
        calls = [(rk, "getrange", (rk, 0, 1023), {}) for rk in map(self.keys.redis_key, keys)]
        heads = await self._run(lambda: self._pipelined(calls, raise_on_error=False), sent="getrange")
        kept = {}
        for key, head in zip(keys, heads):
            if not isinstance(head, bytes) or not head or not is_entry_head(head):
                continue  # gone (or refused: counted in the totals only)
            born = batch.born.get(key)
            if born is not None and (made := generated_epoch(head)) is not None and abs(made - born) > 1e-3:
                continue  # generated again since those hits
            kept[key] = batch.per_entry[key]
        return kept

    async def _add_hits_plainly(self, batch: "HitBatch", per_entry: dict[str, Any], since: str) -> None:
        """The batch as plain commands in one pipeline, for a user without script rights."""
        stats = self.keys.stats_key
        calls: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = [(stats, "hsetnx", (stats, "since", since), {})]
        for tier, n in batch.totals.items():
            calls.append((stats, "hincrby", (stats, tier, n), {}))
        if batch.saved_usd:
            calls.append((stats, "hincrbyfloat", (stats, "saved_usd", batch.saved_usd), {}))
        if batch.saved_seconds:
            calls.append((stats, "hincrbyfloat", (stats, "saved_seconds", batch.saved_seconds), {}))
        for key, counts in per_entry.items():
            hkey = self.keys.hits_key(key)
            for tier, n in counts.items():
                calls.append((hkey, "hincrby", (hkey, tier, n), {}))
            calls.append((hkey, "hset", (hkey, "last", f"{batch.last[key]:.3f}"), {}))
            if self.ttl > 0:
                calls.append((hkey, "expire", (hkey, self.ttl), {}))
        await self._run(lambda: self._pipelined(calls), sent="hincrby")

    def _script_clients(self) -> list[Any]:
        return [self.client, *self._node_clients.values()]

    async def _scripts_on(self, name: str, body: str, keys: list[str]) -> bool:
        """Load script `name` on the node(s) that serve `keys`; False when one refuses scripts."""
        if not self.cluster:
            return await scan._sha(self.client, name, body) is not False
        await self._primaries()
        nodes = {n.name: n for n in (self.client.get_node_from_key(k) for k in keys)}
        loaded = [await scan._sha(self._node_client(n), name, body) for n in nodes.values()]
        return all(sha is not False for sha in loaded)

    async def hit_totals(self) -> dict[str, str]:
        """The shared totals hash, as stored (decoded); {} when nothing was counted yet."""
        raw = await self._run(lambda: self.client.hgetall(self.keys.stats_key), sent="hgetall")
        return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items()}

    async def hit_counts(self, cache_keys: list[str]) -> list[tuple[int, int, float | None, float | None]]:
        """(redis hits, filesystem hits, last hit epoch, the generated_at they were counted on) per
        key, in one round trip; a field that is not a count reads as 0 (or None)."""
        if not cache_keys:
            return []

        hkeys = [self.keys.hits_key(key) for key in cache_keys]
        calls = [(hkey, "hmget", (hkey, "redis", "filesystem", "last", "gen"), {}) for hkey in hkeys]
        rows = await self._run(lambda: self._pipelined(calls), sent="hmget")
        return [(_count(r), _count(f), _epoch(last), _epoch(gen)) for r, f, last, gen in rows]

    async def unlink_hits(self, cache_keys: list[str]) -> None:
        """UNLINK the hit counts of these entries (deleted with them)."""
        self._writable("UNLINK (hit counts)")
        if cache_keys:
            hkeys = [self.keys.hits_key(k) for k in cache_keys]
            await self._run(lambda: self._unlink_exact(hkeys))

    async def clear_hits(self, spec_name: str | None = None) -> int:
        """UNLINK the per-entry hit keys (of one spec): they go with their entries. How many."""
        self._writable("UNLINK (hit counts)")
        match = self.keys.hits_pattern(spec_name)

        def ours(key: bytes) -> bool:  # `{IR key}:hits`, exactly (MATCH is a glob, not a parser)
            return key.endswith(b":hits") and self.keys.belongs(key[: -len(b":hits")], spec_name)

        deleted: dict[int, int] = {}  # per walk index: a round cut short by a failover keeps its share

        async def on(i: int, client: aioredis.Redis) -> None:
            def add(n: int) -> None:
                deleted[i] = deleted.get(i, 0) + n

            async for page in _scan_pages(client, match):
                mine = [k for k in page if ours(k)]
                if mine:
                    await scan.unlink_keys(client, mine, reroute=self._reroute if self.cluster else None, tally=add)

        await self._run(lambda: self._each_primary(on, follow_failover=True), follow_failover=True)
        return sum(deleted.values())

    async def lock_held(self, cache_key: str) -> bool:
        lkey = self.keys.lock_key(cache_key)
        return bool(await self._run(lambda: self.client.exists(lkey)))

    async def lock_holder(self, cache_key: str) -> str | None:
        """Who holds the lock, from its token (`pid N on HOST <uuid>`), or None."""
        lkey = self.keys.lock_key(cache_key)
        token = await self._run(lambda: self.client.get(lkey))
        if not token:
            return None
        text = token.decode("utf-8", "replace") if isinstance(token, bytes) else str(token)
        who = text.rsplit(" ", 1)[0] if " " in text else ""
        return redact.scrub(who) or None

    async def lock_mode(self, lkey: str) -> LockMode:
        """How locks are released here; probed once with a token nobody holds (changes nothing)."""
        if self._lock_mode is not None:
            return self._lock_mode
        probe = "ircache-probe"
        server = await self.server_info()
        self._native = server.compare_and_delete if server is not None else None
        if server is not None and self._native is not None:
            try:
                await self._run(lambda: self._native_release(lkey, probe), sent=self._native)
                self._lock_mode = "native"
                log.debug("Generation locks are released with %s and extended with SET IFEQ (%s)",
                          self._native.upper(), server.label)
                return self._lock_mode
            except RedisPermissionError as refused:
                log.info("Redis refuses %s for this user (%s): generation locks are released with a script "
                         "or a transaction instead", self._native.upper(), refused.rule)
            except RedisCommandError as exc:  # not there after all (a proxy, a build without it)
                log.debug("%s is not usable here (%s)", self._native.upper(), exc)
                self._native = None
        try:
            await self._run(lambda: self._release(keys=[lkey], args=[probe]))
            self._lock_mode = "script"
        except RedisPermissionError as scripted:
            try:
                await self._run(lambda: self._compare_and(lkey, probe, lambda pipe: pipe.unlink(lkey)))
                self._lock_mode = "watch"  # as correct as the script, one more round trip
                log.info("Redis refuses scripts for this user (%s): generation locks are released "
                         "and extended with WATCH/MULTI/EXEC", scripted.rule)
            except RedisPermissionError as watched:
                self._lock_mode = "none"
                native = f"+{self._native}, or " if self._native else ""
                log.warning("Redis refuses both %s and %s for this user: no cross-process generation lock, "
                            "so two processes may generate the same spec at once (add %s+evalsha +script|load, "
                            "or +watch +multi +exec)", scripted.rule, watched.rule, native)
        return self._lock_mode

    async def _compare_and(self, lkey: str, token: str, then: Callable[[Any], object]) -> bool:
        """If `lkey` holds `token`, run `then` on it in a transaction that fails if the key changed
        (on a cluster, on the primary that serves `lkey`: one key, one slot)."""
        client = await self._client_for_key(lkey)
        async with client.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(lkey)
                held = await pipe.get(lkey)
                pipe.multi()
                if held == token.encode():
                    then(pipe)
                result = await pipe.execute()  # an empty MULTI/EXEC ends the WATCH without UNWATCH
            except WatchError:
                return False  # changed under us: not ours any more
        return bool(result and result[0])


def _own_migrations(reply: object, name: str) -> list[str]:
    """The slots a node is moving, from its own entry of `CLUSTER NODES` (flag `myself`; the
    text's `[5461->-<id>]` and `[5462-<-<id>]`, which redis-py parses into {address: {"flags",
    "migrations": [{"slot", "state"}]}}), as `"5461 host:port migrating"`."""
    nodes = reply.values() if isinstance(reply, dict) else ()
    for node in nodes:
        if "myself" in str(node.get("flags", "")).split(","):
            return [f"{m['slot']} {name} {m['state']}" for m in node.get("migrations", [])]
    return []


def _describe_topology_change(before: tuple[str, ...], after: tuple[str, ...]) -> str:
    """One sentence: a failover (a primary gone, another in its place) or a resharding."""
    gone = sorted(set(before) - set(after) - {""})
    new = sorted(set(after) - set(before) - {""})
    if gone and new:  # a primary gone and another in its place (a slot moved onto a new primary, or
        # off one that is left empty, is a resharding: said below with its count)
        return (f"Cluster failover: {', '.join(gone)} no longer {'serves' if len(gone) == 1 else 'serve'} slots; "
                f"{', '.join(new)} {'serves' if len(new) == 1 else 'serve'} them now")
    moved = sum(1 for a, b in zip(before, after) if a != b)
    flows = sorted({f"{a} → {b}" for a, b in zip(before, after) if a != b})
    return (f"Cluster resharding: {moved:,} slot{'s' if moved != 1 else ''} changed primary "
            f"({', '.join(flows[:3])}{' …' if len(flows) > 3 else ''})")


def _describe_migrations(moving: frozenset[str]) -> str:
    """`slot 5461 migrating from 127.0.0.1:7000` (or `slots 5461, 5462 …`), in words."""
    slots = sorted({int(m.split()[0]) for m in moving})
    sources = sorted({m.split()[1] for m in moving if m.endswith("migrating")})
    shown = ", ".join(map(str, slots[:5])) + (f" and {len(slots) - 5} more" if len(slots) > 5 else "")
    return f"slot{'s' if len(slots) > 1 else ''} {shown} moving" + (f" from {', '.join(sources)}" if sources else "")


def _shown_head(raw: bytes) -> str:
    """Another tool's string value, for a message: `a string beginning '{"user": 1…'` (its first
    bytes escaped, short)."""
    text = repr(raw[:16])[2:-1]
    return f"a string beginning '{text}…'" if len(raw) > 16 else f"the string '{text}'" if raw else "an empty string"


def _raising(exc: BaseException) -> Callable[[], Awaitable[Any]]:
    """An op for `_run` that raises `exc`, so that it is mapped like any Redis error."""
    async def op() -> Any:
        raise exc
    return op


def _head(reply: object) -> bytes | None:
    if isinstance(reply, bytes):
        return reply
    return None if isinstance(reply, RedisError) and "WRONGTYPE" in str(reply) else b""


def _covers(flags: str) -> bool:
    if "K" not in flags:
        return False
    if "A" in flags:
        return True
    return all(c in flags for c in "g$x")


def _count(raw: object) -> int:
    """A hit count as stored, or 0 when it is not one (garbage is started again by the next flush)."""
    try:
        value = int(raw) if raw is not None else 0  # type: ignore[call-overload]
    except ValueError:
        return 0
    return value if 0 <= value < 10**15 else 0


def _epoch(raw: object) -> float | None:
    """Epoch seconds as stored, or None when it is not a plausible time."""
    try:
        value = float(raw) if raw is not None else None  # type: ignore[arg-type]
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and 0 < value < 1e11 else None


def _hits(counts: Any) -> tuple[int, float | None, float | None] | None:
    """An HMGET of an entry's hit counts as (hits, last hit epoch, generated_at they were counted
    on); None when refused (an ACL)."""
    if not isinstance(counts, list):
        return None
    redis_hits, fs_hits, last, gen = counts
    return _count(redis_hits) + _count(fs_hits), _epoch(last), _epoch(gen)


async def _scan_pages(client: aioredis.Redis, match: str, count: int = 1000) -> AsyncIterator[list[bytes]]:
    cursor = 0
    while True:
        cursor, keys = await client.scan(cursor, match=match, count=count)
        yield keys
        if cursor == 0:
            return
