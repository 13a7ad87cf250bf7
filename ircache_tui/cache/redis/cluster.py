"""Redis Cluster: every primary, its topology, failovers and reshardings (the `Nodes` strategy).

REDIS_URL may name any node of a cluster. `client` is a RedisCluster (same credentials and
timeouts, reads from primaries only) for single-key commands and the lock scripts, and every walk
(flush, stats, top, count, the stale walk) runs once per primary, concurrently, over a plain
connection to that primary: the per-node walks of walk.py and sizes.py are reused unchanged, each
node's SCAN cursor and EVALSHA stay on that node, and the keys a node returns live in its slots.
Pipelines are split by the node that owns each command's key (`pipelined`), and no multi-key
UNLINK ever names keys of two slots.

Failover: every walk starts from the topology asked again (CLUSTER SLOTS), and the per-primary
clients are those of the primaries it names now. A walk that fails on some primary because that
primary died (connection refused or reset, a timeout) or no longer serves its slots (MOVED, ASK,
READONLY, CLUSTERDOWN, TRYAGAIN) waits up to FAILOVER_WAIT seconds for the topology to change (a
replica promoted), then walks every primary it names again; otherwise it stops. A command that
meets the dead primary before any walk began waits the same way and runs again
(`through_failover`). An error that comes from one node names it (host:port).

Resharding: while a slot migrates, its keys live on two primaries, and a key carried from a node
the flush has not walked yet to one it has walked is behind the cursor. A node's delete of a key
it no longer serves fails alone (UNLINK_EACH runs each UNLINK under pcall) and the key goes
through the cluster client, which follows MOVED and ASK (`reroute`). A flush compares the slot
owners and the slots in migration (`CLUSTER NODES`) before and after its walk; if anything moved,
it waits up to RESHARD_WAIT for the migrations to end and walks again, until a walk sees nothing
move. Still migrating then, it stops with FlushIncomplete, saying which slots move.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import AskError, MaxConnectionsError, MovedError, NoPermissionError, RedisError, ResponseError

from ..errors import FlushIncomplete, RedisUnavailable
from ..keys import Selection
from .clients import execute, make_client, node_name, node_url
from .diagnose import DOWN_ERRORS, WAITED, blame, connection_lost, down_reason, node_of, topology_error
from .entries import EntryDeleter
from .nodes import Call, Events, FlushProgress, Listen, Nodes
from .pager import ClusterCursor, Layouts
from .topology import describe_migrations, describe_topology_change, own_migrations
from .walk import Reroute, Tally, scan_page, scan_unlink_node, script_sha, unlink_keys

log = logging.getLogger("ircache")

T = TypeVar("T")

#: how long a walk waits for a cluster's topology to change (a replica promoted) after a primary
#: failed, before it stops and says how many keys went; asked again every TOPOLOGY_POLL seconds
FAILOVER_WAIT = 5.0
TOPOLOGY_POLL = 0.1
#: how long a flush that saw slots move between primaries waits for the resharding to end before it
#: walks again (to find keys carried behind a cursor); still moving then, it stops and says so
RESHARD_WAIT = 10.0


class ClusterNodes(Nodes):
    """Every primary of a Redis Cluster (see the module's docstring)."""

    is_cluster = True
    mode = "cluster"
    fails_over = True
    hits_left_by_flush = True

    def __init__(self, client: Any, url: str, client_options: dict[str, Any], entries: EntryDeleter, *,
                 on_topology: Callable[[str], None] | None = None) -> None:
        """`client`: the RedisCluster; `url`, `client_options`: what a primary's plain client is made
        from; `entries`: deletes a rerouted entry; `on_topology`: told, in a sentence, when slots
        changed primary (a failover, a resharding) since the topology was last asked."""
        super().__init__(client)
        self._url = url
        self._client_options = client_options
        self._entries = entries
        self._on_topology = on_topology
        self._node_clients: dict[str, aioredis.Redis] = {}  # primary's name (host:port) → plain client
        self._retired: list[aioredis.Redis] = []  # clients of nodes that are no longer primaries (closed at aclose)
        self._primary_count: int | None = None
        self._owners_seen: tuple[str, ...] | None = None  # the slot owners when last asked
        self._resharded = False  # a flush walk found a key its node no longer serves (see reroute)
        self._layouts = Layouts()

    def describe(self, url: str) -> str:
        if self._primary_count is None:
            return f"{url} (cluster)"
        return f"{url} (cluster, {self._primary_count} {'primary' if self._primary_count == 1 else 'primaries'})"

    @property
    def info(self) -> dict[str, Any] | None:
        return {"primaries": self._primary_count}

    @property
    def known(self) -> bool:
        return self._primary_count is not None

    async def learn(self) -> None:
        await self.primaries()

    @property
    def db(self) -> int:
        return 0  # a cluster has only db 0

    async def aclose(self) -> None:
        nodes, self._node_clients = [*self._node_clients.values(), *self._retired], {}
        self._retired = []
        await self.client.aclose()
        for node in nodes:
            await node.aclose()

    def reason(self, exc: BaseException) -> str:
        return down_reason(exc, node_of(exc))  # the URL names one node of many: say which failed

    def label(self, node: aioredis.Redis) -> str:
        return f" on {node_name(node)}"

    async def walk_nodes(self) -> list[aioredis.Redis]:
        return await self.primaries(refresh=True)

    async def any_node(self) -> aioredis.Redis:
        return (await self.primaries())[0]

    @property
    def rerouter(self) -> Reroute | None:
        return self.reroute

    def script_clients(self) -> list[Any]:
        return [self.client, *self._node_clients.values()]

    async def scripts_on(self, name: str, body: str, keys: list[str]) -> bool:
        await self.primaries()
        nodes = {n.name: n for n in (self.client.get_node_from_key(k) for k in keys)}
        loaded = [await script_sha(self._node_client(n), name, body) for n in nodes.values()]
        return all(sha is not False for sha in loaded)

    async def primaries(self, *, refresh: bool = False) -> list[aioredis.Redis]:
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
        self._on_topology(describe_topology_change(before, owners))

    async def _ask_slot_owners(self) -> tuple[str, ...] | None:
        """Which primary serves each slot, by name, as the first primary that answers says; None
        when none does."""
        for client in list(self._node_clients.values()):
            try:
                reply = await execute(client, "CLUSTER SLOTS")
            except (*DOWN_ERRORS, RedisError):
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
            await asyncio.sleep(TOPOLOGY_POLL)
            try:
                await self._refresh_topology()
            except (*DOWN_ERRORS, RedisError):  # no node answered, or they disagree mid-failover: ask again
                continue
            if self._slot_owners() != before:
                return True
        return False

    def _node_client(self, node: Any) -> aioredis.Redis:
        client = self._node_clients.get(node.name)
        if client is None:
            client = make_client(node_url(self._url, node.host, int(node.port)), **self._client_options)
            self._node_clients[node.name] = client
        return client

    async def client_for_key(self, key: str | bytes) -> aioredis.Redis:
        """The plain client of the primary that serves `key` (the client itself on a single node)."""
        await self.primaries()
        return self._node_client(self.client.get_node_from_key(key))

    async def each(self, work: Callable[[int, aioredis.Redis], Awaitable[T]],
                            *, follow_failover: bool = False) -> list[T]:
        """`work(index, client)` on every primary concurrently (once, on the client, on a single node),
        from the topology as it is now (asked again at the start of every walk).

        Every node's work runs to its end even when another's fails (a flush goes as far as it
        can everywhere, and counts what went); then the first error is raised.

        `follow_failover`: when every failure says the topology changed under the walk (see
        `topology_error`), wait up to FAILOVER_WAIT for a slot to change owner (a replica
        promoted), then run `work` again on every primary there is then; the results are those of
        that last round. Each call of `work` gets an index of its own, never reused across rounds
        (a caller adding up progress per index keeps every round's share).
        """
        base = 0
        deadline: float | None = None
        loop = asyncio.get_running_loop()

        async def on(i: int, client: aioredis.Redis) -> T:
            try:
                return await work(i, client)
            except Exception as exc:
                blame(exc, node_name(client))  # the error names the node whose walk failed
                raise

        while True:
            nodes = await self.primaries(refresh=True)
            before = self._owners_seen or self._slot_owners()  # (just asked: see _refresh_topology)
            results = await asyncio.gather(*(on(base + i, c) for i, c in enumerate(nodes)), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if not errors:
                return results  # type: ignore[return-value]
            base += len(nodes)
            if not follow_failover or not all(topology_error(e) for e in errors) or any(
                isinstance(e, asyncio.CancelledError) for e in errors
            ):
                raise errors[0]
            if deadline is None:
                deadline = loop.time() + FAILOVER_WAIT
            log.info("A primary's walk failed: %s; waiting up to %.3g s for the cluster's topology to change",
                     self.reason(errors[0]), max(0.0, deadline - loop.time()))
            if not await self._topology_changed(before, deadline):
                with contextlib.suppress(AttributeError):
                    setattr(errors[0], WAITED, True)
                raise errors[0]
            log.info("The cluster's topology changed: walking every primary again")

    async def when_free(self, op: Callable[[], Awaitable[T]], pool_wait: float) -> T:
        """`op()`, again while it failed only because every connection of a node's pool was in use
        (redis-py's cluster pool does not wait, as a single node's blocking pool does: the command
        was not sent), for up to `pool_wait` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + pool_wait
        pause = 0.005
        while True:
            try:
                return await op()
            except MaxConnectionsError:
                if loop.time() + pause > deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.1)

    async def through_failover(self, op: Callable[[], Awaitable[T]]) -> T:
        """`op()`; on a cluster, run again when it failed because a primary is gone or no longer
        serves its slots (see `topology_error`) and the cluster replaced it within FAILOVER_WAIT
        (a replica promoted): a command started just before or while a primary dies goes on as
        one already walking does. Only for operations that may run twice (PING, reads, SET, a
        flush that counts per round)."""
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            before = self._owners_seen or self._slot_owners()
            try:
                return await op()
            except Exception as exc:
                if not topology_error(exc) or getattr(exc, WAITED, False):
                    raise
                if deadline is None:
                    deadline = loop.time() + FAILOVER_WAIT
                log.info("Waiting up to %.3g s for a failover: %s", max(0.0, deadline - loop.time()),
                         self.reason(exc))
                if not await self._failed_over(exc, before, deadline):
                    with contextlib.suppress(AttributeError):
                        setattr(exc, WAITED, True)
                    raise
            log.info("The cluster failed over: trying again")

    async def _failed_over(self, exc: BaseException, before: tuple[str, ...], deadline: float) -> bool:
        """Whether, by `deadline` (loop time), the cluster replaced what `exc` met: the node that
        refused or did not answer serves no slot any more (a replica took them), or (a node that
        said CLUSTERDOWN, MOVED...) a slot changed owner since `before`. False at once when no node
        answers: that is an outage, not a failover, and waiting would only delay saying so."""
        gone = node_of(exc) if connection_lost(exc) else None
        if gone not in before:
            gone = None  # (a name the slot map does not use: wait for any change instead)
        loop = asyncio.get_running_loop()
        asked = False
        while True:
            try:
                await self._refresh_topology()
            except (*DOWN_ERRORS, RedisError) as refused:  # no node answered, or they disagree mid-failover
                if not asked and connection_lost(refused):
                    return False
            else:
                owners = self._slot_owners()
                if all(owners) and (gone not in owners if gone else owners != before):
                    return True
            asked = True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(TOPOLOGY_POLL)

    async def pipelined(self, calls: list[Call],
                         *, raise_on_error: bool = True) -> list[Any]:
        """Run `calls` — (key it routes by, pipeline method, args, kwargs) — in one pipelined round trip
        (one per node, concurrently, on a cluster: every command goes to its key's primary); the
        replies in the order of `calls`."""
        await self.primaries()
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
                blame(exc, name)
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

    async def unlink_exact(self, keys: list[bytes] | list[str], went: list[int] | None = None, *,
                            entry: bytes | None = None, kept: Tally | None = None) -> int:
        """UNLINK exactly `keys` (with `entry`: those of them that hold entries; see unlink_keys);
        how many went. On a cluster: by node, concurrently, one UNLINK per slot; `went[0]` adds up
        what every node deleted, even when another failed."""
        await self.primaries()
        by_node: dict[str, list[Any]] = {}
        nodes: dict[str, Any] = {}
        for key in keys:
            node = self.client.get_node_from_key(key)
            nodes[node.name] = node
            by_node.setdefault(node.name, []).append(key)
        tally = went if went is not None else [0]

        def add(n: int) -> None:
            tally[0] += n

        reroute = self.reroute if entry is None else self.reroute_entries

        async def run(name: str, mine: list[Any]) -> int:
            try:
                return await unlink_keys(self._node_client(nodes[name]), mine, entry=entry, reroute=reroute,
                                              tally=add, kept=kept)
            except Exception as exc:
                blame(exc, name)
                raise

        results = await asyncio.gather(*(run(n, k) for n, k in by_node.items()), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return sum(results)  # type: ignore[arg-type]

    async def reroute(self, keys: list[bytes]) -> int:
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

    async def reroute_entries(self, keys: list[bytes]) -> int:
        """`reroute` for entries: each key goes only if it holds one (DELETE_ENTRY, through the
        cluster client); one that does not is left (and, in flight between nodes, not counted)."""
        deleted = 0
        for key in keys:
            deleted += max(0, await self._entries.delete(self.client, key))
        self._resharded = self._resharded or deleted > 0
        return deleted

    def _reroute_leaving_refused(self, refused: dict[bytes, RedisError]) -> Reroute:
        """`reroute` for a flush: a key the ACL may not follow to its new owner (no `+asking`) is
        left, its refusal kept in `refused`, and the walk goes on: the flush deletes all it may,
        then says how many it left and which rule would have deleted them."""
        async def reroute(keys: list[bytes]) -> int:
            deleted = 0
            for key in keys:
                try:
                    deleted += await self.reroute_entries([key])
                except NoPermissionError as exc:
                    refused[key] = exc
            return deleted
        return reroute

    async def still_left(self, refused: dict[bytes, RedisError]) -> None:
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
                reply = await execute(client, "CLUSTER NODES")
            except ResponseError:  # NOPERM, or a proxy that hides the command
                return []
            except Exception as exc:
                blame(exc, node_name(client))
                raise
            return own_migrations(reply, node_name(client))

        nodes = await self.primaries()  # as the caller just asked them (_reshard_state)
        found = await asyncio.gather(*(ask(i, c) for i, c in enumerate(nodes)), return_exceptions=True)
        for reply in found:  # (raised once every node answered: no task left behind)
            if isinstance(reply, BaseException):
                raise reply
        return frozenset(m for node in found for m in node)  # type: ignore[union-attr]

    async def _reshard_state(self) -> tuple[tuple[str, ...], frozenset[str]]:
        """Who serves each slot now (asked again), and which slots are being moved."""
        await self.primaries(refresh=True)
        return self._owners_seen or (), await self._migrations()

    async def _migrations_over(self, deadline: float) -> frozenset[str]:
        """Wait until no slot is being moved, or `deadline` (loop time); the slots still moving."""
        loop = asyncio.get_running_loop()
        while (moving := await self._migrations()) and loop.time() < deadline:
            await asyncio.sleep(TOPOLOGY_POLL)
            await self.primaries(refresh=True)  # a failover meanwhile: ask the primaries there are now
        return moving


    async def flush(self, selection: Selection, progress: FlushProgress, on_kept: Tally | None,
                    refused: dict[bytes, RedisError]) -> int:
        """Walk every primary; walk again while slots moved during a walk (see the module)."""
        reroute = self._reroute_leaving_refused(refused)

        def walk(i: int, client: aioredis.Redis) -> Awaitable[int]:
            return scan_unlink_node(client, selection, reroute=reroute, on_progress=progress.of(i), on_kept=on_kept)

        deadline: float | None = None
        while True:
            before = await self._reshard_state()
            self._resharded = False
            first = progress.new_round()
            await self.each(lambda i, client: walk(first + i, client), follow_failover=True)
            after = await self._reshard_state()
            if not self._resharded and after == before and not after[1]:
                return progress.total  # no slot moved during the walk, so none was carried behind a cursor
            # a slot moved, or is moving: a key carried from a node not yet walked to one already
            # walked was missed. Walk again once the resharding is over.
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + RESHARD_WAIT
            moving = await self._migrations_over(deadline)
            if moving or loop.time() >= deadline:  # a rebalancer that keeps moving slots: do not chase it
                what = (describe_migrations(moving) if moving
                        else f"slots still changing hands after {RESHARD_WAIT:g} s")
                raise FlushIncomplete({"redis": progress.total}, (
                    f"a resharding is under way ({what}); keys it carried between primaries during "
                    "the flush may remain: run it again when it is done"))
            log.info("Slots changed hands during the flush (a resharding or a failover): "
                     "walking every primary again")

    async def scan_step(self, cursor: int, pattern: str, count: int) -> tuple[int, list[bytes]]:
        """The primaries the walk started with, one after the other (pager.py's composite cursor).
        A walk whose next primary is one no longer ends there, having asked the topology again
        (which says what changed, for the dashboard to rescan)."""
        if cursor == 0:  # a new walk: the topology as it is now
            nodes = await self.primaries(refresh=True)
            at = ClusterCursor(0, self._layouts.number(tuple(node_name(c) for c in nodes)), 0)
        else:
            at = ClusterCursor.decode(cursor)
        names = self._layouts.names(at.layout)
        if at.index >= len(names):
            return 0, []
        by_name = {node_name(c): c for c in await self.primaries()}
        node = by_name.get(names[at.index])
        if node is None:  # no longer a primary (a failover the cluster client has learned)
            await self.primaries(refresh=True)
            return 0, []
        node_next, raw = await scan_page(node, at.node_cursor, pattern, count)
        index = at.index + 1 if node_next == 0 else at.index
        if index >= len(names):
            return 0, raw
        return ClusterCursor(node_next, at.layout, index).encode(), raw

    async def events(self, listen: Listen, on_subscribed: Callable[[], None] | None) -> Events:
        """Every primary's events, merged: one listener per node into one bounded queue. A node
        that fails ends the whole stream (the caller listens again, on the topology of then)."""
        nodes = await self.primaries(refresh=True)
        queue: asyncio.Queue[tuple[bytes, str] | BaseException] = asyncio.Queue(maxsize=10_000)
        subscribed = 0

        def one_subscribed() -> None:
            nonlocal subscribed
            subscribed += 1
            if subscribed == len(nodes) and on_subscribed is not None:
                on_subscribed()

        async def forward(node: aioredis.Redis) -> None:
            # Exception only: a cancel (the reader closing) must end this task even while a put
            # waits on a full queue, or the reader's gather below would wait for ever
            try:
                async with contextlib.aclosing(listen(node, one_subscribed)) as events:
                    async for change in events:
                        await queue.put(change)
            except Exception as exc:  # handed to the reader, which raises it
                await queue.put(exc)
                return
            # its subscription ended without an error: the stream would go quiet for that node
            await queue.put(RedisUnavailable(f"stopped listening for key changes on {node_name(node)}"))

        tasks = [asyncio.create_task(forward(node)) for node in nodes]
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
