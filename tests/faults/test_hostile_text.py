"""Text from outside is text: spec titles, IR fields, file and directory names that hold Rich markup or
terminal escapes are shown as visible text by the dashboard and by every command, never interpreted;
the data itself stays exact (`--json`). A dashboard that does crash says so and exits 1.

The corpus is tests/support/hostile.py: a watched directory `a[/b]`, a spec titled `# Orders [/v2] API`,
a spec file `[reverse]evil.md`, and planted entries whose every shown field carries markup, OSC 52,
CSI 2J, a C1 CSI and a bidi override.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import DataTable
from textual.widgets._data_table import default_cell_formatter  # exactly what the table draws for a cell

from ircache_tui import IRCache
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.screens.detail import DetailScreen, JsonView
from ircache_tui.tui.screens.diff import DiffScreen
from ircache_tui.tui.screens.flush import FlushScreen
from ircache_tui.tui.services import Services
from tests.support import hostile
from tests.support.cli import ENTRY_POINT, cli_env
from tests.support.generators import CountingGenerator
from tests.support.hostile import RAW, RAW_BYTES, SHOWN_C1, SHOWN_CLEAR, SHOWN_OSC52
from tests.support.tui import static_text, until

#: sequences that must never reach the terminal from data (Textual's own output is CSI and SGR only)
DRIVING = ("\x1b]52", "\x1b[2J", "\x9b", "\u202e", "\x07", "file:///etc/passwd\x1b")


@pytest.fixture
def corpus(tmp_path, sync_redis):
    return hostile.build(tmp_path, sync_redis)


# -- the dashboard, App-level ------------------------------------------------------------------------
def painted(app) -> tuple[str, str]:
    """The whole screen as a terminal would receive it (escape sequences and all) and as plain text:
    what App.export_screenshot renders, written to a terminal console instead of an SVG."""
    stream = Console(width=app.size.width, height=app.size.height, file=io.StringIO(), force_terminal=True,
                     color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    stream.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return stream.file.getvalue(), stream.export_text()


def assert_not_driving(app, where: str) -> str:
    """Nothing on screen drives the terminal; returns the plain text shown."""
    ansi, text = painted(app)
    for seq in DRIVING:
        assert seq not in ansi, f"{seq!r} reached the terminal ({where})"
    assert "\x1b]8;" not in ansi or "etc/passwd" not in ansi, f"a link to /etc/passwd was drawn ({where})"
    return text


def shown_cells(app, pane: str) -> list[str]:
    """Every cell of a pane's table as the table draws it (a `str` cell is parsed as markup)."""
    table = app.query_one(f"#{pane}-table", DataTable)
    return [default_cell_formatter(value).plain for row in table.rows for value in table.get_row(row)]


