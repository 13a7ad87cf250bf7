"""Wording people read: the dashboard's log lines as sentences, counts in agreement with
their nouns, a `stats` that fits a screen, and `get` on a path that is not there.

Real parts throughout: records made by the real flush and prune against the real Redis,
the real dashboard, the installed CLI as a subprocess.
"""

from __future__ import annotations

import json
import re
import logging
from pathlib import Path

import pytest

from ircache_tui import IRCache, cache_key, redact
from ircache_tui.cache.results import DeleteResult
from ircache_tui.fmt import human_count, plural
from ircache_tui.specs import discover_specs, find_stale, prune, read_spec
from ircache_tui.tui.logbridge import CLEARED_FILESYSTEM, CLEARED_REDIS, PRUNED, render, spec_of_pattern
from tests.support.cli import cli_env, run_cli
from tests.support.foreign import entry_value
from tests.support.generators import CountingGenerator

# one entity, endpoint, flow and rule: every noun of `get`'s summary in the singular
ONE_OF_EACH = """# Tiny API

Keeps one kind of thing.

## Entities

### Item
- id: uuid (primary key)

## Endpoints
- GET /items - List items

## Flows

### Restock
Trigger: the nightly job
1. Count the items
2. Order what is missing

## Validation
- Item.id: must be unique
"""


@pytest.fixture
async def cache(redis_url, cache_dir, specs):
    """Both example specs cached in both tiers."""
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as c:
        for path in sorted(specs.glob("*.md")):
            await c.get_application_ir(path.read_text(), str(path))
        yield c


@pytest.fixture
def env(redis_url, cache_dir):
    return cli_env(redis_url, cache_dir)


@pytest.fixture(params=["as logged", "redacted"])
def ircache_logs(request, caplog):
    """The `ircache` records, in the two forms a handler can get them: with their arguments
    (no RedactingFilter on the logger), or formatted and scrubbed by the RedactingFilter that
    the dashboard and the command line install (msg = the text, args = ())."""
    logger = logging.getLogger("ircache")
    saved = list(logger.filters)
    logger.filters[:] = [f for f in saved if not isinstance(f, redact.RedactingFilter)]
    if request.param == "redacted":
        redact.install("ircache")
    caplog.set_level(logging.INFO, logger="ircache")
    caplog.form = request.param
    try:
        yield caplog
    finally:
        logger.filters[:] = saved


def logged(caplog, fmt: str) -> list[logging.LogRecord]:
    """The records of the log call `fmt`, whichever form they are in."""
    found = [r for r in caplog.records if r.msg == fmt or r.msg.startswith(fmt.removesuffix("%s"))]
    assert all(bool(r.args) == (caplog.form == "as logged") for r in found)
    return found


# -- plural ----------------------------------------------------------------------------------
def test_plural_agrees_and_separates_thousands():
    assert plural(1, "entry", "entries") == "1 entry"
    assert plural(2, "entry", "entries") == "2 entries"
    assert plural(0, "flow") == "0 flows"
    assert plural(1, "flow") == "1 flow"
    assert plural(5003, "key") == "5,003 keys"
    assert plural(999, "key") == "999 keys"
    assert plural(1_000_000, "Redis key") == "1,000,000 Redis keys"
    assert human_count(1000) == "1,000" and human_count(12) == "12"


# -- the log pane's renderer, on records the real code paths made ----------------------------
async def test_flush_records_render_as_sentences_and_stay_verbatim_in_the_log(cache, cache_dir, specs, ircache_logs):
    await cache.clear_cache()  # both specs, both tiers
    petstore = specs / "petstore-spec.md"
    await cache.get_application_ir(petstore.read_text(), str(petstore))
    await cache.clear_cache(spec_name="petstore-spec")

    redis_records = logged(ircache_logs, CLEARED_REDIS)
    file_records = logged(ircache_logs, CLEARED_FILESYSTEM)
    assert [render(r) for r in redis_records] == [
        "Cleared 2 IR keys from Redis",
        "Cleared 1 IR key of petstore-spec from Redis",
    ]
    assert [render(r) for r in file_records] == [
        f"Cleared 2 entry files from {cache_dir}",
        f"Cleared 1 entry file of petstore-spec from {cache_dir}",
    ]
    # the log itself keeps the seed's lines, which pipelines grep
    assert redis_records[1].getMessage() == (
        "Cleared IR cache from Redis {'pattern': 'ir_cache:petstore-spec_" + "[0-9a-f]" * 8 + "', 'deleted': 1}"
    )
    assert file_records[0].getMessage() == (
        f"Cleared IR cache from filesystem {{'directory': '{cache_dir}', 'spec': None, 'deleted': 2}}"
    )


