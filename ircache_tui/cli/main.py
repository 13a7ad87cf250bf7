"""`ircache-tui`: the dashboard by default, headless subcommands for scripts and CI.

    ircache-tui [SPEC_DIR ...]           open the dashboard
    ircache-tui stats|get|warm|flush|prune|watch ...
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..cache.errors import IRCacheError
from ..settings import SettingsError
from . import commands
from .common import (
    EXIT_FAILED,
    EXIT_USAGE,
    CommandError,
    add_common_options,
    eprint,
    settings_from_args,
    setup_logging,
)

SUBCOMMANDS = ("dashboard", "stats", "get", "warm", "flush", "prune", "watch")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ircache-tui",
        description="Operate the ApplicationIR cache (Redis → filesystem → generator).",
        epilog="With no subcommand, opens the dashboard: ircache-tui examples/specs",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"ircache-tui {__version__}")
    add_common_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in commands.REGISTRY.items():
        p = sub.add_parser(
            name, help=module.HELP, description=module.DESCRIPTION, formatter_class=_Formatter,
        )
        add_common_options(p)
        module.add_arguments(p)
    return parser


def _with_default_command(argv: list[str]) -> list[str]:
    """Insert `dashboard` unless the first positional word is a subcommand."""
    takes_value = {"--redis-url", "--cache-dir", "--prefix", "--ttl", "--generator"}  # --read-only takes none
    skip = False
    for i, word in enumerate(argv):
        if skip:
            skip = False
            continue
        if word in takes_value:
            skip = True
            continue
        if word.startswith("-"):
            if word in ("-h", "--help", "--version"):
                return argv
            continue
        return argv if word in SUBCOMMANDS else argv[:i] + ["dashboard"] + argv[i:]
    return argv + ["dashboard"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_with_default_command(list(sys.argv[1:] if argv is None else argv)))
    setup_logging(getattr(args, "verbose", 0) or 0)
    try:
        settings = settings_from_args(args)
        module = commands.REGISTRY[args.command]
        return module.run(args, settings) or 0
    except CommandError as exc:
        eprint(f"ircache-tui {args.command}: {exc}")
        return exc.code
    except SettingsError as exc:
        eprint(f"ircache-tui: {exc}")
        return EXIT_USAGE
    except IRCacheError as exc:
        eprint(f"ircache-tui {args.command}: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (`| head`): not an error worth a traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
