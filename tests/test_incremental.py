"""Incremental regeneration: a changed spec regenerated from its previous IR and the spec's diff.

Real parts only: a real redis-server, the real `anthropic` SDK over HTTP to the loopback Messages
API, whose IR oracle (tests/support/ir_oracle.py) answers a full request with the offline IR of
the spec in it and a patch request with jsonpatch's diff from the previous IR to that one (or,
told to, with a patch that goes wrong); real files; `ircache-tui` as a real process.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from ircache_tui.cache.ircache import IRCache
from ircache_tui.cache.keys import CacheKey
from ircache_tui.cache.metrics import CacheMetrics
from ircache_tui.ir.envelope import decode_entry
from ircache_tui.ir.generators import OfflineGenerator
from ircache_tui.ir.generators.anthropic import AnthropicGenerator
from ircache_tui.ir.generators.base import RegeneratesFromPatch
from ircache_tui.ir.patch import PATCH_SCHEMA
from tests.support.cli import cli_env, run_cli
from tests.support.ir_oracle import IROracle, expected_ir
from tests.support.messages_api import MessagesAPI

KEY = "test-key"
MODEL = "claude-sonnet-5-5"  # in the price table: the entries have a cost, and so a saving
EXAMPLES = Path(__file__).parent.parent / "examples" / "specs"
SPEC = (EXAMPLES / "petstore-spec.md").read_text()
PATH = "specs/petstore.md"
SMALL_EDIT = SPEC.replace("- born_at: datetime (optional)\n", "- born_at: datetime (optional)\n- color: string\n")
FALLBACK = "incremental regeneration of petstore did not apply: "


@pytest.fixture
def api():
    with MessagesAPI(api_key=KEY) as server:
        yield server


def oracle_on(api: MessagesAPI, **kw) -> IROracle:
    oracle = IROracle(**kw)
    api.respond_with(oracle)
    return oracle


def generator(api: MessagesAPI) -> AnthropicGenerator:
    return AnthropicGenerator(base_url=api.base_url, api_key=KEY, model=MODEL, max_retries=0)


def stored(cache_dir: Path, sync_redis, spec: str) -> tuple[object, object]:
    """The entry of `spec` as the filesystem and Redis hold it (decoded: anything invalid raises)."""
    key, _ = CacheKey.for_spec(spec, PATH)
    on_disk = decode_entry((cache_dir / f"{key}.json").read_bytes(), key.hash8)
    in_redis = decode_entry(sync_redis.get(f"ir_cache:{key}"), key.hash8)
    return on_disk, in_redis


def every_entry_is_valid(cache_dir: Path, sync_redis) -> int:
    files = list(cache_dir.glob("*.json"))
    for f in files:
        decode_entry(f.read_bytes())  # raises CorruptEntry on anything invalid
    for k in sync_redis.scan_iter("ir_cache:*"):
        if re.fullmatch(rb"ir_cache:[^:]+_[0-9a-f]{8}", k):  # entries (not the hit counters beside them)
            decode_entry(sync_redis.get(k))
    return len(files)


async def test_a_small_edit_is_regenerated_from_a_patch(api, redis_url, cache_dir, sync_redis, ircache_logs):
    oracle = oracle_on(api)
    metrics = CacheMetrics()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=generator(api)) as cache:
        metrics.attach(cache)
        first = await cache.lookup(SPEC, PATH)
        second = await cache.lookup(SMALL_EDIT, PATH)
        totals = await cache.generation_totals()

    assert (oracle.full_requests, oracle.patch_requests) == (1, 1)
    request = api.requests[1]
    assert request["output_config"]["format"]["schema"] == PATCH_SCHEMA
    assert request["system"] == api.requests[0]["system"]  # the same cached prefix as a full request
    blocks = [b["text"] for b in request["messages"][0]["content"]]
    assert json.dumps(first.ir.model_dump(mode="json"), separators=(",", ":")) in blocks[0]  # the previous IR
    assert "+- color: string" in blocks[1] and "@@" in blocks[1]  # the unified diff
    assert blocks[2].endswith(SMALL_EDIT)
    # the result is what a full generation would have given
    assert second.ir.model_dump(mode="json") == expected_ir(SMALL_EDIT, "petstore")
    assert any(a.name == "color" for a in second.ir.domain_model.entities[0].attributes)
    usage = second.entry.usage
    assert usage is not None and usage.mode == "incremental"
    assert first.entry.usage is not None and first.entry.usage.mode == "full"
    assert usage.output_tokens is not None and usage.output_tokens * 4 < first.entry.usage.output_tokens
    # saved: the previous full generation's cost less this one's
    assert usage.cost_usd and first.entry.usage.cost_usd
    assert usage.incremental_saved_usd == pytest.approx(first.entry.usage.cost_usd - usage.cost_usd, abs=1e-9)
    assert totals.incremental_saved_usd == pytest.approx(usage.incremental_saved_usd, abs=1e-6)
    saved_in_metrics = metrics.registry.get_sample_value("ircache_saved_usd_total", {"lever": "incremental"})
    assert saved_in_metrics == pytest.approx(usage.incremental_saved_usd)
    # kept in both tiers, with the spec text the next edit is diffed against
    for entry in stored(cache_dir, sync_redis, SMALL_EDIT):
        assert entry.spec_text == SMALL_EDIT and entry.usage.mode == "incremental"
        assert entry.application_ir == second.ir
    assert not any(FALLBACK in r.getMessage() for r in ircache_logs.records)


@pytest.mark.parametrize("fault, reason", [
    ("unappliable", "the patch does not apply (JsonPatchTestFailed"),
    ("invalid", "the patched IR is not a valid ApplicationIR (domain_model.entities"),
    ("refusal", "the model refused to answer (stop_reason refusal)"),
    ("cutoff", "the answer was cut off (stop_reason max_tokens)"),
])
async def test_a_patch_that_fails_falls_back_to_one_full_generation(fault, reason, api, redis_url, cache_dir,
                                                                    sync_redis, ircache_logs):
    oracle = oracle_on(api)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=generator(api)) as cache:
        await cache.lookup(SPEC, PATH)
        oracle.patches = fault
        ircache_logs.clear()
        result = await cache.lookup(SMALL_EDIT, PATH)

    said = [r.getMessage() for r in ircache_logs.records if "did not apply" in r.getMessage()]
    assert len(said) == 1, said
    assert said[0].startswith(FALLBACK + reason) and said[0].endswith("; generating in full")
    assert (oracle.full_requests, oracle.patch_requests) == (2, 1)  # one attempt, then one full generation
    assert result.ir.model_dump(mode="json") == expected_ir(SMALL_EDIT, "petstore")
    usage = result.entry.usage
    assert usage is not None and usage.mode == "full" and usage.incremental_saved_usd is None
    # the attempt's tokens were paid for, and are counted with the full generation's
    full_tokens = len(result.ir.model_dump_json()) // 4
    assert usage.output_tokens is not None and usage.output_tokens > full_tokens
    for entry in stored(cache_dir, sync_redis, SMALL_EDIT):
        assert entry.application_ir == result.ir and entry.usage.mode == "full"
    assert every_entry_is_valid(cache_dir, sync_redis) == 2  # nothing invalid was cached


async def test_a_big_change_goes_full_directly(api, redis_url, cache_dir, ircache_logs):
    oracle = oracle_on(api)
    rewritten = SPEC.split("## Relationships")[0] + "## Endpoints\n- GET /cats - List cats\n"
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=generator(api)) as cache:
        await cache.lookup(SPEC, PATH)
        result = await cache.lookup(rewritten, PATH)
    assert (oracle.full_requests, oracle.patch_requests) == (2, 0)
    assert result.entry.usage is not None and result.entry.usage.mode == "full"
    assert not any("did not apply" in r.getMessage() for r in ircache_logs.records)


async def test_an_old_entry_without_its_spec_text_goes_full(api, redis_url, cache_dir, sync_redis):
    oracle = oracle_on(api)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=generator(api)) as cache:
        first = await cache.lookup(SPEC, PATH)
    # the entry as written before spec texts were kept
    path = cache_dir / f"{first.cache_key}.json"
    old = json.loads(path.read_bytes())
    del old["spec_text"]
    path.write_text(json.dumps(old))
    sync_redis.flushall()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=generator(api)) as cache:
        again = await cache.lookup(SPEC, PATH)  # an old entry still reads as a hit
        result = await cache.lookup(SMALL_EDIT, PATH)
    assert again.tier == "filesystem" and again.entry.spec_text is None
    assert (oracle.full_requests, oracle.patch_requests) == (2, 0)
    assert result.entry.usage is not None and result.entry.usage.mode == "full"


async def test_only_the_same_spec_name_is_a_previous_entry(api, redis_url, cache_dir):
    oracle = oracle_on(api)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=generator(api)) as cache:
        await cache.lookup(SPEC, "specs/petstore_v2.md")
        # (another text: the same text under another name is re-keyed without generating, renames.py)
        await cache.lookup(SPEC + "\n", "specs/pet.md")
        result = await cache.lookup(SMALL_EDIT, PATH)
    assert (oracle.full_requests, oracle.patch_requests) == (3, 0)
    assert result.entry.usage is not None and result.entry.usage.mode == "full"


async def test_an_entry_another_model_made_is_never_patched(api, redis_url, cache_dir, sync_redis):
    """After a model upgrade, a changed spec is generated in full by the new model: a patch of the old
    model's IR would be labelled with the new model (and `warm --outdated` would never find it)."""
    oracle = oracle_on(api)
    old = AnthropicGenerator(base_url=api.base_url, api_key=KEY, model="claude-sonnet-4-6", max_retries=0)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=old) as cache:
        await cache.lookup(SPEC, PATH)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=generator(api)) as cache:
        result = await cache.lookup(SMALL_EDIT, PATH)
        assert not cache.is_outdated(result.entry)
        # ...while the new model's own entry is a starting point for the next edit
        third = SMALL_EDIT.replace("- GET /pets - List pets\n", "- GET /pets - List pets\n- GET /tags - List tags\n")
        patched = await cache.lookup(third, PATH)
    assert (oracle.full_requests, oracle.patch_requests) == (2, 1)
    assert result.entry.usage is not None and result.entry.usage.mode == "full"
    assert result.entry.generator.model == MODEL
    assert patched.entry.usage is not None and patched.entry.usage.mode == "incremental"


