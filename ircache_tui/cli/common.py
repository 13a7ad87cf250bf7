"""What every subcommand shares: options → Settings, logging, output, progress, exit codes.

Everything written here goes through `redact.scrub`: the log handler has a
RedactingFilter, `print_json` and `eprint` scrub their text, and
`settings_from_args` registers the API key and the Redis password with it.
Text for people (`say`, `eprint`, the log) is `redact.printable`: names and
errors that hold controls are shown escaped, never sent to the terminal raw.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import logging
import os
import select
import signal
import sys
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, Iterator

from .. import redact
from ..cache.health import REDIS_DOWN
from ..errors import IRCacheError
from ..cache.ircache import GENERATION_FAILED, NOTICE
from ..settings import Settings, secrets_from_env

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SIGNAL_BASE = 128  # a one-shot command cut short by signal n exits 128+n (see main.py)


class CommandError(IRCacheError):
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
    g.add_argument("--cluster", dest="redis_cluster", action="store_true", default=S,
                   help="REDIS_URL is a Redis Cluster node (IR_REDIS_CLUSTER=1; default: ask the server)")
    g.add_argument("--no-cluster", dest="redis_cluster", action="store_false", default=S,
                   help="refuse a Redis Cluster node (IR_REDIS_CLUSTER=0)")
    g.add_argument("-v", "--verbose", action="count", default=S, help="log more (-v info, -vv debug)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    # registered before the settings are checked, so that even a SettingsError cannot show them
    in_env = secrets_from_env()
    register_secrets(getattr(args, "redis_url", None), in_env.redis_url, api_keys=in_env.api_keys)
    settings = Settings.from_env(
        redis_url=getattr(args, "redis_url", None),
        cache_dir=getattr(args, "cache_dir", None),
        prefix=getattr(args, "prefix", None),
        ttl=getattr(args, "ttl", None),
        generator=getattr(args, "generator", None),
        read_only=True if getattr(args, "read_only", False) else None,  # the flag only turns it on
        redis_cluster=getattr(args, "redis_cluster", None),
    )
    register_secrets(settings.redis_url, api_keys=(settings.anthropic_api_key,))
    return settings


def register_secrets(*redis_urls: str | None, api_keys: tuple[str | None, ...] = ()) -> None:
    """Tell the scrubber about the Redis passwords in these URLs and these API keys."""
    for url in redis_urls:
        redact.register_url_password(url)
    for key in api_keys:
        redact.register(key)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _StderrGate(logging.Filter):
    """What of the log reaches stderr, beyond the level: at default verbosity,

    * not the "Redis unavailable" WARNING while the command is one that says so in its own
      error line (`redis_down_reported`): the same news once, not twice;
    * nothing once a stop signal arrived (`mute_log`, or seen on the wakeup pipe that
      `watch_stop_signals` sets up): the one line that says what was interrupted is the
      news, not what tearing down the work in flight logs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.quiet = True  # default verbosity: the two rules above apply
        self.hide_redis_down = 0  # nesting depth of redis_down_reported()
        self.hide_generation_failed = 0  # nesting depth of generation_failure_reported()
        self.muted = False
        self.wakeup_fd = -1  # read end of the signal wakeup pipe

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.quiet:
            return True
        if not self.muted and self.wakeup_fd >= 0:
            self.muted = _stop_signal_seen(self.wakeup_fd)
        if self.muted:
            return False
        if self.hide_generation_failed and getattr(record, GENERATION_FAILED, False):
            return False
        return not (self.hide_redis_down and getattr(record, REDIS_DOWN, False))


def _stop_signal_seen(fd: int) -> bool:
    try:
        arrived = os.read(fd, 512)
    except (BlockingIOError, OSError):
        return False
    return any(n in STOP_SIGNALS for n in arrived)


_gate = _StderrGate()


