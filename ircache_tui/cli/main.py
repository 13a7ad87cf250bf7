"""`ircache-tui`: the dashboard by default, headless subcommands for scripts and CI.

    ircache-tui [SPEC_DIR ...]           open the dashboard
    ircache-tui stats|keys|get|warm|flush|prune|watch|diff|audit ...

Every option goes anywhere: before or after the command word, before or after the
command's own words (`ircache-tui --no-watch specs`, `ircache-tui --json stats`). The
first word that is not an option is the command; any other word opens the dashboard
with it as a SPEC_DIR. A word that is neither a command nor a directory but close to a
command is taken as that command mistyped: `ircache-tui: unknown command 'stat' (did
you mean 'stats'?)`, exit 2 (a word close to none: `spec directory … does not exist`,
exit 2 too).

Exit status:

    0        done
    1        failed; one line on stderr says why (e.g. Redis unavailable, and why in words)
    2        bad usage: an option, a setting or a Redis URL that cannot be used, a mistyped
             command, a spec directory that does not exist (one line, before anything
             starts: the dashboard's screen does not open)
    128+n    a one-shot command (stats, keys, get, warm, flush, prune) stopped by signal n:
             130 SIGINT, 143 SIGTERM, 129 SIGHUP

Signals: SIGINT, SIGTERM and SIGHUP stop every command cleanly. The work in
flight is cancelled, so the cache closes and the command leaves the embedded
redis-server, stopping it if no other process uses it (it runs in its own
session, out of reach of a terminal's signals: its last user must stop it). A one-shot command is cut short:
one line on stderr says what was interrupted (`ircache-tui get: interrupted by
SIGTERM`), the log is muted from the signal on, and it exits 128+n. The
dashboard and `watch` run until they are stopped, so a signal is their normal
end and they exit 0, even when it comes while they are starting: the dashboard
restores the terminal first (after SIGHUP with the terminal gone, it only
closes; if it cannot close within a few seconds it stops its redis-server and
exits 128+n), `watch` logs what it stopped. A second signal stops a one-shot
command at once (128+n too). A signal in the first moments, while Python is
still loading and nothing has started, ends the process as usual.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import functools
import os
import signal
import sys
from collections.abc import Iterable, Sequence
from types import FrameType
from typing import TypeVar, overload

from .. import __version__
from ..cache.embedded import stop_owned
from ..cache.errors import IRCacheError
from ..fmt import describe_os_error
from ..settings import SettingsError
from . import commands
from .common import (
    EXIT_FAILED,
    EXIT_SIGNAL_BASE,
    EXIT_USAGE,
    CommandError,
    Interrupted,
    add_common_options,
    eprint,
    mute_log,
    redis_down_reported,
    settings_from_args,
    setup_logging,
    watch_stop_signals,
)

SUBCOMMANDS = tuple(commands.REGISTRY)  # every registered command is a word `ircache-tui WORD` knows

# Commands that end every run with Redis unavailable by saying so in their own error line
# (and exit 1): the health tracker's "Redis unavailable" WARNING would be that news twice.
# Not `warm`: past its first check (require_redis, which leaves the WARNING out by itself)
# it goes on without Redis where it can, and the WARNING is how that is told; nor `get` and
# `watch`, which go on without Redis too.
_REPORT_REDIS_DOWN = {"stats", "keys", "flush", "prune"}
# Stopped through asyncio.run's own SIGINT handling (cancel the main task, so that
# `async with IRCache(...)` closes) or, outside a loop, by a KeyboardInterrupt.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
# Commands that run until they are stopped: a stop signal is their normal end (exit 0).
_RUN_UNTIL_STOPPED = {"dashboard", "watch"}


class _Stop:
    """The first stop signal this run received (SIGINT is known by its KeyboardInterrupt)."""

    signum: int | None = None


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    """SIGTERM / SIGHUP: mute the log, then do what SIGINT does here.

    Inside asyncio.run, SIGINT's handler is the runner's: the first one cancels the main
    task (its `async with IRCache` closes the cache and stops the embedded server), the
    runner then raises KeyboardInterrupt; a second one raises at once. Outside a loop it
    is Python's own: KeyboardInterrupt. Commands that stop on a signal by design (the
    dashboard, watch) put their own handlers in place of this one while they run.
    """
    if _Stop.signum is None:
        _Stop.signum = signum
        mute_log()
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not _on_stop_signal:
        handler(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt  # SIGINT ignored (SIG_IGN, a background job): stop anyway


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


_N = TypeVar("_N")  # a namespace given to parse_known_args


class _CommandParser(argparse.ArgumentParser):
    """A command's parser: its options and its positional words in any order
    (`ircache-tui specs --no-watch more-specs`), which plain parse_args refuses."""

    _intermixing = False

    # typed as ArgumentParser.parse_known_args is (typeshed's overloads)
    @overload
    def parse_known_args(self, args: Iterable[str] | None = None,
                         namespace: None = None) -> tuple[argparse.Namespace, list[str]]: ...
    @overload
    def parse_known_args(self, args: Iterable[str] | None, namespace: _N) -> tuple[_N, list[str]]: ...
    @overload
    def parse_known_args(self, *, namespace: _N) -> tuple[_N, list[str]]: ...

    def parse_known_args(self, args: Iterable[str] | None = None,
                         namespace: object = None) -> tuple[object, list[str]]:
        if self._intermixing:  # parse_known_intermixed_args' own passes (Python 3.11, 3.12)
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ircache-tui",
        description="Operate the ApplicationIR cache (Redis → filesystem → generator).",
        epilog="With no subcommand, opens the dashboard: ircache-tui examples/specs",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"ircache-tui {__version__}")
    add_common_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for name, module in commands.REGISTRY.items():
        p = sub.add_parser(
            name, help=module.HELP, description=module.DESCRIPTION, formatter_class=_Formatter,
        )
        add_common_options(p)
        module.add_arguments(p)
    return parser


_TOP_LEVEL_ONLY = ("-h", "--help", "--version")  # before any word: the top-level parser's own


@functools.cache
def _options() -> tuple[frozenset[str], frozenset[str]]:
    """Every option any command takes: (those that take a value, those that take none). Read off
    the commands' own parsers, so that a new option is known here as soon as it exists."""
    takes_value: set[str] = set()
    takes_none: set[str] = set(_TOP_LEVEL_ONLY)
    for module in commands.REGISTRY.values():
        p = argparse.ArgumentParser(add_help=False)
        add_common_options(p)
        module.add_arguments(p)
        for action in p._actions:
            (takes_none if action.nargs == 0 else takes_value).update(action.option_strings)
    return frozenset(takes_value), frozenset(takes_none)


