"""A hostile corpus: spec files, directory names and cached IRs whose text would be Rich markup or
terminal escapes if it were not shown as text.

    <root>/a[/b]/               the watched directory (a `[/b]` closing tag in its path)
        orders.md               first line `# Orders [/v2] API`: the offline generator names the IR so
        [reverse]evil.md        a spec named `[reverse]evil`
        hostile.md              its current entry, and an older one, are planted in Redis and on disk:
                                name, description, entities, endpoint paths, flows, rules, spec path
                                and generator all carry markup, OSC 52, CSI 2J, a C1 CSI and a bidi override
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ircache_tui.cache.keys import cache_key, spec_hash
from ircache_tui.ir.envelope import StoredEntry
from ircache_tui.ir.model import (
    APIModel,
    ApplicationIR,
    Attribute,
    BehaviorModel,
    DomainModel,
    Endpoint,
    Entity,
    Flow,
    ValidationModel,
    ValidationRule,
)

MARKUP = "[reverse][bold red]X[/bold red][link=file:///etc/passwd]Y[/link]"
OSC52 = "\x1b]52;c;aGFja2VkCg==\x07"  # "set the clipboard to `hacked\n`", to a terminal that allows it
CSI_CLEAR = "\x1b[2J"  # erase the screen
C1_CSI = "\x9b31m"  # CSI as one C1 character: red, to a terminal that takes 8-bit controls
BIDI = "\u202e"  # right-to-left override
HOSTILE = f"{MARKUP}{OSC52}{CSI_CLEAR}{C1_CSI}{BIDI}!"

#: how the escapes must read on screen: as visible text
SHOWN_OSC52 = r"\x1b]52;c;aGFja2VkCg==\x07"
SHOWN_CLEAR = r"\x1b[2J"
SHOWN_C1 = r"\x9b31m"
SHOWN_BIDI = r"\u202e"
#: what must never reach a terminal: C0 controls but newline and tab, DEL, C1, the bidi override
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]")
RAW_BYTES = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80\xae")

ORDERS_SPEC = "# Orders [/v2] API\n\nOrders.\n\n## Entities\n\n### Order\n- id: uuid (primary key)\n"
EVIL_SPEC = "# Evil\n\n## Entities\n\n### Thing\n- id: uuid (primary key)\n"
HOSTILE_SPEC = "# Hostile\n\nThe current version.\n"
OLD_HOSTILE_SPEC = "# Hostile\n\nAn older version.\n"


def hostile_ir(version: int) -> ApplicationIR:
    """Every text field that is shown carries the hostile string; the versions differ in their
    entities, endpoints and flows, so that a diff lists hostile names."""
    return ApplicationIR(
        name=f"{HOSTILE} v{version}",
        description=HOSTILE,
        domain_model=DomainModel(entities=(
            Entity(name=f"{MARKUP}{OSC52}Entity{version}", description=HOSTILE,
                   attributes=(Attribute(name=f"{CSI_CLEAR}attr", description=HOSTILE),)),
        )),
        api_model=APIModel(endpoints=(
            Endpoint(method="GET", path=f"/orders/{OSC52}{C1_CSI}{BIDI}{version}", summary=HOSTILE),
        )),
        behavior_model=BehaviorModel(flows=(Flow(name=f"{HOSTILE}flow{version}", steps=(HOSTILE,)),)),
        validation_model=ValidationModel(rules=(
            ValidationRule(entity=f"{MARKUP}Entity{version}", condition=HOSTILE, error_message=HOSTILE),
        )),
    )


def hostile_entry(spec_text: str, version: int, generated_at: datetime) -> StoredEntry:
    return StoredEntry.create(
        hostile_ir(version), spec_name="hostile", spec_hash=spec_hash(spec_text),
        spec_path=f"specs/{HOSTILE}/hostile.md", generator=f"{MARKUP}{C1_CSI}", model=f"{OSC52}{CSI_CLEAR}",
        generated_at=generated_at,
    )


@dataclass(frozen=True)
class Corpus:
    specs: Path  # the watched directory, `…/a[/b]`
    cache_dir: Path
    key: str  # the current entry of hostile.md
    old_key: str  # an older entry of the same spec
    entry: StoredEntry
    old_entry: StoredEntry
    orders_key: str  # the key orders.md will have once generated
    evil_key: str  # the key `[reverse]evil.md` will have once generated


def build(root: Path, redis_client, *, prefix: str = "ir_cache") -> Corpus:
    """Write the spec files and plant the two hostile entries in Redis (1 h TTL) and on disk."""
    specs = root / "a[" / "b]"
    specs.mkdir(parents=True)
    (specs / "orders.md").write_text(ORDERS_SPEC)
    (specs / "[reverse]evil.md").write_text(EVIL_SPEC)
    (specs / "hostile.md").write_text(HOSTILE_SPEC)
    cache_dir = root / "cache" / "ir"
    cache_dir.mkdir(parents=True)
    now = datetime.now(timezone.utc)
    planted = {}
    for text, version, when in ((OLD_HOSTILE_SPEC, 1, now - timedelta(days=1)), (HOSTILE_SPEC, 2, now)):
        key = cache_key(text, "hostile.md")
        entry = hostile_entry(text, version, when)
        raw = entry.to_json_bytes()
        redis_client.set(f"{prefix}:{key}", raw, ex=3600)
        (cache_dir / f"{key}.json").write_bytes(raw)
        planted[version] = (key, entry)
    return Corpus(specs, cache_dir, planted[2][0], planted[1][0], planted[2][1], planted[1][1],
                  cache_key(ORDERS_SPEC, "orders.md"), cache_key(EVIL_SPEC, "[reverse]evil.md"))
