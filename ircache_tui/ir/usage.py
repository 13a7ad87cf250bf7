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
import re

from pydantic import BaseModel, ConfigDict, ValidationError


class Usage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    #: None: not known (a generator that does not report tokens)
    input_tokens: int | None = None
    output_tokens: int | None = None
    #: prompt caching, when the API reports it
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    #: wall-clock seconds of the generation, retries included
    duration_s: float | None = None
    #: estimated from the price table; None for an unknown model or unknown tokens
    cost_usd: float | None = None

    def as_json(self) -> dict[str, int | float | None]:
        """The four fields `get --json` shows (null when unknown)."""
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "duration_s": self.duration_s, "cost_usd": self.cost_usd}


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
