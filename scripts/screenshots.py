"""Regenerate screenshots/*.svg by driving the real app over the demo data (`make screenshots`).

Starts a redis-server of its own (the binary the embedded server uses) on a
unix socket in a fixed scratch directory, so that the paths on screen do not
change from run to run, and uses the offline generator: it runs anywhere
`make test` does. Not the embedded server: for the Redis-down view the server
is stopped, and the dashboard would start an embedded one again at its next
probe (as it should), before the picture is taken.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ircache_tui import IRCache, cache_key  # noqa: E402
from ircache_tui.tui.app import IRCacheApp  # noqa: E402
from ircache_tui.cache.demo import FIXED_TIME, DemoGenerator, seed_demo  # noqa: E402
from ircache_tui.cache.embedded import find_redis_server  # noqa: E402
from ircache_tui.tui.screens.detail import DetailScreen  # noqa: E402
from ircache_tui.tui.screens.flush import FlushScreen  # noqa: E402
from ircache_tui.tui.screens.server import ServerScreen  # noqa: E402
from ircache_tui.tui.services import Services  # noqa: E402
from tests.support.tui import until  # noqa: E402

SIZE = (130, 36)
SCRATCH = Path("/tmp/ircache-shots")  # shown on screen: the same every run


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A private redis-server on a unix socket in `directory`; (process, URL) once it answers."""
    sock = directory / "redis.sock"
    proc = subprocess.Popen([find_redis_server(), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                             "--save", "", "--appendonly", "no", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("redis-server did not start")
        time.sleep(0.02)
    return proc, f"unix://{sock}"


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(SCRATCH, ignore_errors=True)
    scratch = SCRATCH
    (scratch / "redis").mkdir(parents=True)
    specs = scratch / "specs"
    shutil.copytree(ROOT / "examples" / "specs", specs)
    server, url = start_redis(scratch / "redis")
    try:
        async with IRCache(redis_url=url, cache_dir=scratch / "ir", ttl=604_800, generator=DemoGenerator()) as cache:
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

                await pilot.press("i")  # what the server says of itself
                await until(pilot, lambda: isinstance(app.screen, ServerScreen) and app.screen.facts is not None,
                            timeout=20, what="the server panel")
                await pilot.pause(0.3)
                app.save_screenshot("server.svg", str(out))
                await pilot.press("escape")
                await until(pilot, lambda: not isinstance(app.screen, ServerScreen))

                await pilot.press("L")  # the log, enlarged, searched
                await until(pilot, lambda: app.screen.has_class("-log-big"))
                await pilot.pause(0.3)
                await pilot.press("slash", *"cache", "enter")
                await pilot.pause(0.5)
                app.save_screenshot("log.svg", str(out))
                await pilot.press("escape", "L")
                await until(pilot, lambda: not app.screen.has_class("-log-big"))

                server.terminate()
                await asyncio.to_thread(server.wait)
                await until(pilot, lambda: app.banner.has_class("-down") and app.status_bar.status.connected is False,
                            timeout=20, what="Redis down, on the banner and the status line")
                await pilot.pause(0.5)
                if not (app.banner.has_class("-down") and app.status_bar.status.connected is False):
                    raise RuntimeError("Redis came back before the picture of it down was taken")
                app.save_screenshot("redis-down.svg", str(out))
    finally:
        if server.poll() is None:
            server.kill()
        shutil.rmtree(scratch, ignore_errors=True)
    for name in ("dashboard", "flush-confirm", "detail", "server", "log", "redis-down"):
        print(out / f"{name}.svg")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "screenshots"))