async def test_large_flush_counts_have_thousands_separators(cache, sync_redis, ircache_logs):
    with sync_redis.pipeline(transaction=False) as pipe:
        for i in range(1200):
            pipe.set(f"ir_cache:bulk-{i}_0a1b2c3d", entry_value())
        pipe.execute()
    await cache.clear_cache(filesystem=False)
    (record,) = logged(ircache_logs, CLEARED_REDIS)
    assert render(record) == "Cleared 1,202 IR keys from Redis"  # the 1,200 and the two examples


async def test_prune_record_renders_as_a_sentence(cache, specs, ircache_logs):
    petstore = specs / "petstore-spec.md"
    petstore.write_text(petstore.read_text() + "\n- GET /pets/search - Search pets\n")
    await cache.get_application_ir(petstore.read_text(), str(petstore))  # the old version is now stale
    report = await find_stale(cache, discover_specs([specs]))
    assert await prune(cache, report) == DeleteResult(1, 1)

    (record,) = logged(ircache_logs, PRUNED)
    assert record.getMessage() == "Pruned stale IR entries {'redis': 1, 'filesystem': 1}"
    assert render(record) == "Pruned 1 Redis key and 1 file"

    report = await find_stale(cache, discover_specs([specs]))  # nothing stale is left
    assert await prune(cache, report) == DeleteResult(0, 0)
    assert render(logged(ircache_logs, PRUNED)[-1]) == "Pruned 0 Redis keys and 0 files"


async def test_flush_under_a_prefix_with_colons(redis_url, tmp_path, ircache_logs):
    spec = tmp_path / "v1:tiny.md"  # a spec name may hold a colon too
    spec.write_text(ONE_OF_EACH)
    async with IRCache(redis_url=redis_url, cache_dir=tmp_path / "ir", ttl=3600, generator=CountingGenerator(),
                       prefix="team:ir") as c:
        await c.get_application_ir(spec.read_text(), str(spec))
        await c.clear_cache(spec_name="v1:tiny", filesystem=False)
    (record,) = logged(ircache_logs, CLEARED_REDIS)
    assert render(record, prefix="team:ir") == "Cleared 1 IR key of v1:tiny from Redis"
    # without the prefix the name is taken after the last colon: right for colon-free names
    assert render(record) == "Cleared 1 IR key of tiny from Redis"


def test_spec_of_pattern_reads_back_what_match_pattern_built():
    from ircache_tui.cache.keys import KeySpace

    keys = KeySpace("ir_cache")
    assert spec_of_pattern(keys.match_pattern()) == ""
    assert spec_of_pattern(keys.match_pattern("petstore-spec")) == "petstore-spec"
    assert spec_of_pattern(keys.match_pattern("odd[name]*?^")) == "odd[name]*?^"  # glob-escaped on the way in
    assert spec_of_pattern(keys.match_pattern("*")) == "*"  # a spec literally named `*` is not "every spec"
    assert spec_of_pattern("ir_cache:*") is None  # not a pattern of ours


async def test_sentences_pass_through_unchanged(cache, specs, ircache_logs):
    petstore = specs / "petstore-spec.md"
    await cache.get_application_ir(petstore.read_text(), str(petstore))
    (hit,) = [r for r in ircache_logs.records if r.msg.startswith("IR cache HIT (Redis)")]
    assert render(hit) == hit.getMessage() == "IR cache HIT (Redis) for petstore-spec"
    # a known format string with arguments of another shape is shown as logged, not dropped
    odd = logging.LogRecord("ircache", logging.INFO, __file__, 1, CLEARED_REDIS, ("everything",), None)
    assert render(odd) == "Cleared IR cache from Redis everything"
    odd = logging.LogRecord("ircache", logging.INFO, __file__, 1, PRUNED, ({"redis": 1},), None)
    assert render(odd) == "Pruned stale IR entries {'redis': 1}"


