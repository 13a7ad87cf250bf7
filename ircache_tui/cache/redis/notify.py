"""Keyspace notifications: turned on where we may (CONFIG SET), and listened to for our prefix.

On a cluster each node publishes only its own keys' events: every primary must have them on,
and every primary is listened to (the Nodes strategy merges the streams).

What a CONFIG SET found is remembered (`FlagsFound`, per node) so that `restore` can set it back
when the session ends: never on the private embedded server (its config is ours, and other
processes may share it), never where the value changed since we set it (someone else's now), and
never while other clients still listen (another dashboard or `watch` that found them on and
subscribed: PUBSUB NUMPAT, per node, asked after our own listener closed; refused, they stay on).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..errors import RedisCommandError, RedisUnavailable
from ..keys import KeySpace, glob_escape
from ..results import FlagsRestore, NotificationsRestored
from .clients import node_address
from .diagnose import DOWN_ERRORS
from .door import Door
from .nodes import Events

log = logging.getLogger("ircache")

# K keyspace channel; g generic (del, expire, rename); $ string (set); x expired
_NOTIFY_FLAGS = "Kg$x"
_PARAMETER = "notify-keyspace-events"
#: per node (its address): (the value found before our first CONFIG SET, the value the server then said)
FlagsFound = dict[str, tuple[str, str]]


async def _flags(door: Door, node: aioredis.Redis) -> str:
    flags = (await door.run(lambda: node.config_get(_PARAMETER))).get(_PARAMETER) or ""
    # (typed Optional by redis-py; a server answers a string, maybe empty)
    return flags.decode() if isinstance(flags, bytes) else str(flags)


async def enable(door: Door, *, may_configure: bool, private: bool, found: FlagsFound | None = None) -> bool:
    """True if keyspace notifications for our keys are (now) on on every node.

    Turning them on is a CONFIG SET: allowed on the private embedded server, or when
    `may_configure` and the tier is not read-only. `found` remembers, per node, what the first
    CONFIG SET replaced (not on the private server).
    """
    try:
        nodes = await door.run(lambda: door.nodes.walk_nodes())  # (after the mode is settled)
        for node in nodes:
            flags = await _flags(door, node)
            if _covers(flags):
                continue
            if not may_configure or (door.read_only and not private):
                return False
            wanted = "".join(sorted(set(flags) | set(_NOTIFY_FLAGS)))
            await door.run(lambda: node.config_set(_PARAMETER, wanted), sent="config|set")
            log.info("Enabled keyspace notifications (notify-keyspace-events %s)%s", wanted, door.nodes.label(node))
            if found is not None and not private:
                address = node_address(node)
                first = found.get(address, (flags, ""))[0]  # (set again after a restart: the first found stays)
                found[address] = (first, await _flags(door, node))  # as the server spells it
        return True
    except (RedisCommandError, RedisUnavailable) as exc:
        log.info("Keyspace notifications unavailable (%s); polling instead", str(exc).splitlines()[0])
        return False


async def restore(door: Door, found: FlagsFound) -> NotificationsRestored | None:
    """Set notify-keyspace-events back to what `enable` found, on every node where it set it, the
    value is still the one it set and no other client listens; None when it set none. Never raises: a node that cannot be
    set back (refused, Redis down, no longer a primary) is left, and the result says why."""
    if not found:
        return None
    done: list[FlagsRestore] = []
    try:
        nodes = {node_address(n): n for n in await door.run(lambda: door.nodes.walk_nodes())}
        why_not = "the node is no longer a primary"
    except (RedisCommandError, RedisUnavailable) as exc:
        nodes, why_not = {}, _first_line(exc)
    for address, (was, ours) in found.items():
        node = nodes.get(address)
        try:
            if node is None:
                raise RedisUnavailable(why_not)
            now = await _flags(door, node)
            if now != ours:
                done.append(FlagsRestore(address, was, now, False, "it changed since the dashboard set it: left as it is"))
                continue
            if door.listening:  # (NUMPAT counts a pattern once however many hold it: ours would hide B's)
                done.append(FlagsRestore(address, was, ours, False, "this process still listens to them: "
                                         "it cannot tell whether other clients do"))
                continue
            try:  # (counts every client's patterns, unique ones once; ours are closed by now)
                patterns = int(await door.run(lambda: node.pubsub_numpat(), sent="pubsub|numpat"))
            except RedisCommandError as exc:
                done.append(FlagsRestore(address, was, ours, False,
                                         f"could not ask whether other clients still listen: {_first_line(exc)}"))
                continue
            if patterns:
                done.append(FlagsRestore(address, was, ours, False, "other clients still listen", listening=patterns))
                continue
            await door.run(lambda: node.config_set(_PARAMETER, was), sent="config|set")
            done.append(FlagsRestore(address, was, was, True))
        except (RedisCommandError, RedisUnavailable) as exc:
            done.append(FlagsRestore(address, was, ours, False, f"could not set back {was!r}: {_first_line(exc)}"))
    found.clear()
    result = NotificationsRestored(tuple(done))
    log.info("%s", result.sentence)
    return result


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


async def keyspace_events(door: Door, keys: KeySpace,
                          on_subscribed: Callable[[], None] | None = None) -> Events:
    """(Redis key, event) for every key under the prefix, as notifications arrive. Ends by
    raising RedisUnavailable when the connection drops."""

    def listen(node: aioredis.Redis, subscribed: Callable[[], None] | None) -> Events:
        return _node_events(door, keys, node, subscribed)

    # aclosing: closing this stream closes the one it wraps now, not when the collector
    # finds it (its subscriptions and listener tasks would outlive the caller until then)
    if door.settle is not None:
        await door.run(_noop)
    async with contextlib.aclosing(door.nodes.events(listen, on_subscribed)) as stream:
        try:
            async for change in stream:
                yield change
        except (*DOWN_ERRORS, RedisError) as exc:  # asking a cluster's primaries, before any listener
            raise door.mapped(exc) from None


async def _node_events(door: Door, keys: KeySpace, node: aioredis.Redis,
                       on_subscribed: Callable[[], None] | None) -> Events:
    channel_prefix = f"__keyspace@{door.nodes.db}__:".encode()
    pubsub = node.pubsub(ignore_subscribe_messages=True)
    subscribed = False
    try:
        try:
            await pubsub.psubscribe(f"{glob_escape(channel_prefix.decode())}{glob_escape(keys.prefix)}:*")
            subscribed = True
            door.listening += 1
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
        except (*DOWN_ERRORS, RedisError) as exc:
            raise door.mapped(exc) from None
    finally:
        try:
            await pubsub.aclose()
        finally:
            door.listening -= subscribed


async def _noop() -> None:
    return None


def _covers(flags: str) -> bool:
    if "K" not in flags:
        return False
    if "A" in flags:
        return True
    return all(c in flags for c in "g$x")