async def test_the_newest_entry_of_this_model_is_found_behind_many_of_another(api, redis_url, cache_dir):
    """Eight newer entries another model made (the files incremental reads first) do not hide an
    older one the current model made: it is still the starting point."""
    oracle = oracle_on(api)
    old = AnthropicGenerator(base_url=api.base_url, api_key=KEY, model="claude-sonnet-4-6", max_retries=0)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=generator(api)) as cache:
        await cache.lookup(SPEC, PATH)  # the current model's entry, the oldest file
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=old) as cache:
        for i in range(8):  # the first in full (from the current model's entry: never), then each from the last
            await cache.lookup(SPEC + f"\nDraft {i}.\n", PATH)
    assert (oracle.full_requests, oracle.patch_requests) == (2, 7)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=generator(api)) as cache:
        result = await cache.lookup(SMALL_EDIT, PATH)
    assert (oracle.full_requests, oracle.patch_requests) == (2, 8)
    diff = api.requests[-1]["messages"][0]["content"][1]["text"]
    assert "color: string" in diff and "Draft" not in diff  # from SPEC, the current model's, not a draft
    assert result.entry.usage is not None and result.entry.usage.mode == "incremental"


async def test_the_newest_earlier_entry_is_patched(api, redis_url, cache_dir):
    oracle = oracle_on(api)
    third = SMALL_EDIT.replace("- GET /pets - List pets\n", "- GET /pets - List pets\n- GET /tags - List tags\n")
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=generator(api)) as cache:
        await cache.lookup(SPEC, PATH)
        await cache.lookup(SMALL_EDIT, PATH)
        result = await cache.lookup(third, PATH)
    assert (oracle.full_requests, oracle.patch_requests) == (1, 2)
    diff = api.requests[2]["messages"][0]["content"][1]["text"]
    assert "+- GET /tags - List tags" in diff and "color" not in diff.replace(" - color: string", "")  # from SMALL_EDIT
    assert result.ir.model_dump(mode="json") == expected_ir(third, "petstore")
    # the saving of a patch of a patch is estimated from the IR's size (the previous one was no full generation)
    assert result.entry.usage is not None and result.entry.usage.incremental_saved_usd


