"""What every subcommand shares: options → Settings, logging, output, progress, exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, Iterator

from ..settings import Settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A failure to report as one line on stderr, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every command takes; defaults are SUPPRESS so a value given before
    the subcommand is not overwritten by the subcommand's default."""
    g = parser.add_argument_group("cache options (default: environment variables)")
    S = argparse.SUPPRESS
    g.add_argument("--redis-url", default=S, help="Redis URL (REDIS_URL); none = the embedded redis-server")
    g.add_argument("--cache-dir", default=S, help="filesystem tier directory (IR_CACHE_DIR, default .cache/ir)")
    g.add_argument("--prefix", default=S, help="Redis key prefix (IR_CACHE_PREFIX, default ir_cache)")
    g.add_argument("--ttl", default=S, help="TTL in seconds for new entries (IR_CACHE_TTL, default 604800; 0 = off)")
    g.add_argument("--generator", default=S, choices=["auto", "offline", "anthropic"],
                   help="who generates on a miss (IR_GENERATOR, default auto: anthropic if ANTHROPIC_API_KEY is set)")
    g.add_argument("-v", "--verbose", action="count", default=S, help="log more (-v info, -vv debug)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        redis_url=getattr(args, "redis_url", None),
        cache_dir=getattr(args, "cache_dir", None),
        prefix=getattr(args, "prefix", None),
        ttl=getattr(args, "ttl", None),
        generator=getattr(args, "generator", None),
    )


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger("ircache")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def confirm(question: str, assume_yes: bool) -> None:
    """Ask on a terminal; without one, refuse unless --yes was given."""
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise CommandError("refusing without --yes: stdin is not a terminal", EXIT_USAGE)
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise CommandError("cancelled", EXIT_FAILED)


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on a terminal, occasional plain lines when piped.

    Yields `update(done)`; progress goes to stderr so stdout stays clean for --json.
    """
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda done: bar.update(task, completed=done)
        return
    last = [0]

    def update(done: int) -> None:
        if done - last[0] >= 10_000 or (total and done == total and done != last[0]):
            last[0] = done
            of = f"/{total}" if total else ""
            print(f"{description}: {done}{of}", file=sys.stderr, flush=True)

    yield update
