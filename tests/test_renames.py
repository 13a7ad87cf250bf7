"""Renames for free: a miss whose spec text is cached under another spec name is filled from that
entry, re-keyed, with no generation; a text that only shares the 8 hex digits of the key generates."""

from __future__ import annotations

import json
from pathlib import Path

from ircache_tui.cache.ircache import IRCache
from ircache_tui.cache.keys import cache_key, spec_hash
from ircache_tui.ir.envelope import StoredEntry
from ircache_tui.ir.generators import OfflineGenerator
from ircache_tui.ir.generators.anthropic import AnthropicGenerator
from ircache_tui.ir.generators.offline import parse_spec
from ircache_tui.settings import Settings
from tests.support.generators import SPEC, CountingGenerator
from tests.support.messages_api import MessagesAPI, message

API_KEY = "the-loopback-key"
MODEL = "claude-sonnet-4-6"
EXAMPLES = Path(__file__).parent.parent / "examples" / "specs"


async def test_a_renamed_spec_is_re_keyed_without_asking_the_api(redis_url, cache_dir, tmp_path, sync_redis,
                                                                 ircache_logs):
    text = (EXAMPLES / "petstore-spec.md").read_text()
    old, new = tmp_path / "petstore.md", tmp_path / "pets.md"
    old.write_text(text)
    ir = parse_spec(text, "petstore").model_dump(mode="json")
    with MessagesAPI(api_key=API_KEY) as api:
        api.script(message(json.dumps(ir), model=MODEL, input_tokens=1000, output_tokens=5000))
        gen = AnthropicGenerator(model=MODEL, api_key=API_KEY, base_url=api.base_url)
        async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=gen) as cache:
            first = await cache.lookup(old.read_text(), str(old))
            assert first.tier == "generator" and len(api.requests) == 1
            old.rename(new)  # the same text under another name; nothing more is scripted
            found = await cache.lookup(new.read_text(), str(new))
            assert len(api.requests) == 1 and api.unscripted == 0  # no request made
            assert (found.tier, found.renamed_from, found.outdated) == ("filesystem", first.cache_key, False)
            again = await cache.lookup(new.read_text(), str(new))
            assert again.tier == "redis" and again.entry == found.entry
    new_key = cache_key(text, str(new))
    assert new_key == f"pets_{first.cache_key[-8:]}" and found.cache_key == new_key
    for raw in (sync_redis.get(f"ir_cache:{new_key}"), (cache_dir / f"{new_key}.json").read_bytes()):
        entry = StoredEntry.model_validate_json(raw)
        assert (entry.spec_name, entry.spec_path, entry.spec_hash) == ("pets", str(new), first.entry.spec_hash)
        assert entry.application_ir == first.ir and entry.generator == first.entry.generator
        assert entry.renamed_from == first.cache_key
        assert (entry.usage.input_tokens, entry.usage.output_tokens, entry.usage.cost_usd) == (0, 0, 0.0)
        assert entry.usage.mode == first.entry.usage.mode == "full"
    assert (cache_dir / f"{first.cache_key}.json").exists()  # the original is left as it was
    log = ircache_logs.text
    assert (f"IR cache MISS for pets: same spec text as {first.cache_key}, re-keyed without generating" in log)
    assert "IR cache MISS for pets, generating" not in log


async def test_same_hash8_but_another_text_generates(redis_url, cache_dir, ircache_logs):
    """An entry of another name whose key shares the 8 hex digits but whose full spec_hash differs
    (another text) is not taken: the spec is generated."""
    digest = spec_hash(SPEC)
    other_hash = digest[:8] + ("0" if digest[8] != "0" else "1") + digest[9:]
    planted = StoredEntry.create(parse_spec("# Else\n", "else"), spec_name="other", spec_hash=other_hash,
                                 spec_path="other.md", generator="offline")
    cache_dir.mkdir(parents=True)
    (cache_dir / f"other_{digest[:8]}.json").write_bytes(planted.to_json_bytes())
    gen = CountingGenerator()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=gen) as cache:
        found = await cache.lookup(SPEC, "shop.md")
    assert (found.tier, found.renamed_from, gen.calls) == ("generator", None, 1)
    assert found.entry.spec_hash == digest
    assert "same spec text as" not in ircache_logs.text


async def test_force_refresh_generates_even_when_the_text_is_cached_elsewhere(redis_url, cache_dir):
    gen = CountingGenerator()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=gen) as cache:
        await cache.lookup(SPEC, "shop.md")
        found = await cache.lookup(SPEC, "store.md", force_refresh=True)
    assert (found.tier, found.renamed_from, gen.calls) == ("generator", None, 2)


async def test_an_outdated_original_is_not_taken_under_ir_outdated_regenerate(redis_url, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=OfflineGenerator()) as cache:
        await cache.lookup(SPEC, "shop.md")
    gen = CountingGenerator()  # another name: the offline entry is outdated for it
    async with IRCache(settings=Settings(redis_url=redis_url, cache_dir=cache_dir), generator=gen) as cache:
        served = await cache.lookup(SPEC, "store.md")  # serve (the default): the rename is taken
        shop = f"shop_{served.cache_key[-8:]}"
        assert (served.tier, served.renamed_from, served.outdated, gen.calls) == ("filesystem", shop, True, 0)
    settings = Settings(redis_url=redis_url, cache_dir=cache_dir, outdated="regenerate")
    async with IRCache(settings=settings, generator=gen) as cache:
        found = await cache.lookup(SPEC, "market.md")
    assert (found.tier, found.renamed_from, gen.calls) == ("generator", None, 1)
