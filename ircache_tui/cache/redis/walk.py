"""Every walk over the keyspace and every multi-key delete goes through here.

Everything here works on ONE node: a standalone server, or one primary of a
Redis Cluster through a plain connection to it (cluster.py runs one walk
per primary, concurrently, and adds the results up with sizes.py's `merge_sizes` /
`merge_top`). On a cluster node a multi-key UNLINK across slots fails with
CROSSSLOT, even when every key lives on that node, so `unlink_keys(reroute=)`
never sends one (see `_queue_node_unlink`).

A flush on one server overlaps the walk, the filter and the UNLINKs: the
producer only walks (the next SCAN depends on this page's cursor), a second
task applies the filter and batches, and the consumer UNLINKs. A cluster
node's flush (`scan_unlink_node`) sends each page's UNLINKs with the next
SCAN instead. Stats run as scripted steps
(scripts.py): one EVALSHA SCANs a page and sizes the IR keys on it, so no key
name travels to Python; where scripts are refused they run client-side.
Either way Redis runs one short step at a time, so a concurrent client waits
behind at most one page. Replies are parsed by hiredis (pure-Python parsing
costs several microseconds per key).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, MovedError, NoScriptError, ReadOnlyError, ResponseError
from redis.exceptions import TryAgainError

from . import scripts
from ...ir.envelope import is_entry_head
from ..keys import Selection
from ..refusals import is_refusal, refused_command

log = logging.getLogger("ircache")

Keys = list[bytes]
K = TypeVar("K", bound=bytes | str)  # a key as bytes or str, handed back as it came

# Measured with benchmarks/bench_core.py (100,000 IR keys among 100,000
# others, a PING loop alongside) on a slow, shared 2-core VM: Redis spends
# 2-4 µs per key on a SCAN page or an UNLINK, so a step over 500 keys keeps
# a concurrent client waiting 1-2.5 ms, 1000 keys 3-6 ms, and 2000-5000 keys
# 8-30 ms. A flush of 100,000 keys alone, 11 interleaved runs per size: the
# wall time was flat from 250 to 500 (0.52-0.54 s median), the worst PING's
# median 4.1 ms at 300 against 6.6 ms at 500 (p99 3.1 against 4.4 ms); below
# 250 the round trips start to show. Every walk and multi-key delete uses
# these (flush, prune, the dashboard's spec scans); stats steps stay at 500:
# each is a script with a fixed cost, and no latency target rides on them.
#
# A flush of ONE spec (Selection.spec_name set) walks with SPEC_SCAN_COUNT:
# its MATCH is exact, so a page returns only that spec's few keys, and a
# SCAN step over keys that do not match costs Redis about 0.5-0.6 µs each
# (no reply to build), a quarter of a returned key. Measured with
# bench_core.py (one spec of 97, ~1,031 keys, among 100,000 IR keys, a PING
# loop alongside, medians of 5-7 interleaved runs): COUNT 300 took 1.43× a
# plain `SCAN MATCH <exact glob> COUNT 1000` + UNLINK loop (333 round trips
# against 100); 1000 took 0.88-0.96× with the worst PING at 1.8-1.9 ms and
# the longest command (SLOWLOG) 1.0 ms; 1500 was 0.76× but its worst PING
# 2.1 ms, 2000 2.6 ms, 5000 5.4 ms (longest command 4 ms). The all-IR walks
# keep 300: nearly every key they visit comes back to the client.
SCAN_COUNT = 300
SPEC_SCAN_COUNT = 1000
BATCH = 300
_QUEUE_PAGES = 4


async def scan_page(client: Any, cursor: int, match: str, count: int = SCAN_COUNT) -> tuple[int, Keys]:
    """One SCAN step: the next cursor (0 when complete) and the keys of this page."""
    next_cursor, keys = await client.scan(cursor, match=match, count=count)
    return int(next_cursor), list(keys)


def scan_count(selection: Selection) -> int:
    """The SCAN COUNT of a flush walk over `selection`: larger for one exact spec (see SPEC_SCAN_COUNT)."""
    return SPEC_SCAN_COUNT if selection.spec_name is not None else SCAN_COUNT


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def raise_if_cancelled() -> None:
    """Raise the cancellation that an awaited Redis call returned through.

    On Python 3.11, asyncio.wait_for (which redis-py sends with when a socket
    timeout is set) can swallow a cancellation that lands as the send
    completes (CPython gh-86296, fixed in 3.12). A walk that went on after
    that would wait forever on a queue whose reader the TaskGroup has
    already cancelled, so every loop here checks after each Redis call.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def scan_pages(client: Any, match: str, count: int = SCAN_COUNT) -> AsyncIterator[Keys]:
    """Every key matching `match`, a SCAN page at a time (never KEYS)."""
    cursor = 0
    while True:
        cursor, keys = await scan_page(client, cursor, match, count)
        raise_if_cancelled()
        if keys:
            yield keys
        if cursor == 0:
            return


