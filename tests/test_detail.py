"""The detail pane and the full view: a big entry opens without freezing, and the pane only ever shows the pick.

Over a real Redis and real files, in a small host App holding the real
DetailPane (the dashboard itself is being restructured to use its API).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
import tracemalloc
from datetime import datetime, timezone

import pytest
from textual.app import App, ComposeResult

from ircache_tui import IRCache, cache_key
from ircache_tui.cache import decoded
from ircache_tui.cache.decoded import DecodeAbandoned, decode_sliced, digest_sliced
from ircache_tui.cache.keys import spec_hash
from ircache_tui.fmt import human_bytes
from ircache_tui.ir.envelope import CorruptEntry, StoredEntry, decode_entry
from ircache_tui.ir.model import (
    APIModel, ApplicationIR, Attribute, BehaviorModel, DomainModel, Endpoint, Entity, Flow, Parameter, Relationship,
    ValidationModel, ValidationRule,
)
from ircache_tui.tui.picked import PickedEntry
from ircache_tui.tui.screens.detail import DetailScreen, JsonView
from ircache_tui.tui.widgets.detail_pane import HINT, DetailPane
from tests.support.generators import CountingGenerator
from tests.support.tui import static_text, until

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
HUGE_SPEC = "# Huge\n\nA spec whose IR is about 5 MB.\n"
HUGE_KEY = cache_key(HUGE_SPEC, "huge.md")
SMALL_SPEC = "# Small\n\nA spec with a small IR.\n"
SMALL_KEY = cache_key(SMALL_SPEC, "small.md")
ENTITIES, ENDPOINTS = 4100, 1000


def stored(ir: ApplicationIR, spec: str, name: str) -> bytes:
    return StoredEntry.create(ir, spec_name=name, spec_hash=spec_hash(spec), spec_path=f"{name}.md",
                              generator="offline", generated_at=WHEN).to_json_bytes()


def huge_ir(entities: int = ENTITIES, endpoints: int = ENDPOINTS) -> ApplicationIR:
    return ApplicationIR(
        name="Huge API",
        description="Many entities, each with attributes; façade ünïcode included",
        domain_model=DomainModel(entities=tuple(
            Entity(name=f"Entity{i}", description=f"The entity number {i}",
                   attributes=tuple(Attribute(name=f"attr_{j}", description=f"attribute {j} of entity {i}")
                                    for j in range(8)),
                   relationships=(Relationship(source_entity=f"Entity{i}", target_entity=f"Entity{i + 1}",
                                               type="one_to_many"),))
            for i in range(entities))),
        api_model=APIModel(endpoints=tuple(
            Endpoint(method="GET", path=f"/things/{i}", parameters=(Parameter(name="id", location="path"),))
            for i in range(endpoints))),
        behavior_model=BehaviorModel(flows=(Flow(name="checkout", steps=("pay", "ship")),)),
        validation_model=ValidationModel(rules=tuple(
            ValidationRule(entity=f"Entity{i}", attribute="attr_0", condition="not empty") for i in range(300))),
    )


@pytest.fixture(scope="module")
def huge():
    """The ~5 MB entry's bytes and what it must show: its pretty IR JSON and counts (the model is dropped)."""
    raw = stored(huge_ir(), HUGE_SPEC, "huge")
    entry = decode_entry(raw)
    expected = {
        "raw": raw,
        "pretty": entry.application_ir.model_dump_json(indent=2).encode(),
        "summary": entry.application_ir.summary(),
    }
    del entry
    gc.collect()
    assert len(raw) > 5_000_000, len(raw)
    return expected


SMALL = stored(ApplicationIR(name="Small API", domain_model=DomainModel(entities=(Entity(name="Thing"),))),
               SMALL_SPEC, "small")


