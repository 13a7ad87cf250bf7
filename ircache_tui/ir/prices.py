"""Estimated dollars per generation, from a small price table per model.

USD per million tokens, from Anthropic's pricing page
(https://platform.claude.com/docs/en/about-claude/pricing) as of
PRICES_AS_OF. Prices change: IR_PRICE_INPUT_PER_MTOK and
IR_PRICE_OUTPUT_PER_MTOK override the table for every model (cache reads
and writes then follow the usual 0.1x / 1.25x of the input price). A model
the table does not know, with no override, has no cost: None, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_AS_OF = "2026-11"


@dataclass(frozen=True, slots=True)
class Price:
    input: float  # USD per million input tokens
    output: float  # USD per million output tokens
    cache_read: float  # USD per million cache-hit input tokens
    cache_write: float  # USD per million cache-write (5 min) input tokens

    @classmethod
    def of(cls, input: float, output: float, cache_read_ratio: float = 0.1) -> "Price":
        return cls(input, output, input * cache_read_ratio, input * 1.25)


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
    "claude-3-haiku": Price.of(0.25, 1.25),
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


def estimate_cost(
    price: Price | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_input_tokens: int | None = None,
    cache_creation_input_tokens: int | None = None,
) -> float | None:
    """USD for one generation's tokens, rounded to a millionth; None when the price or tokens are unknown."""
    if price is None or input_tokens is None or output_tokens is None:
        return None
    if min(input_tokens, output_tokens, cache_read_input_tokens or 0, cache_creation_input_tokens or 0) < 0:
        return None  # (Usage reads such counts as unknown; a caller passing raw ones gets no price either)
    total = (
        input_tokens * price.input
        + output_tokens * price.output
        + (cache_read_input_tokens or 0) * price.cache_read
        + (cache_creation_input_tokens or 0) * price.cache_write
    ) / 1_000_000
    return round(total, 6)
