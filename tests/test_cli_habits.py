"""Habits from other tools: ctrl+c quits the dashboard (as in k9s and lazygit), options go anywhere
on the command line, and a mistyped command is named with the nearest one (exit 2).

All real: the installed entry point as a subprocess against the suite's redis-server, the dashboard
under Textual's Pilot over that server, and in a real terminal (tmux) on its embedded server.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ircache_tui import IRCache
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.screens.help import HelpScreen
from ircache_tui.tui.services import Services
from tests.support.cli import ENTRY_POINT, cli_env, run_cli
from tests.support.generators import CountingGenerator
from tests.support.tui import until
from tests.test_e2e_tmux import TERMINAL_ENV, _tmux, screen, wait_for
from tests.test_signals import Dashboard, embedded_server_pid, embedded_servers, pane, wait_gone, wait_until

EXAMPLES = Path(__file__).parent.parent / "examples" / "specs"


@pytest.fixture
def env(redis_url, cache_dir):
    return cli_env(redis_url, cache_dir, IR_GENERATOR="offline")


@pytest.fixture
def terminal():
    assert shutil.which("tmux"), "tmux is required for the end-to-end test (make test / .ci/run install it)"
    session = f"ircache-habits-{uuid.uuid4().hex[:8]}"
    yield session
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


@pytest.fixture
def no_server_left_behind(tmp_path):
    """A failed test must not leave its embedded server running (see tests/test_signals.py)."""
    yield
    for pid in embedded_servers(tmp_path / "cache" / "ir"):
        os.kill(pid, signal.SIGKILL)


# -- ctrl+c quits the dashboard -------------------------------------------------------------------
@pytest.mark.usefixtures("no_server_left_behind")
@pytest.mark.parametrize("key, where", [
    *((key, where) for key in ("ctrl+c", "ctrl+q") for where in ("dashboard", "help", "filter")),
    ("q", "dashboard"),  # q closes the help, and types into the filter
])
async def test_ctrl_c_quits_the_dashboard_as_q_does(key, where, cache_dir, specs, monkeypatch):
    """ctrl+c ends the App with return code 0 (what `ircache-tui` then exits with) by the App's
    own close, which stops the embedded redis-server it started. From the dashboard, over a dialog
    (help) and from the filter's input, as ctrl+q does everywhere (q is the dialog's or the input's
    own there)."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    cache = IRCache(redis_url=None, cache_dir=cache_dir, generator=CountingGenerator())
    app = IRCacheApp(Services(cache=cache, spec_dirs=[specs], watch=False))  # the app opens the cache
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: app.first_page_shown, what="the first page")
        server = embedded_server_pid(cache_dir)
        if where == "help":
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
        elif where == "filter":
            await pilot.press("slash")
            await until(pilot, lambda: app.focused is not None and app.focused.id == "keys-filter", what="the filter")
        await pilot.press(key)
        deadline = time.monotonic() + 20
        while app.return_code is None:  # not Pilot's pause: the App is on its way out
            assert time.monotonic() < deadline, f"{key} did not quit the dashboard ({where})"
            await asyncio.sleep(0.05)
    assert app.return_code == 0
    wait_gone(server, 10, "the embedded redis-server")


@pytest.mark.e2e
@pytest.mark.usefixtures("no_server_left_behind")
def test_ctrl_c_quits_the_dashboard_in_a_real_terminal(terminal, tmp_path):
    """In tmux, on its embedded server: ctrl+c (a key, the terminal is raw) quits as q does: exit
    status 0, the terminal restored, the embedded redis-server it started stopped."""
    d = Dashboard(terminal, tmp_path)

    _tmux("send-keys", "-t", terminal, "C-c")

    assert d.exit_status(timeout=20) == 0
    wait_until(lambda: pane(terminal, "#{pane_dead}") == "1", 5, "the pane's shell did not end")
    assert pane(terminal, "#{alternate_on}") == "0", "the terminal was left on the dashboard's screen"
    assert "Redis keys" not in screen(terminal)
    wait_gone(d.server, 10, "the embedded redis-server")


# -- options anywhere -----------------------------------------------------------------------------
@pytest.mark.e2e
def test_the_dashboards_options_go_before_its_spec_dirs(env, tmp_path):
    """The dashboard's own options before its SPEC_DIRs (and between them) reach the dashboard, which
    then checks its dirs: the one line about the missing one, not `unrecognized arguments`."""
    there = tmp_path / "specs"
    there.mkdir()
    missing = str(tmp_path / "missing")
    expected = f"ircache-tui dashboard: spec directory {missing} does not exist or is not a directory"
    for argv in (
        ("--no-watch", missing),
        ("--poll", missing),
        ("--no-generate", "--page-size", "5", "--pattern", "*.md", str(there), missing),
        (str(there), "--poll", missing, "--no-watch"),
        ("--read-only", "dashboard", "--poll", str(there), "--no-watch", missing),
    ):
        out = run_cli(*argv, env=env)
        assert (out.returncode, out.stderr.strip(), out.stdout) == (2, expected, ""), argv


