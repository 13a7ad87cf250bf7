"""Which server answers: Redis, Valkey or another of the family, and what it offers.

A server is known by what it says (HELLO, which every user may send, or INFO
server), never by the name of its binary or process: a `redis-server` on PATH
may be Valkey, and Valkey calls itself `valkey-server`. Valkey's INFO also
says `redis_version:7.2.4` (what it is compatible with), so its own
`valkey_version` and `server_name` come first.

What a newer server offers is read from its name and version, and confirmed
by use (the lock code probes the command once, and falls back where it is
unknown or refused):

- compare-and-delete as one command: `DELIFEQ key value` (Valkey 9.0+),
  `DELEX key IFEQ value` (Redis 8.4+);
- compare-and-set: `SET key value IFEQ value` (Valkey 8.1+, Redis 8.4+).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_VERSION = re.compile(rb"\d+(?:\.\d+){0,3}")
_NAME = re.compile(rb"[a-z][a-z0-9_-]{0,31}")
#: how each server spells its name for people (anything else: its own name, capitalised)
_LABELS = {"redis": "Redis", "valkey": "Valkey", "keydb": "KeyDB", "dragonfly": "Dragonfly"}


@dataclass(frozen=True)
class ServerInfo:
    """`name` ("redis", "valkey", or what another server calls itself) and `version` ("9.1.2")."""

    name: str
    version: str

    @property
    def label(self) -> str:
        """`Valkey 9.1.2`, `Redis 6.2.14`: for people."""
        return f"{_LABELS.get(self.name, self.name.capitalize())} {self.version}".strip()

    @property
    def program(self) -> str:
        """`valkey-server`, `redis-server`: what the binary is called, for log lines."""
        return f"{self.name}-server"

    def at_least(self, *version: int) -> bool:
        mine = tuple(int(part) for part in self.version.split(".") if part.isdigit())
        return mine >= version

    @property
    def compare_and_delete(self) -> str | None:
        """The native compare-and-delete command (`delifeq`, `delex`), or None."""
        if self.name == "valkey" and self.at_least(9, 0):
            return "delifeq"
        if self.name == "redis" and self.at_least(8, 4):
            return "delex"
        return None

    @property
    def compare_and_set(self) -> bool:
        """`SET … IFEQ value` is understood."""
        return (self.name == "valkey" and self.at_least(8, 1)) or (self.name == "redis" and self.at_least(8, 4))

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


def _text(raw: object) -> bytes:
    if isinstance(raw, bytes):
        return raw
    return str(raw).encode() if raw is not None else b""


def _make(name: bytes, version: bytes) -> ServerInfo | None:
    """A ServerInfo from the words a server used, or None when they do not read as a name and a version
    (a proxy's own answer, garbage): nothing is guessed."""
    name = name.strip().lower()
    found = _VERSION.match(version.strip())
    if not _NAME.fullmatch(name) or found is None:
        return None
    return ServerInfo(name.decode(), found.group().decode())


def from_hello(reply: object) -> ServerInfo | None:
    """From a HELLO reply: a map (RESP3) or a flat list of pairs (RESP2)."""
    if isinstance(reply, (list, tuple)):
        reply = dict(zip(reply[::2], reply[1::2]))
    if not isinstance(reply, Mapping):
        return None
    fields = {_text(k).lower(): v for k, v in reply.items()}
    return _make(_text(fields.get(b"server")), _text(fields.get(b"version")))


def from_info(info: bytes | Mapping[str, object]) -> ServerInfo | None:
    """From `INFO server`, as its text or as redis-py's dict: Valkey's own fields before the
    `redis_version` it reports for compatibility."""
    if isinstance(info, bytes):
        fields: dict[bytes, bytes] = {}
        for line in info.splitlines():
            key, sep, value = line.partition(b":")
            if sep:
                fields[key.strip().lower()] = value.strip()
    else:
        fields = {_text(k).lower(): _text(v) for k, v in info.items()}
    if b"valkey_version" in fields:
        return _make(fields.get(b"server_name") or b"valkey", fields[b"valkey_version"])
    if b"server_name" in fields and fields[b"server_name"].strip().lower() != b"redis":
        return _make(fields[b"server_name"], fields.get(b"redis_version", b""))
    return _make(b"redis", fields.get(b"redis_version", b""))
