"""Fixed demo data for screenshots and snapshot tests: same bytes, same times, every run.

Seeds a cache with the example specs' IRs (offline generator) under a fixed
generated_at, plus the states an operator meets: an older hash left by an
edit (stale), a filesystem-only entry (cold), a corrupt value and a
quarantined file. It writes the tiers directly (it lives in the cache layer
for that): the dashboard itself never does.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from ..ir.envelope import StoredEntry
from ..ir.generators.offline import parse_spec
from .ircache import IRCache
from .keys import spec_hash, spec_name_from_path

FIXED_TIME = datetime(2026, 11, 26, 9, 30, tzinfo=timezone.utc)
# a whisker over 7 days, so the TTL reads "7d 0h" however long seeding takes
DEMO_TTL = 604_800 + 60


def _entry(text: str, path: str) -> tuple[str, bytes]:
    name = spec_name_from_path(path)
    digest = spec_hash(text)
    entry = StoredEntry.create(parse_spec(text, name), spec_name=name, spec_hash=digest, spec_path=path,
                               generator="offline", generated_at=FIXED_TIME)
    return f"{name}_{digest[:8]}", entry.to_json_bytes()


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
                              str(spec_dir / "petstore-spec.md"))
    await cache.redis.set_raw(old_key, old_raw, 3 * 86_400 + 60)
    os.utime(await cache.fs.write_raw(old_key, old_raw), (mtime - 86_400, mtime - 86_400))
    written.append(old_key)
    # on disk only (Redis restarted since): cold until warmed
    cold_key, cold_raw = _entry("# Billing API\n\n## Endpoints\n- POST /invoices - Issue an invoice\n", "billing-spec.md")
    os.utime(await cache.fs.write_raw(cold_key, cold_raw), (mtime - 3_600, mtime - 3_600))
    # a value some other writer mangled: the detail view shows why it is unusable
    await cache.redis.set_raw("legacy-spec_0badc0de", b'{"schema_version": 0, "ir": {', DEMO_TTL)
    written.append("legacy-spec_0badc0de")
    # and a torn file the cache moved aside
    quarantine = cache.fs.quarantine_dir
    quarantine.mkdir(parents=True, exist_ok=True)
    torn = quarantine / "inventory-spec_5eed1e55.20261125T081500.json"
    torn.write_bytes(b'{"schema_version": 1, "spec_na')
    os.utime(torn, (mtime - 7_200, mtime - 7_200))
    return written
