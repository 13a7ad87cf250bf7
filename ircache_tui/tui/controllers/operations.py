"""The operations that span tiers and panes: `w` warm (asking first: copy only, or also generate
the missing specs now or in a Message Batch), `r` regenerate (asking first, with the last
generation's cost, when the generator is paid), `P` prune, `D` diff.

Each runs in a worker of its own group and ends with a message: OperationDone (the App
notifies and refreshes the panes), or the prune report and the diff found, which this
controller shows in their screens. The panes' knowledge they need (the spec file of a picked
entry, the spec's current key) comes with the call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import on, work
from textual.message import Message
from textual.worker import Worker, WorkerState

from ...cache.errors import IRCacheError
from ...cache.ircache import BatchProgress, BatchWarmResult, IRCache
from ...fmt import describe_os_error, human_count, human_usd, plural, shown_name
from ...ir.diff import diff_ir
from ...ir.envelope import StoredEntry
from ...ir.generators import GenerationError, generator_label
from ...ir.generators.base import SubmitsBatches
from ...specs import discover_specs, find_stale, prune, read_spec
from ...specs.history import older_entry, read_any_tier
from ...specs.stale import StaleReport
from ...specs.warming import SpecsTally, cache_specs
from .. import messages as m
from ..picked import PickedEntry
from ..screens.confirm import ConfirmScreen
from ..screens.diff import DiffFound, DiffScreen
from ..screens.prune import PruneRequest, PruneScreen
from ..screens.warm import WarmCounts, WarmMode, WarmRequest, WarmScreen
from .base import Controller

#: specs generated at once by the dashboard's warm (as `warm --jobs`' default)
WARM_JOBS = 4


def estimate_text(entry: StoredEntry | None) -> str:
    """`Its last generation cost $0.0821 (5,000 output tokens).`, from the entry's usage; what is
    not known (no entry, an entry made without an LLM, a model not in the price table) said so."""
    usage = entry.usage if entry is not None else None
    if usage is None or not usage.output_tokens:
        return "Cost unknown: no paid generation of it is cached."
    if usage.cost_usd is None:
        return f"Its last generation used {human_count(usage.output_tokens)} output tokens, cost unknown."
    return (f"Its last generation cost {human_usd(usage.cost_usd)} "
            f"({human_count(usage.output_tokens)} output tokens).")


class Operations(Controller):
    @dataclass
    class _PruneFound(Message):
        report: StaleReport

    def __init__(self, cache: IRCache, *, spec_dirs: list[Path], spec_pattern: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        self.spec_dirs = spec_dirs
        self.spec_pattern = spec_pattern
        self.warming = False
        #: the batch a warm polls (its record stays in the cache dir if the app quits: the next warm resumes it)
        self.batch_polling = ""

    # -- w: asks (screens/warm.py), then copies entries into Redis, and generates what is missing if asked --
    @dataclass
    class Progress(Message):
        """How far a warm's generation is (`batch_id`: the batch it polls, "" when generating directly)."""

        what: str
        done: int
        total: int
        batch_id: str = ""

    @dataclass
    class _WarmCounted(Message):
        counts: WarmCounts

    def request_warm(self) -> None:
        """`w`: count, ask, warm; not while a warm runs (a second one would wait on the same batch)."""
        if self.warming:
            self.app.notify("A warm is already running: its progress is above the log", severity="warning")
        else:
            self.ask_warm()

    @work(group="warm-count", exclusive=True, exit_on_error=False)
    async def ask_warm(self) -> None:
        """Count what a warm would see (entry files, specs), then ask (WarmScreen)."""
        files, files_error = 0, ""
        try:
            files = len(await self.cache.list_files())
        except OSError as exc:
            files_error = describe_os_error(exc)
        specs = None
        if self.spec_dirs:
            specs = sum(s.ok for s in await asyncio.to_thread(discover_specs, self.spec_dirs, self.spec_pattern,
                                                              ignored=[self.cache.cache_dir]))
        generator = self.cache.generator
        no_batch = "" if isinstance(generator, SubmitsBatches) else f"{generator.name} generator: no batch API"
        self.post_message(self._WarmCounted(WarmCounts(files, specs, ", ".join(map(str, self.spec_dirs)), no_batch,
                                                       files_error)))

    @on(_WarmCounted)
    def _warm_counted(self, message: _WarmCounted) -> None:
        message.stop()
        if len(self.app.screen_stack) > 1:  # another screen opened meanwhile: not asked over it, but said
            self.app.notify("Regenerate not asked: another screen opened meanwhile; press r again",
                            severity="warning")
            return

        def chosen(request: WarmRequest | None) -> None:
            if request is not None:
                self.start_warm(request.mode)

        self.app.push_screen(WarmScreen(message.counts), chosen)

    def start_warm(self, mode: WarmMode) -> None:
        if self.warming:  # (asked twice before the first answer)
            return
        self.warming = True
        self.warm(mode)

    @on(Progress)
    def _warm_progress(self, message: Progress) -> None:
        self.batch_polling = message.batch_id or self.batch_polling  # (and the App shows it)

    @on(Worker.StateChanged)
    def _warm_ended(self, event: Worker.StateChanged) -> None:
        """A warm that ended (whatever ended it) lets the next one start; one that raised says so."""
        if event.worker.group != "warm" or not event.worker.is_finished:
            return
        self.warming, self.batch_polling = False, ""
        if event.state == WorkerState.ERROR:
            self.post_message(m.OperationDone(f"Warm failed: {event.worker.error}", error=True, by="warm"))

    @work(group="warm", exit_on_error=False)
    async def warm(self, mode: WarmMode = "copy") -> None:
        """Copy every filesystem entry Redis lacks into Redis; with `mode` "now" or "batch", then
        make sure every spec in the spec dirs is cached, generating directly or in a Message Batch."""
        try:
            result = await self.cache.warm_redis()
        except (IRCacheError, OSError) as exc:
            self.post_message(m.OperationDone(f"Warm failed: {exc}", error=True, by="warm"))
            return
        done = (f"Warmed {plural(result.warmed, 'entry', 'entries')} into Redis "
                f"({result.already_in_redis:,} already there)")
        failed = bool(result.failures or result.error)
        if failed:  # say what was not done, with the first reason
            why = result.error or result.failures[0]
            done += f"; {plural(result.failed + result.left, 'entry', 'entries')} not warmed: {why}"
        if result.error or mode == "copy" or not self.spec_dirs:  # Redis down or refusing: nothing more to fill
            self.post_message(m.OperationDone(done, error=failed, by="warm"))
        else:
            await self._warm_specs(done, mode, failed)

    async def _warm_specs(self, done: str, mode: WarmMode, failed: bool) -> None:
        specs = await asyncio.to_thread(discover_specs, self.spec_dirs, self.spec_pattern,
                                        ignored=[self.cache.cache_dir])
        todo = [s for s in specs if s.ok]
        tally = SpecsTally(failures=[f"{shown_name(s.path, quote=False)}: {s.error}" for s in specs if not s.ok])
        batch: BatchWarmResult | None = None
        error = ""

        def polled(p: BatchProgress) -> None:
            self.post_message(self.Progress(f"batch {p.batch_id}", p.done, p.total, p.batch_id))

        def generated(n: int) -> None:
            self.post_message(self.Progress("generating specs", n, len(todo)))

        with self.cache.audit.recording("warm", spec=None, tiers=("redis", "filesystem")) as touched:
            try:
                if mode == "batch":
                    batch = await self.cache.warm_batch([(s.text, str(s.path)) for s in todo], on_progress=polled)
                    tally.by_tier.update(redis=batch.in_redis, filesystem=batch.from_filesystem,
                                         generator=batch.generated)
                    tally.failures += batch.failures
                else:
                    await cache_specs(self.cache, todo, tally, jobs=WARM_JOBS, on_progress=generated)
            except GenerationError as exc:  # the batch API failed: a batch it accepted is resumed by the next warm
                error = f"{exc} (warm again to resume)"
            except (IRCacheError, OSError) as exc:
                error = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            finally:
                touched.counts.update(specs=len(specs), **{f"from_{t}": n for t, n in tally.by_tier.items()})
        tiers = tally.by_tier
        text = (f"{done}; specs: {human_count(len(specs))} ({human_count(tiers['redis'])} in Redis, "
                f"{human_count(tiers['filesystem'])} warmed from disk, generated {human_count(tiers['generator'])})")
        if batch is not None:
            text += (f"; {'batch ' + ', '.join(batch.batches) if batch.batches else 'no batch needed'}: "
                     f"{human_count(batch.succeeded)} succeeded, {human_count(batch.retried_directly)} retried directly"
                     + (f", {human_count(batch.busy)} in another process's batch" if batch.busy else ""))
        if tally.failures:
            text += f"; {human_count(len(tally.failures))} failed: {tally.failures[0]}"
        if error:
            text += f"; stopped: {error}"
        self.post_message(m.OperationDone(text, error=bool(failed or error or tally.failures), by="warm"))

    # -- r --------------------------------------------------------------------------------
    @dataclass
    class _CostEstimated(Message):
        """What a paid regeneration of `picked` is likely to cost, in words; `start` runs it."""

        picked: PickedEntry
        question: str
        start: Callable[[], None]

    @work(group="generate-estimate", exit_on_error=False)
    async def ask_regenerate(self, picked: PickedEntry, start: Callable[[], None]) -> None:
        """Before a paid generation: read the spec's current entry for what its last one cost, then
        ask (the answer runs `start`, or nothing)."""
        found = await read_any_tier(self.cache, picked.cache_key) if picked.cache_key else None
        generator = generator_label(self.cache.generator)
        self.post_message(self._CostEstimated(
            picked, f"Regenerate {picked.spec_name} with {generator}? {estimate_text(found[0] if found else None)}",
            start))

    @on(_CostEstimated)
    def _cost_estimated(self, message: _CostEstimated) -> None:
        message.stop()
        if len(self.app.screen_stack) > 1:  # another screen opened meanwhile: not asked over it, but said
            self.app.notify("Regenerate not asked: another screen opened meanwhile; press r again",
                            severity="warning")
            return

        def chosen(yes: bool | None) -> None:
            if yes:
                message.start()

        self.app.push_screen(ConfirmScreen(message.question, "Regenerate"), chosen)

    @work(group="generate", exit_on_error=False)
    async def regenerate(self, picked: PickedEntry, spec_path: Path | None) -> None:
        """`spec_path`: the spec file, when the panes know it; else the one the entry names."""
        path = spec_path or await self._spec_path_of_entry(picked)
        if path is None:
            self.post_message(m.OperationDone(
                f"Cannot regenerate {picked.spec_name}: its spec file is not known here "
                "(open its directory: ircache-tui DIR)", error=True, by="regenerate"))
            return
        spec = await asyncio.to_thread(read_spec, path)
        if spec.error:
            self.post_message(m.OperationDone(f"Cannot regenerate {picked.spec_name}: {path}: {spec.error}",
                                              error=True, by="regenerate"))
            return
        try:
            result = await self.cache.lookup(spec.text, str(path), force_refresh=True)
        except (GenerationError, IRCacheError) as exc:
            self.post_message(m.OperationDone(f"Regeneration failed: {exc}", error=True, by="regenerate"))
            return
        self.post_message(m.OperationDone(f"Regenerated {result.cache_key}", by="regenerate"))

    async def _spec_path_of_entry(self, picked: PickedEntry) -> Path | None:
        with contextlib.suppress(Exception):
            entry = await self.cache.read_entry(picked.cache_key, "redis" if picked.tier == "redis" else "filesystem")
            candidate = Path(entry.spec_path)
            if await asyncio.to_thread(candidate.is_file):
                return candidate
        return None

    # -- D --------------------------------------------------------------------------------
    @work(group="diff", exit_on_error=False)
    async def find_diff(self, picked: PickedEntry, current: str | None) -> None:
        """A picked older entry against the spec's `current` key; else the picked key (or spec)
        against the most recent other entry of its spec (in time order when neither is current)."""
        name = picked.spec_name
        if picked.tier != "spec" and current and current != picked.cache_key:
            from_key, to_key = picked.cache_key, current
        else:
            to_key = picked.cache_key
            try:
                older = await older_entry(self.cache, name, to_key) if to_key else None
            except (IRCacheError, OSError) as exc:  # the cache dir cannot be listed
                self.post_message(DiffFound(name, note=f"Cannot diff {name}: {exc}"))
                return
            if older is None:
                self.post_message(DiffFound(name, note=f"Nothing to compare {to_key or name} with: "
                                                       f"no other entry of {name} in Redis or the filesystem"))
                return
            from_key = older[0]
        before, after = await read_any_tier(self.cache, from_key), await read_any_tier(self.cache, to_key)
        if before is None or after is None:
            gone = from_key if before is None else to_key
            self.post_message(DiffFound(name, note=f"Cannot diff {name}: {gone} is not in Redis or the filesystem"))
            return
        if (picked.tier != "spec" and current is None
                and before[0].generated_at.timestamp() > after[0].generated_at.timestamp()):
            (from_key, before), (to_key, after) = (to_key, after), (from_key, before)
        diff = diff_ir(before[0].application_ir, after[0].application_ir)
        self.post_message(DiffFound(name, from_key, to_key, diff))

    @on(DiffFound)
    def _diff_found(self, message: DiffFound) -> None:
        message.stop()
        if message.diff is None:
            self.app.notify(message.note, severity="warning")
        elif len(self.app.screen_stack) == 1:  # not over another screen opened meanwhile
            self.app.push_screen(DiffScreen(message.spec_name, message.from_key, message.to_key, message.diff))

    # -- P --------------------------------------------------------------------------------
    @work(group="prune", exclusive=True, exit_on_error=False)
    async def find_prunable(self) -> None:
        specs = await asyncio.to_thread(discover_specs, self.spec_dirs, self.spec_pattern,
                                        ignored=[self.cache.cache_dir])
        self.post_message(self._PruneFound(await find_stale(self.cache, specs)))  # orphans listed, not included

    @on(_PruneFound)
    def _prune_found(self, message: _PruneFound) -> None:
        report = message.report
        if not (report.total or report.kept):
            self.app.notify("Nothing stale to prune" + (f" (Redis not checked: {report.redis_error})"
                                                          if report.redis_error else ""))
            return

        def chosen(request: PruneRequest | None) -> None:
            if request is not None:
                self.run_prune(report.with_orphans(request.include_orphans))

        self.app.push_screen(PruneScreen(report, ", ".join(map(str, self.spec_dirs))), chosen)

    @work(group="prune", exclusive=True, exit_on_error=False)
    async def run_prune(self, report: StaleReport) -> None:
        try:
            removed = await prune(self.cache, report)
        except (IRCacheError, OSError) as exc:
            self.post_message(m.OperationDone(f"Prune failed: {exc}", error=True, by="prune"))
            return
        self.post_message(m.OperationDone(
            f"Pruned {plural(removed.redis, 'Redis key')}, {plural(removed.filesystem, 'file')}", by="prune",
            removed=m.Removed(None, redis=removed.redis, files=removed.filesystem)))