async def test_the_offline_generator_never_takes_the_path(redis_url, cache_dir, ircache_logs):
    offline = OfflineGenerator()
    assert not isinstance(offline, RegeneratesFromPatch)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=offline) as cache:
        await cache.lookup(SPEC, PATH)
        result = await cache.lookup(SMALL_EDIT, PATH)
    assert result.entry.usage is not None and result.entry.usage.mode == "full"
    assert result.entry.spec_text == SMALL_EDIT  # kept all the same: another generator may use it
    assert not any("from its previous IR" in r.getMessage() for r in ircache_logs.records)


# -- real processes ---------------------------------------------------------------------------
def _env(api: MessagesAPI, redis_url: str, cache_dir: Path) -> dict[str, str]:
    return cli_env(redis_url, cache_dir, IR_GENERATOR="anthropic", ANTHROPIC_API_KEY=KEY,
                   ANTHROPIC_BASE_URL=api.base_url, IR_MODEL=MODEL)


def test_get_on_an_edited_spec_is_incremental_and_stats_show_the_saving(api, redis_url, cache_dir, tmp_path):
    oracle = oracle_on(api)
    spec = tmp_path / "petstore.md"
    spec.write_text(SPEC)
    env = _env(api, redis_url, cache_dir)
    done = run_cli("get", str(spec), "--json", env=env)
    assert done.returncode == 0, done.stderr
    full = json.loads(done.stdout)["usage"]
    spec.write_text(SMALL_EDIT)
    done = run_cli("get", str(spec), "--json", env=env)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["tier"] == "generator" and got["usage"]["mode"] == "incremental"
    assert got["application_ir"] == expected_ir(SMALL_EDIT, "petstore")
    saved = got["usage"]["incremental_saved_usd"]
    assert saved == pytest.approx(full["cost_usd"] - got["usage"]["cost_usd"], abs=1e-9) and saved > 0
    assert (oracle.full_requests, oracle.patch_requests) == (1, 1)
    text = run_cli("get", str(spec), env=env).stdout  # a hit now: the entry still says how it was made
    assert "regenerated from a patch of the previous IR with " in text and " less than in full" in text
    stats = run_cli("stats", "--json", env=env)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["saved"]["by"]["incremental"] == pytest.approx(saved, abs=1e-6)


