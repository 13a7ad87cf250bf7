"""Why Redis cannot be used, in words, and which node said so; which errors are an outage and
which say that a cluster's topology changed under a command (a failover, a resharding).

This is where redis-py's exceptions are read: the door (door.py) maps them to the cache's own."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
from collections.abc import Iterator

from redis.exceptions import AskError, AuthenticationError, AuthenticationWrongNumberOfArgsError, BusyLoadingError
from redis.exceptions import ClusterDownError, ClusterError, InvalidResponse, MaxConnectionsError, MovedError
from redis.exceptions import NoPermissionError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError as RedisReadOnlyError
from redis.exceptions import RedisClusterException, RedisError, ResponseError, TryAgainError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ... import redact
from ..handshake import SERVER

# Redis cannot be used: not reached, not answering, not Redis, or it refused our credentials
# (AuthenticationError is a ConnectionError; the wrong-number-of-args one is a ResponseError)
# A cluster that cannot serve: CLUSTERDOWN, a slot no node covers, no reachable node to learn the
# topology from, redirections that never settle (RedisClusterException is not a RedisError)
DOWN_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError,
               AuthenticationWrongNumberOfArgsError, InvalidResponse, ClusterError, RedisClusterException)

# a node that is gone, or no longer serves the slots its walk was for (MOVED and ASK are ResponseErrors,
# READONLY a replica refusing a write; CLUSTERDOWN, TRYAGAIN and LOADING pass during a failover)
_TOPOLOGY_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, MovedError, AskError,
                    RedisReadOnlyError, ClusterDownError, TryAgainError, BusyLoadingError)
_TOPOLOGY_REPLIES = ("MOVED ", "ASK ", "READONLY ", "CLUSTERDOWN ", "TRYAGAIN ", "LOADING ")
#: set on a topology error a wait for the failover already followed and gave up on: an enclosing
#: operation that follows failovers raises it at once instead of waiting again
WAITED = "ircache_failover_waited"


def topology_error(exc: BaseException) -> bool:
    """Whether `exc` says the node's walk failed because the cluster's topology changed under it
    (never a refused password or ACL rule, which a failover does not cure)."""
    if auth_refused(exc) or isinstance(exc, NoPermissionError) or pool_exhausted(exc):
        return False
    for e in chain(exc):
        if isinstance(e, _TOPOLOGY_ERRORS):
            return True
        if isinstance(e, ResponseError) and str(e).startswith(_TOPOLOGY_REPLIES):
            return True
    return False



def pool_exhausted(exc: BaseException) -> bool:
    """Every connection of this process's pool is in use (a burst of our own work), which is no
    outage: redis-py's cluster pool says so at once (MaxConnectionsError), the blocking pool of a
    single node after waiting its timeout ("No connection available.", from a TimeoutError)."""
    if isinstance(exc, MaxConnectionsError):
        return True
    return (isinstance(exc, RedisConnectionError) and str(exc) == "No connection available."
            and isinstance(exc.__cause__, (TimeoutError, asyncio.TimeoutError)))


def chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the exceptions it was raised from or during (redis-py wraps the OSError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def auth_refused(exc: BaseException) -> bool:
    """A refusal of our credentials (or of their absence), whatever class redis-py gave it."""
    for e in chain(exc):
        if isinstance(e, (AuthenticationError, AuthenticationWrongNumberOfArgsError)):
            return True
        if isinstance(e, ResponseError) and str(e).startswith(("NOAUTH", "WRONGPASS")):
            return True
    return False


# redis-py's own texts name the server: "Error 111 connecting to H:P.", "Timeout reading from H:P",
# "Error while reading from H:P : ..." (not "Timeout connecting to server", nor a refused AUTH)
_NAMED_IN_TEXT = re.compile(r"(?:connecting to|reading from|writing to) (\S+:\d+)")


def node_of(exc: BaseException) -> str | None:
    """The `host:port` of the cluster node an error came from, when anything says it: the
    connection that raised it (handshake.SERVER), the per-node walk or pipeline it failed in
    (`blame`), the cluster client's node (redis-py sets `.connection`), or redis-py's text."""
    for e in chain(exc):
        named = getattr(e, SERVER, None)
        if isinstance(named, str) and named:
            return named
        node = getattr(getattr(e, "connection", None), "name", None)
        if isinstance(node, str) and node:
            return node
        if isinstance(e, (RedisError, OSError)) and (m := _NAMED_IN_TEXT.search(str(e))):
            return m.group(1)
    return None


def blame(exc: BaseException, node: str) -> None:
    """Note that `exc` came from `node` (a walk's or a pipeline's), unless it already names one."""
    if node_of(exc) is None:
        with contextlib.suppress(AttributeError):
            setattr(exc, SERVER, node)


def connection_lost(exc: BaseException) -> bool:
    """Refused, reset or timed out (not a refused password): the node is gone or hung."""
    return not auth_refused(exc) and not pool_exhausted(exc) and any(
        isinstance(e, (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)) for e in chain(exc))


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
    if auth_refused(exc):
        texts = " ".join(str(e).lower() for e in chain(exc))
        if "without any password configured" in texts or "no password is set" in texts or isinstance(
            exc, AuthenticationWrongNumberOfArgsError
        ):
            return f"the URL gives a password, but {node or 'the server'} has none set"
        if "invalid username-password" in texts or "invalid password" in texts or "wrongpass" in texts:
            return f"{who} refused the password (wrong password, or wrong user name)"
        if "authentication required" in texts or "already authenticated" in texts or "noauth" in texts:
            return f"{who} needs a password, and the URL gives none"
        return f"{who} refused the credentials ({redact.scrub(text)})"
    for e in chain(exc):
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