@pytest.fixture
async def cache(redis_url, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as c:
        yield c


class Host(App[None]):
    """The smallest app around the pane: `enter` asks it for the full view, as the dashboard does;
    `x` is a key it answers at once (the test's probe of whether the app keeps answering)."""

    BINDINGS = [("enter", "open", "Open"), ("x", "answer", "Answer")]

    def __init__(self, cache: IRCache) -> None:
        super().__init__()
        self.cache = cache
        #: one per `x` answered: whether a load was then waiting on the thread decoding its entry
        self.answers: list[bool] = []

    def compose(self) -> ComposeResult:
        yield DetailPane(self.cache, id="detail")

    @property
    def pane(self) -> DetailPane:
        return self.query_one(DetailPane)

    def action_open(self) -> None:
        self.pane.open_full()

    def action_answer(self) -> None:
        self.answers.append(awaiting_a_decode())


def awaiting_a_decode() -> bool:
    """Some task is suspended in IRCache.read_entry_digest on the worker thread decoding the entry:
    read from each task's chain of awaited coroutines (a state, not a time)."""
    for task in asyncio.all_tasks():
        chain, coro = [], task.get_coro()
        while coro is not None and hasattr(coro, "cr_code"):
            chain.append(coro.cr_code)
            coro = coro.cr_await
        if any(outer is IRCache.read_entry_digest.__code__ and inner is asyncio.to_thread.__code__
               for outer, inner in zip(chain, chain[1:])):
            return True
    return False


async def press_x_until_shown(app: Host) -> None:
    """Press `x` each time the app has answered the last one, until the pane shows its load."""
    while app.pane.shown is None:
        asked = len(app.answers)
        app.simulate_key("x")
        while len(app.answers) == asked:
            await asyncio.sleep(0.001)


def words(text: str) -> str:
    return " ".join(text.split())


def pane_text(app: Host) -> str:
    return static_text(app, "#detail")


def picked(key: str, tier: str = "redis", name: str | None = None) -> PickedEntry:
    return PickedEntry(name or key.rsplit("_", 1)[0], key, tier)  # type: ignore[arg-type]


def json_view(app) -> JsonView:
    return app.screen.query_one(JsonView)


def json_shown(app) -> bool:
    """The full view is up and its JSON is in the view."""
    views = app.screen.query(JsonView) if isinstance(app.screen, DetailScreen) else []
    return bool(views) and views.first().lines is not None


# -- the test: a 5 MB entry opens without blocking the event loop ---------------------------
#: How many `x` presses the app must answer while a 5 MB entry is being decoded (in ~8 KiB slices, in
#: its thread: 28 to 43 seen on a loaded 2-core machine); a decode that holds the loop throughout lets
#: it answer none, one that holds the GIL in one piece 4 or 5. Counted, not timed: the time figure
#: (the longest gap in the loop, under 100 ms) is measured beside a one-piece decode in
#: benchmarks/bench_detail.py.
ANSWERED_WHILE_DECODING = 10


async def test_a_5mb_entry_opens_while_the_app_keeps_answering_keys(cache, sync_redis, huge):
    sync_redis.set(f"ir_cache:{HUGE_KEY}", huge["raw"])
    app = Host(cache)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        app.pane.show(picked(HUGE_KEY))
        text = pane_text(app)  # at once: the pick's title, not yet its entry
        assert HUGE_KEY in text and "loading" in text
        await press_x_until_shown(app)
        answered = sum(app.answers)
        summary = words(pane_text(app))
        assert f"name Huge API entities {ENTITIES} endpoints {ENDPOINTS} flows 1 rules 300" in summary
        assert f"{human_bytes(len(huge['raw']))} entry" in summary and "MiB" in summary
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), what="the full view")
        assert f"entities {ENTITIES}" in words(static_text(app.screen, "#detail-summary"))  # at once
        await until(pilot, lambda: json_shown(app), what="the JSON")
        await pilot.pause(0.1)
        top = json_view(app).visible_text()
        await pilot.press("end")  # the view has focus; the end is one key away
        await pilot.pause(0.2)
        bottom = [line for line in json_view(app).visible_text() if line]
        print(f"\n{answered} of {len(app.answers)} presses answered while a {len(huge['raw']) / 2**20:.1f} MiB "
              "entry was being decoded")
        assert answered >= ANSWERED_WHILE_DECODING, app.answers
        assert top[:3] == ["{", '  "name": "Huge API",', '  "description": "Many entities, each with attributes; '
                                                             'façade ünïcode included",']
        assert bottom[-4:] == ['      "name": ""', "    }", "  }", "}"]
        assert json_view(app).lines.data == huge["pretty"]  # all of it, as model_dump_json(indent=2) writes it


