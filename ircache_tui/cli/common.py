"""What every subcommand shares: options → Settings, logging, output, progress, exit codes.

Everything written here goes through `redact.scrub`: the log handler has a
RedactingFilter, `print_json` and `eprint` scrub their text, and
`settings_from_args` registers the API key and the Redis password with it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, Iterator

from .. import redact
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
    g.add_argument("--read-only", action="store_true", default=S,
                   help="change nothing in Redis or the cache dir and generate nothing (IR_READ_ONLY=1)")
    g.add_argument("-v", "--verbose", action="count", default=S, help="log more (-v info, -vv debug)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    # registered before the settings are checked, so that even a SettingsError cannot show them
    register_secrets(getattr(args, "redis_url", None), os.environ.get("REDIS_URL"),
                     api_keys=(os.environ.get("ANTHROPIC_API_KEY"), os.environ.get("ANTHROPIC_AUTH_TOKEN")))
    settings = Settings.from_env(
        redis_url=getattr(args, "redis_url", None),
        cache_dir=getattr(args, "cache_dir", None),
        prefix=getattr(args, "prefix", None),
        ttl=getattr(args, "ttl", None),
        generator=getattr(args, "generator", None),
        read_only=True if getattr(args, "read_only", False) else None,  # the flag only turns it on
    )
    register_secrets(settings.redis_url, api_keys=(settings.anthropic_api_key,))
    return settings


def register_secrets(*redis_urls: str | None, api_keys: tuple[str | None, ...] = ()) -> None:
    """Tell the scrubber about the Redis passwords in these URLs and these API keys."""
    for url in redis_urls:
        redact.register_url_password(url)
    for key in api_keys:
        redact.register(key)


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    # on the handler too: the logger's own filter does not see what its children (ircache.watch) log
    handler.addFilter(redact.RedactingFilter())
    redact.install("ircache")
    root = logging.getLogger("ircache")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def print_json(data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    sys.stdout.write(redact.scrub(text) + "\n")


def eprint(message: object) -> None:
    """One line for a human on stderr, scrubbed of secrets (errors, warnings)."""
    print(redact.scrub(str(message)), file=sys.stderr)


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