#: deletes keys their node no longer serves (a resharding moved their slot, or is moving it) through
#: the cluster client, which follows MOVED and ASK; how many went
Reroute = Callable[[Keys], Awaitable[int]]
#: hears how many keys one part of a delete removed, as soon as it is known
Tally = Callable[[int], None]

# a reply that says the key's slot is served elsewhere now (or the cluster is between owners); redis-py
# parses MOVED, ASK, ... into these classes and drops the word from the text
_ELSEWHERE = (MovedError, AskError, TryAgainError, ClusterDownError, ReadOnlyError)


async def unlink_keys(client: Any, keys: Sequence[bytes | str], *, entry: bytes | None = None,
                      reroute: Reroute | None = None, tally: Tally | None = None,
                      kept: Tally | None = None, hits: Sequence[bytes] | None = None,
                      waiting: list[bytes] | None = None) -> int:
    """Delete `keys` with UNLINK (memory is freed off Redis's main thread); how many went.

    `entry` (envelope.ENTRY_HEAD): delete only the keys whose value is an entry, judged in the
    same script that deletes them (scripts.UNLINK_ENTRIES); `kept(n)` hears how many were not
    entries (another tool's keys under our names), left as they were. Without it every key goes
    (keys that are ours by name alone: the hit counts).

    `reroute` says `client` talks to one cluster node: no command then names
    keys of two slots (see `_queue_node_unlink`), and a key whose slot moved
    since the node's SCAN returned it goes to `reroute`. `tally(n)` hears of
    each part as it is deleted, so that a caller still counts what went when
    a later part fails (a reroute refused, a node gone).

    On one server, the entries' hit counts go with them: each deleted entry's `{key}:hits`, or, with
    `hits` (the hit keys a walk found itself: `scan_unlink`), those whose entry is gone; the ones
    whose entry is still there are added to `waiting` (see scripts.UNLINK_ENTRIES).
    """
    if not keys and not hits:
        return 0
    went = 0

    def add(n: int) -> None:
        nonlocal went
        went += n
        if tally is not None:
            tally(n)

    pipe = client.pipeline(transaction=False)
    queued = await _queue_unlink(client, pipe, keys, entry, each=reroute is not None, hits=hits)
    await _settle_unlink(client, queued, await pipe.execute(raise_on_error=False), reroute, add, kept, waiting)
    return went


@dataclass(slots=True)
class _Queued:
    """UNLINKs queued on a pipeline: one script call (`script` set) or, where scripts are refused,
    one plain UNLINK (`groups` None) or one per slot; with `entry` and no script, GETRANGEs that
    say which keys are entries (the UNLINKs follow once they are answered)."""

    keys: Sequence[bytes | str]
    entry: bytes | None
    each: bool
    script: bool
    groups: list[Sequence[bytes | str]] | None = None
    #: the hit keys a walk found (UNLINK_ENTRIES's mode 'w'); None: each deleted entry's goes with it
    hits: Sequence[bytes] | None = None


