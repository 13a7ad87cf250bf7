"""The watcher under faults: hostile file names (real files, the real CLI) and a Redis that restarts
empty or loses keys (real redis-server processes stopped and started again on the same socket)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path

import pytest
import redis

from ircache_tui import IRCache
from ircache_tui.cache.keys import cache_key
from ircache_tui.fmt import shown_name
from ircache_tui.watch import SpecState, SpecWatcher
from tests.support.cli import cli_env, run_cli
from tests.support.generators import SPEC, CountingGenerator, GatedGenerator
from tests.support.redis_server import RedisServer
from tests.test_cli_watch import Watch

INTERVAL = 0.1  # the Redis keeper's interval in the in-process tests


def text_of(title: str) -> str:
    return SPEC.replace("# Shop API", f"# {title}")


def fsname(raw: bytes) -> str:
    """A file name from its bytes, as Python spells it (bytes that are not UTF-8 as surrogates)."""
    return os.fsdecode(raw)


def ir_keys(client: redis.Redis) -> set[str]:
    return {k.decode() for k in client.scan_iter("ir_cache:*")}


def wait_for(predicate, timeout: float = 15.0, what: str = "condition") -> None:
    """Poll until `predicate()` holds (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def warnings_naming(output: str, needle: str) -> list[str]:
    return [line for line in output.splitlines() if needle in line and "WARNING" in line]


@pytest.fixture
def watches():
    started: list[Watch] = []

    def start(*args: str, env: dict[str, str]) -> Watch:
        w = Watch(*args, env=env)
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()


# -- names that cannot become a key: the real CLI ---------------------------------------------------
@pytest.mark.e2e
@pytest.mark.slow
def test_cli_watch_survives_names_that_are_not_utf8(redis_url, sync_redis, cache_dir, tmp_path, watches):
    """Before: `\\xff.md` at the start exited 2, and such a name touched while watching killed the
    watcher with an ExceptionGroup traceback (watchfiles cannot decode it)."""
    specs = tmp_path / "specs"
    specs.mkdir()
    good = specs / "good.md"
    good.write_text(text_of("Good"))
    (specs / fsname(b"\xff.md")).write_text(text_of("Bad at the start"))
    env = cli_env(redis_url, cache_dir, IR_GENERATOR="offline")
    w = watches(str(specs), "--debounce-ms", "50", env=env)
    w.expect(r"INFO: spec .*good\.md: IR generated and cached")
    w.expect(r"initial walk done")

    # while it runs: bad names in the spec dir and in the cache dir, each created then touched again
    created = [specs / fsname(b"\xfe.md"), specs / fsname(b"\xfd"),
               cache_dir / fsname(b"\xfc.json"), cache_dir / fsname(b"\xfb"),
               cache_dir / fsname(b"\xfa_0123abcd.json")]  # named like an entry: the cache's own warning
    for path in created:
        path.write_text(text_of("Bad"))
        time.sleep(0.2)
    for path in [specs / fsname(b"\xff.md"), *created]:
        time.sleep(0.2)
        os.utime(path)

    later = specs / "later.md"  # still watching: a new spec is generated and cached
    time.sleep(0.3)
    later.write_text(text_of("Later"))
    w.expect(r"INFO: spec .*later\.md: IR generated and cached")
    wait_for(lambda: all(sync_redis.exists(f"ir_cache:{cache_key(p.read_text(), str(p))}") for p in (good, later)),
             what="the good specs in Redis")
    assert w.proc.poll() is None, "the watcher exited"
    good.write_text(text_of("Good, edited"))  # and one more change after all of that
    w.expect(r"INFO: spec .*good\.md: IR generated and cached")
    time.sleep(0.5)  # what the last restarts log

    code, output = w.stop(signal.SIGTERM)
    assert code == 0, output
    assert "Traceback" not in output and "ExceptionGroup" not in output, output
    assert "\\udc" not in output  # never a surrogate: names are escaped
    for needle in (r"\xff.md'", r"\xfe.md'", r"\xfd'", r"\xfc.json'", r"\xfb'", r"\xfa_0123abcd.json'"):
        lines = warnings_naming(output, needle)
        assert len(lines) == 1, (needle, lines, output)
    assert re.search(r"WARNING: spec '.*\\xff\.md' skipped: spec name '\\xff' is not valid UTF-8", output), output
    assert sync_redis.exists(f"ir_cache:{cache_key(good.read_text(), str(good))}")


@pytest.mark.e2e
def test_cli_watch_survives_hostile_names(redis_url, sync_redis, cache_dir, tmp_path, watches):
    specs = tmp_path / "specs"
    specs.mkdir()
    good = {  # names that are fine: each becomes a spec and is cached
        "a b.md": "Spaces", "*.md": "Star", "[x].md": "Brackets", "?.md": "Question", "A.md": "Upper", "a.md": "Lower",
        "x.md/inner.md": "In a directory named x.md",
    }
    bad = {  # names that cannot become a key: one warning each, escaped (the name in fmt.shown_name's spelling)
        "a\nb.md": shown_name("a\nb"), "n" * 247 + ".md": "is longer than 200 bytes",
        ".hidden.md": "'.hidden' starts with a dot", "\u202egpj.md": r"'\u202egpj'", "zw\u200b.md": r"'zw\u200b'",
    }

    def make(names: list[str]) -> None:
        for name in names:
            path = specs / name
            path.parent.mkdir(exist_ok=True)
            path.write_text(text_of(good.get(name, "Bad")))

    make(["a b.md", "*.md", "a\nb.md", "n" * 247 + ".md", "A.md"])  # half at the start...
    os.mkfifo(specs / "fifo.md")
    env = cli_env(redis_url, cache_dir, IR_GENERATOR="offline")
    w = watches(str(specs), "--debounce-ms", "50", env=env)
    w.expect(r"initial walk done")
    make(["[x].md", "?.md", "a.md", "x.md/inner.md", ".hidden.md", "\u202egpj.md", "zw\u200b.md"])  # ...half after
    os.symlink("nowhere", specs / "dangling.md")
    time.sleep(0.5)
    for name in [*bad, "fifo.md"]:  # touched again: no second warning for a bad name
        os.utime(specs / name)
    time.sleep(0.3)

    def cached(name: str) -> bool:
        path = specs / name
        return bool(sync_redis.exists(f"ir_cache:{cache_key(path.read_text(), str(path))}"))

    wait_for(lambda: all(cached(name) for name in good), what="every good spec in Redis")
    assert w.proc.poll() is None, "the watcher exited"
    code, output = w.stop(signal.SIGTERM)
    assert code == 0, output
    assert "Traceback" not in output and "Error" not in output, output
    for name, needle in bad.items():
        lines = [line for line in warnings_naming(output, needle) if "skipped" in line]
        assert len(lines) == 1, (name, lines, output)
    assert "\\" in shown_name("a\nb")  # escaped: the warning is one line, not two
    assert re.search(r"WARNING: spec .*fifo\.md skipped: not a regular file", output), output
    assert re.search(r"WARNING: spec .*dangling\.md skipped: broken symlink", output), output
    assert len({cache_key(text_of(good[n]), str(specs / n)) for n in ("A.md", "a.md")}) == 2  # two specs, two keys


# -- Redis restarted empty: the real CLI -------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.slow
def test_cli_watch_rewarms_redis_restarted_empty(cache_dir, tmp_path, watches):
    """Before: specs stayed "filesystem only", and 30 s after the restart Redis still lacked them."""
    specs = tmp_path / "specs"
    specs.mkdir()
    a, b = specs / "a.md", specs / "b.md"
    a.write_text(text_of("A"))
    b.write_text(text_of("B"))
    server = RedisServer().start()
    client = redis.Redis.from_url(server.unix_url)
    try:
        env = cli_env(server.unix_url, cache_dir, IR_GENERATOR="offline")
        w = watches(str(specs), "-v", "--debounce-ms", "50", env=env)
        w.expect(r"initial walk done: 2 specs: 2 in redis")
        assert ir_keys(client) == {f"ir_cache:{cache_key(p.read_text(), str(p))}" for p in (a, b)}

        server.stop()
        w.expect(r"INFO: Redis is down")
        a.write_text(text_of("A, edited while Redis was down"))
        w.expect(r"INFO: spec .*a\.md: IR generated and cached \(a_[0-9a-f]{8}, filesystem only\)")
        server.start()  # the same socket and port; no RDB: it comes back empty
        w.expect(r"INFO: Redis is back at .*: re-warmed 2 specs from the filesystem")
        wanted = {f"ir_cache:{cache_key(p.read_text(), str(p))}" for p in (a, b)}
        wait_for(lambda: wanted <= ir_keys(client), timeout=15, what="every spec back in Redis")
        time.sleep(0.5)
        code, output = w.stop(signal.SIGTERM)
    finally:
        client.close()
        server.stop()
    assert code == 0, output
    assert "Traceback" not in output
    assert len(re.findall(r"IR cache MISS for", output)) == 3, output  # a, b, then the edit of a: no more
    assert re.search(r"stopped: 2 specs known; 2 warmed, 3 generated", output), output


# -- Redis restarted empty, flushed by another client: in process ---------------------------------------
@pytest.fixture
async def watching():
    running: list[tuple[SpecWatcher, asyncio.Task]] = []

    async def start(cache: IRCache, dirs: list[Path], **options) -> SpecWatcher:
        options.setdefault("debounce_ms", 50)
        options.setdefault("redis_check_interval", INTERVAL)
        watcher = SpecWatcher(cache, dirs, **options)
        task = asyncio.create_task(watcher.run())
        running.append((watcher, task))
        await asyncio.wait_for(watcher.wait_idle(), 10)
        # the entry files the initial walk wrote raise events of their own: let them land too
        await asyncio.sleep(0.3)
        await asyncio.wait_for(watcher.wait_idle(), 10)
        assert not task.done(), task.exception() if task.done() else None
        return watcher

    yield start
    for watcher, task in running:
        watcher.stop()
        await asyncio.wait_for(task, 10)


async def until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def state(watcher: SpecWatcher, path: Path) -> SpecState | None:
    status = watcher.statuses.get(path.resolve())
    return status.state if status else None


async def test_watcher_rewarms_redis_restarted_empty(cache_dir, tmp_path, watching):
    specs = tmp_path / "specs"
    specs.mkdir()
    a, b = specs / "a.md", specs / "b.md"
    a.write_text(text_of("A"))
    b.write_text(text_of("B"))
    gen = CountingGenerator()
    server = RedisServer().start()
    client = redis.Redis.from_url(server.unix_url)
    try:
        async with IRCache(redis_url=server.unix_url, cache_dir=cache_dir, ttl=3600, generator=gen) as cache:
            watcher = await watching(cache, [specs])
            assert {state(watcher, a), state(watcher, b)} == {SpecState.IN_REDIS} and gen.calls == 2

            server.stop()
            await until(lambda: watcher.keeper.up is False, what="the keeper to see Redis down")
            edited = text_of("A, edited while Redis was down")
            a.write_text(edited)
            await until(lambda: watcher.statuses[a.resolve()].cache_key == cache_key(edited, str(a))
                        and state(watcher, a) is SpecState.FILESYSTEM_ONLY, what="the edit, on disk only")
            assert gen.calls == 3

            server.start()  # empty
            wanted = {f"ir_cache:{cache_key(p.read_text(), str(p))}" for p in (a, b)}
            await until(lambda: wanted <= ir_keys(client) and watcher.stats.rewarmed == 2
                        and {state(watcher, a), state(watcher, b)} == {SpecState.IN_REDIS}, what="both back in Redis")
            await asyncio.sleep(5 * INTERVAL)
            assert gen.calls == 3 and watcher.stats.generated == 3  # nothing generated twice
            assert watcher.stats.rewarmed == 2 and watcher.keeper.returns == 1  # and not again
    finally:
        client.close()
        server.stop()


async def test_keys_flushed_by_another_client_come_back_but_not_our_own_flush(
        redis_url, sync_redis, cache_dir, tmp_path, watching):
    specs = tmp_path / "specs"
    specs.mkdir()
    paths = [specs / f"{n}.md" for n in ("a", "b", "c")]
    for p in paths:
        p.write_text(text_of(p.stem))
    wanted = {f"ir_cache:{cache_key(p.read_text(), str(p))}" for p in paths}
    gen = CountingGenerator()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=gen) as cache:
        watcher = await watching(cache, [specs])
        sync_redis.set("session:1", "not ours")
        assert ir_keys(sync_redis) == wanted

        sync_redis.delete(*wanted)  # another client flushes the IR keys; Redis stays up
        await until(lambda: ir_keys(sync_redis) == wanted and watcher.stats.rewarmed == 3, what="the keys back")
        assert gen.calls == 3  # warmed from disk, not generated
        await until(lambda: all(state(watcher, p) is SpecState.IN_REDIS for p in paths), what="statuses")

        sync_redis.delete(next(iter(wanted)))  # one expired, say
        await until(lambda: ir_keys(sync_redis) == wanted and watcher.stats.rewarmed == 4, what="the key back")

        # a flush through this cache (the dashboard's F) is meant: Redis stays flushed
        await cache.clear_cache(redis=True, filesystem=False)
        await asyncio.sleep(10 * INTERVAL)
        assert ir_keys(sync_redis) == set() and watcher.stats.rewarmed == 4
        assert all(state(watcher, p) is SpecState.FILESYSTEM_ONLY for p in paths)
        assert sync_redis.get("session:1") == b"not ours"
        assert gen.calls == 3