def _one_piece_digest(raw, expect_hash8=None, *, stop=None):
    """digest_sliced's answer, from one decode_entry call (pydantic holds the GIL throughout)."""
    return decoded.EntryDigest(decode_entry(raw, expect_hash8), len(raw))


@pytest.mark.parametrize("blocking", ["on the loop", "in one piece in its thread"])
async def test_the_answer_count_sees_a_decode_that_blocks(cache, sync_redis, huge, monkeypatch, blocking):
    """The count above can fail: decoded on the loop, or in its thread in one piece, the same entry
    leaves the app answering fewer presses than the test asks for."""
    if blocking == "on the loop":
        monkeypatch.setattr(decoded, "SLICED_MIN", 10**12)  # every entry decoded in one piece, on the loop
    else:
        monkeypatch.setattr(decoded, "digest_sliced", _one_piece_digest)
    sync_redis.set(f"ir_cache:{HUGE_KEY}", huge["raw"])
    app = Host(cache)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        app.pane.show(picked(HUGE_KEY))
        await press_x_until_shown(app)
        assert "Huge API" in pane_text(app)  # the load did land
    print(f"\n{blocking}: {sum(app.answers)} of {len(app.answers)} presses answered while decoding")
    assert len(app.answers) >= 1 and sum(app.answers) < ANSWERED_WHILE_DECODING, app.answers


@pytest.mark.slow
async def test_opening_a_5mb_entry_takes_a_few_times_its_size_in_memory(cache, sync_redis, huge):
    size = len(huge["raw"])
    sync_redis.set(f"ir_cache:{HUGE_KEY}", huge["raw"])
    app = Host(cache)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            app.pane.show(picked(HUGE_KEY))
            await until(pilot, lambda: app.pane.shown is not None, timeout=60, what="the summary")
            app.pane.open_full()
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), timeout=60, what="the full view")
            await until(pilot, lambda: json_shown(app), timeout=60, what="the JSON")
            await pilot.press("end")
            await pilot.pause(0.2)
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    print(f"\npeak {(peak - base) / 2**20:.1f} MiB ({(peak - base) / size:.1f}× the entry), "
          f"held while open {(current - base) / 2**20:.1f} MiB ({(current - base) / size:.1f}×)")
    # The whole model alone would be ~9× the entry (plus its JSON): a few times the entry is the bound.
    assert peak - base < 6 * size
    assert current - base < 4 * size


# -- the pane shows the pick, or nothing -------------------------------------------------------------------
async def test_the_pane_never_shows_another_key(cache, sync_redis, huge):
    sync_redis.set(f"ir_cache:{HUGE_KEY}", huge["raw"])
    sync_redis.set(f"ir_cache:{SMALL_KEY}", SMALL)
    app = Host(cache)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.pane
        seen: list[str] = []
        pane.show(picked(HUGE_KEY))  # slow: ~5 MB
        pane.show(picked(SMALL_KEY))  # at once after it
        assert HUGE_KEY not in pane_text(app) and SMALL_KEY in pane_text(app)
        stale = DetailPane.Loaded(pane._token - 1, picked(HUGE_KEY), f"{HUGE_KEY} (Redis)",
                             await cache.read_entry_digest(HUGE_KEY))  # A's load, landing late
        pane.post_message(stale)
        deadline = time.monotonic() + 2.0  # past when A's load would have finished
        while time.monotonic() < deadline:
            seen.append(pane_text(app))
            await pilot.pause(0.05)
        assert pane.shown is not None and pane.shown.picked == picked(SMALL_KEY)
        assert all(HUGE_KEY not in text and "Huge API" not in text for text in seen)
        assert "Small API" in seen[-1] and SMALL_KEY in seen[-1]
        # A result for the current key but from an earlier show() is dropped too.
        pane.post_message(DetailPane.Loaded(pane._token - 1, picked(SMALL_KEY), "from an earlier load", None, "old"))
        await pilot.pause(0.2)
        assert "from an earlier load" not in pane_text(app)
        pane.show(None)
        assert pane_text(app).strip() == HINT and pane.picked is None  # at once
        pane.post_message(DetailPane.Loaded(pane._token, picked(SMALL_KEY), SMALL_KEY, None, "late"))
        await pilot.pause(0.2)
        assert pane_text(app).strip() == HINT


