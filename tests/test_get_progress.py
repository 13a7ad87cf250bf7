"""`get --force` says it is generating while the LLM works, on a terminal only.

The real `ircache-tui get` and the real Anthropic SDK against the loopback Messages API, whose
answer waits for the test (a gate): in tmux (a real terminal) the line appears, counts and is
erased when the IR arrives; with stderr a pipe nothing extra is printed (and --json stays exact)."""

import dataclasses
import json
import re
import shutil
import subprocess
import threading
import time
import uuid

import pytest

from tests.support.cli import ENTRY_POINT, cli_env, run_cli
from tests.support.messages_api import MessagesAPI, message
from tests.test_anthropic_generator import IR_JSON
from tests.test_e2e_tmux import TERMINAL_ENV, screen, wait_for

pytestmark = [pytest.mark.e2e]

SPEC = "# Shop\n\nProducts with a price.\n"


def gated(gate: threading.Event):
    return dataclasses.replace(message(IR_JSON, model="claude-test-model"), gate=gate)


def anthropic_env(redis_url, cache_dir, api, **extra):
    return cli_env(redis_url, cache_dir, IR_GENERATOR="anthropic", ANTHROPIC_API_KEY="test-key",
                   ANTHROPIC_BASE_URL=api.base_url, **extra)


@pytest.fixture
def terminal():
    assert shutil.which("tmux"), "tmux is required for this test"
    session = f"ircache-get-{uuid.uuid4().hex[:8]}"
    yield session
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_get_force_counts_on_a_terminal_and_erases_the_line(terminal, redis_url, tmp_path):
    spec = tmp_path / "shop.md"
    spec.write_text(SPEC)
    gate = threading.Event()
    with MessagesAPI(api_key="test-key") as api:
        api.script(gated(gate))
        env = anthropic_env(redis_url, tmp_path / "ir", api, TERM="xterm-256color")
        env_args = [f"{k}={v}" for k, v in env.items() if k in (*TERMINAL_ENV, "IR_GENERATOR", "ANTHROPIC_API_KEY",
                                                                   "ANTHROPIC_BASE_URL")]
        # a shell that stays after the command, so that what it left on the screen can be read
        script = f"{ENTRY_POINT} get {spec} --force; echo \"exit status $?\"; exec sleep 600"
        subprocess.run(["tmux", "new-session", "-d", "-s", terminal, "-x", "120", "-y", "20",
                        "env", "-i", *env_args, "sh", "-c", script], check=True, timeout=10)
        shown = wait_for(terminal, "generating shop with anthropic")
        line = next(line for line in shown.splitlines() if "generating shop" in line)
        assert re.search(r"generating shop with anthropic \(.+\) · \d+ s", line), line
        deadline = time.monotonic() + 30  # it counts (however slowly the machine runs)
        while not re.search(r"· [1-9]\d* s", screen(terminal)):
            assert time.monotonic() < deadline, screen(terminal)
            time.sleep(0.1)
        gate.set()
        shown = wait_for(terminal, "exit status 0")
    assert "shop_" in shown and "from generator" in shown, shown
    assert "generating shop" not in shown, shown  # erased once the IR came


def test_get_force_prints_nothing_extra_when_stderr_is_not_a_terminal(redis_url, tmp_path):
    spec = tmp_path / "shop.md"
    spec.write_text(SPEC)
    with MessagesAPI(api_key="test-key") as api:
        api.script(message(IR_JSON), message(IR_JSON))
        env = anthropic_env(redis_url, tmp_path / "ir", api)
        result = run_cli("get", str(spec), "--force", env=env)
        assert result.returncode == 0, result.stderr
        assert "from generator" in result.stdout
        assert result.stderr == "", result.stderr  # no spinner, no escape sequence
        result = run_cli("get", str(spec), "--force", "--json", env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert json.loads(result.stdout)["tier"] == "generator"