@pytest.mark.slow
async def test_the_dashboard_shows_hostile_text_as_text(corpus, redis_url):
    """Before: the dashboard did not start (MarkupError from `a[/b]` and `[/v2]`); entries showed
    `[reverse]evil` as `evil`, and names sent OSC 52 and CSI 2J to the terminal."""
    async with IRCache(redis_url=redis_url, cache_dir=corpus.cache_dir, ttl=3600,
                       generator=CountingGenerator()) as cache:
        app = IRCacheApp(Services(cache=cache, spec_dirs=[corpus.specs], watch=False))
        async with app.run_test(size=(180, 50)) as pilot:
            await until(pilot, lambda: len(app.keys_pane.rows) == 4 and len(app.specs_pane.statuses) == 3
                        and all(s.cache_key for s in app.specs_pane.statuses.values()), what="4 keys, 3 specs")

            keys = shown_cells(app, "keys")
            assert "[reverse]evil" in keys
            generators = [c for c in keys if c.startswith("[reverse][bold red]X[/bold red]")]
            assert len(generators) == 2 and all(SHOWN_C1 in c for c in generators), keys
            assert not any(RAW.search(c) for c in keys), keys

            # the hostile entry in the detail pane: its name, spec path and generator, escaped
            app.keys_pane.table.move_cursor(row=app.keys_pane.table.get_row_index(corpus.key))
            await until(pilot, lambda: app.detail_pane.shown is not None
                        and app.detail_pane.shown.picked.cache_key == corpus.key, what="the detail")
            detail = static_text(app, "#detail")
            assert hostile.MARKUP in detail and SHOWN_OSC52 in detail and SHOWN_CLEAR in detail, detail
            assert not RAW.search(detail)
            assert_not_driving(app, "keys tab")

            await pilot.press("2")
            await until(pilot, lambda: corpus.evil_key in app.files_pane.entries, what="the files")
            assert f"{corpus.evil_key}" in shown_cells(app, "files")
            assert "[reverse]evil" in assert_not_driving(app, "files tab")

            await pilot.press("3")
            specs = shown_cells(app, "specs")
            assert "[reverse]evil" in specs and any(c.endswith("a[/b]/[reverse]evil.md") for c in specs), specs
            assert "a[/b]" in static_text(app, "#specs-footer")
            assert_not_driving(app, "specs tab")

            # enter: the full view; its JSON (C1 and bidi are not JSON-escaped) shows escapes too
            await pilot.press("1")
            app.keys_pane.table.move_cursor(row=app.keys_pane.table.get_row_index(corpus.key))
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), what="the detail screen")
            view = app.screen.query_one(JsonView)
            await until(pilot, lambda: view.lines is not None, what="the JSON lines")
            shown = assert_not_driving(app, "detail screen")
            assert SHOWN_OSC52 in shown and hostile.MARKUP in static_text(app, "#detail-summary")
            assert any(SHOWN_C1 in line for line in view.visible_text())
            await pilot.press("q")
            await until(pilot, lambda: not isinstance(app.screen, DetailScreen), what="back")

            # D: the diff of the two hostile versions lists the hostile entity names, escaped
            await pilot.press("D")
            await until(pilot, lambda: isinstance(app.screen, DiffScreen), what="the diff")
            body = static_text(app, "#diff-body")
            assert "Entity1" in body and SHOWN_OSC52 in body and hostile.MARKUP in body, body
            assert not RAW.search(body)
            assert_not_driving(app, "diff screen")
            await pilot.press("q")
            await until(pilot, lambda: not isinstance(app.screen, DiffScreen), what="diff closed")

            # f on `[reverse]evil`: the question names it with its brackets
            app.keys_pane.table.move_cursor(row=app.keys_pane.table.get_row_index(corpus.evil_key))
            await pilot.press("f")
            await until(pilot, lambda: isinstance(app.screen, FlushScreen), what="the flush dialog")
            assert static_text(app, "#flush-title") == "Flush spec [reverse]evil?"
            assert_not_driving(app, "flush dialog")
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, FlushScreen), what="flush cancelled")
            assert app.is_running


async def test_notifications_and_the_log_pane_show_hostile_text_as_text(corpus, redis_url):
    """A notification and a log line that carry a hostile name: shown escaped, never as markup.
    Before: the toast parsed the name as markup and passed OSC 52 on; a child logger's line (no
    filter on it) reached the log pane raw."""
    async with IRCache(redis_url=redis_url, cache_dir=corpus.cache_dir, ttl=3600,
                       generator=CountingGenerator()) as cache:
        app = IRCacheApp(Services(cache=cache, watch=False))
        async with app.run_test(size=(180, 50)) as pilot:
            await until(pilot, lambda: app.first_page_shown, what="the first page")
            app.notify(f"Regenerating {hostile.HOSTILE}")
            logging.getLogger("ircache.watch").warning("spec %s changed", hostile.HOSTILE)  # a child: no filter
            await until(pilot, lambda: any(SHOWN_OSC52 in line.text for line in app.log_pane.lines), what="the log")
            await until(pilot, lambda: hostile.MARKUP in assert_not_driving(app, "toast"), what="the toast")
            line = next(line.text for line in app.log_pane.lines if SHOWN_OSC52 in line.text)
            assert hostile.MARKUP in line and not RAW.search(line)


