"""The spec watcher: real directories and file writes, real watchfiles (awatch), real Redis."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from ircache_tui import IRCache, OfflineGenerator, StoredEntry
from ircache_tui.cache.fs_tier import atomic_write
from ircache_tui.cache.keys import cache_key, spec_hash
from ircache_tui.cache.results import DeleteResult
from ircache_tui.watch import SpecState, SpecStatus, SpecWatcher
from tests.support.generators import SPEC, CountingGenerator

DEBOUNCE_MS = 50


def spec_text(title: str, extra: str = "") -> str:
    return SPEC.replace("# Shop API", f"# {title}") + extra


def key_of(text: str, path: Path) -> str:
    return cache_key(text, str(path))


async def ir_on_disk(cache: IRCache, text: str, path: Path) -> str:
    """Put the IR of `text` (as spec `path`) in the filesystem tier only, as an earlier run left it."""
    key = key_of(text, path)
    ir = await OfflineGenerator().generate(text, path.stem)
    entry = StoredEntry.create(ir, spec_name=path.stem, spec_hash=spec_hash(text), spec_path=str(path), generator="offline")
    await cache.fs.write_raw(key, entry.to_json_bytes())
    return key


async def until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll until `predicate()` holds (a hang guard, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def settle(watcher: SpecWatcher, predicate, what: str = "condition") -> None:
    """Wait for the watcher to see a change (predicate), then for it to finish all its work."""
    await until(predicate, what=what)
    await asyncio.wait_for(watcher.wait_idle(), 10)


def absolute(path: Path) -> Path:
    """How the watcher names a path: absolute, its directory resolved (not a symlink it names)."""
    return path.parent.resolve() / path.name


def state_of(watcher: SpecWatcher, path: Path) -> SpecState | None:
    status = watcher.statuses.get(absolute(path))
    return status.state if status else None


def redis_has(sync_redis, key: str) -> bool:
    return bool(sync_redis.exists(f"ir_cache:{key}"))


@pytest.fixture
def specs(tmp_path) -> Path:
    d = tmp_path / "specs"
    d.mkdir()
    return d


@pytest.fixture
def gen():
    return CountingGenerator()


@pytest.fixture
async def cache(redis_url, cache_dir, gen):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=gen) as c:
        yield c


@pytest.fixture
async def watching():
    """Start watchers in the background; every one is stopped (and must stop cleanly) at the end."""
    running: list[tuple[SpecWatcher, asyncio.Task]] = []

    async def start(cache: IRCache, dirs: list[Path], **options) -> SpecWatcher:
        options.setdefault("debounce_ms", DEBOUNCE_MS)
        watcher = SpecWatcher(cache, dirs, **options)
        task = asyncio.create_task(watcher.run())
        running.append((watcher, task))
        await asyncio.wait_for(watcher.wait_idle(), 10)
        assert not task.done(), task.exception() if task.done() else None
        return watcher

    yield start
    for watcher, task in running:
        watcher.stop()
        await asyncio.wait_for(task, 10)  # raises if run() failed


# -- IRCache.warm_key, the one addition to the cache ----------------------------------
async def test_warm_key_copies_a_valid_entry_only(cache, specs, sync_redis, cache_dir):
    good = await ir_on_disk(cache, SPEC, specs / "shop.md")
    assert not redis_has(sync_redis, good)
    events = []
    cache.events.subscribe(events.append)
    assert await cache.warm_key(good) is True
    assert redis_has(sync_redis, good) and 3500 < sync_redis.ttl(f"ir_cache:{good}") <= 3600
    assert json.loads(sync_redis.get(f"ir_cache:{good}")) == json.loads((cache_dir / f"{good}.json").read_bytes())
    assert [(e.kind, e.cache_key) for e in events] == [("warmed", good)]

    assert await cache.warm_key(key_of("# Nothing\n", specs / "none.md")) is False  # no file

    bad = key_of("# Corrupt\n", specs / "corrupt.md")
    atomic_write(cache_dir / f"{bad}.json", b'{"not": "an entry"}')
    assert await cache.warm_key(bad) is False
    assert not redis_has(sync_redis, bad)
    assert not (cache_dir / f"{bad}.json").exists()
    assert any(p.name.startswith(bad) for p in (cache_dir / ".quarantine").iterdir())

    with pytest.raises(ValueError):
        await cache.warm_key("../etc/passwd")


async def test_warm_key_with_caching_off(redis_url, cache_dir, specs, sync_redis):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=0, generator=CountingGenerator()) as cache:
        key = await ir_on_disk(cache, SPEC, specs / "shop.md")
        assert await cache.warm_key(key) is False
    assert not redis_has(sync_redis, key)


# -- start-up -----------------------------------------------------------------------
async def test_missing_directory_is_a_clear_value_error(cache, specs, tmp_path):
    missing = tmp_path / "no-such-dir"
    with pytest.raises(ValueError, match="no-such-dir"):
        SpecWatcher(cache, [specs, missing])
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ValueError, match="a-file"):
        SpecWatcher(cache, [tmp_path / "a-file"])
    with pytest.raises(ValueError, match="max_concurrent"):
        SpecWatcher(cache, [specs], max_concurrent=0)
    gone = tmp_path / "gone"
    gone.mkdir()
    watcher = SpecWatcher(cache, [gone])
    gone.rmdir()
    with pytest.raises(ValueError, match="gone"):
        await watcher.run()


async def test_initial_walk_puts_every_spec_in_step(cache, specs, gen, sync_redis, tmp_path):
    in_redis, on_disk, missing = specs / "a.md", specs / "sub" / "deeper" / "b.md", specs / "c.md"
    in_redis.write_text(spec_text("A"))
    on_disk.parent.mkdir(parents=True)
    on_disk.write_text(spec_text("B"))
    missing.write_text(spec_text("C"))
    await cache.lookup(spec_text("A"), str(in_redis))
    await ir_on_disk(cache, spec_text("B"), on_disk)
    assert gen.calls == 1
    # none of these is a spec
    (specs / ".git").mkdir()
    (specs / ".git" / "x.md").write_text(SPEC)
    for name in ("a.md.swp", ".a.md.swp", "#a.md#", ".#a.md", "a.md~", "notes.txt", "a.md.tmp", "4913"):
        (specs / name).write_text(SPEC)
    seen: list[SpecStatus] = []

    watcher = SpecWatcher(cache, [specs], watch=False, on_status=seen.append, debounce_ms=DEBOUNCE_MS)
    await asyncio.wait_for(watcher.run(), 10)  # returns by itself: watch=False

    assert sorted(watcher.statuses) == sorted(p.resolve() for p in (in_redis, on_disk, missing))
    for path, text, name in ((in_redis, "A", "a"), (on_disk, "B", "b"), (missing, "C", "c")):
        status = watcher.statuses[path.resolve()]
        assert status == SpecStatus(path.resolve(), name, key_of(spec_text(text), path), SpecState.IN_REDIS)
        assert redis_has(sync_redis, status.cache_key)
    assert gen.calls == 2  # only c.md was generated; b.md was warmed from disk
    assert watcher.stats.warmed == 1 and watcher.stats.generated == 1
    assert {s.state for s in seen} >= {SpecState.PENDING, SpecState.GENERATING, SpecState.IN_REDIS}
    assert watcher.idle


async def test_no_generate_shows_missing_and_says_so(cache, specs, gen, ircache_logs):
    spec = specs / "shop.md"
    spec.write_text(SPEC)
    watcher = SpecWatcher(cache, [specs], watch=False, generate=False)
    await asyncio.wait_for(watcher.run(), 10)
    status = watcher.statuses[spec.resolve()]
    assert status.state is SpecState.MISSING and status.cache_key == key_of(SPEC, spec)
    assert gen.calls == 0
    assert "shop.md: IR not cached" in ircache_logs.text and "generation is off" in ircache_logs.text


# -- events -------------------------------------------------------------------------
async def test_create_modify_rename_delete(cache, specs, gen, sync_redis, watching):
    spec = specs / "shop.md"
    edited = spec_text("Shop API", "\n## Notes\nEdited.\n")
    key2 = await ir_on_disk(cache, edited, spec)  # the IR of the edit is on disk (an earlier run), not in Redis
    seen: list[SpecStatus] = []
    watcher = await watching(cache, [specs], on_status=seen.append)
    assert watcher.statuses == {}

    spec.write_text(SPEC)  # created, nothing cached: generated
    key1 = key_of(SPEC, spec)
    await settle(watcher, lambda: state_of(watcher, spec) is SpecState.IN_REDIS, "the new spec in Redis")
    assert gen.calls == 1 and redis_has(sync_redis, key1)
    assert watcher.statuses[spec.resolve()].cache_key == key1

    assert not redis_has(sync_redis, key2)
    spec.write_text(edited)  # modified: its IR is on disk already
    await settle(watcher, lambda: watcher.statuses[spec.resolve()].cache_key == key2, "the edit")
    status = watcher.statuses[spec.resolve()]
    assert status.state is SpecState.IN_REDIS and redis_has(sync_redis, key2)
    assert gen.calls == 1  # warmed, not generated
    assert status.stale == 1  # key1 is an older version now

    count = len(seen)
    spec.write_text(edited)  # saved again unchanged: no status change
    await until(lambda: watcher.stats.checked[spec.resolve()] == 3, what="the unchanged save")
    await asyncio.wait_for(watcher.wait_idle(), 10)
    assert len(seen) == count

    renamed = specs / "catalog.md"
    os.rename(spec, renamed)  # renamed: the old name is deleted, the new one is a new spec
    await settle(watcher, lambda: state_of(watcher, renamed) is SpecState.IN_REDIS
                 and state_of(watcher, spec) is SpecState.DELETED, "the rename")
    # the same text under a new name: re-keyed from the old name's entry, not generated (renames.py)
    assert gen.calls == 1 and redis_has(sync_redis, key_of(edited, renamed))

    renamed.unlink()  # deleted: said so; its entries stay
    await settle(watcher, lambda: state_of(watcher, renamed) is SpecState.DELETED, "the deletion")
    assert redis_has(sync_redis, key_of(edited, renamed))
    assert cache.fs.path_for(key_of(edited, renamed)).exists()
    assert watcher.statuses[renamed.resolve()].cache_key == key_of(edited, renamed)
    assert {p.name for p in watcher.statuses} == {"shop.md", "catalog.md"}


async def test_atomic_saves_are_modifications(cache, specs, gen, sync_redis, watching):
    spec = specs / "shop.md"
    spec.write_text(SPEC)
    v2, v3 = spec_text("Shop API", "\nVersion 2.\n"), spec_text("Shop API", "\nVersion 3.\n")
    key2, key3 = await ir_on_disk(cache, v2, spec), await ir_on_disk(cache, v3, spec)  # on disk, not in Redis
    watcher = await watching(cache, [specs])
    assert state_of(watcher, spec) is SpecState.IN_REDIS and gen.calls == 1
    assert not redis_has(sync_redis, key2) and not redis_has(sync_redis, key3)

    # write a temp file, rename it over the spec (IR of the new text on disk: warmed, not generated)
    tmp = specs / ".shop.md.3f2a1.tmp"
    tmp.write_text(v2)
    os.replace(tmp, spec)
    await settle(watcher, lambda: watcher.statuses[spec.resolve()].cache_key == key2, "the atomic save")
    assert state_of(watcher, spec) is SpecState.IN_REDIS and redis_has(sync_redis, key2)

    # vim-style: move the original aside as a backup, write the new file (its temp `4913` probe too)
    (specs / "4913").write_text("")
    (specs / "4913").unlink()
    os.rename(spec, specs / "shop.md~")
    spec.write_text(v3)
    (specs / "shop.md~").unlink()
    await settle(watcher, lambda: watcher.statuses[spec.resolve()].cache_key == key3, "the vim save")
    status = watcher.statuses[spec.resolve()]
    assert status.state is SpecState.IN_REDIS and redis_has(sync_redis, key3)
    assert status.stale == 2
    assert gen.calls == 1 and watcher.stats.warmed == 2
    assert set(watcher.statuses) == {spec.resolve()}  # no temp file ever became a spec


class Tracking(CountingGenerator):
    """CountingGenerator that also records how many generations ran at once, at most."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay=delay)
        self.running = self.peak = 0

    async def generate(self, spec_markdown, spec_name):
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            return await super().generate(spec_markdown, spec_name)
        finally:
            self.running -= 1