async def test_enter_before_the_load_lands_opens_that_entry_when_it_does(cache, sync_redis, huge):
    sync_redis.set(f"ir_cache:{HUGE_KEY}", huge["raw"])
    sync_redis.set(f"ir_cache:{SMALL_KEY}", SMALL)
    app = Host(cache)
    async with app.run_test(size=(120, 40)) as pilot:
        app.pane.show(picked(HUGE_KEY))
        app.pane.open_full()  # what enter does, before the ~5 MB load can have landed
        assert not isinstance(app.screen, DetailScreen)
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), what="the full view")
        assert HUGE_KEY in static_text(app.screen, "#detail-title")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DetailScreen))
        # An enter for a pick that is then left is not carried over to the next pick.
        app.pane.show(picked(SMALL_KEY))
        app.pane.show(picked(HUGE_KEY))
        app.pane.open_full()
        app.pane.show(picked(SMALL_KEY))
        await until(pilot, lambda: app.pane.shown is not None, what="the small entry")
        await pilot.pause(1.0)  # past when the big one would have landed
        assert not isinstance(app.screen, DetailScreen)
        await pilot.press("enter")  # loaded: opens at once
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert SMALL_KEY in static_text(app.screen, "#detail-title")
        await until(pilot, lambda: json_shown(app))
        assert '"name": "Small API"' in json_view(app).content
        assert "\n".join(json_view(app).visible_text()).startswith('{\n  "name": "Small API",')


async def test_nothing_picked_and_enter_says_so(cache):
    app = Host(cache)
    async with app.run_test(size=(120, 40)) as pilot:
        assert pane_text(app).strip() == HINT
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, DetailScreen)
        assert any("Nothing selected" in str(n.message) for n in app._notifications)


# -- errors --------------------------------------------------------------------------------------------------
async def test_corrupt_missing_and_wrong_type_entries_say_what_they_are(cache, sync_redis):
    broken, gone, hashed, junk = "broken_0a1b2c3d", "gone_0a1b2c3d", "hashed_0a1b2c3d", "junk_0a1b2c3d"
    sync_redis.set(f"ir_cache:{broken}", b'{"schema_version":1,not json')  # ours, broken past its head
    sync_redis.set(f"ir_cache:{junk}", b"{not json")  # another tool's string
    sync_redis.hset(f"ir_cache:{hashed}", mapping={"application_ir": "{}", "spec_name": "hashed"})
    app = Host(cache)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.pane
        pane.show(picked(broken))
        await until(pilot, lambda: pane.shown is not None)
        assert "corrupt entry: not JSON" in pane_text(app) and broken in pane_text(app)
        pane.open_full()
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert "corrupt entry: not JSON" in static_text(app.screen, "#detail-summary")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DetailScreen))

        pane.show(picked(gone))
        await until(pilot, lambda: pane.shown is not None)
        assert pane_text(app).splitlines()[:2] == [f"{gone} (Redis)", "not cached"]

        pane.show(picked(hashed))
        await until(pilot, lambda: pane.shown is not None)
        text = pane_text(app)
        assert "holds a hash, list, set or other non-string value, not an IR entry (another tool's key?)" in text
        assert "WRONGTYPE" not in text

        pane.show(picked(junk))
        await until(pilot, lambda: pane.shown is not None)
        assert "holds the string '{not json', not an IR entry (another tool's key?)" in pane_text(app)
    assert sync_redis.type(f"ir_cache:{hashed}") == b"hash"  # shown, not touched
    assert sync_redis.get(f"ir_cache:{junk}") == b"{not json"


async def test_a_spec_reads_redis_then_the_filesystem(cache, sync_redis, cache_dir):
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / f"{SMALL_KEY}.json").write_bytes(SMALL)
    app = Host(cache)
    async with app.run_test(size=(120, 40)) as pilot:
        spec = PickedEntry("small", SMALL_KEY, "spec")
        app.pane.show(spec)
        await until(pilot, lambda: app.pane.shown is not None)
        assert pane_text(app).startswith(f"{SMALL_KEY} (filesystem)") and "Small API" in pane_text(app)
        sync_redis.set(f"ir_cache:{SMALL_KEY}", stored(ApplicationIR(name="Small API, in Redis"), SMALL_SPEC, "small"))
        app.pane.show(spec)
        await until(pilot, lambda: "in Redis" in pane_text(app))
        assert pane_text(app).startswith(f"{SMALL_KEY} (Redis)")


