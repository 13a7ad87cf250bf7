"""What a generation cost: tokens, seconds and (estimated) dollars, stored on every entry.

Entries written before usage was recorded carry none; they read as "usage
unknown" (`StoredEntry.usage is None`), never as misses: an upgrade must not
send a regeneration bill.

Dollars are an estimate from a small price table (prices.py), and only for
a model in it (or with IR_PRICE_* set): an unknown model's cost is None,
never a guess shown as fact.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import (BaseModel, ConfigDict, SerializerFunctionWrapHandler, ValidationError, field_validator,
                      model_serializer)

#: Past these a figure is garbage, not a generation: an ApplicationIR is a few thousand tokens, a
#: generation minutes, a bill dollars. Such a figure (or a negative, fractional, infinite or NaN
#: one, or one of another type) is unknown, never priced, summed or shown.
MAX_TOKENS = 10_000_000
MAX_SECONDS = 86_400.0
MAX_USD = 10_000.0
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                "cache_creation_5m_input_tokens", "cache_creation_1h_input_tokens", "thinking_tokens")
#: "mixed": the answers of one generation came from different tiers (its cost is then unknown)
TIERS = ("standard", "priority", "batch", "mixed")
MODES = ("full", "incremental")


def sane_tokens(value: object) -> int | None:
    """A token count as the API or a stored entry gives it, or None when it is not a plausible one."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        return None
    return value


def sane_amount(value: object, limit: float) -> float | None:
    """Seconds or dollars, or None when not a finite number in [0, limit]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and 0.0 <= number <= limit else None


class Usage(BaseModel):
    """What a generation cost. Any field that is not plausible (see MAX_TOKENS) reads as unknown
    (None) rather than failing the entry: a garbage figure from an API answer or a planted entry
    must neither be priced nor break a sum, and an entry must not be lost over its bookkeeping."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    #: None: not known (a generator that does not report tokens)
    input_tokens: int | None = None
    output_tokens: int | None = None
    #: prompt caching, when the API reports it: reads, writes, and the writes by cache TTL
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_creation_5m_input_tokens: int | None = None
    cache_creation_1h_input_tokens: int | None = None
    #: output tokens spent on reasoning (already counted in output_tokens), when reported
    thinking_tokens: int | None = None
    #: "standard", "priority" or "batch" (a Message Batch: half price), as the API said; "mixed" when
    #: a generation's answers came from different tiers
    service_tier: str | None = None
    #: how it was made: "full" (from the spec alone) or "incremental" (a JSON Patch of the spec's previous
    #: IR, from the spec's diff); None for entries written before it was recorded
    mode: str | None = None
    #: wall-clock seconds of the generation, retries included
    duration_s: float | None = None
    #: estimated from the price table; None for an unknown model or unknown tokens
    cost_usd: float | None = None
    #: what the batch discount saved (the standard price less cost_usd; batch requests only), and what
    #: prompt caching saved (the same tokens as plain input, less cost_usd: reads save, writes cost a
    #: premium, so it may be negative); None when not known
    batch_saved_usd: float | None = None
    prompt_cache_saved_usd: float | None = None
    #: what regenerating from a patch saved (incremental entries only): the estimated cost of a full
    #: generation (cache/incremental.py says how it is estimated) less cost_usd; None when not known
    incremental_saved_usd: float | None = None

    @field_validator(*TOKEN_FIELDS, mode="before")
    @classmethod
    def _tokens(cls, value: Any) -> int | None:
        return sane_tokens(value)

    @field_validator("service_tier", mode="before")
    @classmethod
    def _tier(cls, value: Any) -> str | None:
        return value if value in TIERS else None

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> str | None:
        return value if value in MODES else None

    @field_validator("duration_s", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> float | None:
        return sane_amount(value, MAX_SECONDS)

    @field_validator("cost_usd", "batch_saved_usd", mode="before")
    @classmethod
    def _dollars(cls, value: Any) -> float | None:
        return sane_amount(value, MAX_USD)

    @field_validator("prompt_cache_saved_usd", "incremental_saved_usd", mode="before")
    @classmethod
    def _signed_dollars(cls, value: Any) -> float | None:
        # a write premium with no read to repay it, a patch dearer than the full generation estimated:
        # (small) losses, the only figures that may be negative
        amount = sane_amount(abs(value), MAX_USD) if isinstance(value, (int, float)) else None
        return None if amount is None else float(value)

    @model_serializer(mode="wrap")
    def _stored(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # what is unknown is left out: an entry's usage must fit in the first KiB that listings read
        return {name: value for name, value in handler(self).items() if value is not None}

    def as_json(self) -> dict[str, int | float | str | None]:
        """What `get --json` shows: every field, null when unknown or not reported."""
        return {name: getattr(self, name) for name in type(self).model_fields}


#: what `get --json` shows for an entry written before usage was recorded
UNKNOWN = Usage()

_IN_HEAD = re.compile(rb'"usage"\s*:\s*(\{[^{}]*\})')


def usage_from_head(head: bytes) -> Usage | None:
    """The usage of an entry from its first bytes (it is written before the IR), or None."""
    m = _IN_HEAD.search(head)
    if m is None:
        return None
    try:
        return Usage.model_validate(json.loads(m.group(1)))
    except (ValueError, ValidationError):
        return None