@pytest.mark.slow
async def test_burst_of_a_thousand_specs(cache, specs, sync_redis, cache_dir, watching):
    # like a `git checkout` to a branch: 1,000 files at once in new directories; the IRs of
    # most are on disk from an earlier run, 30 are new and must be generated
    texts = {specs / f"area{i % 10}" / f"spec{i:04d}.md": spec_text(f"Spec {i}") for i in range(970)}
    new = {specs / "area-new" / f"new{i:02d}.md": spec_text(f"New {i}") for i in range(30)}
    texts.update(new)
    ir = await OfflineGenerator().generate(SPEC, "shop")
    cache_dir.mkdir(parents=True)
    for path, text in texts.items():
        if path not in new:
            entry = StoredEntry.create(ir, spec_name=path.stem, spec_hash=spec_hash(text), spec_path=str(path),
                                       generator="offline")
            (cache_dir / f"{key_of(text, path)}.json").write_bytes(entry.to_json_bytes())
    gen = cache.generator = Tracking(delay=0.05)
    watcher = await watching(cache, [specs], max_concurrent=3, debounce_ms=300)

    for path, text in texts.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)

    def done() -> bool:
        return len(watcher.statuses) == 1000 and all(s.state is SpecState.IN_REDIS for s in watcher.statuses.values())

    await settle(watcher, done, "the burst")
    assert gen.calls == 30  # each new spec generated once
    assert gen.peak == 3  # never more than max_concurrent at once (and that many did run together)
    assert watcher.stats.warmed == 970 and watcher.stats.generated == 30
    paths = sorted(p.resolve() for p in texts)
    assert sorted(watcher.statuses) == paths
    keys = [key_of(text, path) for path, text in texts.items()]
    assert sorted(s.cache_key for s in watcher.statuses.values()) == sorted(keys)
    assert sum(sync_redis.exists(f"ir_cache:{k}") for k in keys) == 1000
    assert sorted(watcher.stats.checked) == paths
    assert set(watcher.stats.checked.values()) == {1}  # each read and keyed once


