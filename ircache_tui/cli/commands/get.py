"""`ircache-tui get SPEC.md`: one spec through the three tiers."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from ...cache.errors import IRCacheError
from ...cache.ircache import HitCount, IRCache
from ...ir.usage import UNKNOWN, Usage
from ...fmt import human_count, human_usd, plural, shown_name
from ...ir.generators import GenerationError
from ...settings import Settings
from ...specs import read_spec
from ..common import EXIT_OK, EXIT_USAGE, CommandError, generation_failure_reported, print_json, say
from ..ticker import GenerationTicker

HELP = "get one spec's IR through the cache (Redis → filesystem → generator)"
DESCRIPTION = """Run get_application_ir on one spec file and say which tier answered.
Prints a summary, or the full IR with --ir, or everything as JSON with --json.

examples:
  ircache-tui get examples/specs/petstore-spec.md
  ircache-tui get examples/specs/petstore-spec.md --force --json
  ircache-tui get examples/specs/petstore-spec.md --read-only   # exit 1 if not cached
  ircache-tui get examples/specs/petstore-spec.md --no-wait     # exit 1 if it is in a batch in flight"""


# the IR's summary keys (ApplicationIR.summary) and their nouns, singular and plural
_NOUNS = {"entities": ("entity", "entities"), "endpoints": ("endpoint", "endpoints"),
          "flows": ("flow", "flows"), "rules": ("rule", "rules")}


def summary_text(summary: dict[str, int]) -> str:
    """`3 entities, 5 endpoints, 1 flow, 1 rule`."""
    return ", ".join(
        plural(n, *_NOUNS[k]) if k in _NOUNS else f"{human_count(n)} {k}" for k, n in summary.items()
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC.md", help="the spec file")
    p.add_argument("--force", action="store_true", help="regenerate even if cached (force_refresh)")
    p.add_argument("--json", action="store_true", help="print JSON: cache_key, tier, summary, application_ir")
    p.add_argument("--ir", action="store_true", help="print the full IR JSON after the summary")
    p.add_argument("--no-wait", action="store_true",
                   help="exit 1 instead of waiting when the spec is in a Message Batch in flight (warm --batch)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    spec = read_spec(Path(args.spec), seen=False)  # a path typed here: if absent, "no such file"
    if spec.error:
        raise CommandError(f"{shown_name(args.spec, quote=False)}: {spec.error}", EXIT_USAGE)
    with generation_failure_reported():  # its error line says it
        return asyncio.run(_run(args, settings, spec.text))


async def _run(args: argparse.Namespace, settings: Settings, text: str) -> int:
    async with IRCache(settings=settings, origin="cli get") as cache:
        current = cache.current_generator.label
        try:
            async with GenerationTicker(cache.events):  # a generation counts on a terminal's stderr
                result = await cache.lookup(text, args.spec, force_refresh=args.force, wait_for_batch=not args.no_wait)
        except GenerationError as exc:
            raise CommandError(str(exc)) from None
        try:
            (hits,) = await cache.hit_counts([result.cache_key],  # across processes, this lookup included
                                             [result.entry.generated_at.timestamp()])
        except IRCacheError:
            hits = None  # Redis down: the counts live there
    usage = result.entry.usage or UNKNOWN
    summary = result.ir.summary()
    if args.json:
        print_json({
            "cache_key": result.cache_key,
            "tier": result.tier,
            "spec_name": result.entry.spec_name,
            "generated_at": result.entry.generated_at.isoformat(),
            "generator": result.entry.generator.model_dump(),
            "summary": summary,
            "usage": usage.as_json(),
            "hits": hits.to_json() if hits else None,
            "outdated": result.outdated,
            "renamed_from": result.renamed_from,
            "application_ir": result.ir.model_dump(mode="json"),
        })
        return EXIT_OK
    say(f"{result.cache_key}: from {result.tier}")
    say(f"  {result.ir.name}: {summary_text(summary)}")  # the IR's name, from an LLM: escaped
    say(f"  {usage_text(usage)}" + (f"; {hits_text(hits)}" if hits else ""))
    if result.renamed_from:
        say(f"  same spec text as {result.renamed_from}: re-keyed without generating")
    if result.outdated:
        say(f"  outdated: made by {result.entry.generator.label}, current generator {current} "
            "(get --force or warm DIR --outdated makes it again)")
    if args.ir:
        print(json.dumps(result.ir.model_dump(mode="json"), indent=2, ensure_ascii=True))  # escapes every control
    return EXIT_OK


def usage_text(usage: Usage) -> str:
    """`made with 1,200 in / 3,400 out tokens in 41.5 s, about $0.0396` (unknown parts said so);
    `made in a batch with …` for a Message Batch's (half price)."""
    if usage.input_tokens is None and usage.duration_s is None:
        return "usage unknown (cached before usage was recorded)"
    if usage.input_tokens == 0 and usage.output_tokens == 0 and not usage.cost_usd:
        return f"made without an LLM in {usage.duration_s or 0:.1f} s (no tokens, no cost)"
    tokens = (f"{human_count(usage.input_tokens)} in / {human_count(usage.output_tokens or 0)} out tokens"
              if usage.input_tokens is not None else "unknown tokens")
    seconds = f" in {usage.duration_s:.1f} s" if usage.duration_s is not None else ""
    cost = f", about {human_usd(usage.cost_usd)}" if usage.cost_usd is not None else ", cost unknown (model not in the price table)"
    if usage.mode == "incremental":  # a patch of the spec's previous IR (cache/incremental.py)
        saved = (f", {human_usd(usage.incremental_saved_usd)} less than in full"
                 if usage.incremental_saved_usd is not None and usage.incremental_saved_usd >= 0 else "")
        return f"regenerated from a patch of the previous IR with {tokens}{seconds}{cost}{saved}"
    how = "made in a batch with" if usage.service_tier == "batch" else "made with"
    return f"{how} {tokens}{seconds}{cost}"


def hits_text(hits: HitCount) -> str:
    return f"hit {plural(hits.redis + hits.filesystem, 'time')} ({human_count(hits.redis)} Redis, " \
           f"{human_count(hits.filesystem)} filesystem)"
