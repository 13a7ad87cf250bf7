"""`warm --batch` regenerates an edited spec from a patch of its previous IR, as `get` does.

Real parts only: a real redis-server, the real `anthropic` SDK over HTTP to the loopback Message
Batches API (tests/support/messages_batches.py) answered by the IR oracle (tests/support/ir_oracle.py:
a full request gets the offline IR of its spec, a patch request jsonpatch's diff from the previous
IR to that one), real files, `ircache-tui` as a real process killed with SIGKILL.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from ircache_tui.cache.batch_record import BATCH_DIR, BatchRecord, custom_id_for
from ircache_tui.cache.ircache import IRCache
from ircache_tui.cache.keys import CacheKey
from ircache_tui.ir.envelope import StoredEntry
from ircache_tui.ir.generators.anthropic import AnthropicGenerator
from ircache_tui.ir.patch import PATCH_SCHEMA
from ircache_tui.ir.prices import cost_of, price_for, standard_cost_of
from ircache_tui.ir.usage import Usage
from ircache_tui.settings import Settings
from tests.support.cli import run_cli
from tests.support.ir_oracle import IROracle, expected_ir
from tests.support.messages_batches import AnsweringAPI
from tests.test_batch_warm import start_warm, warm_env

KEY = "the-loopback-key"
MODEL = "claude-sonnet-4-6"  # in the price table: entries have a cost, and so a saving
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "specs"
PETSTORE = (EXAMPLES / "petstore-spec.md").read_text()
ECOMMERCE = (EXAMPLES / "ecommerce-api-spec-human.md").read_text()
COLOR = ("- born_at: datetime (optional)\n", "- born_at: datetime (optional)\n- color: string\n")
FALLBACK = "incremental regeneration of petstore did not apply: "


def edited(text: str) -> str:
    assert COLOR[0] in text
    return text.replace(*COLOR)


def cache_over(api: AnsweringAPI, redis_url: str, cache_dir: Path) -> IRCache:
    settings = Settings(redis_url=redis_url, cache_dir=cache_dir, batch_poll_interval=0.05, batch_poll_max=0.2)
    return IRCache(settings=settings, generator=AnthropicGenerator(model=MODEL, api_key=KEY, base_url=api.base_url,
                                                                   max_retries=0))


def key_of(spec: str, path: Path) -> CacheKey:
    return CacheKey.for_spec(spec, str(path))[0]


def both_tiers(sync_redis, cache_dir: Path, spec: str, path: Path) -> list[StoredEntry]:
    key = key_of(spec, path)
    raw = sync_redis.get(f"ir_cache:{key}")
    assert raw is not None, f"{key} not in Redis"
    return [StoredEntry.model_validate_json(raw), StoredEntry.model_validate_json((cache_dir / f"{key}.json").read_bytes())]


async def test_edited_specs_go_in_the_batch_as_patch_requests_and_are_stored_as_incremental(
        redis_url, sync_redis, cache_dir, tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    pets, petstore, shop = specs / "pets.md", specs / "petstore.md", specs / "shop.md"
    first = {petstore: PETSTORE, pets: PETSTORE + "\nVariant 1.\n"}
    second = {petstore: edited(PETSTORE), pets: edited(first[pets]), shop: ECOMMERCE}  # shop: no previous
    oracle = IROracle()
    with AnsweringAPI(KEY, responder=oracle) as api:
        async with cache_over(api, redis_url, cache_dir) as cache:
            before = await cache.warm_batch([(text, str(path)) for path, text in first.items()])
            after = await cache.warm_batch([(text, str(path)) for path, text in second.items()])
    assert (before.succeeded, after.submitted, after.succeeded, after.retried_directly, after.failures) == (2, 3, 3, 0, ())
    assert len(api.batch_creates) == 2 and api.requests == []  # not one direct request
    assert (oracle.full_requests, oracle.patch_requests) == (3, 2)

    requests = {r["custom_id"]: r["params"] for r in api.batch_requests[2:]}  # the second batch's
    full_system = requests[custom_id_for(key_of(ECOMMERCE, shop).cache_key)]["system"]
    assert full_system[0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert requests[custom_id_for(key_of(ECOMMERCE, shop).cache_key)]["output_config"]["format"]["schema"] != PATCH_SCHEMA
    for path in (petstore, pets):
        params = requests[custom_id_for(key_of(second[path], path).cache_key)]
        assert params["output_config"]["format"]["schema"] == PATCH_SCHEMA
        assert params["system"] == full_system  # the same cached prefix, with the batch's 1 h TTL
        blocks = [b["text"] for b in params["messages"][0]["content"]]
        previous = both_tiers(sync_redis, cache_dir, first[path], path)[0]
        assert json.dumps(previous.application_ir.model_dump(mode="json"), separators=(",", ":")) in blocks[0]
        assert "+- color: string" in blocks[1] and blocks[2].endswith(second[path])

        for entry in both_tiers(sync_redis, cache_dir, second[path], path):
            assert entry.application_ir.model_dump(mode="json") == expected_ir(second[path], path.stem)
            assert entry.spec_text == second[path]  # the next edit is diffed against it
            usage = entry.usage
            assert usage is not None and usage.mode == "incremental" and usage.service_tier == "batch"
            assert usage.cost_usd is not None and usage.cost_usd > 0
            assert usage.cost_usd == standard_cost_of(price_for(MODEL), usage) / 2  # half price
            assert previous.usage is not None and previous.usage.cost_usd is not None
            assert usage.incremental_saved_usd == pytest.approx(previous.usage.cost_usd - usage.cost_usd, abs=1e-9)
            assert usage.incremental_saved_usd > 0
    (made,) = both_tiers(sync_redis, cache_dir, ECOMMERCE, shop)[:1]
    assert made.usage is not None and made.usage.mode == "full" and made.usage.incremental_saved_usd is None
    assert not list((cache_dir / BATCH_DIR).glob("*.json"))


@pytest.mark.parametrize("fault, reason", [
    ("unappliable", "the patch does not apply (JsonPatchTestFailed"),
    ("invalid", "the patched IR is not a valid ApplicationIR (domain_model.entities"),
    ("refusal", "the model refused to answer (stop_reason refusal) (batch msgbatch_"),
    ("cutoff", "the answer was cut off (stop_reason max_tokens) (batch msgbatch_"),
    ("errored", "errored (api_error: Internal server error) (batch msgbatch_"),
])
async def test_a_patch_request_that_fails_is_said_once_and_generated_in_full_directly(
        fault, reason, redis_url, sync_redis, cache_dir, tmp_path, ircache_logs):
    specs = tmp_path / "specs"
    specs.mkdir()
    petstore, shop = specs / "petstore.md", specs / "shop.md"
    oracle = IROracle()
    failing = custom_id_for(key_of(edited(PETSTORE), petstore).cache_key)
    outcome = (lambda custom_id: "errored" if custom_id == failing else "succeeded") if fault == "errored" else None
    with AnsweringAPI(KEY, responder=oracle, outcome=outcome) as api:
        async with cache_over(api, redis_url, cache_dir) as cache:
            await cache.warm_batch([(PETSTORE, str(petstore))])
            if fault != "errored":
                oracle.patches = fault
            ircache_logs.clear()
            result = await cache.warm_batch([(edited(PETSTORE), str(petstore)), (ECOMMERCE, str(shop))])
    said = [r.getMessage() for r in ircache_logs.records if "did not apply" in r.getMessage()]
    assert len(said) == 1, said
    assert said[0].startswith(FALLBACK + reason) and said[0].endswith("; generating in full"), said[0]
    assert not any("gave no IR for petstore" in r.getMessage() for r in ircache_logs.records)
    assert (result.succeeded, result.retried_directly, result.failures) == (1, 1, ())
    assert api.batch_requests[1]["params"]["output_config"]["format"]["schema"] == PATCH_SCHEMA  # it was asked
    # then one direct request, in full (no second patch attempt)
    assert len(api.requests) == 1 and api.requests[0]["output_config"]["format"]["schema"] != PATCH_SCHEMA
    for entry in both_tiers(sync_redis, cache_dir, edited(PETSTORE), petstore):
        assert entry.application_ir.model_dump(mode="json") == expected_ir(edited(PETSTORE), "petstore")
        assert entry.usage is not None and entry.usage.mode == "full" and entry.usage.service_tier == "standard"
        assert entry.usage.incremental_saved_usd is None and entry.spec_text == edited(PETSTORE)
    assert both_tiers(sync_redis, cache_dir, ECOMMERCE, shop)[0].usage.service_tier == "batch"
    # both requests were paid for: the batch's answer (at half price) and the direct one (in full)
    direct = api.answered[-1]
    stored = both_tiers(sync_redis, cache_dir, edited(PETSTORE), petstore)[0].usage
    price = price_for(MODEL)
    direct_usage = Usage.model_validate({**direct, "service_tier": "standard"})
    if fault == "errored":  # no answer came: nothing billed but the direct request
        assert (stored.input_tokens, stored.output_tokens) == (direct["input_tokens"], direct["output_tokens"])
        assert stored.cost_usd == pytest.approx(cost_of(price, direct_usage), abs=1e-9)
    else:
        patch = api.answered[1]  # the second batch's first request: petstore's patch
        assert stored.input_tokens == direct["input_tokens"] + patch["input_tokens"]
        assert stored.output_tokens == direct["output_tokens"] + patch["output_tokens"]
        patch_usage = Usage.model_validate({**patch, "service_tier": "batch"})
        assert stored.cost_usd == pytest.approx(cost_of(price, direct_usage) + cost_of(price, patch_usage), abs=1e-9)
        assert stored.batch_saved_usd is not None and stored.batch_saved_usd > 0  # the patch's half price


@pytest.mark.parametrize("previous_gone", [False, True])
def test_a_resumed_batch_applies_a_patch_to_the_previous_entry_reloaded_from_disk(previous_gone, redis_url, sync_redis,
                                                                                  cache_dir, tmp_path):
    """...or, when that entry was deleted meanwhile, says so in the one line and generates in full."""
    specs = tmp_path / "specs"
    specs.mkdir()
    petstore = specs / "petstore.md"
    petstore.write_text(PETSTORE)
    oracle = IROracle()
    with AnsweringAPI(KEY, responder=oracle, batch_delay=None) as api:  # batches end when told
        env = warm_env(api, redis_url, cache_dir)
        assert run_cli("get", str(petstore), env=env).returncode == 0  # the previous version, directly
        previous_key = key_of(PETSTORE, petstore)
        petstore.write_text(edited(PETSTORE))
        proc = start_warm(api, env, specs)
        proc.send_signal(signal.SIGKILL)  # no chance to clean up: the record is all that is left
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        (batch_id,) = api.batch_creates
        (record_file,) = (cache_dir / BATCH_DIR).glob("*.json")
        (spec,) = json.loads(record_file.read_text())["specs"]
        assert spec["previous_key"] == str(previous_key)
        assert api.batch_requests[0]["params"]["output_config"]["format"]["schema"] == PATCH_SCHEMA
        sync_redis.flushall()  # the previous IR can only come from the cache dir
        if previous_gone:
            (cache_dir / f"{previous_key}.json").unlink()

        api.end_batches()
        again = run_cli("warm", str(specs), "--batch", "--json", env=env)
    assert again.returncode == 0, again.stderr
    batch = json.loads(again.stdout)["batch"]
    if previous_gone:
        (line,) = [line for line in again.stderr.splitlines() if "did not apply" in line]
        assert (FALLBACK + f"its previous entry {previous_key} is no longer in the cache dir (batch {batch_id}); "
                "generating in full") in line, line
        assert (batch["succeeded"], batch["retried_directly"], batch["failed"]) == (0, 1, 0)
        assert (oracle.full_requests, oracle.patch_requests) == (2, 1) and len(api.requests) == 2
        for entry in both_tiers(sync_redis, cache_dir, edited(PETSTORE), petstore):
            assert entry.application_ir.model_dump(mode="json") == expected_ir(edited(PETSTORE), "petstore")
            assert entry.usage is not None and entry.usage.mode == "full"
        return
    assert (batch["resumed"], batch["submitted"], batch["succeeded"], batch["retried_directly"]) == ([batch_id], 0, 1, 0)
    assert f"Resuming batch {batch_id}" in again.stderr and "did not apply" not in again.stderr
    assert api.batch_creates == [batch_id] and len(api.requests) == 1  # only the first version's request
    assert (oracle.full_requests, oracle.patch_requests) == (1, 1)
    for entry in both_tiers(sync_redis, cache_dir, edited(PETSTORE), petstore):
        assert entry.application_ir.model_dump(mode="json") == expected_ir(edited(PETSTORE), "petstore")
        assert entry.usage is not None and entry.usage.mode == "incremental" and entry.usage.service_tier == "batch"
        assert entry.usage.incremental_saved_usd and entry.spec_text == edited(PETSTORE)
    assert not list((cache_dir / BATCH_DIR).glob("*.json"))


def test_a_record_written_before_patch_requests_reads_as_full_requests():
    spec = {"custom_id": "petstore_0123456789abcdef", "cache_key": "petstore_01234567", "digest": "d" * 64,
            "spec_path": "specs/petstore.md", "markdown": PETSTORE}
    old = json.dumps({"batch_id": "msgbatch_old", "submitted_at": 1.0, "generator": "anthropic", "model": MODEL,
                      "specs": [spec]}).encode()
    (read,) = BatchRecord.from_json(old).specs
    assert read.previous_key is None and read.markdown == PETSTORE
    again = BatchRecord.from_json(BatchRecord.from_json(old).to_json())
    assert again.specs[0].previous_key is None
