"""Regenerate screenshots/*.svg by driving the real app over the demo data (`make screenshots`).

Uses the embedded redis-server in a scratch directory and the offline
generator, so it runs anywhere `make test` does.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ircache_tui import IRCache, OfflineGenerator, cache_key  # noqa: E402
from ircache_tui.tui.app import IRCacheApp  # noqa: E402
from ircache_tui.cache.demo import FIXED_TIME, seed_demo  # noqa: E402
from ircache_tui.tui.screens.detail import DetailScreen  # noqa: E402
from ircache_tui.tui.screens.flush import FlushScreen  # noqa: E402
from ircache_tui.tui.services import Services  # noqa: E402
from tests.support.tui import until  # noqa: E402

SIZE = (130, 36)


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="ircache-shots-"))
    specs = scratch / "specs"
    shutil.copytree(ROOT / "examples" / "specs", specs)
    try:
        async with IRCache(redis_url=None, cache_dir=scratch / "ir", ttl=604_800, generator=OfflineGenerator()) as cache:
            await seed_demo(cache, specs)
            services = Services(cache=cache, spec_dirs=[specs], watch=False, generate_on_watch=False,
                                clock=lambda: FIXED_TIME, monotonic=lambda: 0.0, health_interval=0.3)
            app = IRCacheApp(services)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: len(app.keys_pane.rows) == 4 and len(app.files_pane.entries) == 5
                            and len(app.specs_pane.statuses) == 2 and app.status_bar.status.ir_keys is not None,
                            timeout=20, what="demo data on screen")
                table = app.keys_pane.table
                table.move_cursor(row=0)
                await pilot.pause(0.5)
                app.save_screenshot("dashboard.svg", str(out))

                await pilot.press("F")
                await until(pilot, lambda: isinstance(app.screen, FlushScreen))
                await pilot.pause(0.3)
                app.save_screenshot("flush-confirm.svg", str(out))
                await pilot.press("escape")
                await until(pilot, lambda: not isinstance(app.screen, FlushScreen))

                petstore = cache_key((specs / "petstore-spec.md").read_text(), "petstore-spec.md")
                table.move_cursor(row=table.get_row_index(petstore))
                await pilot.pause(0.3)
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, DetailScreen))
                await pilot.pause(0.3)
                app.save_screenshot("detail.svg", str(out))
                await pilot.press("escape")

                await asyncio.to_thread(cache.embedded.stop)
                await until(pilot, lambda: app.banner.has_class("-down"), timeout=20, what="Redis down banner")
                await pilot.pause(0.5)
                app.save_screenshot("redis-down.svg", str(out))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for name in ("dashboard", "flush-confirm", "detail", "redis-down"):
        print(out / f"{name}.svg")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "screenshots"))
