"""Fixed demo data for screenshots and snapshot tests: same bytes, same times, every run.

Seeds a cache with the example specs' IRs (offline generator) under a fixed
generated_at, plus the states an operator meets: an older hash left by an
edit (stale), a filesystem-only entry (cold), a corrupt value and a
quarantined file. It writes the tiers directly (it lives in the cache layer
for that): the dashboard itself never does.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..ir.envelope import StoredEntry
from ..ir.generators.offline import OfflineGenerator, parse_spec
from ..ir.prices import estimate_cost, price_for
from ..ir.usage import Usage, usage_from_head
from .hits import HitBatch
from .ircache import IRCache
from .keys import spec_hash, spec_name_from_path, spec_of

FIXED_TIME = datetime(2026, 11, 26, 9, 30, tzinfo=timezone.utc)
# a whisker over 7 days, so the TTL reads "7d 0h" however long seeding takes
DEMO_TTL = 604_800 + 60


#: what the demo's LLM generations used: the figures a 30-120 s generation of a spec like these reports;
#: the ecommerce entry was made by the model before (outdated: made by another model than the current)
DEMO_MODEL = "claude-sonnet-5-5"
_DEMO_USAGE = {
    "petstore-spec": (2_140, 6_310, 48.2, DEMO_MODEL),
    "ecommerce-api-spec-human": (3_480, 11_950, 96.7, "claude-sonnet-4-6"),
}


class DemoGenerator(OfflineGenerator):
    """What the demo's dashboard runs with (screenshots, snapshot tests): the offline generator's
    answers, free and the same every run, under the name and model the demo's entries were made
    with, so that they read as current (and the one an older model made as outdated)."""

    name = "anthropic"
    model: str | None = DEMO_MODEL


def _entry(text: str, path: str, *, llm: bool = True) -> tuple[str, bytes]:
    """A demo entry; the current example specs as an LLM made them (tokens, seconds, dollars from
    the price table), the rest by the offline generator."""
    name = spec_name_from_path(path)
    digest = spec_hash(text)
    tokens = _DEMO_USAGE.get(name) if llm else None
    if tokens is not None:
        usage = Usage(input_tokens=tokens[0], output_tokens=tokens[1], duration_s=tokens[2],
                      cost_usd=estimate_cost(price_for(tokens[3]), tokens[0], tokens[1]), mode="full")
        generator, model = "anthropic", tokens[3]
    else:
        usage, generator, model = Usage(input_tokens=0, output_tokens=0, duration_s=0.004, cost_usd=0.0), "offline", None
    entry = StoredEntry.create(parse_spec(text, name), spec_name=name, spec_hash=digest, spec_path=path,
                               generator=generator, model=model, generated_at=FIXED_TIME, usage=usage)
    return f"{name}_{digest[:8]}", entry.to_json_bytes()


def _demo_hits(written: list[str]) -> HitBatch:
    """Hits by the team's pipelines: the dear entry most, the last a minute before FIXED_TIME."""
    batch = HitBatch()
    plan = {"petstore-spec": (41, 6, 60), "ecommerce-api-spec-human": (17, 2, 1_800)}
    for key in written:
        spec = spec_of(key)
        if spec not in plan or key.endswith("_3d166a93"):
            continue
        redis_hits, fs_hits, ago = plan[spec]
        batch.per_entry[key] = Counter(redis=redis_hits, filesystem=fs_hits)
        batch.last[key] = FIXED_TIME.timestamp() - ago
        batch.totals.update(redis=redis_hits, filesystem=fs_hits)
    return batch


async def seed_demo(cache: IRCache, spec_dir: Path) -> list[str]:
    """Write the demo entries; returns the cache keys written to Redis."""
    mtime = FIXED_TIME.timestamp()
    written = []
    for path in sorted(spec_dir.glob("*.md")):
        key, raw = _entry(path.read_text(), str(path))
        await cache.redis.set_raw(key, raw, DEMO_TTL)
        file = await cache.fs.write_raw(key, raw)
        os.utime(file, (mtime, mtime))
        written.append(key)
    # an edit left the previous version of the petstore spec behind: stale
    old_key, old_raw = _entry("# Petstore API\n\nThe first draft.\n\n## Endpoints\n- GET /pets - List pets\n",
                              str(spec_dir / "petstore-spec.md"), llm=False)
    await cache.redis.set_raw(old_key, old_raw, 3 * 86_400 + 60)
    os.utime(await cache.fs.write_raw(old_key, old_raw), (mtime - 86_400, mtime - 86_400))
    written.append(old_key)
    # on disk only (Redis restarted since): cold until warmed
    cold_key, cold_raw = _entry("# Billing API\n\n## Endpoints\n- POST /invoices - Issue an invoice\n", "billing-spec.md",
                                llm=False)
    os.utime(await cache.fs.write_raw(cold_key, cold_raw), (mtime - 3_600, mtime - 3_600))
    # a value some other writer mangled: the detail view shows why it is unusable
    await cache.redis.set_raw("legacy-spec_0badc0de", b'{"schema_version":0,"ir":{', DEMO_TTL)
    written.append("legacy-spec_0badc0de")
    # and a torn file the cache moved aside
    quarantine = cache.fs.quarantine_dir
    quarantine.mkdir(parents=True, exist_ok=True)
    torn = quarantine / "inventory-spec_5eed1e55.20261125T081500.json"
    torn.write_bytes(b'{"schema_version": 1, "spec_na')
    os.utime(torn, (mtime - 7_200, mtime - 7_200))
    # what the hits saved: each hit of an entry adds what it cost to make
    batch = _demo_hits(written)
    for key, counts in batch.per_entry.items():
        usage = usage_from_head((await cache.fs.read_raw(key)) or b"")
        batch.saved_usd += sum(counts.values()) * ((usage.cost_usd or 0.0) if usage else 0.0)
        batch.saved_seconds += sum(counts.values()) * ((usage.duration_s or 0.0) if usage else 0.0)
    await cache.redis.hit_store.add(batch, since=(FIXED_TIME - timedelta(days=6)).isoformat(timespec="seconds"))
    return written
