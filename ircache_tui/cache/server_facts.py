"""What the server says about itself: version, mode, memory, eviction, clients, notifications,
persistence (`IRCache.server_facts`, the dashboard's `i` panel, `stats`).

Read from `INFO server|memory|stats|clients|persistence|replication` and `CONFIG GET` of
`notify-keyspace-events`, `save` (and `maxmemory`, `maxmemory-policy` where INFO memory lacks
them: Redis before 4). Every value is the server's text: numbers are parsed defensively and words
kept only when they read as the words they should be (a policy, flags, a status), so whatever a
server or proxy puts there, only numbers and short words come out. A command the ACL refuses leaves
its fields None, and `refused` says why, once per command.

Eviction: our entries always carry a TTL, so `volatile-*` policies may evict them as `allkeys-*`
ones do; only `noeviction` never evicts (a full Redis then refuses writes instead).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

from ..fmt import human_bytes, human_count, plural
from .server import ServerInfo

T = TypeVar("T")

_POLICY = re.compile(r"[a-z][a-z-]{0,31}")
_FLAGS = re.compile(r"[A-Za-z$]{0,24}")
_SAVE = re.compile(r"[0-9 ]{0,200}")
_ROLES = {"master": "primary", "slave": "replica", "replica": "replica"}
#: the commands a field comes from, as `refused` names them
INFO, CONFIG = "INFO", "CONFIG GET"


def count(value: object) -> int | None:
    """A non-negative whole number from a server's text (or redis-py's parse of it); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else None


def word(value: object, pattern: re.Pattern[str] = _POLICY) -> str | None:
    """`value` as text when the whole of it fits `pattern`, else None."""
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    text = text.strip()
    return text if pattern.fullmatch(text) else None


