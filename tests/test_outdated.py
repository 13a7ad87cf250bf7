"""Outdated entries: every entry records its generator's fingerprint; one made by another generator,
model or prompt is outdated. It is still served, but stats counts it (server-side in Redis, from the
files' heads on disk), `get` says so, the key rows show it, `warm DIR --outdated` makes exactly those
again, and IR_OUTDATED=regenerate makes it a miss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ircache_tui.cache.ircache import IRCache
from ircache_tui.cache.keys import cache_key
from ircache_tui.ir.envelope import GeneratorInfo, StoredEntry, generator_in_head
from ircache_tui.ir.generators import OfflineGenerator, identity_of
from ircache_tui.ir.generators.anthropic import AnthropicGenerator
from ircache_tui.ir.generators.offline import parse_spec
from ircache_tui.settings import Settings, SettingsError
from tests.support.cli import cli_env, run_cli
from tests.support.foreign import plant_foreign
from tests.support.generators import CountingGenerator
from tests.support.messages_api import MessagesAPI, message

API_KEY = "the-loopback-key"
MODEL = "claude-sonnet-4-6"
SPECS = {
    "alpha": "# Alpha API\n\nAlpha things.\n\n## Entities\n\n### Thing\n- id: uuid\n",
    "beta": "# Beta API\n\nBeta things.\n\n## Endpoints\n- GET /betas - List betas\n",
    "gamma": "# Gamma API\n\nGamma things.\n\n## Entities\n\n### Gam\n- name: string (required)\n",
}


def write_specs(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in SPECS.items():
        (directory / f"{name}.md").write_text(text)
    return directory


def answers(n: int) -> list:
    """`n` Messages API answers, each a valid IR."""
    ir = parse_spec(SPECS["alpha"], "alpha").model_dump(mode="json")
    return [message(json.dumps(ir), model=MODEL, input_tokens=1000, output_tokens=500) for _ in range(n)]


# -- the rule -----------------------------------------------------------------------------------
def test_fingerprints_differ_by_what_shapes_the_answer():
    offline = identity_of(OfflineGenerator())
    assert offline == identity_of(OfflineGenerator()) and offline.fingerprint  # stable, and there
    sonnet = AnthropicGenerator(model=MODEL, api_key=API_KEY)
    opus = AnthropicGenerator(model="claude-opus-4-1", api_key=API_KEY)
    assert sonnet.fingerprint == AnthropicGenerator(model=MODEL, api_key=API_KEY, max_tokens=99).fingerprint
    assert len({offline.fingerprint, sonnet.fingerprint, opus.fingerprint}) == 3
    assert identity_of(CountingGenerator()).fingerprint != offline.fingerprint  # another name, another generator


@pytest.mark.parametrize(("made_by", "current", "outdated"), [
    (GeneratorInfo(name="offline", fingerprint="a"), GeneratorInfo(name="offline", fingerprint="a"), False),
    (GeneratorInfo(name="offline", fingerprint="a"), GeneratorInfo(name="offline", fingerprint="b"), True),
    # no fingerprint on either side: by name and model
    (GeneratorInfo(name="anthropic", model="m1"), GeneratorInfo(name="anthropic", model="m1", fingerprint="x"), False),
    (GeneratorInfo(name="anthropic", model="m1"), GeneratorInfo(name="anthropic", model="m2", fingerprint="x"), True),
    (GeneratorInfo(name="offline"), GeneratorInfo(name="anthropic", model="m1", fingerprint="x"), True),
    (GeneratorInfo(name="counting", fingerprint="x"), GeneratorInfo(name="counting"), False),
])
def test_the_outdated_rule(made_by, current, outdated):
    assert made_by.outdated_for(current) is outdated


async def test_the_fingerprint_is_in_the_first_kib_of_a_new_entry(redis_url, cache_dir, sync_redis):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=OfflineGenerator()) as cache:
        found = await cache.lookup(SPECS["alpha"], "a/very/long/" + "dir/" * 40 + "alpha.md")
    head = sync_redis.getrange(f"ir_cache:{found.cache_key}", 0, 1023)
    assert generator_in_head(head) == identity_of(OfflineGenerator())
    assert found.entry.generator.fingerprint == OfflineGenerator().fingerprint


# -- the core -------------------------------------------------------------------------------------
async def offline_entries(redis_url: str, cache_dir: Path) -> dict[str, str]:
    keys = {}
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=OfflineGenerator()) as cache:
        for name, text in SPECS.items():
            keys[name] = (await cache.lookup(text, f"{name}.md")).cache_key
    return keys


@pytest.mark.parametrize("scripts_allowed", [True, False], ids=["scripts", "no-scripts"])
async def test_stats_count_outdated_entries_and_nothing_else(redis_url, cache_dir, sync_redis, scripts_allowed):
    """Three offline entries, another tool's keys under our names: with a counting generator current
    (another name), all three entries are outdated in Redis and on disk, the foreign keys are not
    counted; with the offline one, none is. Without script rights the walk counts client-side,
    with the same result."""
    await offline_entries(redis_url, cache_dir)
    plant_foreign(sync_redis, 4, 2)
    url = redis_url
    if not scripts_allowed:
        sync_redis.acl_setuser("noscripts3", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
                               commands=["+@all", "-@scripting"], reset=True)
        url = "unix://noscripts3:pw@" + redis_url.removeprefix("unix://")
    try:
        async with IRCache(redis_url=url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
            cache.generator = type("Other", (CountingGenerator,), {"name": "other"})()
            info = await cache.get_cache_info(outdated=True)
            assert (info.redis["outdated"], info.filesystem["outdated"]) == (3, 3)
            assert info.redis["foreign_keys"] == 6
            assert "outdated" not in (await cache.get_cache_info()).redis  # only when asked
            cache.generator = OfflineGenerator()
            info = await cache.get_cache_info(outdated=True)
            assert (info.redis["outdated"], info.filesystem["outdated"]) == (0, 0)
    finally:
        if not scripts_allowed:
            sync_redis.acl_deluser("noscripts3")


async def test_lookup_serves_an_outdated_entry_and_says_so(redis_url, cache_dir):
    keys = await offline_entries(redis_url, cache_dir)
    other = type("Other", (CountingGenerator,), {"name": "other"})()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=other) as cache:
        found = await cache.lookup(SPECS["alpha"], "alpha.md")
        assert (found.tier, found.outdated, other.calls) == ("redis", True, 0)
        assert cache.is_outdated(found.entry)
        rows = [row async for page in cache.entry_rows() for row in page]
        assert {r.cache_key for r in rows if r.outdated} == set(keys.values())
        assert await cache.outdated_among([(SPECS["beta"], "beta.md"), ("# New\n", "new.md"),
                                           (SPECS["gamma"], "gamma.md")]) == [0, 2]
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=OfflineGenerator()) as cache:
        assert not (await cache.lookup(SPECS["alpha"], "alpha.md")).outdated
        rows = [row async for page in cache.entry_rows() for row in page]
        assert not any(r.outdated for r in rows)


async def test_ir_outdated_regenerate_makes_an_outdated_entry_a_miss(redis_url, cache_dir, sync_redis, ircache_logs):
    keys = await offline_entries(redis_url, cache_dir)
    other = type("Other", (CountingGenerator,), {"name": "other"})()
    settings = Settings(redis_url=redis_url, cache_dir=cache_dir, outdated="regenerate")
    async with IRCache(settings=settings, generator=other) as cache:
        found = await cache.lookup(SPECS["alpha"], "alpha.md")
        assert (found.tier, other.calls, found.outdated) == ("generator", 1, False)
        again = await cache.lookup(SPECS["alpha"], "alpha.md")  # now current: a hit
        assert (again.tier, other.calls) == ("redis", 1)
    stored = json.loads(sync_redis.get(f"ir_cache:{keys['alpha']}"))
    on_disk = json.loads((cache_dir / f"{keys['alpha']}.json").read_text())
    assert stored["generator"]["name"] == on_disk["generator"]["name"] == "other"
    assert "is outdated (made by offline): a miss (IR_OUTDATED=regenerate)" in ircache_logs.text


def test_ir_outdated_is_validated():
    assert Settings.from_env({"IR_OUTDATED": "Regenerate"}).outdated == "regenerate"
    assert Settings.from_env({}).outdated == "serve"
    with pytest.raises(SettingsError, match="IR_OUTDATED must be one of serve, regenerate, got 'later'"):
        Settings.from_env({"IR_OUTDATED": "later"})


def test_bad_ir_outdated_is_a_usage_error(tmp_path, redis_url):
    result = run_cli("stats", env=cli_env(redis_url, tmp_path / "c", IR_OUTDATED="sometimes"))
    assert result.returncode == 2 and "IR_OUTDATED must be one of serve, regenerate" in result.stderr


async def test_outdated_counted_on_a_cluster(cluster, nodes, tmp_path):
    """Each primary's walk counts its entries by generator; the counts add up."""
    async with IRCache(redis_url=cluster.url, cache_dir=tmp_path / "c", generator=OfflineGenerator()) as cache:
        for i in range(12):
            await cache.lookup(f"# Spec {i}\n\nNumber {i}.\n", f"spec{i}.md")
        cache.generator = type("Other", (CountingGenerator,), {"name": "other"})()
        info = await cache.get_cache_info(outdated=True)
        assert (info.redis["total_keys"], info.redis["outdated"], info.filesystem["outdated"]) == (12, 12, 12)
        assert sum(1 for c in nodes if c.dbsize()) > 1  # spread over several primaries


