"""`ircache-tui warm [DIR ...]`: fill Redis from disk, and make sure every spec is cached."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...cache.errors import IRCacheError
from ...cache.errors import BatchUnsupported
from ...cache.ircache import BatchProgress, BatchWarmResult, IRCache, WarmResult
from ...fmt import describe_os_error, human_count, plural, shown_name
from ...settings import Settings
from ...specs import discover_specs
from ...specs.discovery import SpecFile
from ...specs.warming import SpecsTally, cache_specs
from ..common import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, eprint, generation_failure_reported, print_json,
                      progress, redis_down_reported, say)
from ._shared import require_redis, spec_dirs

_SHOWN_FAILURES = 20  # a full Redis refuses every entry: the first lines say why, --json has them all

HELP = "warm Redis from the filesystem; with spec dirs, cache every spec's IR"
DESCRIPTION = """Copy every filesystem entry that Redis lacks into Redis. With spec
directories, also make sure every spec's current IR is cached, generating
where it is missing (at most --jobs at once).

With --batch, every spec that needs generating goes into one Message
Batch (half the price; results within minutes to hours), polled every
IR_BATCH_POLL_INTERVAL seconds (default 10, doubling to IR_BATCH_POLL_MAX,
default 60). Stopped at any point, a rerun resumes that batch and never
submits it twice. The offline generator has no batch API: --batch then says
so and warms directly.

With --outdated, regenerate exactly the specs whose cached entry is outdated (made by
another generator, model or prompt than the current one) and leave the others alone.

examples:
  ircache-tui warm
  ircache-tui warm examples/specs --json
  ircache-tui warm examples/specs --batch
  ircache-tui warm examples/specs --outdated"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="*", metavar="DIR", help="spec directories (recursive)")
    p.add_argument("--pattern", default="*.md", help="spec file glob (default *.md)")
    p.add_argument("--jobs", type=int, default=4, help="generations at once (default 4)")
    p.add_argument("--batch", action="store_true",
                   help="generate what is missing in one Message Batch (half price, slower; resumable)")
    p.add_argument("--outdated", action="store_true",
                   help="regenerate only the specs under DIR whose entry another generator or prompt made")
    p.add_argument("--json", action="store_true", help="print JSON counts")


def run(args: argparse.Namespace, settings: Settings) -> int:
    dirs = spec_dirs(args.dirs)
    if args.outdated and not dirs:
        raise CommandError("warm --outdated needs spec directories (DIR ...): the specs it may regenerate",
                           EXIT_USAGE)
    with generation_failure_reported():  # each failure is one of its "failed:" lines
        return asyncio.run(_run(args, settings, dirs))


@dataclass
class _Outcome:
    """What the command did so far: printed on every exit (0 or 1), whatever stopped it."""

    warm: WarmResult = field(default_factory=WarmResult)
    specs: int = 0
    tiers: dict[str, int] = field(default_factory=lambda: {"redis": 0, "filesystem": 0, "generator": 0})
    spec_failures: list[str] = field(default_factory=list)
    error: str | None = None
    batch: BatchWarmResult | None = None
    #: with --outdated: how many specs had an outdated entry (None: not asked)
    outdated: int | None = None

    def as_json(self) -> dict[str, Any]:
        # `failed` counts every line of `failures` (entries, then specs); `error`: why it stopped
        failures = [*self.warm.failures, *self.spec_failures]
        return {**self.warm.to_json(), "failed": len(failures), "specs": self.specs, "specs_by_tier": self.tiers,
                "failures": failures, "error": self.error, "outdated": self.outdated,
                "batch": self.batch.to_json() if self.batch is not None else None}


async def _run(args: argparse.Namespace, settings: Settings, dirs: list[Path]) -> int:
    outcome = _Outcome()
    try:
        await _warm(args, settings, dirs, outcome)
    except (CommandError, IRCacheError, OSError) as exc:  # main prints it as the one line
        outcome.error = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        if args.json:
            print_json(outcome.as_json())
        raise
    _print(args, dirs, outcome)
    return EXIT_FAILED if outcome.error or outcome.warm.failures or outcome.spec_failures else EXIT_OK