async def test_a_warm_never_waits_behind_generations(redis_url, cache_dir, specs, sync_redis, watching):
    gen = CountingGenerator(delay=0.5)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=gen) as cache:
        watcher = await watching(cache, [specs], max_concurrent=1)
        slow = [specs / "new1.md", specs / "new2.md"]
        for path in slow:
            path.write_text(spec_text(path.stem))
        await until(lambda: state_of(watcher, slow[0]) is SpecState.GENERATING
                    or state_of(watcher, slow[1]) is SpecState.GENERATING, what="a generation")
        cached = specs / "cached.md"
        await ir_on_disk(cache, spec_text("Cached"), cached)
        cached.write_text(spec_text("Cached"))
        await until(lambda: state_of(watcher, cached) is SpecState.IN_REDIS, what="the warm")
        assert gen.calls == 1  # the first generation is still running, the second waits its turn
        assert {state_of(watcher, p) for p in slow} == {SpecState.GENERATING, SpecState.PENDING}
        await settle(watcher, lambda: all(state_of(watcher, p) is SpecState.IN_REDIS for p in slow), "generations")
        assert gen.calls == 2


async def test_a_change_during_generation_is_not_lost(redis_url, cache_dir, specs, sync_redis, watching):
    gen = CountingGenerator(delay=0.4)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=gen) as cache:
        watcher = await watching(cache, [specs])
        spec = specs / "shop.md"
        spec.write_text(SPEC)
        await until(lambda: state_of(watcher, spec) is SpecState.GENERATING, what="generation to start")
        final = spec_text("Shop API", "\nEdited while generating.\n")
        spec.write_text(final)
        await settle(watcher, lambda: watcher.statuses[spec.resolve()].cache_key == key_of(final, spec)
                     and state_of(watcher, spec) is SpecState.IN_REDIS, "the edit to be generated")
        assert gen.calls == 2
        assert redis_has(sync_redis, key_of(SPEC, spec)) and redis_has(sync_redis, key_of(final, spec))
        assert watcher.statuses[spec.resolve()].stale == 1
        watcher.stop()