def _takes_value(option: str) -> bool:
    """Whether the word after `option` is its value (`--prefix p`; not `--prefix=p`, not `--yes`)."""
    takes_value, takes_none = _options()
    if "=" in option or option in takes_none:
        return False
    if option in takes_value or not option.startswith("--"):
        return option in takes_value
    could_be = [o for o in takes_value | takes_none if o.startswith(option)]  # argparse's abbreviations
    return bool(could_be) and all(o in takes_value for o in could_be)


def _first_word(argv: list[str]) -> tuple[int | None, bool]:
    """Where the first word that is neither an option nor an option's value is (the command word,
    or the dashboard's first SPEC_DIR; None if there is none, and after `--` there is none: what
    follows it is never a command), and whether -h, --help or --version came before it."""
    skip = False
    for i, word in enumerate(argv):
        if skip:
            skip = False
        elif word in _TOP_LEVEL_ONLY:
            return None, True
        elif word == "--":
            return None, False
        elif word.startswith("-") and word != "-":
            skip = _takes_value(word)
        else:
            return i, False
    return None, False


def _with_default_command(argv: list[str]) -> list[str]:
    """argv with its command first: the command word moved to the front, or `dashboard` put there
    when the first word is not a command. Every option then goes to the command's own parser,
    which knows them all: before or after the command word, before or after its positional words.
    Left as it is when -h, --help or --version comes before any word (the top-level help)."""
    i, top_level = _first_word(argv)
    if top_level:
        return argv
    if i is not None and argv[i] in SUBCOMMANDS:
        return [argv[i], *argv[:i], *argv[i + 1:]]
    return ["dashboard", *argv]


def _mistyped_command(argv: list[str]) -> str | None:
    """The one line for a first word that is no command and no directory but close to a command
    (`stat`): it was meant as that command. A directory of that name opens as a SPEC_DIR, and a
    word far from every command is left to the dashboard (`spec directory … does not exist`)."""
    i, _ = _first_word(argv)
    if i is None:
        return None
    word = argv[i]
    if word in SUBCOMMANDS or "/" in word or os.sep in word or os.path.isdir(word):
        return None  # a path is never a command
    near = difflib.get_close_matches(word, SUBCOMMANDS, n=1)
    return f"unknown command '{word}' (did you mean '{near[0]}'?)" if near else None


def _interrupted(command: str, signum: int) -> int:
    """The one line that says what a signal stopped, and its exit status."""
    if command in _RUN_UNTIL_STOPPED:
        return 0  # stopped while starting: its normal end all the same, nothing to say
    name = signal.Signals(signum).name
    try:
        sys.stdout.flush()
        eprint(f"ircache-tui {command}: interrupted by {name}")
    except OSError:
        # the terminal is gone (SIGHUP): nobody to tell, and nothing left may fail at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            os.dup2(devnull, fd)
    return EXIT_SIGNAL_BASE + signum


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    mistyped = _mistyped_command(words)
    if mistyped is not None:
        eprint(f"ircache-tui: {mistyped}")
        return EXIT_USAGE
    args = build_parser().parse_args(_with_default_command(words))
    setup_logging(getattr(args, "verbose", 0) or 0)
    _Stop.signum = None
    before = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _on_stop_signal)
    try:
        with watch_stop_signals():
            code = _run(args)
        return _interrupted(args.command, _Stop.signum) if _Stop.signum is not None else code
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else None
        return _interrupted(args.command, signum or _Stop.signum or signal.SIGINT)
    finally:
        # Whatever stopped the command (a signal during the embedded server's start, a
        # close that never ran), it leaves the embedded redis-server (stopping it if last).
        stop_owned()
        for sig, handler in before.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        module = commands.REGISTRY[args.command]
        if args.command in _REPORT_REDIS_DOWN:
            with redis_down_reported():
                return module.run(args, settings) or 0
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
    except BrokenPipeError:
        # stdout closed early (`| head`): not an error worth a traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as exc:  # a cache dir that is a file, read-only, full, unreadable...
        eprint(f"ircache-tui {args.command}: {describe_os_error(exc)}")
        return EXIT_FAILED
    except ExceptionGroup as group:  # a task group's failure: the first cause, as one line
        first = _first_leaf(group)
        if not isinstance(first, (OSError, IRCacheError)):
            raise
        eprint(f"ircache-tui {args.command}: {describe_os_error(first) if isinstance(first, OSError) else first}")
        return EXIT_FAILED


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


if __name__ == "__main__":
    sys.exit(main())