async def test_redis_down_says_so_without_its_password_and_a_spec_falls_back_to_its_file(cache_dir):
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / f"{SMALL_KEY}.json").write_bytes(SMALL)
    down = "redis://:hunter2-secret@127.0.0.1:1/0"  # nothing listens on port 1
    async with IRCache(redis_url=down, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as cache:
        app = Host(cache)
        async with app.run_test(size=(120, 40)) as pilot:
            app.pane.show(picked(SMALL_KEY))
            await until(pilot, lambda: app.pane.shown is not None)
            text = pane_text(app)
            assert text.startswith(f"{SMALL_KEY} (Redis)") and "Redis unavailable" in words(text)
            assert "hunter2-secret" not in text
            app.pane.show(PickedEntry("small", SMALL_KEY, "spec"))
            await until(pilot, lambda: app.pane.shown is not None)
            assert pane_text(app).startswith(f"{SMALL_KEY} (filesystem)") and "Small API" in pane_text(app)


# -- slicing: the same answer as decoding in one piece ---------------------------------------------------------
def _reason(decode, raw: bytes, expect: str | None = None) -> str:
    try:
        decode(raw, expect)
    except CorruptEntry as exc:
        return exc.reason
    return "ok"


def _corruptions(raw: bytes) -> list[bytes]:
    data = json.loads(raw)
    ir = data["application_ir"]
    ir["domain_model"]["entities"][3000]["name"] = 5
    ir["domain_model"]["entities"][10]["attributes"][0]["data_type"] = "blob"
    ir["api_model"]["endpoints"][999]["method"] = None
    only_ir = json.dumps(data).encode()  # errors in two lists, and one in a field validated after them:
    ir["infrastructure_model"]["database"]["type"] = 5  # the reason names the first in validation order
    after_lists = json.dumps(data).encode()
    data["spec_path"] = 3
    first = json.dumps(data).encode()
    data["schema_version"] = 2
    return [
        only_ir,
        after_lists,
        first,  # and one in the envelope, validated first
        json.dumps(data).encode(),  # another schema version explains the rest
        raw[:-10],  # cut short: not JSON
        raw.replace(b'"name":"Entity7"', b'"name":NaN'),  # JSON to the stdlib, a float to pydantic
        b"[" + raw + b"]",  # not an object
    ]


@pytest.mark.slow
def test_sliced_decoding_gives_what_decoding_in_one_piece_gives(huge):
    raw, expect = huge["raw"], HUGE_KEY[-8:]
    whole = decode_entry(raw, expect)
    assert decode_sliced(raw, expect) == whole
    digest = digest_sliced(raw, expect)
    assert digest.pretty == huge["pretty"] and digest.summary() == huge["summary"] and digest.size == len(raw)
    assert digest.head.application_ir.domain_model.entities == ()  # the digest never holds the lists
    indented = json.dumps(json.loads(raw), indent=1).encode()  # stored with whitespace between tokens
    assert decode_sliced(indented, expect) == whole
    for bad in [*_corruptions(raw), raw]:
        hash8 = "deadbeef" if bad is raw else expect
        reason = _reason(decode_entry, bad, hash8)
        assert reason != "ok"
        assert _reason(decode_sliced, bad, hash8) == reason
        assert _reason(digest_sliced, bad, hash8) == reason


def test_a_sliced_decode_stops_when_asked(huge):
    with pytest.raises(DecodeAbandoned):
        decode_sliced(huge["raw"], stop=lambda: True)


async def test_read_entry_of_a_big_entry_equals_the_one_piece_decode_and_is_remembered(cache, sync_redis):
    raw = stored(huge_ir(300, 50), SMALL_SPEC, "medium")  # between SLICED_MIN and the memo's byte limit
    key = cache_key(SMALL_SPEC, "medium.md")
    assert decoded.SLICED_MIN <= len(raw) <= cache.decoded.max_bytes
    sync_redis.set(f"ir_cache:{key}", raw)
    first = await cache.read_entry(key)
    assert first == decode_entry(raw)
    assert await cache.read_entry(key) is first and cache.decoded.reused == 1
    digest = await cache.read_entry_digest(key)
    assert digest.pretty == first.application_ir.model_dump_json(indent=2).encode() and digest.size == len(raw)