async def test_generation_failure_is_an_error_and_the_watcher_carries_on(redis_url, cache_dir, specs, watching):
    gen = CountingGenerator(fail=True)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=gen) as cache:
        watcher = await watching(cache, [specs])
        spec = specs / "shop.md"
        spec.write_text(SPEC)
        await settle(watcher, lambda: state_of(watcher, spec) is SpecState.ERROR, "the failure")
        assert "counting generator told to fail for shop" in watcher.statuses[spec.resolve()].error
        gen.fail = False
        spec.write_text(SPEC + "\nRetry.\n")
        await settle(watcher, lambda: state_of(watcher, spec) is SpecState.IN_REDIS, "the retry")
        assert gen.calls == 2
        watcher.stop()


# -- the cache dir --------------------------------------------------------------------
@pytest.mark.parametrize("inside", [False, True], ids=["cache-dir-outside", "cache-dir-inside-specs"])
async def test_an_entry_written_by_another_process_warms_redis(inside, redis_url, cache_dir, specs, gen, sync_redis,
                                                               watching):
    directory = specs / ".cache" / "ir" if inside else cache_dir
    async with IRCache(redis_url=redis_url, cache_dir=directory, ttl=3600, generator=gen) as cache:
        spec = specs / "shop.md"
        spec.write_text(SPEC)
        watcher = await watching(cache, [specs], generate=False)
        key = key_of(SPEC, spec)
        assert state_of(watcher, spec) is SpecState.MISSING

        # another process (its own cache object) generates the IR and writes it to disk only
        other = IRCache(redis_url=redis_url, cache_dir=directory, ttl=3600, generator=OfflineGenerator())
        raw = (await other.generator.generate(SPEC, "shop"))
        entry = StoredEntry.create(raw, spec_name="shop", spec_hash=spec_hash(SPEC), spec_path=str(spec), generator="offline")
        atomic_write(directory / f"{key}.json", entry.to_json_bytes())

        await settle(watcher, lambda: state_of(watcher, spec) is SpecState.IN_REDIS, "the entry to be warmed")
        assert redis_has(sync_redis, key) and gen.calls == 0
        assert set(watcher.statuses) == {spec.resolve()}  # the cache dir is no spec dir

        # a corrupt entry for another spec is not warmed (and is quarantined by the cache)
        bad = key_of("# Other\n", specs / "other.md")
        atomic_write(directory / f"{bad}.json", b"{ torn")
        await until(lambda: not (directory / f"{bad}.json").exists(), what="the quarantine")
        await asyncio.wait_for(watcher.wait_idle(), 10)
        assert not redis_has(sync_redis, bad)