def entry_files(cache_dir: Path) -> set[str]:
    return {p.stem for p in cache_dir.glob("*.json")}


def entry_keys(client: redis.Redis) -> set[str]:
    """The cache keys of the IR entries in Redis (not the hit counts beside them)."""
    return {k.removeprefix("ir_cache:") for k in ir_keys(client) if re.fullmatch(r"ir_cache:[^:]+_[0-9a-f]{8}", k)}


async def flush_both_tiers_from_another_process(redis_url: str, cache_dir: Path, n: int) -> None:
    """`ircache-tui flush --filesystem --yes`, the real CLI in its own process: another client."""
    done = await asyncio.to_thread(run_cli, "flush", "--filesystem", "--yes", env=cli_env(redis_url, cache_dir))
    assert done.returncode == 0 and done.stdout.strip() == f"flushed ALL IR entries: {n} Redis keys, {n} files", done


@pytest.mark.e2e
@pytest.mark.slow
async def test_specs_flushed_from_both_tiers_by_another_client_are_made_again_once(
        redis_url, sync_redis, cache_dir, tmp_path, watching):
    """Before: after `flush --filesystem` from another shell, the entry files' events (or a refresh,
    as the dashboard's) showed the specs missing, and the keeper's rounds never looked at a missing
    spec again: they stayed missing for good. Each order of the events and the rounds, in turn."""
    specs = tmp_path / "specs"
    specs.mkdir()
    paths = [specs / f"s{i}.md" for i in range(3)]
    for p in paths:
        p.write_text(text_of(p.stem))
    keys = {cache_key(p.read_text(), str(p)) for p in paths}
    gen = CountingGenerator()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=gen) as cache:
        watcher = await watching(cache, [specs], redis_check_interval=3600)  # rounds run by hand here
        keeper = watcher.keeper
        assert gen.calls == 3

        async def made_again(calls: int) -> None:
            await until(lambda: gen.calls == calls and entry_keys(sync_redis) == keys
                        and entry_files(cache_dir) == keys
                        and all(state(watcher, p) is SpecState.IN_REDIS for p in paths), what="every spec made again")
            for _ in range(3):  # and not again
                await keeper.round()
                await asyncio.wait_for(watcher.wait_idle(), 10)
            assert gen.calls == calls

        # 1. the files' events land first (the specs show missing), then two rounds
        await flush_both_tiers_from_another_process(redis_url, cache_dir, 3)
        await until(lambda: all(state(watcher, p) is SpecState.MISSING for p in paths), what="missing")
        await keeper.round()
        await keeper.round()
        await made_again(6)

        # 2. a round sees Redis without them before the files' events land, the next one after
        await flush_both_tiers_from_another_process(redis_url, cache_dir, 3)
        await keeper.round()
        await until(lambda: all(state(watcher, p) is SpecState.MISSING for p in paths), what="missing")
        await keeper.round()
        await made_again(9)

        # 3. the dashboard looks again (a refresh, after keyspace notifications) before the events land
        await flush_both_tiers_from_another_process(redis_url, cache_dir, 3)
        await watcher.refresh()
        assert all(state(watcher, p) is SpecState.MISSING for p in paths)
        await asyncio.sleep(0.3)  # the files' events, on missing specs
        await asyncio.wait_for(watcher.wait_idle(), 10)
        await keeper.round()
        await keeper.round()
        await made_again(12)

        # a flush of both tiers through this cache (the dashboard's F) is meant: it stays flushed
        await cache.clear_cache(redis=True, filesystem=True)
        await until(lambda: all(state(watcher, p) is SpecState.MISSING for p in paths), what="missing")
        for _ in range(3):
            await keeper.round()
            await asyncio.wait_for(watcher.wait_idle(), 10)
        assert gen.calls == 12 and entry_keys(sync_redis) == set() and entry_files(cache_dir) == set()