def sha_of(body: str) -> str:
    """A script's SHA1, as EVALSHA names it (the same on every node)."""
    return hashlib.sha1(body.encode("utf-8")).hexdigest()


def forget_script(clients: Sequence[Any], name: str) -> None:
    """Load script `name` again at next use on these clients (a server restarted: NOSCRIPT)."""
    for client in clients:
        _SCRIPTS.get(client, {}).pop(name, None)


async def script_sha(client: Any, name: str, body: str) -> Any:
    """The SHA of script `name` on this node, loaded once; False once the node refused scripts."""
    loaded = _SCRIPTS.setdefault(client, {})
    sha = loaded.get(name)
    if sha is None:  # loaded once per node (the read-write ACL user has both rules)
        try:
            sha = await client.script_load(body)
        except ResponseError as exc:
            if busy(exc):
                raise
            sha = False
        loaded[name] = sha
    return sha


async def _queue_unlink(client: Any, pipe: Any, keys: Sequence[bytes | str], entry: bytes | None,
                        *, each: bool, hits: Sequence[bytes] | None = None) -> _Queued:
    """Queue the UNLINK of `keys` on `pipe` (`each`: all served by the cluster node `client` talks to).

    A multi-key command on a cluster must name keys of one slot, and a node's
    SCAN page spans thousands of slots: one UNLINK per slot is one command per
    key, and redis-py's per-command work then dominates. So one EVALSHA
    deletes them all (every key is local; Redis 6.2, and Redis 7 for a script
    without flags, allow that), UNLINK_EACH for plain keys and UNLINK_ENTRIES
    (which also tells entries from other keys) for entries. Where scripts are
    refused (ACL, a proxy, cross-slot rules): UNLINKs (one per slot on a
    cluster), after GETRANGEs where entries must be told apart.
    """
    if entry is not None:
        sha = await script_sha(client, "unlink_entries", scripts.UNLINK_ENTRIES)
        if sha is not False:
            mode = "1" if each else "0" if hits is None else "w"
            pipe.execute_command("EVALSHA", sha, 0, entry, mode, len(keys), *keys, *(hits or ()))
            return _Queued(keys, entry, each, script=True, hits=hits)
        for key in keys:  # (no scripts: each deleted entry's hit key goes with it; `hits` is not needed)
            pipe.getrange(key, 0, len(entry) - 1)
        return _Queued(keys, entry, each, script=False)
    if not each:
        pipe.unlink(*keys)
        return _Queued(keys, None, each, script=False)
    sha = await script_sha(client, "unlink_each", scripts.UNLINK_EACH)
    if sha is not False:
        pipe.execute_command("EVALSHA", sha, 0, *keys)
        return _Queued(keys, None, each, script=True)
    return _queue_slots(pipe, keys, each)


def _queue_slots(pipe: Any, keys: Sequence[bytes | str], each: bool) -> _Queued:
    """Plain UNLINKs: one for the lot on one server, one per slot on a cluster node."""
    if not each:
        pipe.unlink(*keys)
        return _Queued(keys, None, each, script=False)
    slots: dict[int, list[bytes | str]] = {}
    for key in keys:
        slots.setdefault(key_slot(key.encode() if isinstance(key, str) else key), []).append(key)
    for group in slots.values():
        pipe.execute_command("UNLINK", *group)
    return _Queued(keys, None, each, script=False, groups=list(slots.values()))