async def test_refresh_after_a_flush_does_not_warm_and_a_file_flush_shows_missing(cache, specs, gen, sync_redis,
                                                                                 watching):
    spec = specs / "shop.md"
    spec.write_text(SPEC)
    watcher = await watching(cache, [specs])
    key = key_of(SPEC, spec)
    assert state_of(watcher, spec) is SpecState.IN_REDIS

    await cache.clear_cache(redis=True, filesystem=False)
    await watcher.refresh()
    assert state_of(watcher, spec) is SpecState.FILESYSTEM_ONLY
    assert not redis_has(sync_redis, key)  # refresh only looks

    await cache.clear_cache(redis=False, filesystem=True, spec_name="shop")  # entry files deleted: an event
    await settle(watcher, lambda: state_of(watcher, spec) is SpecState.MISSING, "the file flush")
    assert gen.calls == 1  # a flush is not a reason to generate again

    await watcher.refresh(spec)
    assert state_of(watcher, spec) is SpecState.MISSING


async def test_stale_entries_are_counted_and_pruned(cache, specs, gen, sync_redis, cache_dir, watching):
    spec, other = specs / "shop.md", specs / "other.md"
    other.write_text(spec_text("Other"))
    spec.write_text(SPEC)
    watcher = await watching(cache, [specs])
    keys = [key_of(SPEC, spec)]
    for n in (2, 3):
        text = SPEC + f"\nVersion {n}.\n"
        spec.write_text(text)
        keys.append(key_of(text, spec))
        await settle(watcher, lambda: watcher.statuses[spec.resolve()].cache_key == keys[-1]
                     and state_of(watcher, spec) is SpecState.IN_REDIS, f"version {n}")
    await until(lambda: watcher.statuses[spec.resolve()].stale == 2, what="the stale count")
    assert watcher.statuses[other.resolve()].stale == 0

    report = await watcher.stale_report()
    assert sorted(report.redis_stale) == sorted(keys[:2]) == sorted(report.files_stale)
    assert report.redis_orphaned == report.files_orphaned == []
    removed = await watcher.prune(report)
    assert removed == DeleteResult(2, 2)
    assert watcher.statuses[spec.resolve()].stale == 0
    assert redis_has(sync_redis, keys[-1]) and (cache_dir / f"{keys[-1]}.json").exists()
    assert not any(redis_has(sync_redis, k) or (cache_dir / f"{k}.json").exists() for k in keys[:2])
    assert redis_has(sync_redis, key_of(spec_text("Other"), other))


