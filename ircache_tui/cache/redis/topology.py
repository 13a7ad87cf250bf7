"""A cluster's topology in words: which slots a node is moving, and what changed between two slot
maps (a failover, a resharding)."""

from __future__ import annotations


def own_migrations(reply: object, name: str) -> list[str]:
    """The slots a node is moving, from its own entry of `CLUSTER NODES` (flag `myself`; the
    text's `[5461->-<id>]` and `[5462-<-<id>]`, which redis-py parses into {address: {"flags",
    "migrations": [{"slot", "state"}]}}), as `"5461 host:port migrating"`."""
    nodes = reply.values() if isinstance(reply, dict) else ()
    for node in nodes:
        if "myself" in str(node.get("flags", "")).split(","):
            return [f"{m['slot']} {name} {m['state']}" for m in node.get("migrations", [])]
    return []


def describe_topology_change(before: tuple[str, ...], after: tuple[str, ...]) -> str:
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


def describe_migrations(moving: frozenset[str]) -> str:
    """`slot 5461 migrating from 127.0.0.1:7000` (or `slots 5461, 5462 …`), in words."""
    slots = sorted({int(m.split()[0]) for m in moving})
    sources = sorted({m.split()[1] for m in moving if m.endswith("migrating")})
    shown = ", ".join(map(str, slots[:5])) + (f" and {len(slots) - 5} more" if len(slots) > 5 else "")
    return f"slot{'s' if len(slots) > 1 else ''} {shown} moving" + (f" from {', '.join(sources)}" if sources else "")