async def _settle_unlink(client: Any, queued: _Queued, replies: Sequence[Any], reroute: Reroute | None,
                         tally: Tally, kept: Tally | None, waiting: list[bytes] | None = None) -> None:
    """`tally` how many keys the queued UNLINKs deleted (and `kept` the keys that are not
    entries); keys served elsewhere now rerouted (one at a time: a reroute that fails has counted
    the ones before it); hit keys whose entry is still there added to `waiting`."""
    elsewhere: list[bytes | str] = []
    if queued.script:
        reply = replies[0]
        if isinstance(reply, ResponseError) and not isinstance(reply, _ELSEWHERE) and not refused_in_script(reply):
            if busy(reply):  # for now: the next flush runs the script again
                raise reply
            # NOSCRIPT (a restarted or promoted node): load it again; anything else: scripts are refused
            name = "unlink_entries" if queued.entry is not None else "unlink_each"
            _SCRIPTS.setdefault(client, {})[name] = None if isinstance(reply, NoScriptError) else False
            await unlink_keys(client, queued.keys, entry=queued.entry, reroute=reroute, tally=tally, kept=kept,
                              hits=queued.hits, waiting=waiting)
            return
        if isinstance(reply, Exception):  # refused inside (GETRANGE: an entry unprovable), or between owners
            raise reply
        tally(int(reply[0]))
        counts = 1 if queued.entry is None else 2  # UNLINK_EACH: {deleted, keys...}; UNLINK_ENTRIES: {deleted, kept, keys...}
        if counts == 2 and kept is not None:
            kept(int(reply[1]))
        if queued.hits is not None:  # mode 'w': what came back are hit keys whose entry is still there
            if waiting is not None:
                waiting.extend(reply[counts:])
        else:
            elsewhere = list(reply[counts:])
    elif queued.entry is not None:  # no scripts: the GETRANGEs say which keys are entries, then UNLINK those
        ours, others, elsewhere = _sorted_by_head(queued.keys, replies, each=queued.each)
        if kept is not None and others:
            kept(others)
        if ours:
            pipe = client.pipeline(transaction=False)
            plain = _queue_slots(pipe, ours, queued.each)
            if not queued.each:  # their hit counts go with them, as in the script (not counted)
                pipe.unlink(*(hits_key_of(key) for key in ours))
            replies = await pipe.execute(raise_on_error=False)
            await _settle_unlink(client, plain, replies[: len(plain.groups or [ours])], reroute, tally, kept)
    else:
        failed: Exception | None = None
        went = 0
        for group, reply in zip(queued.groups or [queued.keys], replies):
            if isinstance(reply, _ELSEWHERE) and queued.each:
                elsewhere.extend(group)
            elif isinstance(reply, Exception):
                failed = failed or reply
            else:
                went += int(reply)
        tally(went)  # once for the page, not per slot: a caller may report each tally as progress
        if failed is not None:  # the other groups' deletes are counted first
            raise failed
    if elsewhere and reroute is None:
        raise RuntimeError("unreachable: keys served elsewhere on a single node")
    for key in elsewhere:
        tally(await reroute([key]))  # type: ignore[list-item,misc]


def hits_key_of(key: bytes | str) -> bytes | str:
    """`{IR key}:hits`: an entry's hit counts (keys.KeySpace.hits_key, from a Redis key)."""
    return key + b":hits" if isinstance(key, bytes) else key + ":hits"


def busy(exc: ResponseError) -> bool:
    """BUSY: another client's script runs too long. Says nothing of whether scripts are allowed
    (taking it for a refusal would cost every later flush the slower per-slot UNLINKs)."""
    return str(exc).startswith("BUSY")


def refused_in_script(exc: ResponseError) -> bool:
    """A command (or key) inside the script refused by the ACL (GETRANGE, UNLINK), in any server's
    words: not a refusal of scripts, so no fallback (it would meet the same rule); the caller says
    which rule to add. (EVALSHA itself refused is a refusal of scripts: the caller falls back.)"""
    return is_refusal(exc) and refused_command(exc) not in ("evalsha", "script", "script|load")


#: per node client: script name → its SHA there, or False once the node refused scripts
_SCRIPTS: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()


