"""`ircache-tui watch` as a subprocess of the installed entry point: events in, one line each out,
and a clean stop on SIGINT or SIGTERM."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import threading
import time

import pytest

from ircache_tui import cache_key
from tests.support.cli import ENTRY_POINT, cli_env, run_cli
from tests.support.generators import SPEC

pytestmark = pytest.mark.e2e  # `ircache-tui watch` as a process


class Watch:
    """`ircache-tui watch ...` running, its stderr read line by line on a thread."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [ENTRY_POINT, "watch", *args], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, pattern: str, timeout: float = 15.0) -> str:
        """The next stderr line matching `pattern` (a hang guard, not a timing assertion)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}; got:\n" + "\n".join(self.lines)) from None
            if line is None:
                raise AssertionError(f"exited ({self.proc.wait()}) before {pattern!r}; got:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if re.search(pattern, line):
                return line

    def stop(self, sig: signal.Signals, timeout: float = 15.0) -> tuple[int, str]:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        while True:
            line = self._queue.get_nowait() if not self._queue.empty() else None
            if line is None:
                break
            self.lines.append(line)
        return code, "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def env(redis_url, cache_dir):
    return cli_env(redis_url, cache_dir, IR_GENERATOR="offline")


@pytest.fixture
def watches():
    started: list[Watch] = []

    def start(*args: str, env: dict[str, str]) -> Watch:
        w = Watch(*args, env=env)
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_watch_headless_then_stop_cleanly(sig, env, tmp_path, sync_redis, cache_dir, watches):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "shop.md").write_text(SPEC)
    w = watches(str(specs), "--debounce-ms", "50", env=env)
    w.expect(r"INFO: watching .*specs for \*\.md")
    w.expect(r"INFO: spec .*shop\.md: IR generated and cached")

    new = specs / "catalog.md"  # a spec created while watching: generated
    new.write_text(SPEC + "\nCatalog.\n")
    w.expect(r"INFO: spec .*catalog\.md: IR generated and cached")
    assert sync_redis.exists(f"ir_cache:{cache_key(new.read_text(), str(new))}")

    (specs / "latin1.md").write_bytes(b"# Caf\xe9\n")  # a bad file: one warning naming it and why
    w.expect(r"WARNING: spec .*latin1\.md skipped: not UTF-8")

    new.unlink()
    w.expect(r"INFO: spec .*catalog\.md deleted")

    code, output = w.stop(sig)
    assert code == 0, output
    assert f"{sig.name} received: stopping" in output and "stopped: 3 specs known" in output
    assert "Traceback" not in output and "Error" not in output
    assert w.proc.stdout is not None and w.proc.stdout.read() == ""


def test_watch_no_generate_says_missing(env, tmp_path, sync_redis, watches):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "shop.md").write_text(SPEC)
    w = watches(str(specs), "--no-generate", "--jobs", "2", "--debounce-ms", "50", env=env)
    w.expect(r"watching .*; generation off")
    w.expect(r"spec .*shop\.md: IR not cached \(shop_[0-9a-f]{8}\) and generation is off: missing")
    code, output = w.stop(signal.SIGTERM)
    assert code == 0 and "Traceback" not in output
    assert not sync_redis.keys("ir_cache:*")


def test_watch_bad_usage_exits_2(env, tmp_path):
    out = run_cli("watch", str(tmp_path / "no-such-dir"), env=env)
    assert out.returncode == 2 and "no-such-dir" in out.stderr and "Traceback" not in out.stderr
    for bad in (["--jobs", "0"], ["--debounce-ms", "soon"]):
        out = run_cli("watch", str(tmp_path), *bad, env=env)
        assert out.returncode == 2, bad
        assert bad[0] in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_stop_while_a_generation_is_in_flight(redis_url, cache_dir, tmp_path, sync_redis, watches):
    """SIGTERM in the middle of an LLM call (the real SDK against a slow loopback Messages API):
    exit 0 at once, no traceback, no lock left behind, nothing half-cached."""
    from tests.support.messages_api import MessagesAPI, message

    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "shop.md").write_text(SPEC)
    with MessagesAPI(api_key="test-key") as api:
        api.script(message("{}", delay=60))
        env = cli_env(redis_url, cache_dir, IR_GENERATOR="anthropic", ANTHROPIC_API_KEY="test-key",
                      ANTHROPIC_BASE_URL=api.base_url)
        w = watches(str(specs), "--debounce-ms", "50", env=env)
        w.expect(r"INFO: spec .*shop\.md: generating its IR")
        deadline = time.monotonic() + 15
        while not api.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert api.requests, "the generation never reached the Messages API"
        code, output = w.stop(signal.SIGTERM, timeout=15)
    assert code == 0, output
    assert "Traceback" not in output and "stopped: 1 spec known" in output
    assert sync_redis.keys("*") == []  # no lock, no entry
    assert not list(cache_dir.glob("*.json"))
