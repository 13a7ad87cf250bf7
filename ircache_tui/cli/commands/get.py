"""`ircache-tui get SPEC.md`: one spec through the three tiers."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from ...cache.ircache import IRCache
from ...fmt import human_count, plural, shown_name
from ...ir.generators import GenerationError
from ...settings import Settings
from ...specs import read_spec
from ..common import EXIT_OK, EXIT_USAGE, CommandError, generation_failure_reported, print_json

HELP = "get one spec's IR through the cache (Redis → filesystem → generator)"
DESCRIPTION = """Run get_application_ir on one spec file and say which tier answered.
Prints a summary, or the full IR with --ir, or everything as JSON with --json.

examples:
  ircache-tui get examples/specs/petstore-spec.md
  ircache-tui get examples/specs/petstore-spec.md --force --json
  ircache-tui get examples/specs/petstore-spec.md --read-only   # exit 1 if not cached"""


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


def run(args: argparse.Namespace, settings: Settings) -> int:
    spec = read_spec(Path(args.spec), seen=False)  # a path typed here: if absent, "no such file"
    if spec.error:
        raise CommandError(f"{shown_name(args.spec, quote=False)}: {spec.error}", EXIT_USAGE)
    with generation_failure_reported():  # its error line says it
        return asyncio.run(_run(args, settings, spec.text))


async def _run(args: argparse.Namespace, settings: Settings, text: str) -> int:
    async with IRCache(settings=settings) as cache:
        try:
            result = await cache.lookup(text, args.spec, force_refresh=args.force)
        except GenerationError as exc:
            raise CommandError(str(exc)) from None
    summary = result.ir.summary()
    if args.json:
        print_json({
            "cache_key": result.cache_key,
            "tier": result.tier,
            "spec_name": result.entry.spec_name,
            "generated_at": result.entry.generated_at.isoformat(),
            "generator": result.entry.generator.model_dump(),
            "summary": summary,
            "application_ir": result.ir.model_dump(mode="json"),
        })
        return EXIT_OK
    print(f"{result.cache_key}: from {result.tier}")
    print(f"  {result.ir.name}: {summary_text(summary)}")
    if args.ir:
        print(json.dumps(result.ir.model_dump(mode="json"), indent=2))
    return EXIT_OK