# -- bad files and directories ------------------------------------------------------------
async def test_bad_files_get_a_clear_log_line_and_the_watcher_carries_on(cache, specs, gen, ircache_logs, watching):
    watcher = await watching(cache, [specs], max_bytes=4096)
    bad = {
        "latin1.md": ("not UTF-8", lambda p: p.write_bytes("# Caf\xe9\n".encode("latin-1"))),
        "huge.md": ("larger than the 4096-byte limit", lambda p: p.write_text("# Big\n" + "x" * 5000)),
        "loop.md": ("Too many levels of symbolic links", lambda p: os.symlink(p.name, p)),
        "fifo.md": ("not a regular file", lambda p: os.mkfifo(p)),
    }
    if os.geteuid() != 0:  # root reads anything
        bad["locked.md"] = ("permission denied", lambda p: (p.write_text(SPEC), p.chmod(0)))
    for name, (_, make) in bad.items():
        make(specs / name)
    good = specs / "good.md"
    good.write_text(SPEC)

    await settle(watcher, lambda: state_of(watcher, good) is SpecState.IN_REDIS
                 and all(state_of(watcher, specs / n) is SpecState.ERROR for n in bad), "the bad files")
    for name, (reason, _) in bad.items():
        status = watcher.statuses[absolute(specs / name)]
        assert reason in status.error and status.cache_key == ""
        assert any(name in r.getMessage() and reason in r.getMessage() and r.levelno == logging.WARNING
                   for r in ircache_logs.records), f"no warning naming {name}"
    assert gen.calls == 1

    (specs / "latin1.md").write_text(spec_text("Fixed"))  # fixed: it becomes a spec like any other
    await settle(watcher, lambda: state_of(watcher, specs / "latin1.md") is SpecState.IN_REDIS, "the fix")