async def _warm(args: argparse.Namespace, settings: Settings, dirs: list[Path], outcome: _Outcome) -> None:
    async with IRCache(settings=settings, origin="cli warm") as cache:
        await require_redis(cache)
        with redis_down_reported():  # a Redis gone midway is the walk's own ERROR line
            outcome.warm = await cache.warm_redis()
        specs = discover_specs(dirs, args.pattern, ignored=[settings.cache_dir]) if dirs else []
        outcome.specs = len(specs)
        outcome.spec_failures += [f"{shown_name(bad.path, quote=False)}: {bad.error}" for bad in specs if not bad.ok]
        if outcome.warm.error is not None:  # Redis is down or refuses writes: nothing more to fill
            outcome.error = outcome.warm.error
            return
        # one line in the audit trail for the specs it filled (what it generated costs money)
        todo = [s for s in specs if s.ok]
        if args.outdated:  # the library says which; only those are made again
            todo = [todo[i] for i in await cache.outdated_among([(s.text, str(s.path)) for s in todo])]
            outcome.outdated = len(todo)
        with cache.audit.recording("warm", spec=None, tiers=("redis", "filesystem")) as touched:
            try:
                if not (args.batch and await _batch_specs(cache, todo, outcome, force=args.outdated)):
                    await _cache_specs(cache, todo, args.jobs, outcome, force=args.outdated)
            finally:
                touched.counts.update(specs=len(specs), **{f"from_{t}": n for t, n in outcome.tiers.items()})


async def _cache_specs(cache: IRCache, specs: list[SpecFile], jobs: int, outcome: _Outcome, *,
                       force: bool = False) -> None:
    """specs/warming.py's lookups, counted in the outcome (read after an error too), with a bar."""
    with progress("caching specs", len(specs)) as update:
        await cache_specs(cache, specs, SpecsTally(outcome.tiers, outcome.spec_failures), jobs=jobs, force=force,
                          on_progress=update)


async def _batch_specs(cache: IRCache, specs: list[SpecFile], outcome: _Outcome, *, force: bool = False) -> bool:
    """Generate what is missing (`force`: all of them, cached or not) in Message Batches; False when the
    generator cannot (said in one line)."""
    with contextlib.ExitStack() as bars:
        shown: list[str] = []
        update: list[Callable[[int], None]] = []

        def on_progress(p: BatchProgress) -> None:
            if not shown or shown[-1] != p.batch_id:  # one bar per batch
                bars.close()
                shown.append(p.batch_id)
                update[:] = [bars.enter_context(progress(f"batch {p.batch_id}", p.total))]
            update[0](p.done)

        try:
            result = await cache.warm_batch([(s.text, str(s.path)) for s in specs], force=force,
                                            on_progress=on_progress)
        except BatchUnsupported as exc:
            eprint(f"warm --batch: {exc}; warming directly")
            return False
    outcome.batch = result
    outcome.tiers.update(redis=result.in_redis, filesystem=result.from_filesystem, generator=result.generated)
    outcome.spec_failures += list(result.failures)
    return True


def _print(args: argparse.Namespace, dirs: list[Path], outcome: _Outcome) -> None:
    if args.json:
        print_json(outcome.as_json())
        return
    warmed, tiers = outcome.warm, outcome.tiers
    print(f"warmed {plural(warmed.warmed, 'entry', 'entries')} from the filesystem "
          f"({human_count(warmed.already_in_redis)} already in Redis"
          + (f", {human_count(warmed.failed)} failed" if warmed.failed else "")
          + (f", {human_count(warmed.left)} not tried" if warmed.left else "") + ")")
    if dirs and outcome.outdated is not None:
        print(f"specs: {human_count(outcome.specs)} ({human_count(outcome.outdated)} outdated, "
              f"{human_count(tiers['generator'])} regenerated)")
    elif dirs:
        print(f"specs: {human_count(outcome.specs)} ({human_count(tiers['redis'])} in Redis, "
              f"{human_count(tiers['filesystem'])} warmed from disk, {human_count(tiers['generator'])} generated)")
    if outcome.batch is not None:
        b = outcome.batch
        say(f"batch: {plural(len(b.batches), 'batch', 'batches')} ({', '.join(b.batches) or 'none'}"
              + (f", {len(b.resumed)} resumed" if b.resumed else "") + f"): {human_count(b.succeeded)} made in "
              f"a batch, {human_count(b.retried_directly)} retried directly"
              + (f", {human_count(b.busy)} left to a batch another process collects" if b.busy else ""))
    failures = [*warmed.failures, *outcome.spec_failures]
    for line in failures[:_SHOWN_FAILURES]:
        say(f"failed: {line}")  # a server's words, a file's name: escaped
    if len(failures) > _SHOWN_FAILURES:
        print(f"failed: … and {human_count(len(failures) - _SHOWN_FAILURES)} more (--json lists them all)")