def test_get_falls_back_through_the_real_sdk(api, redis_url, cache_dir, tmp_path, sync_redis):
    oracle = oracle_on(api, patches="unappliable")
    spec = tmp_path / "petstore.md"
    spec.write_text(SPEC)
    env = _env(api, redis_url, cache_dir)
    assert run_cli("get", str(spec), env=env).returncode == 0
    spec.write_text(SMALL_EDIT)
    done = run_cli("get", str(spec), "--json", env=env)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "did not apply" in line]
    assert len(lines) == 1 and FALLBACK + "the patch does not apply" in lines[0], done.stderr
    assert lines[0].endswith("; generating in full")
    got = json.loads(done.stdout)
    assert got["usage"]["mode"] == "full" and got["application_ir"] == expected_ir(SMALL_EDIT, "petstore")
    assert (oracle.full_requests, oracle.patch_requests) == (2, 1)
    assert every_entry_is_valid(cache_dir, sync_redis) == 2
    logging.getLogger("ircache").debug("fallback said: %s", lines[0])


async def test_the_keys_pane_and_the_detail_say_incremental(api, redis_url, cache_dir):
    from rich.console import Console

    from ircache_tui.tui.summary import summary_table

    oracle_on(api)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=generator(api)) as cache:
        first = await cache.lookup(SPEC, PATH)
        second = await cache.lookup(SMALL_EDIT, PATH)
        rows = {row.cache_key: row for row in await cache.key_browser().rows_for([first.cache_key, second.cache_key])}

    assert rows[second.cache_key].generator == f"anthropic ({MODEL}), incremental"
    assert rows[first.cache_key].generator == f"anthropic ({MODEL})"
    console = Console(width=120, record=True, color_system=None)
    console.print(summary_table(second.entry))
    assert f"anthropic ({MODEL}), incremental" in console.export_text()


