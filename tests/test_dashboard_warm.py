"""The dashboard's `w`: it asks first (WarmScreen), copies only by default, and with spec dirs can
also generate the missing specs directly or in one Message Batch, through the real SDK against the
loopback Messages API (tests/support/messages_batches.py), over a real Redis and cache dir."""

from __future__ import annotations

from pathlib import Path

from ircache_tui.cache.batch_record import BATCH_DIR
from ircache_tui.cache.ircache import IRCache
from ircache_tui.cache.keys import CacheKey
from ircache_tui.ir.generators.offline import OfflineGenerator
from ircache_tui.tui.screens.warm import WarmScreen
from ircache_tui.tui.toggles import RadioChoice
from ircache_tui.tui.widgets.work_bar import WorkBar
from tests.support.messages_batches import AnsweringAPI, offline_responder
from tests.support.tui import static_text, until
from tests.test_batch_warm import KEY, cache_over, write_specs
from tests.test_tui import make_app


def key_of(path: Path) -> str:
    return f"ir_cache:{CacheKey.for_spec(path.read_text(), str(path))[0]}"


def said(app) -> list[str]:
    return [n.message for n in app._notifications]


async def open_warm(pilot, app) -> WarmScreen:
    await until(pilot, lambda: app.first_page_shown, what="first page")
    await pilot.press("w")
    await until(pilot, lambda: isinstance(app.screen, WarmScreen), what="warm asks first")
    return app.screen


async def choose(pilot, screen: WarmScreen, mode: str) -> None:
    """Pick a mode by the keyboard (down to it, enter), then confirm with y."""
    order = ["warm-copy", "warm-now", "warm-batch"]
    for _ in range(order.index(mode)):
        await pilot.press("down")
    await pilot.press("enter")
    await until(pilot, lambda: screen.query_one(f"#{mode}", RadioChoice).value, what=f"{mode} chosen")
    await pilot.press("y")


async def test_batch_choice_generates_the_missing_specs_in_one_batch(redis_url, sync_redis, cache_dir, tmp_path):
    paths = write_specs(tmp_path / "specs", 3)
    with AnsweringAPI(KEY, responder=offline_responder()) as api:
        async with cache_over(api, redis_url, cache_dir) as cache:
            await cache.get_application_ir(paths[0].read_text(), str(paths[0]))  # one already cached
            direct = len(api.requests)
            app = make_app(cache, spec_dirs=[tmp_path / "specs"], generate_on_watch=False)
            async with app.run_test(size=(120, 36)) as pilot:
                screen = await open_warm(pilot, app)
                counts = static_text(app, "#warm-counts")
                assert "1 entry file" in counts and "3 specs in" in counts, counts
                assert not screen.query_one("#warm-batch", RadioChoice).disabled
                await choose(pilot, screen, "warm-batch")
                await until(pilot, lambda: any("succeeded" in t for t in said(app)), what="warm's notification")
                assert not app.query_one(WorkBar).has_class("-active")  # gone once the warm is done
    assert len(api.batch_creates) == 1 and len(api.batch_requests) == 2  # only the two missing specs
    assert len(api.requests) == direct  # nothing generated directly
    assert all(sync_redis.exists(key_of(p)) for p in paths)
    text = next(t for t in said(app) if "succeeded" in t)
    assert f"batch {api.batch_creates[0]}: 2 succeeded" in text, text
    assert "1 in Redis" in text and "generated 2" in text and "failed" not in text, text
    assert not list((cache_dir / BATCH_DIR).glob("*.json"))  # collected: no record left


async def test_now_choice_generates_directly(redis_url, sync_redis, cache_dir, tmp_path):
    paths = write_specs(tmp_path / "specs", 2)
    with AnsweringAPI(KEY, responder=offline_responder()) as api:
        async with cache_over(api, redis_url, cache_dir) as cache:
            app = make_app(cache, spec_dirs=[tmp_path / "specs"], generate_on_watch=False)
            async with app.run_test(size=(120, 36)) as pilot:
                await choose(pilot, await open_warm(pilot, app), "warm-now")
                await until(pilot, lambda: any("generated 2" in t for t in said(app)), what="warm's notification")
    assert api.batch_creates == [] and len(api.requests) == 2
    assert all(sync_redis.exists(key_of(p)) for p in paths)


