"""The small ones of the fault issue (bug 11): an unreadable entry is reported once per lookup,
not twice; the offline generator's miss does not claim an LLM."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]

# As root no permission stops a read, so the read is made to fail the way any process can:
# out of file descriptors (EMFILE) once the entry exists. Redis is down, so the lookup goes
# to the filesystem, then to the lock and the re-check, which used to warn a second time.
UNREADABLE = textwrap.dedent("""
    import asyncio, logging, os, resource, sys
    from ircache_tui.cache.ircache import IRCache
    from tests.support.generators import SPEC, CountingGenerator

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stdout)

    async def main(url, cache_dir):
        async with IRCache(redis_url=url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
            await cache.lookup(SPEC, "shop.md")  # on disk now
            cache.decoded.clear()
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            in_use = len(os.listdir("/proc/self/fd")) - 1  # less the listing's own descriptor
            resource.setrlimit(resource.RLIMIT_NOFILE, (in_use, hard))
            try:
                result = await cache.lookup(SPEC, "shop.md")
                print("TIER", result.tier)
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
""")


def test_an_unreadable_entry_is_reported_once_per_lookup(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"
    out = subprocess.run([sys.executable, "-c", UNREADABLE, url, str(tmp_path / "cache")], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cannot_read = [ln for ln in out.stdout.splitlines() if "Cannot read cache file" in ln]
    assert len(cannot_read) == 1, out.stdout
    assert "Too many open files" in cannot_read[0]
    assert "TIER generator" in out.stdout  # it could not read the entry, so it generated (and said so once)


def test_the_offline_generator_miss_line_does_not_claim_an_llm(tmp_path, secured_url):
    from .conftest import cli_env, run

    spec = tmp_path / "shop.md"
    spec.write_text("# Shop\n\n## Entities\n- Item: name (str)\n")
    out = run("-v", "get", str(spec), env=cli_env(secured_url, tmp_path / "cache", IR_GENERATOR="offline"))
    assert out.returncode == 0, out.stderr
    assert "INFO: IR cache MISS for shop, generating with the offline generator (no LLM)" in out.stderr.splitlines()
    assert "generating with LLM" not in out.stderr
