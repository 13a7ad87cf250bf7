"""The stored entry: the ApplicationIR wrapped with where and how it was made.

The same JSON bytes go to Redis and to the filesystem. A stored entry that is
not JSON, does not validate, or carries another schema_version is a
CorruptEntry, which every tier treats as a miss.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import IRCacheError
from .model import ApplicationIR
from .usage import Usage

# Bump when ApplicationIR changes shape: older entries then read as misses
# instead of being served stale.
SCHEMA_VERSION = 1

#: How every stored entry begins: pydantic writes the fields in order, with no spaces, and
#: schema_version first. A key under the prefix whose value does not begin so (another type, or a
#: string that is not our envelope) belongs to another tool: it is never counted, flushed or pruned.
#: The Redis scripts get this as an argument, so Python and Lua judge by the same bytes.
ENTRY_HEAD = b'{"schema_version":'


#: A spec longer than this is not kept in its entry (its next version regenerates in full): an entry
#: holds the IR and the spec, and a spec this long would make the entry mostly spec.
MAX_KEPT_SPEC_CHARS = 256 * 1024

_GENERATED_AT = re.compile(rb'"generated_at"\s*:\s*"([^"]{1,64})"')


def generated_epoch(head: bytes) -> float | None:
    """When the entry whose first bytes are `head` was generated (epoch seconds), or None when they
    do not say (a head cut before it, garbage): which generation of an entry hits were counted on."""
    m = _GENERATED_AT.search(head)
    if m is None:
        return None
    try:
        when = datetime.fromisoformat(m.group(1).decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def is_entry_head(head: bytes) -> bool:
    """Whether a value's first bytes are an entry's (a value cut short inside them is one too:
    a torn write of ours, which a read then treats as corrupt)."""
    if head.startswith(ENTRY_HEAD):
        return True
    return 0 < len(head) < len(ENTRY_HEAD) and ENTRY_HEAD.startswith(head)


class CorruptEntry(IRCacheError):
    """A stored entry that cannot be used; `reason` is one line for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GeneratorInfo(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    name: str
    model: str | None = None


class StoredEntry(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int
    spec_name: str
    spec_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    spec_path: str
    generated_at: datetime
    generator: GeneratorInfo
    #: tokens, seconds and dollars of the generation; None in entries written before it was recorded.
    #: Before application_ir, so the first KiB of an entry (what listings read) holds it.
    usage: Usage | None = None
    application_ir: ApplicationIR
    #: the spec's text the IR was made from, so that the spec's next version can be regenerated from a
    #: diff (cache/incremental.py); None in older entries (and for specs over MAX_KEPT_SPEC_CHARS), which
    #: then regenerate in full. After application_ir: listings read the first KiB and never reach it.
    spec_text: str | None = None

    @classmethod
    def create(
        cls,
        ir: ApplicationIR,
        *,
        spec_name: str,
        spec_hash: str,
        spec_path: str,
        generator: str,
        model: str | None = None,
        generated_at: datetime | None = None,
        usage: Usage | None = None,
        spec_text: str | None = None,
    ) -> "StoredEntry":
        return cls(
            schema_version=SCHEMA_VERSION,
            spec_name=spec_name,
            spec_hash=spec_hash,
            spec_path=spec_path,
            generated_at=generated_at or datetime.now(timezone.utc),
            generator=GeneratorInfo(name=generator, model=model),
            application_ir=ir,
            usage=usage,
            spec_text=spec_text if spec_text is not None and len(spec_text) <= MAX_KEPT_SPEC_CHARS else None,
        )

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _check(entry: StoredEntry, expect_hash8: str | None) -> StoredEntry:
    if entry.schema_version != SCHEMA_VERSION:
        raise CorruptEntry(f"schema_version {entry.schema_version}, expected {SCHEMA_VERSION}")
    if expect_hash8 is not None and not entry.spec_hash.startswith(expect_hash8):
        raise CorruptEntry(f"spec_hash {entry.spec_hash[:8]}… does not match the key's {expect_hash8}")
    return entry


def decode_entry(raw: bytes | str, expect_hash8: str | None = None) -> StoredEntry:
    """Parse and validate stored bytes in one pass (pydantic's JSON parser)."""
    try:
        entry = StoredEntry.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"].startswith("json"):
            raise CorruptEntry(f"not JSON: {first['msg']}") from None
        raise CorruptEntry(_describe(exc, _loads_or_none(raw))) from None
    return _check(entry, expect_hash8)


def _loads_or_none(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def entry_from_dict(data: Any, expect_hash8: str | None = None) -> StoredEntry:
    try:
        entry = StoredEntry.model_validate(data)
    except ValidationError as exc:
        raise CorruptEntry(_describe(exc, data)) from None
    return _check(entry, expect_hash8)


def _describe(exc: ValidationError, data: Any) -> str:
    if not isinstance(data, dict):
        return f"invalid entry: not a JSON object but {type(data).__name__}"
    # A different schema_version explains every other error, so say that first.
    version = data.get("schema_version")
    if version is None:
        return "no schema_version"
    if version != SCHEMA_VERSION:
        return f"schema_version {version!r}, expected {SCHEMA_VERSION}"
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "entry"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"invalid entry: {where}: {first['msg']}{more}"