def test_warm_regenerates_an_edited_spec_from_a_patch(api, redis_url, cache_dir, tmp_path):
    oracle = oracle_on(api)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "petstore.md").write_text(SPEC)
    env = _env(api, redis_url, cache_dir)
    assert run_cli("warm", str(specs), env=env).returncode == 0
    (specs / "petstore.md").write_text(SMALL_EDIT)
    done = run_cli("warm", str(specs), env=env)
    assert done.returncode == 0, done.stderr
    key, _ = CacheKey.for_spec(SMALL_EDIT, "petstore.md")
    entry = decode_entry((cache_dir / f"{key}.json").read_bytes())
    assert entry.usage is not None and entry.usage.mode == "incremental"
    assert entry.application_ir.model_dump(mode="json") == expected_ir(SMALL_EDIT, "petstore")
    assert (oracle.full_requests, oracle.patch_requests) == (1, 1)


async def test_a_forced_regeneration_patches_the_previous_version(api, redis_url, cache_dir):
    """`r` in the dashboard and `get --force`: force_refresh of the edited spec's own key starts from the
    newest *other* entry of the spec (its own is what is being replaced)."""
    oracle = oracle_on(api)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=generator(api)) as cache:
        await cache.lookup(SPEC, PATH)
        await cache.lookup(SMALL_EDIT, PATH)
        again = await cache.lookup(SMALL_EDIT, PATH, force_refresh=True)
    assert (oracle.full_requests, oracle.patch_requests) == (1, 2)
    assert "+- color: string" in api.requests[2]["messages"][0]["content"][1]["text"]
    assert again.tier == "generator" and again.entry.usage is not None and again.entry.usage.mode == "incremental"
    assert again.ir.model_dump(mode="json") == expected_ir(SMALL_EDIT, "petstore")


def test_the_watcher_regenerates_a_saved_edit_from_a_patch(api, redis_url, cache_dir, tmp_path):
    import signal

    from tests.test_cli_watch import Watch

    oracle = oracle_on(api)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "petstore.md").write_text(SPEC)
    key, _ = CacheKey.for_spec(SMALL_EDIT, str(specs / "petstore.md"))
    w = Watch(str(specs), "--debounce-ms", "50", env=_env(api, redis_url, cache_dir))
    try:
        w.expect(r"INFO: spec .*petstore\.md: IR generated and cached")
        (specs / "petstore.md").write_text(SMALL_EDIT)
        w.expect(rf"INFO: spec .*petstore\.md: IR generated and cached \({key}")
        code, output = w.stop(signal.SIGTERM)
    finally:
        w.kill()
    assert code == 0, output
    entry = decode_entry((cache_dir / f"{key}.json").read_bytes())
    assert entry.usage is not None and entry.usage.mode == "incremental"
    assert (oracle.full_requests, oracle.patch_requests) == (1, 1)


async def test_a_patch_after_a_rename_saves_what_a_full_generation_would_cost(api, redis_url, cache_dir):
    """The copy a rename makes costs nothing: the saving of the next version's patch is measured
    against the full generation's tokens, not against that free copy's $0."""
    oracle = oracle_on(api)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=generator(api)) as cache:
        made = await cache.lookup(SPEC, PATH)
        renamed = await cache.lookup(SPEC, "specs/pets.md")  # the same text: re-keyed, no request
        patched = await cache.lookup(SMALL_EDIT, "specs/pets.md")
    assert renamed.entry.renamed_from is not None and renamed.entry.usage.cost_usd == 0.0
    assert (oracle.full_requests, oracle.patch_requests) == (1, 1)
    usage = patched.entry.usage
    assert usage.mode == "incremental" and usage.incremental_saved_usd is not None
    # the copy's $0 is no baseline: the saving is estimated from the spec's and the IR's sizes (the
    # README's rule), close to what the full generation did cost, and a saving, not a loss
    assert usage.incremental_saved_usd > 0
    assert usage.incremental_saved_usd == pytest.approx(made.entry.usage.cost_usd - usage.cost_usd, rel=0.5)