async def test_dashboard_log_pane_shows_the_sentences_scrubbed(redis_url, tmp_path, specs):
    from ircache_tui.tui.app import IRCacheApp
    from ircache_tui.tui.services import Services
    from ircache_tui.tui.widgets.log_pane import LogPane
    from tests.support.tui import until

    # a directory name that looks like an API key: the pane must not show it
    cache_dir = tmp_path / "sk-ant-api03-abcDEF123" / "ir"
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as cache:
        for path in sorted(specs.glob("*.md")):
            await cache.get_application_ir(path.read_text(), str(path))
        app = IRCacheApp(Services(cache=cache, watch=False))

        def pane() -> str:
            return "\n".join(line.text for line in app.query_one(LogPane).lines)

        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: "Dashboard ready" in pane(), what="the dashboard")
            # the flush the F key runs; its records reach the pane through the app's own log handler
            await cache.clear_cache(spec_name="petstore-spec")
            await cache.clear_cache()
            await until(pilot, lambda: "Cleared 1 entry file from" in pane(), what="the flush's lines")
            text = pane()
    assert "Cleared 1 IR key of petstore-spec from Redis" in text
    assert f"Cleared 1 entry file of petstore-spec from {tmp_path}/sk-ant-***/ir" in text
    assert "Cleared 1 IR key from Redis" in text
    assert "{'pattern'" not in text and "'deleted'" not in text and "abcDEF123" not in text


# -- stats -----------------------------------------------------------------------------------
@pytest.mark.e2e
def test_stats_lists_the_ten_biggest_specs_and_says_how_many_more(env, sync_redis):
    for i in range(50):  # api-49 is the biggest
        sync_redis.set(f"ir_cache:api-{i:02d}_0a1b2c3d", entry_value(200 * i))
    sync_redis.set("ir_cache:api-49_0a1b2c3e", entry_value())  # a second key of the biggest spec
    out = run_cli("stats", env=env)
    assert out.returncode == 0, out.stderr
    (line,) = [l for l in out.stdout.splitlines() if l.startswith("  specs ")]
    shown = re.findall(r"(api-\d\d) \((\d+) keys?, ([^)]+)\)", line)
    assert [name for name, _, _ in shown] == [f"api-{i:02d}" for i in range(49, 39, -1)]
    assert shown[0][1] == "2" and all(keys == "1" for _, keys, _ in shown[1:])
    assert line.startswith("  specs     50: api-49 (2 keys, ") and line.endswith(" … and 40 more specs (--json lists all)")
    assert "  IR keys   51" in out.stdout.splitlines()  # the other lines as they were
    info = json.loads(run_cli("stats", "--json", env=env).stdout)["redis"]
    assert info["specs"] == [f"api-{i:02d}" for i in range(50)]  # --json keeps every name
    sizes = info["spec_sizes"]
    assert sizes["api-49"]["keys"] == 2 and sizes["api-49"]["bytes"] > sizes["api-48"]["bytes"] > 0
    assert sum(s["bytes"] for s in sizes.values()) == info["total_size_bytes"]