@dataclass(frozen=True)
class Persistence:
    """RDB snapshots (`save` schedule, the last one and its status) and AOF; None: not said or refused."""

    rdb_schedule: str | None = None  # "3600 1 300 100" (CONFIG GET save); "" = snapshots off
    rdb_last_save: int | None = None  # epoch seconds
    rdb_changes_since_save: int | None = None
    rdb_last_status: str | None = None  # "ok" / "err"
    aof_enabled: bool | None = None

    def words(self) -> str | None:
        parts = []
        if self.rdb_schedule is not None:
            parts.append(f"RDB save {self.rdb_schedule}" if self.rdb_schedule else "RDB off")
        if self.rdb_last_save and self.rdb_schedule != "":  # (no schedule: the server's start time)
            when = datetime.fromtimestamp(self.rdb_last_save, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            since = (f", {plural(self.rdb_changes_since_save, 'change')} since"
                     if self.rdb_changes_since_save is not None else "")
            parts.append(f"last saved {when}{since}" + (" (FAILED)" if self.rdb_last_status == "err" else ""))
        if self.aof_enabled is not None:
            parts.append("AOF on" if self.aof_enabled else "AOF off")
        return ", ".join(parts) or None

    def as_json(self) -> dict[str, Any]:
        return {"rdb_save": self.rdb_schedule, "rdb_last_save": self.rdb_last_save,
                "rdb_changes_since_save": self.rdb_changes_since_save, "rdb_last_status": self.rdb_last_status,
                "aof": self.aof_enabled}


@dataclass(frozen=True)
class NodeFacts:
    """One server (a standalone Redis, or one primary of a cluster)."""

    address: str
    role: str | None = None  # "primary" / "replica"
    server: ServerInfo | None = None
    used_memory: int | None = None
    peak_memory: int | None = None
    max_memory: int | None = None  # 0: no limit
    policy: str | None = None  # maxmemory-policy
    evicted_keys: int | None = None
    clients: int | None = None
    replicas: int | None = None
    notifications: str | None = None  # notify-keyspace-events ("" = off)
    persistence: Persistence = Persistence()
    #: the commands the server refused (INFO, CONFIG GET): their fields are None
    refused: frozenset[str] = frozenset()

    def as_json(self) -> dict[str, Any]:
        return {"address": self.address, "role": self.role,
                "version": self.server.version if self.server is not None else None, **_facts_json(self)}


def _facts_json(f: NodeFacts | ServerFacts) -> dict[str, Any]:
    return {
        "memory": {"used_bytes": f.used_memory, "peak_bytes": f.peak_memory, "max_bytes": f.max_memory},
        "maxmemory_policy": f.policy, "evicted_keys": f.evicted_keys, "connected_clients": f.clients,
        "notify_keyspace_events": f.notifications, "persistence": f.persistence.as_json(),
    }


def _evicts(policy: str | None) -> bool:
    return policy is not None and policy != "noeviction"


@dataclass(frozen=True)
class ServerFacts:
    """The server as a whole (`mode` "standalone" or "cluster") and each node (`nodes`, one for a
    standalone server, every primary of a cluster). The whole's numbers add up the nodes' (None when
    any node's is unknown); its words are the nodes' when they agree, else None."""

    mode: str
    server: ServerInfo | None
    nodes: tuple[NodeFacts, ...]
    #: why fields are unknown, one line per refused command (the rule to add)
    refused: tuple[str, ...] = ()

    def _sum(self, name: str) -> int | None:
        values = [getattr(n, name) for n in self.nodes]
        return None if not values or any(v is None for v in values) else sum(values)

    def _same(self, get: Callable[[NodeFacts], T]) -> T | None:
        values = {get(n) for n in self.nodes}
        return values.pop() if len(values) == 1 else None

    @property
    def used_memory(self) -> int | None:
        return self._sum("used_memory")

    @property
    def peak_memory(self) -> int | None:
        return self._sum("peak_memory")

    @property
    def max_memory(self) -> int | None:
        """Added up; 0 (no limit) when any node has none."""
        return 0 if any(n.max_memory == 0 for n in self.nodes) else self._sum("max_memory")

    @property
    def evicted_keys(self) -> int | None:
        return self._sum("evicted_keys")

    @property
    def clients(self) -> int | None:
        return self._sum("clients")

    @property
    def policy(self) -> str | None:
        return self._same(lambda n: n.policy)

    @property
    def notifications(self) -> str | None:
        return self._same(lambda n: n.notifications)

    @property
    def persistence(self) -> Persistence:
        """A cluster's: the schedule and AOF where the nodes agree, the oldest of their last saves,
        their changes since added up, `err` when any node's last save failed."""
        if len(self.nodes) == 1:
            return self.nodes[0].persistence
        each = [n.persistence for n in self.nodes]
        saves = [p.rdb_last_save for p in each]
        changes = [p.rdb_changes_since_save for p in each]
        statuses = {p.rdb_last_status for p in each}
        return Persistence(
            rdb_schedule=self._same(lambda n: n.persistence.rdb_schedule),
            rdb_last_save=None if None in saves else min(s for s in saves if s is not None),
            rdb_changes_since_save=None if None in changes else sum(c for c in changes if c is not None),
            rdb_last_status="err" if "err" in statuses else statuses.pop() if len(statuses) == 1 else None,
            aof_enabled=self._same(lambda n: n.persistence.aof_enabled),
        )

    def refused_by(self, command: str) -> bool:
        return any(command in n.refused for n in self.nodes)

    def unknown(self, *commands: str) -> str:
        """How an unknown field reads: `unknown (INFO refused)` when the commands it comes from were
        refused, else `unknown` (the server did not say)."""
        refused = [c.split()[0] for c in commands if self.refused_by(c)]
        return f"unknown ({' and '.join(refused)} refused)" if refused else "unknown"

    @property
    def eviction_risk(self) -> str | None:
        """A sentence when Redis may evict IR entries (every policy but `noeviction`: our entries carry a
        TTL, so volatile-* policies take them too), else None (noeviction, or the policy unknown)."""
        evicting = [n for n in self.nodes if _evicts(n.policy)]
        if not evicting:
            return None
        policies = sorted({n.policy for n in evicting if n.policy})
        where = "" if len(evicting) == len(self.nodes) else f" on {len(evicting)} of {len(self.nodes)} primaries"
        limits = [n.max_memory for n in evicting]
        when = ("once a maxmemory limit is set (none now)" if all(m == 0 for m in limits)
                else "when memory is full")
        why = (" (they carry a TTL, so volatile-* policies evict them too; only noeviction never evicts)"
               if any(p.startswith("volatile-") for p in policies) else "")
        return f"{', '.join(policies)}{where}: Redis may evict IR entries {when}{why}"

    @property
    def label(self) -> str:
        """`Valkey 9.1.2 standalone`, `Redis 7.2.4 cluster, 3 primaries`."""
        name = self.server.label if self.server is not None else "unknown server"
        nodes = f", {plural(len(self.nodes), 'primary', 'primaries')}" if self.mode == "cluster" else ""
        return f"{name} {self.mode}{nodes}"

    def lines(self) -> list[tuple[str, str, bool]]:
        """(label, words, is a warning) for people, the server's label first: `stats` prints them, the
        `i` panel shows them. Every label is at most 10 characters; a warning's is empty."""
        if self.used_memory is None:
            used = self.unknown(INFO)
        else:  # `916.4 KiB of maxmemory 100.0 MiB (peak 933.4 KiB)`, the server's memory as a whole
            limit = ("no maxmemory" if self.max_memory == 0 else "maxmemory unknown" if self.max_memory is None
                     else f"of maxmemory {human_bytes(self.max_memory)}")
            peak = f" (peak {human_bytes(self.peak_memory)})" if self.peak_memory is not None else ""
            used = f"{human_bytes(self.used_memory)}{',' if self.max_memory == 0 else ''} {limit}{peak}"
        policy = self.policy or (self.unknown(INFO, CONFIG) if all(n.policy is None for n in self.nodes)
                                 else "mixed: " + ", ".join(sorted({n.policy or "unknown" for n in self.nodes})))
        flags = self.notifications
        notes = (self.unknown(CONFIG) if flags is None and all(n.notifications is None for n in self.nodes)
                 else "differ between nodes" if flags is None
                 else f"on (notify-keyspace-events {flags})" if flags else "off (notify-keyspace-events '')")
        out = [
            ("Server", self.label, False),
            ("Used", used, False),
            ("Eviction", policy, False),
        ]
        risk = self.eviction_risk
        if risk is not None:
            out.append(("", f"WARNING: {risk}", True))
        out += [
            ("Evicted", human_count(self.evicted_keys) + " keys" if self.evicted_keys is not None
             else self.unknown(INFO), False),
            ("Clients", f"{human_count(self.clients)} connected" if self.clients is not None
             else self.unknown(INFO), False),
            ("Notify", notes, False),
            ("RDB/AOF", self.persistence.words() or self.unknown(INFO, CONFIG), False),
        ]
        if self.mode == "cluster":
            for n in self.nodes:
                out.append(("Node", f"{n.address} {n.role or 'role unknown'}, used {human_bytes(n.used_memory)}, "
                            f"{n.policy or 'policy unknown'}, "
                            f"{plural(n.replicas, 'replica') if n.replicas is not None else 'replicas unknown'}",
                            False))
        out += [("Refused", reason, False) for reason in self.refused]
        return out

    def as_json(self) -> dict[str, Any]:
        """The `server` object of `stats --json` (shape in the README)."""
        return {
            **(self.server.as_json() if self.server is not None else {"name": None, "version": None}),
            "mode": self.mode, **_facts_json(self), "eviction_risk": self.eviction_risk,
            "refused": list(self.refused), "nodes": [n.as_json() for n in self.nodes],
        }


def node_facts(address: str, info: Mapping[str, Mapping[str, Any]], config: Mapping[str, Any],
               refused: frozenset[str], server: ServerInfo | None) -> NodeFacts:
    """One node's facts from its INFO sections (redis-py's dicts, by section name) and CONFIG GET
    replies (by parameter name); what is missing or not a number/word stays None."""
    memory, stats, persistence = info.get("memory", {}), info.get("stats", {}), info.get("persistence", {})
    aof = count(persistence.get("aof_enabled"))
    save = config.get("save")
    return NodeFacts(
        address=address,
        role=_ROLES.get(word(info.get("replication", {}).get("role")) or ""),
        server=server,
        used_memory=count(memory.get("used_memory")),
        peak_memory=count(memory.get("used_memory_peak")),
        max_memory=count(memory.get("maxmemory", config.get("maxmemory"))),
        policy=word(memory.get("maxmemory_policy", config.get("maxmemory-policy"))),
        evicted_keys=count(stats.get("evicted_keys")),
        clients=count(info.get("clients", {}).get("connected_clients")),
        replicas=count(info.get("replication", {}).get("connected_slaves")),
        notifications=word(config.get("notify-keyspace-events"), _FLAGS),
        persistence=Persistence(
            rdb_schedule=" ".join(s.split()) if (s := word(save, _SAVE)) is not None else None,
            rdb_last_save=count(persistence.get("rdb_last_save_time")),
            rdb_changes_since_save=count(persistence.get("rdb_changes_since_last_save")),
            rdb_last_status=word(persistence.get("rdb_last_bgsave_status")),
            aof_enabled=None if aof is None else aof == 1,
        ),
        refused=refused,
    )
