"""Dollars per generation, from a small price table per model and the usage the API reported.

USD per million tokens, from Anthropic's pricing page
(https://platform.claude.com/docs/en/about-claude/pricing) as of
PRICES_AS_OF. What a request is billed:

- input tokens at the model's input price, output tokens (thinking included:
  the API counts it in `output_tokens`) at its output price;
- prompt-cache writes at 1.25x the input price for the 5-minute cache and 2x
  for the 1-hour cache; cache reads at the model's read price (0.1x input,
  less for some models);
- a request of a Message Batch (`service_tier` "batch") at half of all that:
  the batch discount applies on top of the caching multipliers.

Priority Tier is billed by commitment, not per token: its cost is unknown
(None). Prices change: IR_PRICE_INPUT_PER_MTOK and IR_PRICE_OUTPUT_PER_MTOK
override the table for every model (reads and writes then follow the usual
multipliers). A model the table does not know, with no override, has no cost:
None, never a guess.

Sums are exact (Decimal) and rounded once, to a billionth of a dollar, so a
batch's cost is half the standard cost to the micro-dollar over any number of
generations.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

PRICES_AS_OF = "2026-11"
PRICES_SOURCE = "https://platform.claude.com/docs/en/about-claude/pricing"

WRITE_5M = Decimal("1.25")  # x input, 5-minute cache writes
WRITE_1H = Decimal("2")  # x input, 1-hour cache writes
BATCH = Decimal("0.5")  # x everything, a request of a Message Batch
_NANO = Decimal("0.000000001")
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Price:
    input: float  # USD per million input tokens
    output: float  # USD per million output tokens
    cache_read: float  # USD per million cache-hit input tokens

    @classmethod
    def of(cls, input: float, output: float, cache_read_ratio: float = 0.1) -> "Price":
        return cls(input, output, float(Decimal(str(input)) * Decimal(str(cache_read_ratio))))

    @property
    def cache_write_5m(self) -> float:
        return float(_d(self.input) * WRITE_5M)

    @property
    def cache_write_1h(self) -> float:
        return float(_d(self.input) * WRITE_1H)


# Model id prefixes, longest first when matched: `claude-sonnet-4-5-20250929` is `claude-sonnet-4-5`.
TABLE: dict[str, Price] = {
    "claude-sonnet-5-5": Price.of(2.0, 10.0, 0.05),
    "claude-sonnet-5": Price.of(2.0, 10.0),
    "claude-sonnet-4": Price.of(3.0, 15.0),  # 4, 4.5, 4.6
    "claude-3-7-sonnet": Price.of(3.0, 15.0),
    "claude-opus-5": Price.of(5.0, 25.0),
    "claude-opus-4-5": Price.of(5.0, 25.0),  # 4.5 to 4.8
    "claude-opus-4-6": Price.of(5.0, 25.0),
    "claude-opus-4-7": Price.of(5.0, 25.0),
    "claude-opus-4-8": Price.of(5.0, 25.0),
    "claude-opus-4-1": Price.of(15.0, 75.0),
    "claude-opus-4": Price.of(15.0, 75.0),
    "claude-haiku-4-5": Price.of(1.0, 5.0),
    "claude-3-5-haiku": Price.of(0.8, 4.0),
    # (not claude-3-haiku: its cache prices, $0.30 writes and $0.03 reads, follow no multiplier of
    # its $0.25 input; an unknown cost beats a wrong one)
}


def price_for(model: str | None, override: Price | None = None) -> Price | None:
    """The price of `model`: `override` (IR_PRICE_*, from settings) if given, else the table, else None."""
    if override is not None:
        return override
    if not model:
        return None
    for prefix in sorted(TABLE, key=len, reverse=True):
        if model == prefix or model.startswith(prefix + "-"):
            return TABLE[prefix]
    return None


class Billed(Protocol):
    """The token counts of one generation (usage.Usage has them): None where not reported."""

    @property
    def input_tokens(self) -> int | None: ...
    @property
    def output_tokens(self) -> int | None: ...
    @property
    def cache_read_input_tokens(self) -> int | None: ...
    @property
    def cache_creation_input_tokens(self) -> int | None: ...
    @property
    def cache_creation_5m_input_tokens(self) -> int | None: ...
    @property
    def cache_creation_1h_input_tokens(self) -> int | None: ...
    @property
    def service_tier(self) -> str | None: ...


def cost_of(price: Price | None, usage: Billed) -> float | None:
    """USD for one generation's tokens; None when the price, the tokens or the tier's price are unknown.

    Cache writes without the 5 min / 1 h split are billed as 5-minute writes (the API's default TTL)."""
    if price is None or usage.input_tokens is None or usage.output_tokens is None:
        return None
    if usage.service_tier not in (None, "standard", "batch"):
        return None  # priority: billed by commitment; mixed: answers of several tiers, not told apart
    write_5m, write_1h = usage.cache_creation_5m_input_tokens, usage.cache_creation_1h_input_tokens
    if write_5m is None and write_1h is None:
        write_5m = usage.cache_creation_input_tokens
    counts = (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens or 0, write_5m or 0,
              write_1h or 0)
    if min(counts) < 0:
        return None  # (Usage reads such counts as unknown; a caller passing raw ones gets no price either)
    dollars = (counts[0] * _d(price.input) + counts[1] * _d(price.output) + counts[2] * _d(price.cache_read)
             + counts[3] * _d(price.input) * WRITE_5M + counts[4] * _d(price.input) * WRITE_1H) / _MILLION
    if usage.service_tier == "batch":
        dollars *= BATCH
    return float(dollars.quantize(_NANO))


def standard_cost_of(price: Price | None, usage: Billed) -> float | None:
    """What the same tokens cost as a standard request: the batch saving is this less cost_of()."""
    return cost_of(price, _Counts(usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens,
                                  usage.cache_creation_input_tokens, usage.cache_creation_5m_input_tokens,
                                  usage.cache_creation_1h_input_tokens, "standard"))


def savings_of(price: Price | None, usage: Billed) -> tuple[float | None, float | None]:
    """What the batch discount and prompt caching saved on one generation: (batch, prompt_cache).

    batch: the standard price of the same tokens less what they cost (None unless a batch request).
    prompt_cache: the cost had every cached token been plain input, less the cost (reads save 0.9x of
    the input price, writes cost 0.25x or 1x more), at the request's tier; None when not priced."""
    cost = cost_of(price, usage)
    if cost is None:
        return None, None
    batch = None
    if usage.service_tier == "batch":
        standard = standard_cost_of(price, usage)
        batch = None if standard is None else float((_d(standard) - _d(cost)).quantize(_NANO))
    cached = sum(n or 0 for n in (usage.cache_read_input_tokens, _writes(usage)))
    plain = cost_of(price, _Counts((usage.input_tokens or 0) + cached, usage.output_tokens, 0, 0, 0, 0,
                                   usage.service_tier))
    prompt_cache = None if plain is None else float((_d(plain) - _d(cost)).quantize(_NANO))
    return batch, prompt_cache


def _writes(usage: Billed) -> int:
    split = (usage.cache_creation_5m_input_tokens, usage.cache_creation_1h_input_tokens)
    return sum(n or 0 for n in split) if split != (None, None) else usage.cache_creation_input_tokens or 0


def estimate_cost(
    price: Price | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_input_tokens: int | None = None,
    cache_creation_input_tokens: int | None = None,
) -> float | None:
    """USD for a standard request's tokens (cache writes as 5-minute writes); see cost_of()."""
    return cost_of(price, _Counts(input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens))


@dataclass(frozen=True, slots=True)
class _Counts:
    input_tokens: int | None
    output_tokens: int | None
    cache_read_input_tokens: int | None
    cache_creation_input_tokens: int | None
    cache_creation_5m_input_tokens: int | None = None
    cache_creation_1h_input_tokens: int | None = None
    service_tier: str | None = None


def _d(value: float) -> Decimal:
    """A price as the decimal it was written as (3.75, not 3.7499999…)."""
    return Decimal(repr(value))