async def test_directories_that_disappear_or_move_in(cache, tmp_path, specs, ircache_logs, watching):
    second = tmp_path / "more-specs"
    (second / "nested").mkdir(parents=True)
    (second / "nested" / "x.md").write_text(spec_text("X"))
    (specs / "sub").mkdir()
    for name in ("a.md", "b.md"):
        (specs / "sub" / name).write_text(spec_text(name))
    watcher = await watching(cache, [specs, second])
    assert len(watcher.statuses) == 3

    shutil.rmtree(specs / "sub")  # a directory disappears: its specs are deleted, and the log says so
    await settle(watcher, lambda: state_of(watcher, specs / "sub" / "a.md") is SpecState.DELETED
                 and state_of(watcher, specs / "sub" / "b.md") is SpecState.DELETED, "the deleted dir")

    shutil.rmtree(second)  # a watched directory disappears
    await settle(watcher, lambda: state_of(watcher, second / "nested" / "x.md") is SpecState.DELETED, "the lost root")
    await until(lambda: "spec directory" in ircache_logs.text and "disappeared" in ircache_logs.text,
                what="the log line")
    assert str(second.resolve().name) in ircache_logs.text

    outside = tmp_path / "elsewhere"  # a directory moved in: its files raise no events of their own
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "moved.md").write_text(spec_text("Moved"))
    os.rename(outside, specs / "moved-in")
    moved = specs / "moved-in" / "deep" / "moved.md"
    await settle(watcher, lambda: state_of(watcher, moved) is SpecState.IN_REDIS, "the moved-in dir")


async def test_pattern_and_ignored_files_while_watching(cache, specs, gen, watching):
    watcher = await watching(cache, [specs], pattern="*.spec.md")
    (specs / "readme.md").write_text(SPEC)
    for name in ("shop.spec.md.swp", ".#shop.spec.md", "shop.spec.md~", "#shop.spec.md#"):
        (specs / name).write_text(SPEC)
    (specs / ".git").mkdir()
    (specs / ".git" / "x.spec.md").write_text(SPEC)
    spec = specs / "shop.spec.md"
    spec.write_text(SPEC)
    await settle(watcher, lambda: state_of(watcher, spec) is SpecState.IN_REDIS, "the spec")
    assert set(watcher.statuses) == {spec.resolve()}
    assert watcher.statuses[spec.resolve()].spec_name == "shop.spec"
    assert gen.calls == 1


