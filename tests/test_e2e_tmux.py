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


def test_read_only_dashboard_in_a_real_terminal_changes_nothing(terminal, tmp_path):
    """`ircache-tui --read-only SPEC_DIR` over an external Redis (TCP, password) seeded with a cached,
    a cold and a missing spec, corrupt entries and foreign keys: it shows them, follows an edit
    (the edited spec shows as missing) and sends no write; DBSIZE, every key and the cache dir stay."""
    from ircache_tui import cache_key
    from tests.test_read_only import A_EDIT, WriteWatch, assert_no_writes, assert_unchanged, seeded_world, snapshot

    def spec_row(shown: str, spec: str) -> str:
        rows = [line for line in shown.splitlines() if line.lstrip().startswith(spec + " ")]
        return rows[0] if rows else ""

    with seeded_world(tmp_path) as world:
        env = cli_env(world.server.url, world.cache_dir, TERM="xterm-256color")
        env_args = [f"{k}={v}" for k, v in env.items() if k in ("REDIS_URL", "IR_CACHE_DIR", "PATH", "HOME", "TERM")]
        command = ["env", "-i", *env_args, ENTRY_POINT, "--read-only", str(world.specs)]
        before = snapshot(world)
        watch = WriteWatch(world.server).start()
        try:
            _tmux("new-session", "-d", "-s", terminal, "-x", "130", "-y", "36", *command)
            shown = wait_for(terminal, "READ-ONLY")
            assert "● up" in wait_for(terminal, "● up")
            wait_for(terminal, "initial walk done: 5 specs: 2 in redis, 2 filesystem only, 1 missing")

            _tmux("send-keys", "-t", terminal, "F")  # disabled: no confirmation, nothing flushed
            _tmux("send-keys", "-t", terminal, "w")
            time.sleep(0.5)
            assert "Flush ALL IR entries?" not in screen(terminal) and "Warmed" not in screen(terminal)

            # the Specs tab: focus the tab bar (shift+tab from the keys table), then two to the right
            _tmux("send-keys", "-t", terminal, "BTab")
            time.sleep(0.3)
            _tmux("send-keys", "-t", terminal, "Right")
            time.sleep(0.3)
            _tmux("send-keys", "-t", terminal, "Right")
            shown = wait_for(terminal, "inventory-spec ")
            keys = world.keys
            assert keys["a"][-8:] in spec_row(shown, "petstore-spec") and "in redi" in spec_row(shown, "petstore-spec")
            assert "filesys" in spec_row(shown, "ecommerce-api-spec-human"), shown
            assert "missing" in spec_row(shown, "inventory-spec"), shown

            spec = world.paths["a"]
            spec.write_text(spec.read_text() + A_EDIT)
            new_hash = cache_key(spec.read_text(), str(spec))[-8:]
            deadline = time.monotonic() + 15
            while not (new_hash in spec_row(shown, "petstore-spec") and "missing" in spec_row(shown, "petstore-spec")):
                assert time.monotonic() < deadline, f"the edited spec never showed as missing:\n{shown}"
                time.sleep(0.2)
                shown = screen(terminal)
            assert "READ-ONLY" in shown

            _tmux("send-keys", "-t", terminal, "q")
            deadline = time.monotonic() + 10
            while subprocess.run(["tmux", "has-session", "-t", terminal], capture_output=True).returncode == 0:
                assert time.monotonic() < deadline, "the app did not quit on q"
                time.sleep(0.2)
        finally:
            report = watch.stop()
        assert_no_writes(report, expect_reads={"get", "exists", "scan", "getrange"})
        assert_unchanged(before, snapshot(world))
