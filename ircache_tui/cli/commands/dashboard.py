"""`ircache-tui [SPEC_DIR ...]`: the Textual dashboard (the default command)."""

from __future__ import annotations

import argparse
import logging

from ...settings import Settings
from ..common import EXIT_OK
from ._shared import spec_dirs

HELP = "open the dashboard (the default when no command is given)"
DESCRIPTION = """Open the Textual dashboard over the IR cache: Redis keys (SCAN-paged, with
TTL and MEMORY USAGE), filesystem entries, the specs under SPEC_DIR (watched:
Redis warms itself when they change) and a live log. Press ? for the keys.

examples:
  ircache-tui examples/specs
  ircache-tui --read-only --redis-url redis://prod:6379/0 specs/"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="*", metavar="SPEC_DIR", help="spec directories to list and watch")
    p.add_argument("--page-size", type=int, default=100, help="Redis keys per SCAN page (default 100)")
    p.add_argument("--pattern", default="*.md", help="spec file glob (default *.md)")
    p.add_argument("--no-watch", action="store_true", help="list the specs once, do not watch for changes")
    p.add_argument("--no-generate", action="store_true", help="when a watched spec has no IR, do not generate it")
    p.add_argument("--poll", action="store_true", help="poll for key changes instead of keyspace notifications")


def run(args: argparse.Namespace, settings: Settings) -> int:
    dirs = spec_dirs(args.dirs)  # a missing dir is a clear error before the screen opens
    from ...tui.app import IRCacheApp  # Textual is imported only for the dashboard
    from ...tui.services import build_services

    services = build_services(
        settings, dirs, page_size=max(1, args.page_size), spec_pattern=args.pattern,
        watch=not args.no_watch, generate_on_watch=not args.no_generate, live="poll" if args.poll else "auto",
    )
    # The dashboard shows the log in its own pane; a stderr handler would scribble over the screen.
    logger = logging.getLogger("ircache")
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    IRCacheApp(services).run()
    return EXIT_OK