async def entries_among(client: Any, keys: Sequence[bytes], entry: bytes) -> tuple[list[bytes], int]:
    """Which of `keys` hold entries (one GETRANGE each, pipelined), and how many do not (another
    type, or a string that is not an entry); gone keys are neither. The scripts decide this
    server-side; this is the path where scripts are refused. A refused GETRANGE raises: a key
    that cannot be proved an entry is never counted or deleted as one."""
    if not keys:
        return [], 0
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.getrange(key, 0, len(entry) - 1)
    ours, others, _ = _sorted_by_head(keys, await pipe.execute(raise_on_error=False))
    return ours, others


def _sorted_by_head(keys: Sequence[K], heads: Sequence[Any], *, each: bool = False) -> tuple[list[K], int, list[K]]:
    """From each key's GETRANGE reply: (the keys that hold entries, how many hold something else,
    the keys a cluster node no longer serves, with `each`). Gone keys are none of them; any other
    error raises (a key that cannot be proved an entry is never counted or deleted as one)."""
    ours: list[K] = []
    elsewhere: list[K] = []
    others = 0
    for key, head in zip(keys, heads):
        if isinstance(head, ResponseError) and "WRONGTYPE" in str(head):
            others += 1
        elif each and isinstance(head, _ELSEWHERE):
            elsewhere.append(key)
        elif isinstance(head, Exception):
            raise head
        elif head and is_entry_head(head):
            ours.append(key)
        elif head:
            others += 1
    return ours, others, elsewhere


async def memory_usage(client: Any, keys: Sequence[bytes]) -> list[int | None]:
    """MEMORY USAGE of each key, pipelined in one round trip; None for a key gone meanwhile."""
    if not keys:
        return []
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return list(await pipe.execute(raise_on_error=False))


async def _overlapped(
    client: Any,
    match: str,
    select_keys: Callable[[Keys], Keys],
    work: Callable[[Keys], Awaitable[None]],
    *,
    count: int,
    batch: int,
) -> None:
    """Walk, filter into batches, and `work` on each batch: three tasks joined by small queues.

    The end-of-stream marker is sent only when a task finishes normally; on
    an error the TaskGroup cancels the others (a marker put from a `finally`
    could wait forever on a full queue whose reader is gone).
    """
    pages: asyncio.Queue[Keys | None] = asyncio.Queue(maxsize=_QUEUE_PAGES)
    batches: asyncio.Queue[Keys | None] = asyncio.Queue(maxsize=_QUEUE_PAGES)

    async def walk() -> None:
        async for page in scan_pages(client, match, count):
            await pages.put(page)
        await pages.put(None)

    async def select() -> None:
        pending: Keys = []
        while (page := await pages.get()) is not None:
            pending.extend(select_keys(page))
            while len(pending) >= batch:
                await batches.put(pending[:batch])
                pending = pending[batch:]
        if pending:
            await batches.put(pending)
        await batches.put(None)

    async def consume() -> None:
        while (keys := await batches.get()) is not None:
            await work(keys)
            raise_if_cancelled()

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(walk())
            group.create_task(select())
            group.create_task(consume())
    except BaseExceptionGroup as errors:
        # callers see the error itself (a ConnectionError, say), not a TaskGroup's wrapper
        raise _first_leaf(errors) from None