@pytest.mark.e2e
def test_a_commands_options_go_before_or_after_its_command_word(env, specs):
    """`--json stats` is `stats --json`; `warm DIR --json DIR` warms both dirs."""
    other = specs.parent / "more-specs"
    other.mkdir()
    (specs / "petstore-spec.md").rename(other / "petstore-spec.md")
    for argv in (("--json", "warm", str(specs), str(other)), ("warm", str(specs), "--json", str(other)),
                 ("--jobs", "2", "warm", str(specs), "--pattern", "*.md", str(other), "--json")):
        out = run_cli(*argv, env=env)
        assert out.returncode == 0, (argv, out.stderr)
        assert json.loads(out.stdout)["specs"] == 2, argv
    before = run_cli("stats", "--json", env=env)
    assert before.returncode == 0, before.stderr
    for argv in (("--json", "stats"), ("--json", "--prefix", "ir_cache", "stats"), ("-v", "stats", "--json")):
        out = run_cli(*argv, env=env)
        assert out.returncode == 0, (argv, out.stderr)
        assert json.loads(out.stdout)["redis"]["total_keys"] == json.loads(before.stdout)["redis"]["total_keys"] == 2
    out = run_cli("--yes", "--json", "flush", "--filesystem", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"redis": 2, "filesystem": 2, "foreign_kept": 0}


@pytest.mark.e2e
def test_bad_usage_anywhere_is_still_exit_2(env, specs):
    for argv in (("--bogus", str(specs)), (str(specs), "--bogus"), ("--json", str(specs)),
                 ("--page-size", "many", str(specs)), ("stats", str(specs)), ("--json", "stats", "extra")):
        out = run_cli(*argv, env=env)
        assert out.returncode == 2, argv
        assert "Traceback" not in out.stderr and out.stdout == "", argv


# -- a mistyped command ---------------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.parametrize("argv, meant", [
    (("stat",), "stats"),
    (("flsh", "--yes"), "flush"),
    (("wach", "specs"), "watch"),
    (("--redis-url", "redis://127.0.0.1:9/0", "stat", "--json"), "stats"),
    (("dashbord",), "dashboard"),
])
def test_a_mistyped_command_names_the_nearest_one(argv, meant, env, tmp_path):
    out = run_cli(*argv, env=env, cwd=tmp_path)
    word = next(w for w in argv if not w.startswith(("-", "redis:")))
    assert out.returncode == 2
    assert out.stderr == f"ircache-tui: unknown command '{word}' (did you mean '{meant}'?)\n"
    assert out.stdout == ""


@pytest.mark.e2e
def test_a_mistyped_command_is_shown_escaped(env, tmp_path):
    out = run_cli("sta\x1bt", env=env, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == "ircache-tui: unknown command 'sta\\x1bt' (did you mean 'stats'?)\n"


@pytest.mark.e2e
def test_a_word_far_from_every_command_is_still_a_missing_spec_dir(env, tmp_path):
    out = run_cli("nothere", env=env, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == "ircache-tui dashboard: spec directory nothere does not exist or is not a directory\n"
    # a path is never a command, however close its last part
    out = run_cli("./stat", env=env, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == "ircache-tui dashboard: spec directory stat does not exist or is not a directory\n"


@pytest.mark.e2e
def test_a_directory_named_like_a_mistyped_command_opens_in_a_real_terminal(terminal, redis_url, tmp_path):
    """`ircache-tui --poll stat` where `stat/` exists: the dashboard on that dir (it lists and caches
    its specs), polling as told before the dir; ctrl+c ends it with exit status 0."""
    shutil.copytree(EXAMPLES, tmp_path / "stat")
    status_file = tmp_path / "exit-status"
    env = cli_env(redis_url, tmp_path / "cache" / "ir", TERM="xterm-256color")
    env_args = [f"{k}={v}" for k, v in env.items() if k in TERMINAL_ENV]
    command = ["sh", "-c", f'"$@"; echo $? > {status_file}', "sh",
               "env", "-i", *env_args, ENTRY_POINT, "--poll", "stat"]
    _tmux("new-session", "-d", "-s", terminal, "-x", "200", "-y", "40", "-c", str(tmp_path), *command)

    wait_for(terminal, "petstore-spec")
    wait_for(terminal, "live: polling")
    _tmux("send-keys", "-t", terminal, "C-c")
    deadline = time.monotonic() + 20
    while not (status_file.exists() and status_file.read_text().strip()):
        assert time.monotonic() < deadline, f"ctrl+c did not quit:\n{screen(terminal)}"
        time.sleep(0.1)
    assert int(status_file.read_text()) == 0