async def test_copy_only_is_the_default_and_generates_nothing(redis_url, sync_redis, cache_dir, tmp_path):
    paths = write_specs(tmp_path / "specs", 2)
    elsewhere = write_specs(tmp_path / "other", 1, ["elsewhere.md"])[0]  # not in the spec dirs: no walk sees it
    with AnsweringAPI(KEY, responder=offline_responder()) as api:
        async with cache_over(api, redis_url, cache_dir) as cache:
            await cache.get_application_ir(elsewhere.read_text(), str(elsewhere))
            sync_redis.delete(key_of(elsewhere))  # on disk only: the copy brings it back
            direct = len(api.requests)
            app = make_app(cache, spec_dirs=[tmp_path / "specs"], generate_on_watch=False)
            async with app.run_test(size=(120, 36)) as pilot:
                screen = await open_warm(pilot, app)
                assert screen.query_one("#warm-copy", RadioChoice).value  # chosen before anything is pressed
                await pilot.press("y")
                await until(pilot, lambda: any("Warmed 1 entry" in t for t in said(app)), what="warm's notification")
    assert sync_redis.exists(key_of(elsewhere))
    assert not any(sync_redis.exists(key_of(p)) for p in paths)
    assert api.batch_creates == [] and len(api.requests) == direct


async def test_escape_cancels_and_warms_nothing(redis_url, sync_redis, cache_dir, tmp_path):
    path = write_specs(tmp_path / "specs", 1)[0]
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=OfflineGenerator()) as cache:
        await cache.get_application_ir(path.read_text(), str(path))
        sync_redis.delete(key_of(path))
        app = make_app(cache)  # no spec dirs: nothing else looks the spec up
        async with app.run_test(size=(120, 36)) as pilot:
            await open_warm(pilot, app)
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, WarmScreen), what="dialog closed")
            await pilot.pause(0.3)
            assert not any("Warmed" in t for t in said(app))
    assert not sync_redis.exists(key_of(path))


async def test_offline_generator_shows_the_batch_choice_disabled_with_why(redis_url, cache_dir, tmp_path):
    write_specs(tmp_path / "specs", 1)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=OfflineGenerator()) as cache:
        app = make_app(cache, spec_dirs=[tmp_path / "specs"], generate_on_watch=False)
        async with app.run_test(size=(120, 36)) as pilot:
            screen = await open_warm(pilot, app)
            batch = screen.query_one("#warm-batch", RadioChoice)
            assert batch.disabled
            assert "offline generator: no batch API" in static_text(app, "#warm-no-batch")
            assert not screen.query_one("#warm-now", RadioChoice).disabled


async def test_without_spec_dirs_only_copying_is_offered(redis_url, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=OfflineGenerator()) as cache:
        app = make_app(cache)
        async with app.run_test(size=(120, 36)) as pilot:
            screen = await open_warm(pilot, app)
            assert [b.id for b in screen.query(RadioChoice)] == ["warm-copy"]
            assert "no spec dirs" in static_text(app, "#warm-counts")


async def test_quitting_while_a_batch_polls_leaves_it_to_the_next_warm(redis_url, sync_redis, cache_dir, tmp_path):
    paths = write_specs(tmp_path / "specs", 2)
    with AnsweringAPI(KEY, responder=offline_responder(), batch_delay=None) as api:  # ends when told
        async with cache_over(api, redis_url, cache_dir) as cache:
            app = make_app(cache, spec_dirs=[tmp_path / "specs"], generate_on_watch=False)
            async with app.run_test(size=(120, 36)) as pilot:
                await choose(pilot, await open_warm(pilot, app), "warm-batch")
                await until(pilot, lambda: api.batch_creates and app.query_one(WorkBar).has_class("-active"),
                            what="the batch polled")
                assert f"batch {api.batch_creates[0]} 0/2" in static_text(app, "#work-label")
                await pilot.press("w")  # not a second warm over it
                await until(pilot, lambda: any("already running" in t for t in said(app)), what="refused")
                assert not isinstance(app.screen, WarmScreen)
            assert app.exit_note is not None and api.batch_creates[0] in app.exit_note
            assert "the next warm collects it" in app.exit_note
            assert len(list((cache_dir / BATCH_DIR).glob("*.json"))) == 1  # the record stays
            api.end_batches()
            resumed = await cache.warm_batch([(p.read_text(), str(p)) for p in paths])
    assert resumed.resumed == (api.batch_creates[0],) and len(api.batch_creates) == 1
    assert all(sync_redis.exists(key_of(p)) for p in paths)