# -- stopping -----------------------------------------------------------------------------
async def test_stop_and_cancel_end_run_cleanly(cache, specs):
    watcher = SpecWatcher(cache, [specs], debounce_ms=DEBOUNCE_MS)
    task = asyncio.create_task(watcher.run())
    await asyncio.wait_for(watcher.wait_idle(), 10)
    watcher.stop()
    await asyncio.wait_for(task, 5)
    assert task.result() is None

    other = SpecWatcher(cache, [specs], debounce_ms=DEBOUNCE_MS)
    task = asyncio.create_task(other.run())
    await asyncio.wait_for(other.wait_idle(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    with pytest.raises(RuntimeError):
        await other.run()  # one run per watcher


# -- names that cannot become a key ---------------------------------------------------------
def test_the_path_in_watchfiles_decode_error_is_read_back():
    from ircache_tui.watch.bad_names import rust_debug_path, undecodable_paths

    # Rust's {:?} of a unix path: bytes that are not UTF-8 as \xNN, controls and invisibles escaped
    assert rust_debug_path(r"/s/\xFF.md") == Path(os.fsdecode(b"/s/\xff.md"))
    assert rust_debug_path(r"/s/a\nb\u{202e}\"q\\.md") == Path('/s/a\nb\u202e"q\\.md')
    error = RuntimeError(r'Unable to decode path "/s/\xFE\xFF" to string')
    assert undecodable_paths(error) == [Path(os.fsdecode(b"/s/\xfe\xff"))]
    group = ExceptionGroup("unhandled errors in a TaskGroup", [error])
    assert undecodable_paths(group) == [Path(os.fsdecode(b"/s/\xfe\xff"))]
    assert undecodable_paths(ExceptionGroup("x", [error, OSError("disk on fire")])) is None  # not only ours
    assert undecodable_paths(RuntimeError("watch thread unexpectedly received a signal")) is None


def test_paths_in_log_lines_are_escaped(tmp_path):
    from ircache_tui.watch.log import show

    assert str(show(tmp_path / "ok.md")) == str(tmp_path / "ok.md")
    assert str(show(tmp_path / os.fsdecode(b"\xff.md"))) == f"'{tmp_path}/\\xff.md'"
    for name in ("a\nb.md", "\u202egpj.md", "zw\u200b.md"):
        shown = str(show(tmp_path / name))
        assert shown.startswith("'") and "\\" in shown
        assert not {"\n", "\u202e", "\u200b"} & set(shown)  # one line, shown as what it is


def test_names_that_cannot_become_a_key_are_bad_names_not_specs(tmp_path):
    from ircache_tui.watch.paths import PathKind, PathRules

    specs, cache = tmp_path / "specs", tmp_path / "cache"
    rules = PathRules([specs], "*.md", cache)
    for name in ("a b.md", "*.md", "[x].md", "A.md", "x.md"):
        assert rules.classify(specs / name) is PathKind.SPEC, name
    for name in (os.fsdecode(b"\xff.md"), "a\nb.md", ".hidden.md", "\u202egpj.md", "n" * 247 + ".md"):
        assert rules.classify(specs / name) is PathKind.BAD_NAME, name
        assert rules.name_problem(specs / name)
    assert rules.classify(specs / os.fsdecode(b"\xff")) is PathKind.OTHER  # not a spec name at all
    assert rules.classify(cache / "shop_0123abcd.json") is PathKind.ENTRY
    assert rules.classify(cache / "bad\u202e_0123abcd.json") is PathKind.BAD_NAME
    assert rules.entry_shaped(cache / "bad\u202e_0123abcd.json")  # the cache's own listing names those
    assert rules.classify(cache / ".shop_0123abcd.json.tmp") is None

    specs.mkdir()
    for name in ("good.md", os.fsdecode(b"\xfe.md"), ".hidden.md"):
        (specs / name).write_text(SPEC)
    (specs / os.fsdecode(b"\xfd")).write_text("x")
    bad, odd = [], []
    assert list(rules.walk(specs, bad_names=bad, undecodable=odd)) == [specs / "good.md"]
    assert sorted(bad) == sorted([specs / os.fsdecode(b"\xfe.md"), specs / ".hidden.md"])
    assert odd == [specs / os.fsdecode(b"\xfd")]


async def test_a_bad_spec_name_is_skipped_with_one_warning(cache, specs, ircache_logs, watching):
    bad = specs / ".hidden.md"
    bad.write_text(SPEC)
    watcher = await watching(cache, [specs])
    for _ in range(3):
        bad.write_text(SPEC + "\nAgain.\n")
        await asyncio.sleep(0.1)
    good = specs / "good.md"
    good.write_text(SPEC)
    await settle(watcher, lambda: state_of(watcher, good) is SpecState.IN_REDIS, "the good spec")
    lines = [r.getMessage() for r in ircache_logs.records if ".hidden" in r.getMessage()]
    assert len(lines) == 1 and "starts with a dot" in lines[0], lines
    assert set(watcher.statuses) == {good.resolve()}