@pytest.mark.e2e
@pytest.mark.slow
def test_cli_watch_makes_again_what_another_client_flushed_from_both_tiers(
        redis_url, sync_redis, cache_dir, tmp_path, watches):
    """The report: `watch` running, `flush --filesystem --yes` from another shell; before, the
    specs stayed missing from both tiers for good. Each is generated again, once."""
    specs = tmp_path / "specs"
    specs.mkdir()
    paths = [specs / f"s{i}.md" for i in range(6)]
    for p in paths:
        p.write_text(text_of(p.stem))
    keys = {cache_key(p.read_text(), str(p)) for p in paths}
    env = cli_env(redis_url, cache_dir, IR_GENERATOR="offline")
    w = watches(str(specs), "-v", "--debounce-ms", "50", env=env)
    w.expect(r"initial walk done: 6 specs: 6 in redis")
    for _ in range(2):
        flushed = run_cli("flush", "--filesystem", "--yes", env=env)
        assert flushed.stdout.strip() == "flushed ALL IR entries: 6 Redis keys, 6 files", flushed
        wait_for(lambda: entry_keys(sync_redis) == keys and entry_files(cache_dir) == keys,
                 timeout=30, what="every spec in both tiers again")
    code, output = w.stop(signal.SIGTERM)
    assert code == 0, output
    assert "Traceback" not in output
    assert len(re.findall(r"IR cache MISS for", output)) == 18, output  # 6 at the start, 6 after each flush
    assert re.search(r"stopped: 6 specs known; 0 warmed, 18 generated, 0 errors", output), output