# -- every command's text output ---------------------------------------------------------------------
def run_bytes(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([ENTRY_POINT, *args], env=env, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


def assert_no_raw(proc: subprocess.CompletedProcess[bytes], what: str) -> str:
    for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        found = RAW_BYTES.search(stream)
        assert found is None, f"{what}: {found.group()!r} reached {name}:\n{stream!r}"
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    return proc.stdout.decode()


@pytest.mark.e2e
@pytest.mark.slow
def test_every_command_prints_hostile_text_escaped_and_json_exact(corpus, redis_url, sync_redis):
    """Before: `get` and `diff` printed the IR name and entity names raw (OSC 52, CSI 2J, C1, bidi)."""
    env = cli_env(redis_url, corpus.cache_dir)
    specs = str(corpus.specs)
    hostile_md = str(corpus.specs / "hostile.md")

    out = assert_no_raw(run_bytes("warm", specs, "-v", env=env), "warm")
    assert "2 generated" in out, out  # orders and `[reverse]evil`; hostile.md's entry was planted

    proc = run_bytes("get", hostile_md, "-v", env=env)
    out = assert_no_raw(proc, "get")
    assert proc.returncode == 0 and SHOWN_OSC52 in out and hostile.MARKUP in out, out

    proc = run_bytes("get", hostile_md, "--json", env=env)
    assert_no_raw(proc, "get --json")
    got = json.loads(proc.stdout)
    assert got["application_ir"] == corpus.entry.application_ir.model_dump(mode="json")  # exact, escapes and all
    assert got["generator"] == {"name": corpus.entry.generator.name, "model": corpus.entry.generator.model}

    proc = run_bytes("diff", hostile_md, "--no-generate", "-v", env=env)
    out = assert_no_raw(proc, "diff")
    assert proc.returncode == 0 and "Entity1" in out and SHOWN_OSC52 in out, out

    proc = run_bytes("diff", hostile_md, "--no-generate", "--json", env=env)
    assert_no_raw(proc, "diff --json")
    diff = json.loads(proc.stdout)
    assert diff["entities"]["removed"] == [corpus.old_entry.application_ir.domain_model.entities[0].name]

    proc = run_bytes("stats", "-v", env=env)
    assert "[reverse]evil" in assert_no_raw(proc, "stats") and proc.returncode == 0

    proc = run_bytes("prune", specs, "--dry-run", "-v", env=env)
    out = assert_no_raw(proc, "prune --dry-run")
    assert f"stale in Redis: {corpus.old_key}" in out, out

    proc = run_bytes("flush", "[reverse]evil", "--yes", "-v", env=env)
    assert "[reverse]evil" in assert_no_raw(proc, "flush") and proc.returncode == 0
    assert sync_redis.get(f"ir_cache:{corpus.key}") == corpus.entry.to_json_bytes()  # the data never changed


@pytest.mark.e2e
def test_an_error_line_naming_a_hostile_directory_is_escaped(tmp_path, redis_url):
    """A directory typed on the command line that holds escapes: the one error line shows them escaped.
    Before: `spec directory … does not exist` printed the name raw."""
    env = cli_env(redis_url, tmp_path / "cache")
    proc = run_bytes("prune", str(tmp_path / f"{hostile.OSC52}{hostile.CSI_CLEAR}missing"), "--dry-run", env=env)
    assert proc.returncode == 2
    assert_no_raw(proc, "prune of a missing hostile directory")
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and SHOWN_OSC52 in lines[0] and SHOWN_CLEAR in lines[0], lines


# -- the dashboard in a real terminal ----------------------------------------------------------------
class Tmux:
    """A private tmux server (its own socket, no config but `set-clipboard on`): OSC 52 from any
    pane there becomes a paste buffer, so `buffers()` shows whether a clipboard write got through."""

    def __init__(self, tmp_path: Path) -> None:
        assert shutil.which("tmux"), "tmux is required (make test / .ci/run install it)"
        self.socket = str(tmp_path / f"tmux-{uuid.uuid4().hex[:8]}.sock")
        self.conf = tmp_path / "tmux.conf"
        self.conf.write_text("set -g set-clipboard on\nset -g history-limit 0\n")

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.socket, "-f", str(self.conf), *args], capture_output=True,
                              text=True, check=True, timeout=10).stdout

    def has(self, session: str) -> bool:
        return subprocess.run(["tmux", "-S", self.socket, "has-session", "-t", session], capture_output=True,
                              timeout=10).returncode == 0

    def buffers(self) -> str:
        proc = subprocess.run(["tmux", "-S", self.socket, "list-buffers"], capture_output=True, text=True, timeout=10)
        return proc.stdout

    def screen(self, target: str, *flags: str) -> str:
        return self("capture-pane", "-p", *flags, "-t", target)

    def wait_for(self, target: str, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen(target)
            if text in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; screen was:\n{self.screen(target)}")

    def wait_gone(self, target: str, text: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen(target)
            if text not in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never went; screen was:\n{self.screen(target)}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def tmux(tmp_path):
    server = Tmux(tmp_path)
    yield server
    server.kill()


def _dashboard_command(env: dict[str, str], *args: str) -> list[str]:
    keep = ("REDIS_URL", "IR_CACHE_DIR", "IRCACHE_REDIS_SERVER", "PATH", "HOME", "TERM", "TEXTUAL_SCREENSHOT",
            "TEXTUAL_SCREENSHOT_LOCATION")
    return ["env", "-i", *(f"{k}={v}" for k, v in env.items() if k in keep), ENTRY_POINT, *args]


@pytest.mark.e2e
@pytest.mark.slow
def test_the_dashboard_in_a_real_terminal_writes_no_clipboard_and_shows_escapes(tmux, corpus, redis_url, sync_redis):
    """tmux with set-clipboard on: every tab, the detail, the diff and the flush dialog over the corpus.
    Before: the dashboard died at start (MarkupError) and, without the markup, OSC 52 in an IR name
    filled tmux's paste buffer as soon as the entry was shown."""
    # the check can fail: an OSC 52 written in this server does make a buffer
    tmux("new-session", "-d", "-s", "control", "-x", "80", "-y", "10",
         "printf '\\033]52;c;Y29udHJvbA==\\007'; sleep 30")
    deadline = time.monotonic() + 10
    while "control" not in tmux.buffers():
        assert time.monotonic() < deadline, "tmux made no buffer of an OSC 52: the check below would prove nothing"
        time.sleep(0.1)
    tmux("delete-buffer")
    tmux("kill-session", "-t", "control")
    assert tmux.buffers() == ""

    env = cli_env(redis_url, corpus.cache_dir, TERM="xterm-256color")
    tmux("new-session", "-d", "-s", "dash", "-x", "170", "-y", "45", *_dashboard_command(env, str(corpus.specs)))
    tmux.wait_for("dash", "[reverse]evil")
    deadline = time.monotonic() + 30
    while len(sync_redis.keys("ir_cache:*_*")) < 4:  # orders and evil generated by the watcher
        assert time.monotonic() < deadline, "the watcher never generated orders and evil"
        time.sleep(0.2)
    tmux.wait_for("dash", "initial walk done: 3 specs: 3 in redis")  # settled: no reload to move the cursor

    # the rows: [reverse]evil, hostile (current), hostile (stale), orders
    tmux("send-keys", "-t", "dash", "Down")
    shown = tmux.wait_for("dash", SHOWN_OSC52)  # the detail pane's generator, as visible text
    assert "[reverse][bold red]X[/bold" in shown, shown
    tmux("send-keys", "-t", "dash", "Down", "Down")
    tmux.wait_for("dash", "Orders [/v2] API")  # the IR named by the spec's heading
    # each tab is known by its footer (the log pane shows the same names on every tab)
    tmux("send-keys", "-t", "dash", "2")
    tmux.wait_for("dash", "cold (w warms)")
    tmux.wait_for("dash", corpus.evil_key)  # (the rows may fill a refresh after the footer, on a loaded machine)
    tmux("send-keys", "-t", "dash", "3")
    shown = tmux.wait_for("dash", f"3 specs in {corpus.specs}:")  # the footer names the watched directory
    assert "[reverse]evil" in shown
    tmux("send-keys", "-t", "dash", "1")
    tmux.wait_for("dash", "page 1 of ~4 IR keys")  # the keys tab's footer: its table has the focus again
    tmux("send-keys", "-t", "dash", "Up")  # the stale hostile entry
    tmux.wait_for("dash", corpus.old_key)
    tmux("send-keys", "-t", "dash", "Enter")
    shown = tmux.wait_for("dash", '"domain_model"')  # the full view, its JSON drawn
    assert SHOWN_OSC52 in shown and f"{SHOWN_C1}\\u202e!" in shown, shown  # the name; C1 and bidi in the JSON
    tmux("send-keys", "-t", "dash", "q")
    tmux.wait_gone("dash", '"domain_model"')
    tmux("send-keys", "-t", "dash", "D")
    shown = tmux.wait_for("dash", "Entity2")
    assert f"GET /orders/{SHOWN_OSC52}{SHOWN_C1}" in shown, shown
    tmux("send-keys", "-t", "dash", "q")
    tmux.wait_gone("dash", "Entity2")
    tmux("send-keys", "-t", "dash", "Up", "Up")
    tmux("send-keys", "-t", "dash", "f")
    tmux.wait_for("dash", "Flush spec [reverse]evil?")
    tmux("send-keys", "-t", "dash", "Escape")
    shown = tmux.wait_gone("dash", "Flush spec [reverse]evil?")

    assert tmux.buffers() == "", f"a clipboard write got through: {tmux.buffers()}"
    lines = shown.splitlines()
    assert lines and "Redis" in lines[0] and "● up" in lines[0], shown  # the status line was never blanked
    assert "Quit" in shown  # nor the footer
    assert tmux.has("dash")  # still running
    tmux("send-keys", "-t", "dash", "q")
    deadline = time.monotonic() + 15
    while tmux.has("dash"):
        assert time.monotonic() < deadline, "the app did not quit on q"
        time.sleep(0.2)


@pytest.mark.e2e
@pytest.mark.slow
def test_a_dashboard_that_crashes_exits_1_and_says_so_in_one_line(tmux, tmp_path, redis_url):
    """No data can crash the dashboard any more (everything shown is text), so a Textual-level failure
    stands in: TEXTUAL_SCREENSHOT asks Textual to save a screenshot after 1 s, into a directory that
    does not exist. Before: exit status 0 and Textual's traceback, with its locals, on the terminal."""
    specs = tmp_path / "specs"
    specs.mkdir()
    status = tmp_path / "status"
    env = cli_env(redis_url, tmp_path / "cache" / "ir", TERM="xterm-256color", TEXTUAL_SCREENSHOT="1",
                  TEXTUAL_SCREENSHOT_LOCATION=str(tmp_path / "no such dir"))
    command = " ".join(f"'{word}'" for word in _dashboard_command(env, str(specs)))
    tmux("new-session", "-d", "-s", "crash", "-x", "250", "-y", "40",
         f"{command}; echo $? > '{status}'; sleep 60")
    deadline = time.monotonic() + 60
    while not status.exists() or not status.read_text().strip():
        assert time.monotonic() < deadline, f"the dashboard never ended; screen:\n{tmux.screen('crash')}"
        time.sleep(0.2)
    assert status.read_text().strip() == "1"
    lines = [line for line in tmux.screen("crash", "-J").splitlines() if line.strip()]  # -J: wrapped lines joined
    assert len(lines) == 1, lines  # the terminal is restored, and one line says what happened
    assert lines[0].startswith("ircache-tui: the dashboard crashed: FileNotFoundError: "), lines[0]
    saved = Path(lines[0].rsplit("traceback in ", 1)[1])
    assert oct(saved.stat().st_mode & 0o777) == "0o600"
    trace = saved.read_text()
    saved.unlink()
    assert "take_screenshot" in trace and not RAW.search(trace)
    assert f"FileNotFoundError: [Errno 2] No such file or directory: '{tmp_path / 'no such dir'}/" in trace  # whole