@contextmanager
def watch_stop_signals() -> Iterator[None]:
    """Inside: a stop signal mutes the log as soon as it arrives, even SIGINT, whose handler
    is asyncio.run's own (it cancels the main task; ours could not). Python writes the
    number of every signal it handles to the wakeup fd, before any handler runs."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    try:
        previous = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except ValueError:  # not the main thread: no signals to watch here
        os.close(r)
        os.close(w)
        yield
        return
    _gate.wakeup_fd = r
    try:
        yield
    finally:
        _gate.wakeup_fd = -1
        signal.set_wakeup_fd(previous)
        os.close(r)
        os.close(w)


@contextmanager
def redis_down_reported() -> Iterator[None]:
    """Inside: an unavailable Redis is reported by the command's own error line, so the health
    tracker's WARNING is left out of stderr (at default verbosity; -v shows both)."""
    _gate.hide_redis_down += 1
    try:
        yield
    finally:
        _gate.hide_redis_down -= 1


@contextmanager
def generation_failure_reported() -> Iterator[None]:
    """Inside: a failed generation is printed by the command itself (`get`'s error line,
    `warm`'s failures), so the cache's ERROR record of it is left out of stderr (-v shows both)."""
    _gate.hide_generation_failed += 1
    try:
        yield
    finally:
        _gate.hide_generation_failed -= 1


def mute_log() -> None:
    """Stop writing log lines to stderr (at default verbosity): the command was interrupted."""
    _gate.muted = True


def setup_logging(verbosity: int) -> None:
    level = NOTICE if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    # on the handler too: the logger's own filter does not see what its children (ircache.watch) log
    handler.addFilter(redact.RedactingFilter())
    _gate.quiet, _gate.muted, _gate.hide_redis_down = verbosity <= 0, False, 0
    _gate.hide_generation_failed = 0
    handler.addFilter(_gate)
    redact.install("ircache")
    root = logging.getLogger("ircache")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def print_json(data: Any) -> None:
    """The data exactly, as JSON: ensure_ascii escapes every control (C1 too) and every
    non-ASCII character, so no raw escape sequence or bidi override reaches stdout."""
    text = json.dumps(_finite(data), indent=2, sort_keys=True, default=str, ensure_ascii=True, allow_nan=False)
    sys.stdout.write(redact.scrub(text) + "\n")


def _finite(data: Any) -> Any:
    """`data` with every NaN or infinite float as None: strict JSON has neither (`NaN`, `Infinity`
    would break every parser but Python's), and a figure that is not finite is not known."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def say(line: object = "") -> None:
    """One line for a human on stdout: printable (secrets masked, controls escaped)."""
    print(redact.printable(line))


def eprint(message: object) -> None:
    """One line for a human on stderr, printable (secrets masked, controls escaped): errors, warnings."""
    print(redact.printable(message), file=sys.stderr)


def _ask(prompt: str) -> str:
    """input() on a terminal, but waiting in short select() rounds: a signal that lands
    just before a blocking read() would only have its handler run after the answer."""
    sys.stdout.write(redact.printable(prompt))
    sys.stdout.flush()
    while not select.select([sys.stdin], [], [], 0.2)[0]:
        pass
    line = sys.stdin.readline()  # "" at end of input (Ctrl+D): no
    if not line.endswith("\n"):
        sys.stdout.write("\n")  # the terminal did not end the prompt's line
        sys.stdout.flush()
    return line


class Interrupted(KeyboardInterrupt):
    """A stop signal (SIGINT, SIGTERM, SIGHUP) where only an exception can stop the work."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, frame: object) -> None:
    mute_log()
    raise Interrupted(signum)


def confirm(question: str, assume_yes: bool) -> None:
    """Ask on a terminal; without one, refuse unless --yes was given.

    The question is asked inside the command's event loop, which waits on it: a
    stop signal meanwhile raises Interrupted out of the wait (asyncio.run's own
    SIGINT handling would only cancel a task that cannot run until it is answered),
    so that the cache still closes on the way out.
    """
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise CommandError("refusing without --yes: stdin is not a terminal", EXIT_USAGE)
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_interrupted)
    try:
        answer = _ask(f"{question} [y/N] ").strip().lower()
    except Interrupted:
        with contextlib.suppress(OSError):  # end the prompt's line, unless the terminal is gone
            sys.stdout.write("\n")
            sys.stdout.flush()
        raise
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
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