async def test_read_only_watcher_only_shows_what_redis_lost(redis_url, sync_redis, cache_dir, tmp_path, watching):
    specs = tmp_path / "specs"
    specs.mkdir()
    spec = specs / "a.md"
    spec.write_text(text_of("A"))
    key = f"ir_cache:{cache_key(spec.read_text(), str(spec))}"
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as rw:
        await rw.lookup(spec.read_text(), str(spec))
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, read_only=True, generator=CountingGenerator()) as ro:
        watcher = await watching(ro, [specs])
        assert state(watcher, spec) is SpecState.IN_REDIS
        sync_redis.delete(key)
        await until(lambda: state(watcher, spec) is SpecState.FILESYSTEM_ONLY, what="filesystem only")
        await asyncio.sleep(5 * INTERVAL)
        assert not sync_redis.exists(key) and watcher.stats.rewarmed == 0
        async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as rw:
            assert await rw.warm_key(key.split(":", 1)[1])  # someone else puts it back
        await until(lambda: state(watcher, spec) is SpecState.IN_REDIS, what="in Redis again")


async def test_a_spec_gone_from_both_tiers_is_generated_once(redis_url, sync_redis, cache_dir, tmp_path, watching):
    """When Redis comes back, a spec believed cached whose file is gone too goes through the
    usual check: generated once, into both tiers."""
    specs = tmp_path / "specs"
    specs.mkdir()
    spec = specs / "a.md"
    spec.write_text(text_of("A"))
    key = cache_key(spec.read_text(), str(spec))
    gen = CountingGenerator()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=gen) as cache:
        watcher = await watching(cache, [specs], redis_check_interval=3600)  # rounds run by hand here
        assert gen.calls == 1 and state(watcher, spec) is SpecState.IN_REDIS
        (cache_dir / f"{key}.json").unlink()
        sync_redis.delete(f"ir_cache:{key}")
        watcher.keeper.up = False  # as if Redis had been down: the round acts at once
        await watcher.keeper.round()  # (before the file's event: that takes a debounce step)
        await until(lambda: gen.calls == 2, what="the generation")
        await until(lambda: sync_redis.exists(f"ir_cache:{key}") and (cache_dir / f"{key}.json").exists(),
                    what="both tiers")
        await asyncio.wait_for(watcher.wait_idle(), 10)
        await watcher.keeper.round()
        await asyncio.wait_for(watcher.wait_idle(), 10)
        assert gen.calls == 2 and state(watcher, spec) is SpecState.IN_REDIS


