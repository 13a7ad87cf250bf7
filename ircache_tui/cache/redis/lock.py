"""The cross-process generation lock: one key per entry (`{prefix}:{key}:lock`), taken with SET NX PX.
The same machinery claims an entry for a Message Batch in flight (`{prefix}:{key}:batch`, batch_claims.py):
a second Locks over the same door, with its own key names and the first one's probe.

Released and extended by compare-and-delete / compare-and-extend: with the server's own commands
where it has them (DELIFEQ on Valkey 9, DELEX IFEQ on Redis 8.4, and SET IFEQ: no script rights
needed), else with a script where the ACL allows EVALSHA, else with WATCH/MULTI/EXEC, else (none
allowed) no cross-process lock at all, said once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from redis.exceptions import WatchError

from ... import redact
from ..errors import RedisCommandError, RedisPermissionError
from ..keys import KeyLike, KeySpace
from . import scripts
from .clients import execute
from .door import Door

log = logging.getLogger("ircache")

LockMode = Literal["native", "script", "watch", "none"]
_SCRIPTS = {"release": scripts.RELEASE_LOCK, "extend": scripts.EXTEND_LOCK}


@dataclass
class LockProbe:
    """How locks are released and extended here, found by the first one (shared by every Locks on a door)."""

    mode: LockMode | None = None  # native, scripts, WATCH/MULTI, or no lock
    native: str | None = None  # the server's compare-and-delete command (mode native), if any


class Locks:
    def __init__(self, door: Door, keys: KeySpace, *, key_of: Callable[[KeyLike], str] | None = None,
                 probe: LockProbe | None = None, noun: str = "generation lock") -> None:
        """`key_of`: the Redis key of an entry's lock (KeySpace.lock_key unless said); `probe`: another
        Locks' (one probe, said once, for every kind of lock over this door); `noun`: what a refusal
        names ("generation lock", "batch claim")."""
        self._door = door
        self._keys = keys
        self._key_of = key_of or keys.lock_key
        self._noun = noun
        self.probe = probe or LockProbe()
        self._said_lock_refusal: set[str] = set()
        self._scripts: dict[str, tuple[Any, Any]] = {}  # name → (client, the script registered on it)

    @property
    def known_mode(self) -> LockMode | None:
        """How locks are released here, once the first lock found out (None before)."""
        return self.probe.mode

    def _script(self, name: str) -> Any:
        """The lock script `name`, registered on the current client: the script names its key
        (KEYS[1]), so a cluster client sends it to its slot's node."""
        client = self._door.nodes.client
        bound = self._scripts.get(name)
        if bound is None or bound[0] is not client:
            bound = self._scripts[name] = (client, client.register_script(_SCRIPTS[name]))
        return bound[1]

    async def acquire(self, cache_key: KeyLike, token: str, ttl_ms: int) -> bool:
        """True when we hold the lock now; False when another process does.

        Raises RedisUnavailable / RedisCommandError when there is no usable lock.
        """
        self._door.writable("SET NX (lock)")
        lkey = self._key_of(cache_key)
        if await self.mode(lkey) == "none":
            native = f"+{self.probe.native}, or " if self.probe.native else ""
            raise RedisPermissionError(
                "evalsha", f"or {native}+watch +multi +exec: without any of them there is no cross-process lock")
        return bool(await self._door.run(lambda: self._door.nodes.client.set(lkey, token, nx=True, px=ttl_ms)))

    async def extend(self, cache_key: KeyLike, token: str, ttl_ms: int) -> bool:
        self._door.writable("SET XX PX (lock)")
        lkey = self._key_of(cache_key)
        with self._lock_refusal("extend"):
            mode = await self.mode(lkey)
            if mode == "native":
                with self._native_gone():
                    return bool(await self._door.run(
                        lambda: self._door.nodes.client.execute_command("SET", lkey, token, "IFEQ", token, "PX", ttl_ms),
                        sent="set"))
                return await self.extend(cache_key, token, ttl_ms)
            if mode == "script":
                return bool(await self._door.run(lambda: self._script("extend")(keys=[lkey], args=[token, ttl_ms])))
            return await self._door.run(
                lambda: self._compare_and(lkey, token, lambda pipe: pipe.set(lkey, token, xx=True, px=ttl_ms))
            )

    async def release(self, cache_key: KeyLike, token: str) -> bool:
        self._door.writable("UNLINK (lock)")
        lkey = self._key_of(cache_key)
        with self._lock_refusal("release"):
            mode = await self.mode(lkey)
            if mode == "native":
                with self._native_gone():
                    return bool(await self._door.run(lambda: self._native_release(lkey, token), sent=self.probe.native))
                return await self.release(cache_key, token)
            if mode == "script":
                return bool(await self._door.run(lambda: self._script("release")(keys=[lkey], args=[token])))
            return await self._door.run(lambda: self._compare_and(lkey, token, lambda pipe: pipe.unlink(lkey)))

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
            log.info("Redis no longer knows %s: generation locks are probed again", (self.probe.native or "").upper())
            self.probe.mode, self.probe.native = None, None
            self._door.forget_server()

    def _native_release(self, lkey: str, token: str) -> Awaitable[Any]:
        client = self._door.nodes.client  # a plain client or a RedisCluster: both take any command
        if self.probe.native == "delex":
            return execute(client, "DELEX", lkey, "IFEQ", token)
        return execute(client, "DELIFEQ", lkey, token)

    @contextlib.contextmanager
    def _lock_refusal(self, what: str) -> Iterator[None]:
        """A lock the ACL lets us take but not release or extend: say so once, loudly."""
        try:
            yield
        except RedisPermissionError as exc:
            if what not in self._said_lock_refusal:
                self._said_lock_refusal.add(what)
                log.warning("Cannot %s a %s: %s (until then a %s lasts its full TTL)", what, self._noun, exc,
                            self._noun.split()[-1])
            raise

    async def held(self, cache_key: KeyLike) -> bool:
        lkey = self._key_of(cache_key)
        return bool(await self._door.run(lambda: self._door.nodes.client.exists(lkey)))

    async def token(self, cache_key: KeyLike) -> str | None:
        """The lock's token as it stands (None: not held); any text, since anyone may write the key."""
        lkey = self._key_of(cache_key)
        token = await self._door.run(lambda: self._door.nodes.client.get(lkey))
        if not token:
            return None
        return token.decode("utf-8", "replace") if isinstance(token, bytes) else str(token)

    async def holder(self, cache_key: KeyLike) -> str | None:
        """Who holds the lock, from its token (`pid N on HOST <uuid>`), or None."""
        text = await self.token(cache_key)
        if text is None:
            return None
        who = text.rsplit(" ", 1)[0] if " " in text else ""
        return redact.scrub(who) or None

    async def mode(self, lkey: str) -> LockMode:
        """How locks are released here; probed once with a token nobody holds (changes nothing)."""
        if self.probe.mode is not None:
            return self.probe.mode
        probe = "ircache-probe"
        server = await self._door.server_info()
        self.probe.native = server.compare_and_delete if server is not None else None
        if server is not None and self.probe.native is not None:
            try:
                await self._door.run(lambda: self._native_release(lkey, probe), sent=self.probe.native)
                self.probe.mode = "native"
                log.debug("Generation locks are released with %s and extended with SET IFEQ (%s)",
                          self.probe.native.upper(), server.label)
                return self.probe.mode
            except RedisPermissionError as refused:
                log.info("Redis refuses %s for this user (%s): generation locks are released with a script "
                         "or a transaction instead", self.probe.native.upper(), refused.rule)
            except RedisCommandError as exc:  # not there after all (a proxy, a build without it)
                log.debug("%s is not usable here (%s)", self.probe.native.upper(), exc)
                self.probe.native = None
        try:
            await self._door.run(lambda: self._script("release")(keys=[lkey], args=[probe]))
            self.probe.mode = "script"
        except RedisPermissionError as scripted:
            try:
                await self._door.run(lambda: self._compare_and(lkey, probe, lambda pipe: pipe.unlink(lkey)))
                self.probe.mode = "watch"  # as correct as the script, one more round trip
                log.info("Redis refuses scripts for this user (%s): generation locks are released "
                         "and extended with WATCH/MULTI/EXEC", scripted.rule)
            except RedisPermissionError as watched:
                self.probe.mode = "none"
                native = f"+{self.probe.native}, or " if self.probe.native else ""
                log.warning("Redis refuses both %s and %s for this user: no cross-process generation lock, "
                            "so two processes may generate the same spec at once (add %s+evalsha +script|load, "
                            "or +watch +multi +exec)", scripted.rule, watched.rule, native)
        return self.probe.mode

    async def _compare_and(self, lkey: str, token: str, then: Callable[[Any], object]) -> bool:
        """If `lkey` holds `token`, run `then` on it in a transaction that fails if the key changed
        (on a cluster, on the primary that serves `lkey`: one key, one slot)."""
        client = await self._door.nodes.client_for_key(lkey)
        async with client.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(lkey)
                held = await pipe.get(lkey)
                pipe.multi()  # type: ignore[no-untyped-call]  # redis-py (8.2) leaves Pipeline.multi unannotated
                if held == token.encode():
                    then(pipe)
                result = await pipe.execute()  # an empty MULTI/EXEC ends the WATCH without UNWATCH
            except WatchError:
                return False  # changed under us: not ours any more
        return bool(result and result[0])
