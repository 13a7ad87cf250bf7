"""`ircache-tui watch DIR ...`: keep the cache in step with spec directories, headless."""

from __future__ import annotations

import argparse

from ...settings import Settings
from ..common import CommandError

HELP = "watch spec directories and keep the cache warm (headless)"
DESCRIPTION = """Watch spec directories; warm Redis or generate when specs change.

example:
  ircache-tui watch examples/specs"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="+", metavar="DIR", help="spec directories to watch (recursive)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    raise CommandError("watch is not built yet")