# -- a spec renamed or edited while its IR is generated: in process, the generation held open ----------
@pytest.mark.parametrize("new_name", ["catalog.md", "sub/shop.md"], ids=["another-name", "same-name-elsewhere"])
async def test_a_spec_renamed_while_its_ir_is_generated(redis_url, cache_dir, tmp_path, sync_redis, ircache_logs,
                                                         new_name):
    """Before: the generation that landed after the rename was logged as "spec shop.md: IR generated
    and cached" (the old name, gone), and the deleted shop.md counted that IR as a stale entry."""
    gen = GatedGenerator()
    specs = tmp_path / "specs"
    specs.mkdir()
    spec, renamed = specs / "shop.md", specs / new_name
    renamed.parent.mkdir(exist_ok=True)
    spec.write_text(SPEC)
    old_key, new_key = cache_key(SPEC, str(spec)), cache_key(SPEC, str(renamed))
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=gen) as cache:
        watcher = SpecWatcher(cache, [specs], debounce_ms=50)
        task = asyncio.create_task(watcher.run())
        try:
            await until(lambda: state(watcher, spec) is SpecState.GENERATING and gen.calls == 1, what="generating")
            os.rename(spec, renamed)  # while the generator holds the text it read
            await until(lambda: state(watcher, spec) is SpecState.DELETED
                        and state(watcher, renamed) is SpecState.GENERATING, what="the rename seen")
            gen.gate.set()
            await until(lambda: state(watcher, renamed) is SpecState.IN_REDIS, what="the new name cached")
            await asyncio.wait_for(watcher.wait_idle(), 10)
            # the IR is cached under the key of the text that was generated, the new name under its own
            assert sync_redis.exists(f"ir_cache:{old_key}") and (cache_dir / f"{old_key}.json").exists()
            assert sync_redis.exists(f"ir_cache:{new_key}") and (cache_dir / f"{new_key}.json").exists()
            assert gen.calls == len({old_key, new_key})  # one run per key (the same name: one in all)
            # the counts: the new name's entry is current, the old name is no current spec
            await watcher.refresh()
            assert watcher.statuses[renamed.resolve()].stale == 0
            assert watcher.statuses[spec.resolve()].stale == 0 and state(watcher, spec) is SpecState.DELETED
            report = await watcher.stale_report()
            assert report.redis_stale == [] and report.files_stale == []
        finally:
            watcher.stop()
            await asyncio.wait_for(task, 10)
    lines = [r.getMessage() for r in ircache_logs.records if r.name == "ircache.watch"]
    said = [line for line in lines if f"{specs.resolve()}/shop.md " in line or f"{specs.resolve()}/shop.md:" in line]
    assert said == [f"spec {specs.resolve()}/shop.md: generating its IR ({old_key})",
                    f"spec {specs.resolve()}/shop.md deleted: its cache entries stay until their TTL runs out or a prune",
                    f"spec {specs.resolve()}/shop.md was renamed or deleted meanwhile: the IR generated and cached "
                    f"({old_key}, in redis) is that of the text it had"], lines
    assert not any("stale entr" in line for line in lines), lines


