"""`warm --batch`: the specs that need generating go into one Message Batch, through the real SDK
against the loopback Messages API (tests/support/messages_batches.py), stored in a real Redis and
cache dir at half the standard price; failures retried directly once; a warm killed while polling
resumes the same batch; a `get` elsewhere waits for a spec in flight, or with --no-wait says so."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ircache_tui.cache.batch_record import BATCH_DIR, custom_id_for
from ircache_tui.cache.ircache import IRCache
from ircache_tui.cache.keys import CacheKey
from ircache_tui.ir.envelope import StoredEntry
from ircache_tui.ir.generators.anthropic import AnthropicGenerator
from ircache_tui.ir.generators.offline import parse_spec
from ircache_tui.ir.prices import price_for, standard_cost_of
from ircache_tui.settings import Settings
from tests.support.cli import cli_env, reap, run_cli, start_cli
from tests.support.messages_api import error
from tests.support.messages_batches import AnsweringAPI, offline_responder

KEY = "the-loopback-key"
MODEL = "claude-sonnet-4-6"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "specs"


def write_specs(root: Path, n: int, names: list[str] | None = None) -> list[Path]:
    """`n` variants of the example specs (each its own text, so its own key)."""
    root.mkdir(parents=True, exist_ok=True)
    bases = [p.read_text() for p in sorted(EXAMPLES.glob("*.md"))]
    paths = []
    for i in range(n):
        name = names[i] if names else f"spec-{i:02d}.md"
        path = root / name
        path.write_text(bases[i % len(bases)] + f"\n\nVariant {i}.\n")
        paths.append(path)
    return paths


def cache_over(api: AnsweringAPI, redis_url: str, cache_dir: Path) -> IRCache:
    settings = Settings(redis_url=redis_url, cache_dir=cache_dir, batch_poll_interval=0.05, batch_poll_max=0.2)
    generator = AnthropicGenerator(model=MODEL, api_key=KEY, base_url=api.base_url, max_retries=0)
    return IRCache(settings=settings, generator=generator)


def stored(sync_redis, cache_dir: Path, path: Path) -> tuple[StoredEntry, StoredEntry]:
    key, _ = CacheKey.for_spec(path.read_text(), str(path))
    raw = sync_redis.get(f"ir_cache:{key}")
    assert raw is not None, f"{key} not in Redis"
    return StoredEntry.model_validate_json(raw), StoredEntry.model_validate_json((cache_dir / f"{key}.json").read_bytes())


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


async def test_a_batch_warm_makes_every_spec_in_one_batch_at_half_price(redis_url, sync_redis, cache_dir, tmp_path):
    paths = write_specs(tmp_path / "specs", 6)
    specs = [(p.read_text(), str(p)) for p in paths]
    with AnsweringAPI(KEY, responder=offline_responder()) as api:
        async with cache_over(api, redis_url, cache_dir) as cache:
            result = await cache.warm_batch(specs)
            again = await cache.warm_batch(specs)  # everything cached: no second batch
    assert len(api.batch_creates) == 1 and result.batches == tuple(api.batch_creates)
    assert (result.submitted, result.succeeded, result.retried_directly, result.failures) == (6, 6, 0, ())
    assert api.requests == []  # not one direct request
    assert (again.batches, again.in_redis, again.submitted) == ((), 6, 0)
    for path in paths:
        in_redis, on_disk = stored(sync_redis, cache_dir, path)
        assert in_redis == on_disk
        assert in_redis.application_ir == parse_spec(path.read_text(), path.stem)  # its own spec's answer
        usage = in_redis.usage
        assert usage is not None and usage.service_tier == "batch"
        standard = standard_cost_of(price_for(MODEL), usage)
        assert usage.cost_usd == standard / 2 and usage.cost_usd > 0  # exactly half (both are rounded to the nano-dollar)
    # the 1 h prompt cache in every batch request: the first writes it, the others read it
    markers = [r["params"]["system"][0]["cache_control"] for r in api.batch_requests]
    assert markers == [{"type": "ephemeral", "ttl": "1h"}] * 6
    assert [u["cache_read_input_tokens"] > 0 for u in api.answered] == [False] + [True] * 5
    assert api.answered[0]["cache_creation"]["ephemeral_1h_input_tokens"] > 0
    assert not list((cache_dir / BATCH_DIR).glob("*.json"))  # the record is gone once collected


async def test_errored_and_expired_results_are_retried_directly_once(redis_url, sync_redis, cache_dir, tmp_path):
    paths = write_specs(tmp_path / "specs", 4)
    ids = {custom_id_for(CacheKey.for_spec(p.read_text(), str(p))[0].cache_key): p.stem for p in paths}
    fate = {"spec-00": "errored", "spec-01": "expired", "spec-02": "canceled"}
    with AnsweringAPI(KEY, responder=offline_responder(), outcome=lambda cid: fate.get(ids[cid], "succeeded")) as api:
        api.script(error(400, "invalid_request_error", "this one fails again"))  # the first direct retry
        async with cache_over(api, redis_url, cache_dir) as cache:
            result = await cache.warm_batch([(p.read_text(), str(p)) for p in paths])
    assert len(api.batch_creates) == 1
    assert (result.succeeded, result.retried_directly) == (1, 3)
    assert len(api.requests) == 3  # once each, directly
    assert len(result.failures) == 1 and result.failures[0].startswith("spec-00: ")
    assert "this one fails again" in result.failures[0]
    assert sync_redis.get(f"ir_cache:{CacheKey.for_spec(paths[0].read_text(), str(paths[0]))[0]}") is None
    tiers = {p.stem: stored(sync_redis, cache_dir, p)[0].usage.service_tier for p in paths[1:]}
    assert tiers == {"spec-01": "standard", "spec-02": "standard", "spec-03": "batch"}


async def test_odd_and_long_spec_names_get_valid_unique_custom_ids(redis_url, sync_redis, cache_dir, tmp_path):
    names = ["x" * 190 + ".md", "café menu (v2).md", "a.b.md", "a-b.md", "a b.md"]
    paths = write_specs(tmp_path / "specs", len(names), names)
    same = paths[2].read_text()
    for path in paths[3:]:
        path.write_text(same)  # three names that all read `a-b` once made valid, with one text (one hash)
    with AnsweringAPI(KEY, responder=offline_responder()) as api:
        async with cache_over(api, redis_url, cache_dir) as cache:
            result = await cache.warm_batch([(p.read_text(), str(p)) for p in paths])
    sent = [r["custom_id"] for r in api.batch_requests]
    assert len(set(sent)) == 5 and all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", c) for c in sent), sent
    assert (result.succeeded, result.failures) == (5, ())
    for path in paths:  # each joined back to its own key
        entry, _ = stored(sync_redis, cache_dir, path)
        assert entry.spec_name == path.stem and entry.application_ir == parse_spec(path.read_text(), path.stem)


def warm_env(api: AnsweringAPI, redis_url: str, cache_dir: Path) -> dict[str, str]:
    return cli_env(redis_url, cache_dir, ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=api.base_url, IR_MODEL=MODEL,
                   IR_GENERATOR="anthropic", IR_BATCH_POLL_INTERVAL="0.05", IR_BATCH_POLL_MAX="0.2")


def start_warm(api: AnsweringAPI, env: dict[str, str], specs: Path, *more: str) -> subprocess.Popen:
    proc = start_cli("warm", str(specs), "--batch", *more, env=env)
    wait_until(lambda: api.batch_retrievals >= 2 or proc.poll() is not None, 30, "the warm never polled its batch")
    assert proc.poll() is None, proc.communicate()
    return proc


def test_a_warm_killed_while_polling_resumes_its_batch_and_submits_no_other(redis_url, sync_redis, cache_dir,
                                                                            tmp_path):
    specs = tmp_path / "specs"
    paths = write_specs(specs, 3)
    with AnsweringAPI(KEY, responder=offline_responder(), batch_delay=None) as api:  # ends when told
        env = warm_env(api, redis_url, cache_dir)
        proc = start_warm(api, env, specs)
        try:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        finally:
            reap(proc)
        assert proc.returncode == 143, err
        (batch_id,) = api.batch_creates
        records = list((cache_dir / BATCH_DIR).glob("*.json"))
        assert [r.name for r in records] == [f"{batch_id}.json"]
        assert sorted(s["spec_path"] for s in json.loads(records[0].read_text())["specs"]) == sorted(map(str, paths))

        # still in the batch: --no-wait says so; nobody collects it, so a waiting get makes it directly
        early = run_cli("get", str(paths[0]), "--no-wait", env=env)
        assert early.returncode == 1 and early.stdout == ""
        (line,) = early.stderr.splitlines()
        assert re.fullmatch(rf"ircache-tui get: spec-00 is being generated in batch {batch_id} \(submitted "
                            r"\d\d:\d\d\); try again later", line), line
        direct = run_cli("get", str(paths[1]), env=env)
        assert direct.returncode == 0, direct.stderr
        assert "which no process is collecting" in direct.stderr and "made with" in direct.stdout
        assert len(api.requests) == 1

        api.end_batches()
        again = run_cli("warm", str(specs), "--batch", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert api.batch_creates == [batch_id]  # resumed, never submitted twice
    shown = json.loads(again.stdout)
    batch = shown["batch"]
    assert shown["specs_by_tier"] == {"redis": 0, "filesystem": 0, "generator": 3}  # each counted once
    assert (batch["resumed"], batch["batch_ids"], batch["submitted"], batch["succeeded"]) == ([batch_id], [batch_id],
                                                                                          0, 3)
    assert f"Resuming batch {batch_id}" in again.stderr
    assert not list((cache_dir / BATCH_DIR).glob("*.json"))
    assert [stored(sync_redis, cache_dir, p)[0].usage.service_tier for p in paths] == ["batch"] * 3


def test_a_get_waits_for_a_spec_in_a_batch_in_flight_or_says_so(redis_url, sync_redis, cache_dir, tmp_path):
    specs = tmp_path / "specs"
    paths = write_specs(specs, 2)
    with AnsweringAPI(KEY, responder=offline_responder(), batch_delay=None) as api:
        env = warm_env(api, redis_url, cache_dir)
        warm = start_warm(api, env, specs, "--json")
        try:
            (batch_id,) = api.batch_creates
            refused = run_cli("get", str(paths[0]), "--no-wait", env=env)
            assert refused.returncode == 1, refused.stderr
            (line,) = refused.stderr.splitlines()
            assert re.fullmatch(rf"ircache-tui get: spec-00 is being generated in batch {batch_id} \(submitted "
                                r"\d\d:\d\d\); try again later", line), line
            waiting = start_cli("get", str(paths[0]), env=env)
            assert waiting.stderr is not None
            said = waiting.stderr.readline()  # the NOTICE that it waits (shown by default)
            assert f"is being generated in batch {batch_id}" in said and "waiting for it" in said, said
            api.end_batches()
            out, err = waiting.communicate(timeout=30)
            warm_out, warm_err = warm.communicate(timeout=30)
        finally:
            reap(warm, locals().get("waiting"))
    assert waiting.returncode == 0, err
    assert "made in a batch with" in out
    assert warm.returncode == 0, warm_err
    assert api.requests == [] and api.batch_creates == [batch_id]  # nobody generated it directly
    assert json.loads(warm_out)["batch"]["succeeded"] == 2


def test_warm_batch_with_the_offline_generator_says_so_and_warms_directly(redis_url, cache_dir, tmp_path):
    specs = tmp_path / "specs"
    write_specs(specs, 2)
    done = run_cli("warm", str(specs), "--batch", "--json",
                   env=cli_env(redis_url, cache_dir, IR_GENERATOR="offline"))
    assert done.returncode == 0, done.stderr
    assert "warm --batch: the offline generator has no batch API; warming directly" in done.stderr.splitlines()
    shown = json.loads(done.stdout)
    assert shown["specs_by_tier"]["generator"] == 2 and shown["batch"] is None


def test_requests_are_split_at_the_apis_limits():
    from ircache_tui.cache.batch import split_at_limits
    from ircache_tui.cache.batch_record import BatchSpec

    requests = [(BatchSpec(f"id-{i}", f"s{i}_0000000{i % 10}", "d", "p", "m"), {"text": "x" * 100}) for i in range(7)]
    one = len(json.dumps({"custom_id": "id-0", "params": {"text": "x" * 100}}).encode()) + 2
    assert [len(c) for c in split_at_limits(requests, max_requests=3)] == [3, 3, 1]
    assert [len(c) for c in split_at_limits(requests, max_bytes=2 * one)] == [2, 2, 2, 1]
    assert [c for chunk in split_at_limits(requests, max_requests=2) for c in chunk] == requests  # in order, all
    assert [len(c) for c in split_at_limits(requests[:1], max_bytes=1)] == [1]  # too big alone: sent alone


def test_a_record_of_a_batch_the_api_does_not_know_is_said_with_how_to_give_it_up(redis_url, cache_dir, tmp_path):
    specs = tmp_path / "specs"
    write_specs(specs, 1)
    record = cache_dir / BATCH_DIR / "msgbatch_gone.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"batch_id": "msgbatch_gone", "submitted_at": time.time(), "generator": "anthropic",
                                  "model": MODEL, "specs": []}))
    with AnsweringAPI(KEY, responder=offline_responder()) as api:
        done = run_cli("warm", str(specs), "--batch", env=warm_env(api, redis_url, cache_dir))
    assert done.returncode == 1
    (line,) = [l for l in done.stderr.splitlines() if l.startswith("ircache-tui warm:")]
    assert "404" in line and f"{record}: delete that file to give it up" in line, done.stderr
    assert api.batch_creates == [] and record.exists()  # nothing submitted while a record is unresolved


def test_switching_to_anthropic_then_warm_outdated_batch_upgrades_them_in_one_batch(redis_url, sync_redis, cache_dir,
                                                                                    tmp_path):
    """The issue's done-when: entries the offline generator made read as outdated once the cache runs
    with Anthropic, and `warm DIR --outdated --batch` regenerates exactly those, in one batch."""
    spec_dir = tmp_path / "specs"
    paths = write_specs(spec_dir, 4)
    offline = cli_env(redis_url, cache_dir, IR_GENERATOR="offline")
    assert run_cli("warm", str(spec_dir), env=offline).returncode == 0
    with AnsweringAPI(KEY, responder=offline_responder()) as api:
        paid = cli_env(redis_url, cache_dir, IR_GENERATOR="anthropic", ANTHROPIC_API_KEY=KEY,
                       ANTHROPIC_BASE_URL=api.base_url, IR_MODEL=MODEL, IR_BATCH_POLL_INTERVAL="0.05",
                       IR_BATCH_POLL_MAX="0.2")
        before = json.loads(run_cli("stats", "--json", env=paid).stdout)
        assert before["redis"]["outdated"] == 4 and before["filesystem"]["outdated"] == 4
        done = run_cli("warm", str(spec_dir), "--outdated", "--batch", "--json", env=paid)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["outdated"] == 4
        assert len(api.batch_creates) == 1 and result["batch"]["submitted"] == 4
        assert api.requests == []  # not one direct request
        after = json.loads(run_cli("stats", "--json", env=paid).stdout)
    assert after["redis"]["outdated"] == 0 and after["filesystem"]["outdated"] == 0
    for path in paths:
        in_redis, on_disk = stored(sync_redis, cache_dir, path)
        assert in_redis == on_disk and in_redis.generator.model == MODEL
        assert in_redis.usage is not None and in_redis.usage.service_tier == "batch"


async def test_a_batch_that_cannot_be_recorded_is_said_with_its_id_and_collected_in_the_same_run(
        redis_url, sync_redis, cache_dir, tmp_path, ircache_logs):
    """A cache dir where the record cannot be written (here: a file where `.batches/` should be):
    the batch is paid for, so the warm says which one and collects it now rather than lose it."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / BATCH_DIR).write_text("not a directory")
    paths = write_specs(tmp_path / "specs", 2)
    with AnsweringAPI(KEY, responder=offline_responder()) as api:
        async with cache_over(api, redis_url, cache_dir) as cache:
            result = await cache.warm_batch([(p.read_text(), str(p)) for p in paths])
    (batch_id,) = api.batch_creates
    assert (result.submitted, result.succeeded, result.failures) == (2, 2, ())
    said = [r.getMessage() for r in ircache_logs.records if r.levelno >= logging.WARNING]
    assert any(line.startswith(f"Batch {batch_id} was submitted but could not be recorded in ") for line in said), said
    assert [stored(sync_redis, cache_dir, p)[0].usage.service_tier for p in paths] == ["batch"] * 2
    assert (cache_dir / BATCH_DIR).read_text() == "not a directory"  # nothing of ours written over it
