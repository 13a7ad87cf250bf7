"""Reading the server's facts (server_facts.py) from every node a walk covers: one standalone
server, or each primary of a cluster (the `Nodes` strategy says which, and names the mode).

A command the ACL refuses (or a server that renamed it away) leaves its fields None and its reason
said once in `ServerFacts.refused`; an unreachable Redis raises RedisUnavailable, as every call does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from ..errors import RedisCommandError
from ..server import from_info
from ..server_facts import CONFIG, INFO, NodeFacts, ServerFacts, node_facts
from .clients import node_address
from .door import Door

#: INFO sections asked one at a time (several in one INFO is Redis 7+)
SECTIONS = ("server", "memory", "stats", "clients", "persistence", "replication")
#: CONFIG GET parameters, and those asked only where INFO memory lacks them (Redis before 4)
CONFIGS = ("notify-keyspace-events", "save")
MEMORY_CONFIGS = {"maxmemory": "maxmemory", "maxmemory_policy": "maxmemory-policy"}


async def read_facts(door: Door) -> ServerFacts:
    clients = await door.run(lambda: door.nodes.walk_nodes())
    server = await door.server_info()
    reasons: dict[str, str] = {}
    nodes = await asyncio.gather(*(_node(door, client, reasons) for client in clients))
    return ServerFacts(door.nodes.mode, server, tuple(nodes), tuple(reasons.values()))


async def _node(door: Door, client: aioredis.Redis, reasons: dict[str, str]) -> NodeFacts:
    refused: set[str] = set()

    async def ask(command: str, sent: str, call: Any) -> Any:
        if command in refused:
            return None  # refused once on this node: the others of its kind would be too
        try:
            return await door.run(call, sent=sent)
        except RedisCommandError as exc:  # an ACL refusal, a renamed command; RedisUnavailable goes up
            refused.add(command)
            reasons.setdefault(command, str(exc).splitlines()[0])
            return None

    info: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        reply = await ask(INFO, "info", lambda s=section: client.info(s))
        if isinstance(reply, dict):
            info[section] = reply
    wanted = [*CONFIGS, *(name for field, name in MEMORY_CONFIGS.items() if field not in info.get("memory", {}))]
    config: dict[str, Any] = {}
    for name in wanted:
        reply = await ask(CONFIG, "config|get", lambda n=name: client.config_get(n))
        if isinstance(reply, dict) and name in reply:
            config[name] = reply[name]
    server = from_info(info["server"]) if "server" in info else None
    return node_facts(node_address(client), info, config, frozenset(refused), server)