async def test_a_spec_edited_while_its_ir_is_generated(redis_url, cache_dir, tmp_path, sync_redis, ircache_logs):
    """The IR of the text read lands under its own key and is said to be the previous text's; the
    edit is generated next; the first IR is then an older version of the spec: one stale entry."""
    gen = GatedGenerator()
    specs = tmp_path / "specs"
    specs.mkdir()
    spec = specs / "shop.md"
    spec.write_text(SPEC)
    edited = SPEC + "\nEdited while generating.\n"
    old_key, new_key = cache_key(SPEC, str(spec)), cache_key(edited, str(spec))
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=gen) as cache:
        watcher = SpecWatcher(cache, [specs], debounce_ms=50)
        task = asyncio.create_task(watcher.run())
        try:
            await until(lambda: state(watcher, spec) is SpecState.GENERATING, what="generating")
            spec.write_text(edited)
            await until(lambda: watcher.statuses[spec.resolve()].cache_key == new_key, what="the edit read")
            gen.gate.set()
            await until(lambda: watcher.statuses[spec.resolve()].cache_key == new_key
                        and state(watcher, spec) is SpecState.IN_REDIS and gen.calls == 2, what="the edit cached")
            await asyncio.wait_for(watcher.wait_idle(), 10)
            await watcher.refresh()
            assert sync_redis.exists(f"ir_cache:{old_key}") and sync_redis.exists(f"ir_cache:{new_key}")
            assert watcher.statuses[spec.resolve()].stale == 1
        finally:
            watcher.stop()
            await asyncio.wait_for(task, 10)
    lines = [r.getMessage() for r in ircache_logs.records if r.name == "ircache.watch"]
    assert f"spec {spec.resolve()} changed meanwhile: the IR generated and cached ({old_key}, in redis) is that " \
           "of its previous text; the new text is checked next" in lines, lines
    assert not any(f"IR generated and cached ({old_key}" in line and "meanwhile" not in line for line in lines), lines


async def test_a_bad_name_never_stops_the_watcher_in_process(redis_url, cache_dir, tmp_path, watching, caplog):
    specs = tmp_path / "specs"
    specs.mkdir()
    caplog.set_level("INFO", logger="ircache")
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as cache:
        watcher = await watching(cache, [specs])
        for _ in range(3):
            (specs / fsname(b"\xff")).write_text("x")
            await asyncio.sleep(0.2)
        good = specs / "good.md"
        good.write_text(text_of("Good"))
        await until(lambda: state(watcher, good) is SpecState.IN_REDIS, what="the good spec")
        assert watcher.stats.restarts >= 1
        lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "\\xff" in r.getMessage()]
        assert len(lines) == 1, lines
        assert set(watcher.statuses) == {good.resolve()}  # a bad name is never a spec