async def scan_unlink(
    client: Any,
    selection: Selection,
    *,
    count: int | None = None,
    batch: int = BATCH,
    on_progress: Callable[[int], None] | None = None,
    on_kept: Tally | None = None,
) -> int:
    """UNLINK every entry `selection` takes on one server, and their hit keys; returns how many
    entries went.

    Client-side and overlapped (see scripts.py for why not a script): Redis
    SCANs and UNLINKs while Python filters names on another core; whether a
    key holds an entry is decided by the script that deletes the batch
    (UNLINK_ENTRIES), and `on_kept(n)` hears of the keys it left. `count`:
    by default `scan_count(selection)` (1000 for one exact spec, else 300).
    """
    if count is None:
        count = scan_count(selection)
    deleted = 0
    # With TYPE (which proves a hit key ours), one walk finds the entries and their hit keys (MATCH
    # `…_{8 hex}*` takes both); without it, each deleted entry's hit key goes by its name.
    with_hits = await may_send_type(client, selection.head)
    waiting: list[bytes] = []  # hit keys found before their entry was deleted

    def take(page: Keys) -> Keys:
        kept = selection.keep_many(page)
        if with_hits and len(kept) < len(page):  # a hit key (`{entry}:hits`), a lock, another tool's key
            kept.extend(k for k in page if k.endswith(b":hits") and selection.keep(k[:-5]))
        return kept

    async def work(keys: Keys) -> None:
        nonlocal deleted
        entries = [k for k in keys if not k.endswith(b":hits")]  # (an entry's name ends in 8 hex digits)
        hits = [k for k in keys if k.endswith(b":hits")] if len(entries) < len(keys) else []
        deleted += await unlink_keys(client, entries, entry=selection.entry, kept=on_kept,
                                     hits=hits if with_hits else None, waiting=waiting)
        if on_progress is not None:
            on_progress(deleted)

    await _overlapped(client, selection.match + ("*" if with_hits else ""), take, work, count=count, batch=batch)
    # their entries went in a later batch (or are still there: then they stay); a batch at a time, so
    # that another client waits behind one batch at most (about half the hit keys come here)
    for start in range(0, len(waiting), batch):
        await unlink_keys(client, [], entry=selection.entry, hits=waiting[start : start + batch], waiting=[])
    return deleted


#: per client: whether its user may send TYPE (asked once)
_MAY_TYPE: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()


async def may_send_type(client: Any, head: str) -> bool:
    """Whether this client's user may send TYPE, which proves a hit key found by a walk ours (a
    hash) before it goes (scripts.UNLINK_ENTRIES, mode 'w'); asked once per client, on the cache's
    own totals key (inside the key pattern of every ACL the README gives). Down: raises."""
    known = _MAY_TYPE.get(client)
    if known is None:
        try:
            await client.type(f"{head}stats:hits")
            known = True
        except ResponseError as exc:
            if not is_refusal(exc):
                raise
            known = False
        _MAY_TYPE[client] = known
    return known


async def scan_unlink_node(
    client: Any,
    selection: Selection,
    *,
    reroute: Reroute,
    count: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_kept: Tally | None = None,
) -> int:
    """UNLINK every entry `selection` takes on one cluster node; returns how many went.

    One round trip per SCAN page, carrying the UNLINKs of the page before
    (`_queue_unlink`). On one server `scan_unlink` overlaps three tasks
    so that Redis never waits for Python; on a cluster every primary's walk
    runs at once and fills those gaps, and half the round trips cost Python
    a quarter less CPU (benchmarks/bench_cluster.py). `reroute`, `on_kept`:
    see unlink_keys.
    """
    if count is None:
        count = scan_count(selection)
    cursor, deleted = 0, 0
    pending: Keys = []

    def add(n: int) -> None:  # as each part goes: a walk that fails later has counted it
        nonlocal deleted
        deleted += n
        if on_progress is not None:
            on_progress(deleted)

    while True:
        pipe = client.pipeline(transaction=False)
        queued = await _queue_unlink(client, pipe, pending, selection.entry, each=True) if pending else None
        pipe.scan(cursor, match=selection.match, count=count)
        replies = await pipe.execute(raise_on_error=False)
        raise_if_cancelled()
        page = replies[-1]
        if queued is not None:  # counted even when the SCAN beside it failed
            await _settle_unlink(client, queued, replies[:-1], reroute, add, on_kept)
        if isinstance(page, Exception):
            raise page
        cursor, pending = int(page[0]), selection.keep_many(list(page[1]))
        if cursor == 0:
            break
    if pending:
        await unlink_keys(client, pending, entry=selection.entry, reroute=reroute, tally=add, kept=on_kept)
    return deleted


def first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
