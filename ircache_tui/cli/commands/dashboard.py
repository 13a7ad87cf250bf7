"""`ircache-tui [SPEC_DIR ...]`: the Textual dashboard (the default command).

Once the App has closed, one line says what became of the keyspace notifications the dashboard
turned on for live updates (CONFIG SET notify-keyspace-events): set back to the value it found, or
left on, and why. Nothing is said where it found them on already (or never set them).

SIGINT, SIGTERM and SIGHUP close the dashboard as `q` does, and it exits 0: the
App unmounts (closing the cache it opened, which stops the embedded
redis-server) and Textual restores the terminal. After SIGHUP with the terminal
gone, the screen is not drawn any more (its writes would fail and block the
App's output thread): the App is only closed. If it has not closed within
STOP_GRACE seconds of the signal, it leaves the embedded server (stopped if
it was the last user) and the process exits 128+n.

A dashboard that crashes (an exception nothing handled) exits 1 and says so in
one line on stderr, naming a file that holds the traceback (-v prints it too):
Textual's own report would print it with its locals, raw, where secrets and the
data's own text live.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import select
import signal
import sys
import tempfile
import threading
import time
import traceback
from typing import TYPE_CHECKING

from ...cache.embedded import stop_owned
from ...redact import printable
from ...settings import Settings
from ..common import EXIT_FAILED, EXIT_OK, EXIT_SIGNAL_BASE, eprint, say
from ._shared import spec_dirs

if TYPE_CHECKING:  # Textual is imported only for the dashboard (see run)
    from textual.app import App

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_GRACE = 8.0  # seconds from a stop signal to a forced exit

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
    from rich.console import Console

    from ...tui.app import IRCacheApp  # Textual is imported only for the dashboard
    from ...tui.services import build_services

    services = build_services(
        settings, dirs, page_size=max(1, args.page_size), spec_pattern=args.pattern,
        watch=not args.no_watch, generate_on_watch=not args.no_generate, live="poll" if args.poll else "auto",
    )
    # The dashboard shows the log in its own pane; a stderr handler would scribble over the screen.
    # A NullHandler, not none: with none, Python's last-resort handler would write WARNINGs to the
    # terminal (e.g. what the work still in flight logs while the App closes the cache).
    logger = logging.getLogger("ircache")
    logger.handlers[:] = [logging.NullHandler()]
    logger.setLevel(logging.INFO)
    app = IRCacheApp(services)
    # Textual prints an unhandled exception's traceback here when the App ends: keep it for the file
    # (drawn at the terminal's width already; a narrower console would crop it)
    report = io.StringIO()
    app.error_console = Console(file=report, markup=False, highlight=False, color_system=None, width=1000)
    crashed: BaseException | None = None
    stop = _Stop(app)
    with asyncio.Runner() as runner:  # the App's loop is ours, so that the signals can reach it
        stop.loop = runner.get_loop()
        before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
        for sig in STOP_SIGNALS:
            signal.signal(sig, stop.on_signal)
        try:
            app.run(loop=stop.loop)
        except Exception as exc:  # past Textual's own handling: its driver, or before the App ran
            crashed = exc
            report.write(traceback.format_exc())
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            stop.release()
    if app.exit_note:  # keyspace notifications set back, or left on (the App's on_unmount)
        say(app.exit_note)
    if crashed is None and app.return_code:
        # Textual keeps the first unhandled exception (its return code is then 1)
        crashed = getattr(app, "_exception", None) or RuntimeError("the dashboard stopped on an error")
    if crashed is not None:
        _report_crash(crashed, report.getvalue(), verbose=(getattr(args, "verbose", 0) or 0) > 0)
        return EXIT_FAILED
    return EXIT_OK


def _report_crash(exc: BaseException, trace: str, *, verbose: bool) -> None:
    """One line on stderr; the traceback (secrets masked, controls escaped) in a private file,
    and on stderr too with -v."""
    trace = printable(trace, newlines=True)
    where = ""
    try:
        fd, path = tempfile.mkstemp(prefix="ircache-tui-crash-", suffix=".txt")  # mode 0600
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(trace)
        where = f"; traceback in {path}"
    except OSError as error:
        where = f"; its traceback could not be saved ({error.strerror or error}): -v prints it"
    if verbose:
        sys.stderr.write(trace if trace.endswith("\n") else trace + "\n")
    words = str(exc).strip().splitlines()
    what = f"{type(exc).__name__}: {words[0]}" if words else type(exc).__name__
    eprint(f"ircache-tui: the dashboard crashed: {what}{where}")


class _Stop:
    """SIGINT, SIGTERM, SIGHUP: close the App as `q` does.

    A Python-level handler rather than the loop's own (add_signal_handler): it runs
    even when the loop is stuck (an App blocked on output to a terminal that is gone),
    so the watchdog is armed whatever happens. It only does what is safe in a signal
    handler: set an event, duplicate file descriptors, wake the loop.
    """

    def __init__(self, app: App[None]) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None
        self.signum: int | None = None
        self.armed = threading.Event()
        self.released = False
        # started now: starting a thread from a signal handler could deadlock
        threading.Thread(target=self._watchdog, name="ircache-stop-watchdog", daemon=True).start()

    def release(self) -> None:
        """The App ended without a signal: the watchdog has nothing to watch. (After a
        signal it stays armed, over the rest of the way out.)"""
        if self.signum is None:
            self.released = True
            self.armed.set()

    def on_signal(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            return  # already closing; the watchdog sees to it that it ends
        self.signum = signum
        if signum == signal.SIGHUP and _terminal_gone():
            _detach_from_terminal()
        self.armed.set()
        try:
            # exit() once the App's messages run: called while it is still composing, it would
            # skip mounting the panes that its on_mount then looks for (App-side)
            self.loop.call_soon_threadsafe(self.app.call_later, self.app.exit)  # type: ignore[union-attr]
        except RuntimeError:
            pass  # the loop is closed: the App is gone already

    def _watchdog(self) -> None:
        """Last resort: the App did not close in time; stop our redis-server and go."""
        self.armed.wait()
        if self.released:
            return
        time.sleep(STOP_GRACE)
        stop_owned()
        os._exit(EXIT_SIGNAL_BASE + (self.signum or 0))


def _terminal_gone() -> bool:
    """True when the terminal hung up (its pty closed): polling our output reports POLLHUP."""
    for fd in (1, 2):
        poller = select.poll()
        try:
            poller.register(fd, select.POLLOUT)
            events = poller.poll(0)
        except (OSError, ValueError):
            continue
        if any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _fd, ev in events):
            return True
    return False


def _detach_from_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null: writes to a hung-up terminal fail, and
    a failed write kills Textual's output thread, after which the App blocks on output."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        try:
            os.dup2(devnull, fd)
        except OSError:
            pass
    os.close(devnull)