@pytest.mark.e2e
def test_stats_of_thousands_of_specs_stays_short(env, sync_redis):
    with sync_redis.pipeline(transaction=False) as pipe:
        for i in range(1200):
            pipe.set(f"ir_cache:spec-{i:04d}_0a1b2c3d", entry_value())
        pipe.execute()
    out = run_cli("stats", env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "  IR keys   1,200" in lines
    (line,) = [l for l in lines if l.startswith("  specs ")]
    assert line.startswith("  specs     1,200: spec-") and len(re.findall(r"spec-\d{4} \(1 key, ", line)) == 10
    assert line.endswith(" … and 1,190 more specs (--json lists all)")
    assert max(map(len, lines)) < 400  # ten names and their sizes, whatever the number of specs


def test_stats_specs_line_few_none_and_by_size():
    from ircache_tui.cli.commands.stats import specs_text

    assert specs_text({"specs": []}) == "0: none"
    assert specs_text({"specs": ["a", "b"]}) == "2: a, b"
    assert specs_text({"specs": [f"s{i}" for i in range(11)]}).endswith("s9 … and 1 more spec (--json lists all)")
    # per-spec sizes, once the stats carry them: the biggest first; keys when bytes are unknown
    sized = {"specs": ["a", "b", "c"], "spec_sizes": {
        "a": {"keys": 1, "bytes": 100}, "b": {"keys": 3, "bytes": 9000}, "c": {"keys": 2, "bytes": 5000}}}
    assert specs_text(sized, limit=2) == "3: b (3 keys, 8.8 KiB), c (2 keys, 4.9 KiB) … and 1 more spec (--json lists all)"
    refused = {"specs": ["a", "b"], "spec_sizes": {"a": {"keys": 1, "bytes": None}, "b": {"keys": 4, "bytes": None}}}
    assert specs_text(refused) == "2: b (4 keys), a (1 key)"


# -- get ---------------------------------------------------------------------------------------
@pytest.mark.e2e
def test_get_pluralises_the_summary(env, tmp_path, specs):
    tiny = tmp_path / "tiny.md"
    tiny.write_text(ONE_OF_EACH)
    data = json.loads(run_cli("get", str(tiny), "--json", env=env).stdout)
    assert data["summary"] == {"entities": 1, "endpoints": 1, "flows": 1, "rules": 1}
    out = run_cli("get", str(tiny), env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:2] == [
        f"{cache_key(ONE_OF_EACH, str(tiny))}: from redis",
        "  Tiny API: 1 entity, 1 endpoint, 1 flow, 1 rule",
    ]
    # what it cost to make, and how often it was served (this lookup included)
    assert lines[2].startswith("  made without an LLM in ") and lines[2].endswith(
        " s (no tokens, no cost); hit 1 time (1 Redis, 0 filesystem)"), lines
    assert len(lines) == 3
    out = run_cli("get", str(specs / "petstore-spec.md"), env=env)
    assert out.stdout.splitlines()[1] == "  Petstore API: 3 entities, 5 endpoints, 1 flow, 3 rules"


@pytest.mark.e2e
def test_get_of_a_path_that_never_existed(env, tmp_path):
    out = run_cli("get", "nonexist.md", env=env, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == "ircache-tui get: nonexist.md: no such file"
    assert "no longer exists" not in out.stderr and "Traceback" not in out.stderr


@pytest.mark.e2e
def test_get_of_a_broken_symlink(env, tmp_path):
    (tmp_path / "link.md").symlink_to(tmp_path / "gone.md")
    out = run_cli("get", "link.md", env=env, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == "ircache-tui get: link.md: broken symlink (its target does not exist)"


def test_read_spec_keeps_no_longer_exists_for_files_that_were_seen(tmp_path):
    """The watcher and the walk read files they saw: one that went meanwhile `no longer exists`."""
    spec = tmp_path / "went.md"
    spec.write_text(ONE_OF_EACH)
    (found,) = discover_specs([tmp_path])
    assert found.ok
    spec.unlink()
    assert read_spec(found.path).error == "file no longer exists"
    assert read_spec(found.path, seen=False).error == "no such file"
    assert read_spec(Path(tmp_path / "never.md"), seen=False).error == "no such file"


@pytest.mark.parametrize(("before", "after", "said"), [
    (("a:1", "b:2", "c:3"), ("a:1", "d:4", "c:3"),
     "Cluster failover: b:2 no longer serves slots; d:4 serves them now"),
    (("a:1", "a:1", "b:2", "b:2"), ("a:1", "d:4", "b:2", "d:4"),  # onto a new primary: nobody gone
     "Cluster resharding: 2 slots changed primary (a:1 → d:4, b:2 → d:4)"),
    (("a:1", "b:2", "c:3"), ("a:1", "c:3", "c:3"),  # a primary emptied: nobody new
     "Cluster resharding: 1 slot changed primary (b:2 → c:3)"),
])
def test_a_topology_change_is_called_what_it_is(before, after, said):
    from ircache_tui.cache.redis.topology import describe_topology_change

    assert describe_topology_change(before, after) == said