# -- the done-when: from offline to Anthropic -----------------------------------------------------
@pytest.mark.e2e
def test_switching_to_anthropic_outdates_every_offline_entry_and_warm_outdated_upgrades_them(
        redis_url, tmp_path, sync_redis):
    spec_dir = write_specs(tmp_path / "specs")
    cache_dir = tmp_path / "cache" / "ir"
    offline = cli_env(redis_url, cache_dir, IR_GENERATOR="offline")
    made = run_cli("warm", str(spec_dir), "--json", env=offline)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["specs_by_tier"]["generator"] == 3
    with MessagesAPI(api_key=API_KEY) as api:
        paid = cli_env(redis_url, cache_dir, IR_GENERATOR="anthropic", ANTHROPIC_API_KEY=API_KEY,
                       ANTHROPIC_BASE_URL=api.base_url, IR_MODEL=MODEL)
        stats = run_cli("stats", "--json", env=paid)
        assert stats.returncode == 0, stats.stderr
        info = json.loads(stats.stdout)
        assert (info["redis"]["outdated"], info["filesystem"]["outdated"]) == (3, 3)
        text = run_cli("stats", env=paid).stdout
        assert ("outdated  3 (made by another generator or prompt: warm DIR --outdated regenerates them)"
                in text)
        got = run_cli("get", str(spec_dir / "alpha.md"), env=paid)
        assert got.returncode == 0, got.stderr
        assert f"outdated: made by offline, current generator anthropic ({MODEL})" in got.stdout
        got_json = json.loads(run_cli("get", str(spec_dir / "beta.md"), "--json", env=paid).stdout)
        assert got_json["outdated"] is True and got_json["tier"] == "redis"
        assert len(api.requests) == 0  # served, never asked

        api.script(*answers(3))
        warm = run_cli("warm", str(spec_dir), "--outdated", "--json", env=paid)
        assert warm.returncode == 0, warm.stderr
        report = json.loads(warm.stdout)
        assert (report["outdated"], report["specs_by_tier"]["generator"], report["failed"]) == (3, 3, 0)
        assert len(api.requests) == 3 and api.unscripted == 0

        info = json.loads(run_cli("stats", "--json", env=paid).stdout)
        assert (info["redis"]["outdated"], info["filesystem"]["outdated"]) == (0, 0)
        again = json.loads(run_cli("warm", str(spec_dir), "--outdated", "--json", env=paid).stdout)
        assert (again["outdated"], again["specs_by_tier"]["generator"]) == (0, 0)
        assert len(api.requests) == 3
        assert "outdated" not in run_cli("get", str(spec_dir / "alpha.md"), env=paid).stdout
    key = cache_key(SPECS["alpha"], str(spec_dir / "alpha.md"))
    entry = StoredEntry.model_validate_json(sync_redis.get(f"ir_cache:{key}"))
    assert (entry.generator.name, entry.generator.model) == ("anthropic", MODEL)
    lines = [json.loads(line) for line in (cache_dir / "audit.jsonl").read_text().splitlines()]
    assert sum(1 for line in lines if line.get("action") == "regenerate") == 3  # the trail says each


def test_warm_outdated_needs_spec_dirs(redis_url, tmp_path):
    result = run_cli("warm", "--outdated", env=cli_env(redis_url, tmp_path / "c"))
    assert result.returncode == 2 and "warm --outdated needs spec directories" in result.stderr
