"""`ircache-tui [SPEC_DIR ...]`: the Textual dashboard (the default command)."""

from __future__ import annotations

import argparse

from ...settings import Settings
from ..common import CommandError

HELP = "open the dashboard (the default when no command is given)"
DESCRIPTION = """Open the Textual dashboard over the IR cache: Redis keys, filesystem
entries, the specs under SPEC_DIR (watched for changes) and a live log.

example:
  ircache-tui examples/specs"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="*", metavar="SPEC_DIR", help="spec directories to list and watch")


def run(args: argparse.Namespace, settings: Settings) -> int:
    raise CommandError("the dashboard is not built yet")
