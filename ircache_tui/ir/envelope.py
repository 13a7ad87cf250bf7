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
    """What made an entry: the generator's name, its model, and its fingerprint (a short digest of
    what shapes its answers: name, model, prompt and schema; None in entries written before it was
    recorded, and for a generator that has none)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    name: str
    model: str | None = None
    #: written only when known, so an entry of a generator without one is spelled as before
    fingerprint: str | None = Field(default=None, exclude_if=lambda value: value is None)

    @property
    def label(self) -> str:
        """`anthropic (claude-sonnet-5-5)`, or `offline`."""
        return f"{self.name} ({self.model})" if self.model else self.name

    def outdated_for(self, current: "GeneratorInfo") -> bool:
        """Whether an entry made by this generator is outdated for the `current` one.

        Both fingerprints known: they differ. Either unknown (an entry written before fingerprints,
        a generator without one): the name or the model differ. So an upgrade alone outdates
        nothing, while a switch of generator or model outdates everything the other one made.
        """
        if self.fingerprint is not None and current.fingerprint is not None:
            return self.fingerprint != current.fingerprint
        return (self.name, self.model) != (current.name, current.model)


#: Where an entry's generator object begins (it is written before the IR, so it sits in the first
#: KiB that listings and the stats walk read): the object runs from the `{` after this to the first
#: `}`. The stats script (redis/scripts.py) cuts it out by the same rule.
GENERATOR_MARK = b'"generator":'


def generator_object(head: bytes) -> bytes:
    """The bytes of the generator object in an entry's first bytes, from its `{` to the first `}`
    (b"" when they hold none): what the stats script cuts out, by the same rule."""
    at = head.find(GENERATOR_MARK + b"{")
    if at < 0:
        return b""
    end = head.find(b"}", at)
    return head[at + len(GENERATOR_MARK): end + 1] if end >= 0 else b""


def generator_from_object(text: bytes) -> GeneratorInfo | None:
    """A generator object's bytes (generator_object) as GeneratorInfo, or None when they are not one
    (cut short, garbage, a `}` inside a name)."""
    if not text:
        return None
    try:
        return GeneratorInfo.model_validate_json(text)
    except ValidationError:
        return None


def generator_in_head(head: bytes) -> GeneratorInfo | None:
    """The generator of the entry whose first bytes are `head`, or None when they do not say."""
    return generator_from_object(generator_object(head))


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
    #: the cache key of the entry this one was copied from, when a spec was renamed and its text
    #: was already cached under the old name (no generation: usage says zero tokens, no cost);
    #: written only when set, so every other entry is spelled as before
    renamed_from: str | None = Field(default=None, exclude_if=lambda value: value is None)
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
        fingerprint: str | None = None,
        renamed_from: str | None = None,
        spec_text: str | None = None,
    ) -> "StoredEntry":
        return cls(
            schema_version=SCHEMA_VERSION,
            spec_name=spec_name,
            spec_hash=spec_hash,
            spec_path=spec_path,
            generated_at=generated_at or datetime.now(timezone.utc),
            generator=GeneratorInfo(name=generator, model=model, fingerprint=fingerprint),
            application_ir=ir,
            usage=usage,
            renamed_from=renamed_from,
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
