"""Valid entries in bulk, written straight to a cache dir (no generator, no fsync per file)."""

from __future__ import annotations

from pathlib import Path

from ircache_tui.cache.keys import spec_hash
from ircache_tui.ir.envelope import StoredEntry
from ircache_tui.ir.generators.offline import parse_spec


def spec_text(i: int) -> str:
    return f"# Spec {i}\n\n## Entities\n- Thing{i}: name (str)\n"


def many_entities(n: int) -> str:
    """A spec of `n` entities: its entry is about 450 bytes an entity."""
    return "# Spec\n\n## Entities\n" + "".join(
        f"### Thing{j}\n- id: uuid (primary key)\n- name: string (required)\n- note: string (optional)\n\n"
        for j in range(n))


def write_entries(cache_dir: Path, n: int, prefix: str = "spec", entities: int = 1) -> list[str]:
    """`n` valid entries `{prefix}-{i}_{hash8}.json` (IRs of `entities` entities); their cache keys."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    ir = parse_spec(spec_text(0) if entities == 1 else many_entities(entities), "template")
    keys = []
    for i in range(n):
        text = spec_text(i)
        name, digest = f"{prefix}-{i}", spec_hash(text)
        key = f"{name}_{digest[:8]}"
        entry = StoredEntry.create(ir, spec_name=name, spec_hash=digest, spec_path=f"specs/{name}.md",
                                   generator="offline")
        (cache_dir / f"{key}.json").write_bytes(entry.to_json_bytes())
        keys.append(key)
    return keys
