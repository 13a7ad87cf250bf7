"""End to end: the installed `ircache-tui` in a real terminal (tmux), driven by keys, read by capture-pane."""

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.support.cli import ENTRY_POINT, cli_env

EXAMPLES = Path(__file__).parent.parent / "examples" / "specs"


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True, timeout=10).stdout


@pytest.fixture
def terminal():
    assert shutil.which("tmux"), "tmux is required for the end-to-end test (make test / .ci/run install it)"
    session = f"ircache-e2e-{uuid.uuid4().hex[:8]}"
    yield session
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def screen(session: str) -> str:
    return _tmux("capture-pane", "-p", "-t", session)


def wait_for(session: str, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = screen(session)
        if text in shown:
            return shown
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared; screen was:\n{screen(session)}")


def test_dashboard_in_a_real_terminal(terminal, redis_url, sync_redis, tmp_path):
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLES, specs)
    env = cli_env(redis_url, tmp_path / "cache" / "ir", TERM="xterm-256color")
    env_args = [f"{k}={v}" for k, v in env.items() if k in ("REDIS_URL", "IR_CACHE_DIR", "PATH", "HOME", "TERM")]
    command = ["env", "-i", *env_args, ENTRY_POINT, str(specs)]
    _tmux("new-session", "-d", "-s", terminal, "-x", "130", "-y", "36", *command)

    # the watcher generates both example specs; they show up without a key press
    wait_for(terminal, "Redis keys")
    shown = wait_for(terminal, "petstore-spec")
    wait_for(terminal, "ecommerce-api-spec-human")
    assert "● up" in shown
    deadline = time.monotonic() + 20
    while sync_redis.dbsize() < 2:
        assert time.monotonic() < deadline, "the two specs were never cached"
        time.sleep(0.2)

    _tmux("send-keys", "-t", terminal, "?")
    wait_for(terminal, "ircache-tui keys")
    _tmux("send-keys", "-t", terminal, "?")  # closes help (escape works too, after the terminal's escape delay)

    _tmux("send-keys", "-t", terminal, "F")
    wait_for(terminal, "Flush ALL IR entries?")
    _tmux("send-keys", "-t", terminal, "y")
    wait_for(terminal, "No IR keys in Redis yet")
    assert sync_redis.dbsize() == 0

    _tmux("send-keys", "-t", terminal, "w")  # warm back from the filesystem tier
    wait_for(terminal, "Warmed 2 entries")
    assert sync_redis.dbsize() == 2

    _tmux("send-keys", "-t", terminal, "q")
    deadline = time.monotonic() + 10
    while subprocess.run(["tmux", "has-session", "-t", terminal], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "the app did not quit on q"
        time.sleep(0.2)
