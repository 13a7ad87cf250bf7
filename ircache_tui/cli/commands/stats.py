"""`ircache-tui stats`: what is cached, in Redis and on disk."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ...cache.errors import IRCacheError
from ...cache.ircache import IRCache
from ...cache.results import Savings
from ...cache.server import ServerInfo
from ...cache.server_facts import ServerFacts
from ...fmt import human_bytes, human_count, human_ttl, human_usd, kept_sentence, plural
from ...settings import Settings
from ..common import EXIT_FAILED, EXIT_OK, eprint, print_json, say

HELP = "show what the IR cache holds (Redis keys, bytes, specs; files on disk)"
DESCRIPTION = """Show what the IR cache holds: IR keys in Redis with their MEMORY USAGE and
spec names, what the server says of itself (version, mode, memory, eviction
policy and whether it may evict IR entries, clients, keyspace notifications,
persistence), and the entries in the filesystem tier. Exits 1 when Redis is
unreachable (the filesystem part is still printed).

example:
  ircache-tui stats --json"""


#: how many spec names the text output shows; --json lists them all
SPECS_SHOWN = 10


def specs_text(redis_info: dict[str, Any], limit: int = SPECS_SHOWN) -> str:
    """The `specs` line: how many, then the first `limit` and how many more.

    The biggest first when the stats carry per-spec sizes (`spec_sizes`:
    {name: {"keys", "bytes"}}, bytes None when MEMORY USAGE is refused), else
    alphabetically, as `specs` is sorted.
    """
    names: list[str] = list(redis_info["specs"])
    sizes = redis_info.get("spec_sizes")
    if sizes:
        def weight(name: str) -> tuple[int, int, str]:
            size = sizes.get(name) or {}
            return (-(size.get("bytes") or 0), -(size.get("keys") or 0), name)

        names.sort(key=weight)
    if not names:
        return "0: none"
    shown = []
    for name in names[:limit]:
        size = sizes.get(name) if sizes else None
        if size:
            detail = plural(size.get("keys") or 0, "key")
            if size.get("bytes") is not None:
                detail += f", {human_bytes(size['bytes'])}"
            name = f"{name} ({detail})"
        shown.append(name)
    text = f"{human_count(len(names))}: " + ", ".join(shown)
    rest = len(names) - len(shown)
    if rest:
        text += f" … and {plural(rest, 'more spec', 'more specs')} (--json lists all)"
    return text


def outdated_text(count: int) -> str:
    return f"{human_count(count)} (made by another generator or prompt: warm DIR --outdated regenerates them)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON (shape documented in the README)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    async with IRCache(settings=settings, origin="cli stats") as cache:
        info = (await cache.get_cache_info(outdated=True)).to_json()
        redis_url = cache.display_url
        generation = await cache.generation_totals()
        try:
            totals = await cache.hit_totals()
        except IRCacheError:
            totals = None  # Redis down: the counts live there
        facts: ServerFacts | None = None
        if info["redis"]["reachable"]:
            try:
                facts = await cache.server_facts()  # (refused fields come back unknown, never raise)
            except IRCacheError:
                pass  # Redis went meanwhile: the facts are null
    info["redis"]["url"] = redis_url
    info["ttl"] = settings.ttl
    info["generation"] = generation.to_json()
    info.update(totals.to_json() if totals else {"hits": None, "saved": None})
    savings = Savings.of(totals, generation) if totals else None
    if savings is not None:
        info["saved"]["by"] = savings.to_json()
    info["server"] = facts.as_json() if facts is not None else None
    if args.json:
        print_json(info)
    else:
        r, f = info["redis"], info["filesystem"]
        if r["reachable"]:
            server = r.get("server")  # which server answered, by what it says (HELLO)
            say(f"Redis       {redis_url}" + (f", {ServerInfo(**server).label}" if server else ""))
            say(f"  IR keys   {human_count(r['total_keys'])}")
            size = r["total_size_bytes"]
            say(f"  memory    {human_bytes(size) if size is not None else 'n/a (MEMORY USAGE refused)'}")
            say(f"  specs     {specs_text(r)}")
            if r.get("outdated"):
                say(f"  outdated  {outdated_text(r['outdated'])}")
            if r.get("foreign_keys"):
                say(f"  kept      {kept_sentence(r['foreign_keys'])}: not counted above")
            if facts is not None:  # what the server says of itself (server_facts.py)
                (_, head, _), *rest = facts.lines()
                say(f"Server      {head}")
                for label, words, _warning in rest:
                    say(f"  {label.lower():<10}{words}")
        else:
            say(f"Redis       {redis_url}: unreachable ({r['error']})")
        say(f"Filesystem  {f['directory']}")
        say(f"  files     {human_count(f['file_count'])}")
        say(f"  size      {human_bytes(f['total_size_bytes'])}")
        if f.get("outdated"):
            say(f"  outdated  {outdated_text(f['outdated'])}")
        say(f"TTL         {settings.ttl}s" + (" (caching off)" if settings.ttl == 0 else ""))
        g = generation
        say(f"Generation  {plural(g.entries_with_usage, 'entry', 'entries')} with usage of "
              f"{human_count(g.entries)}: {human_count(g.input_tokens)} in / "
              f"{human_count(g.output_tokens)} out tokens, {human_usd(g.cost_usd)}")
        if totals:
            since = f" since {totals.since}" if totals.since else ""
            say(f"Hits        {human_count(totals.redis)} Redis, {human_count(totals.filesystem)} filesystem, "
                  f"{human_count(totals.generator)} generated{since}")
            say(f"Saved       {human_usd(totals.saved_usd)} and {human_ttl(int(totals.saved_seconds))} "
                  f"of generation")
        if savings is not None:
            say(f"  by lever  hits {human_usd(savings.hits)}, batch {human_usd(savings.batch)}, "
                f"prompt cache {human_usd(savings.prompt_cache)}, incremental {human_usd(savings.incremental)}")
    if not info["redis"]["reachable"]:
        eprint(f"ircache-tui stats: {info['redis']['error']}")  # the one line that says why
        return EXIT_FAILED
    return EXIT_OK
