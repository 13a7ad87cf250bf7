"""End to end: the installed `ircache-tui` in a real terminal (tmux), driven by keys, read by capture-pane."""

import json
import re
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.support.cli import ENTRY_POINT, cli_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # the dashboard in a real terminal

EXAMPLES = Path(__file__).parent.parent / "examples" / "specs"
#: the environment the dashboard gets in tmux (`env -i`); IRCACHE_REDIS_SERVER: the server this run is about;
#: PYTHONPATH: the code under test, when the run names it (a worktree over a shared virtualenv)
TERMINAL_ENV = ("REDIS_URL", "IR_CACHE_DIR", "IRCACHE_REDIS_SERVER", "PATH", "HOME", "TERM", "PYTHONPATH")


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
    env_args = [f"{k}={v}" for k, v in env.items() if k in TERMINAL_ENV]
    command = ["env", "-i", *env_args, ENTRY_POINT, str(specs)]
    _tmux("new-session", "-d", "-s", terminal, "-x", "130", "-y", "36", *command)

    # the watcher generates both example specs; they show up without a key press
    wait_for(terminal, "Redis keys")
    wait_for(terminal, "petstore-spec")
    wait_for(terminal, "ecommerce-api-spec-human")
    wait_for(terminal, "● up")  # (the status line may say so a moment after the first rows)
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
    wait_for(terminal, "Warm Redis?")
    _tmux("send-keys", "-t", terminal, "y")  # copy only, the default
    wait_for(terminal, "Warmed 2 entries")
    assert sync_redis.dbsize() == 2

    _tmux("send-keys", "-t", terminal, "q")
    deadline = time.monotonic() + 10
    while subprocess.run(["tmux", "has-session", "-t", terminal], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "the app did not quit on q"
        time.sleep(0.2)


def test_dashboard_at_80x24_in_a_real_terminal(terminal, redis_url, tmp_path):
    """The smallest usual terminal: a one-line status, a dozen key rows or more, the filter and the
    sort on the pane's footer, `?` and `q` on the footer, and the detail one enter away."""
    import asyncio

    from ircache_tui import IRCache, OfflineGenerator

    cache_dir = tmp_path / "cache" / "ir"

    async def seed() -> None:
        async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=OfflineGenerator()) as cache:
            for i in range(20):
                await cache.get_application_ir(f"# spec {i}\n\nA pet store number {i}.", f"/specs/spec-{i:02d}.md")

    asyncio.run(seed())
    env = cli_env(redis_url, cache_dir, TERM="xterm-256color")
    env_args = [f"{k}={v}" for k, v in env.items() if k in TERMINAL_ENV]
    _tmux("new-session", "-d", "-s", terminal, "-x", "80", "-y", "24", "env", "-i", *env_args, ENTRY_POINT, "--no-watch")

    shown = wait_for(terminal, "20 IR keys")
    lines = shown.splitlines()
    assert lines[0].strip().startswith("Redis ● up │ 20 IR keys"), shown
    assert "1 Redis keys" in lines[1], shown  # the status took one line
    rows = [line for line in lines if re.search(r"\bspec-\d\d\b", line)]
    assert len(rows) >= 12, shown
    footer = lines[-1]
    assert "? Help" in footer and "q Quit" in footer, shown

    _tmux("send-keys", "-t", terminal, "s", "s")  # by TTL, then by memory: largest first
    shown = wait_for(terminal, "▼memory · page 1")
    assert "Memory▼" in shown, shown

    _tmux("send-keys", "-t", terminal, "Enter")
    shown = wait_for(terminal, "(Redis)")
    assert "entities" in shown and "Hash" not in shown, shown  # the full view, not the table
    _tmux("send-keys", "-t", terminal, "q")  # back to the table
    wait_for(terminal, "Memory▼")
    quit_dashboard(terminal)


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
        env_args = [f"{k}={v}" for k, v in env.items() if k in TERMINAL_ENV]
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
            shown = screen(terminal)
            assert "Flush ALL IR entries?" not in shown and "Warm Redis?" not in shown and "Warmed" not in shown

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
        assert_no_writes(report, expect_reads={"get", "scan", "getrange"})
        assert_unchanged(before, snapshot(world))


# -- a burst of writes, and a big flush, with the dashboard open ------------------------------------

DASHBOARD_NAME = "ircache-tui"  # CLIENT SETNAME of every dashboard connection
DOWN_SIGNS = ("● down", "Redis is down")


def start_dashboard(session: str, redis_url: str, tmp_path: Path, *args: str, width: int = 160, height: int = 40) -> None:
    """The installed entry point in a fresh tmux session, with only the environment it needs."""
    env = cli_env(redis_url, tmp_path / "cache" / "ir", TERM="xterm-256color")
    env_args = [f"{k}={v}" for k, v in env.items() if k in TERMINAL_ENV]
    command = ["env", "-i", *env_args, ENTRY_POINT, *args]
    _tmux("new-session", "-d", "-s", session, "-x", str(width), "-y", str(height), *command)


def quit_dashboard(session: str) -> None:
    _tmux("send-keys", "-t", session, "q")
    deadline = time.monotonic() + 10
    while subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "the app did not quit on q"
        time.sleep(0.2)


def status_line(shown: str) -> str:
    """The status bar: from the `Redis <url>` line down to the tab bar (it may wrap)."""
    lines = shown.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("Redis "):
            rest = []
            for more in lines[i:i + 3]:
                if "1 Redis keys" in more:
                    break
                rest.append(more.strip())
            return " ".join(rest)
    return ""


def wait_for_status(session: str, text: str, timeout: float = 20.0) -> str:
    """Like wait_for, but `text` must show in the status bar (and Redis never shows down meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        shown = screen(session)
        assert_never_down(shown, f"while waiting for {text!r}")
        if text in status_line(shown):
            return shown
        assert time.monotonic() < deadline, f"{text!r} never showed in the status bar; screen was:\n{shown}"
        time.sleep(0.2)


def assert_never_down(shown: str, when: str) -> None:
    for sign in DOWN_SIGNS:
        assert sign not in shown, f"{sign!r} shown {when}; screen was:\n{shown}"


def ir_value(i: int) -> bytes:
    return json.dumps({"schema_version": 1, "spec_name": f"burst-{i % 100:02d}", "n": i}).encode()


def ir_keys_in(client) -> list[bytes]:
    pattern = re.compile(rb"^ir_cache:[^\x00-\x1f\x7f/\\]+_[0-9a-f]{8}\Z")
    return [k for k in client.scan_iter(match="ir_cache:*", count=10_000) if pattern.match(k)]


class ClientSampler:
    """A thread that counts the dashboard's connections (CLIENT LIST, by name) every ~20 ms."""

    def __init__(self, redis_url: str, every: float = 0.02) -> None:
        import redis

        self.client = redis.Redis.from_url(redis_url)
        self.every = every
        self.samples: list[int] = []
        self.worst: list[dict] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                clients = [c for c in self.client.client_list() if c.get("name") == DASHBOARD_NAME]
            except Exception as exc:  # a sample that fails is a failure of the test, not a skipped sample
                self.errors.append(exc)
                return
            self.samples.append(len(clients))
            if len(clients) > len(self.worst):
                self.worst = clients
            self._stop.wait(self.every)

    def __enter__(self) -> "ClientSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.close()


def test_burst_of_5000_keys_in_50_pipelines_keeps_the_dashboard_within_its_connections(
        terminal, redis_url, sync_redis, tmp_path):
    """A burst of 5,000 keys written in 50 pipelines while the dashboard is open: CLIENT LIST shows at
    most DASHBOARD_CONNECTIONS dashboard connections at every sample, the status never says down, and
    the final count is right (status bar and keys pane footer, after ctrl+r)."""
    from ircache_tui.tui.services import DASHBOARD_CONNECTIONS

    assert DASHBOARD_CONNECTIONS == 4  # the documented bound this test holds the dashboard to
    start_dashboard(terminal, redis_url, tmp_path)
    wait_for(terminal, "No IR keys in Redis yet")
    wait_for_status(terminal, "live: notifications")
    wait_for_status(terminal, "● up")

    with ClientSampler(redis_url) as sampler:
        time.sleep(0.3)  # a few samples of the idle dashboard first
        written = 0
        for p in range(50):
            pipe = sync_redis.pipeline(transaction=False)
            for j in range(100):
                i = p * 100 + j
                pipe.set(f"ir_cache:burst-{p:02d}_{uuid.uuid4().hex[:8]}", ir_value(i))
            written += sum(1 for ok in pipe.execute() if ok)
            if p % 5 == 4:
                assert_never_down(screen(terminal), f"during the burst (after pipeline {p + 1})")
        assert written == 5000
        assert len(ir_keys_in(sync_redis)) == 5000

        # the dashboard digests the burst (notifications, reloads, the totals a second later)
        settle = time.monotonic() + 4
        while time.monotonic() < settle:
            assert_never_down(screen(terminal), "after the burst")
            time.sleep(0.2)

        _tmux("send-keys", "-t", terminal, "C-r")
        deadline = time.monotonic() + 20
        # the status bar renders the count as str(n): `5000 IR keys` (the footer says `~5,000`)
        count = re.compile(r"(?<![\d,])5,?000 IR keys")
        while True:
            shown = screen(terminal)
            assert_never_down(shown, "after ctrl+r")
            if count.search(status_line(shown)) and "~5,000 IR keys" in shown:
                break
            assert time.monotonic() < deadline, f"the final count never showed; screen was:\n{shown}"
            time.sleep(0.2)
        time.sleep(0.5)  # a last few samples after the refresh
    assert not sampler.errors, sampler.errors
    assert len(sampler.samples) > 50, f"too few CLIENT LIST samples: {len(sampler.samples)}"
    assert max(sampler.samples) >= 1, "no connection named ircache-tui was ever seen: the samples prove nothing"
    assert max(sampler.samples) <= DASHBOARD_CONNECTIONS, (
        f"{max(sampler.samples)} dashboard connections at once (bound {DASHBOARD_CONNECTIONS}): {sampler.worst}")
    assert "● up" in status_line(shown) and "live: notifications" in status_line(shown), status_line(shown)

    quit_dashboard(terminal)


def test_flush_all_over_50000_keys_with_notifications_on(terminal, redis_url, sync_redis, tmp_path):
    """F over 50,000 keys with notifications on: the flush finishes within 30 s, the keys pane shows its
    empty state, no IR key is left, the foreign keys stay, and the status never says down."""
    foreign = {b"other:x": b"1", b"ir_cache:foo": b"2", b"ir_cache:burst-00_deadbeef:lock": b"3",
               b"ir_cache:burst-00_DEADBEEF": b"4"}
    for p in range(5):
        pipe = sync_redis.pipeline(transaction=False)
        for j in range(10_000):
            i = p * 10_000 + j
            pipe.set(f"ir_cache:burst-{i % 100:02d}_{i:08x}", ir_value(i))
        pipe.execute()
    sync_redis.mset(foreign)
    assert sync_redis.dbsize() == 50_000 + len(foreign)
    assert len(ir_keys_in(sync_redis)) == 50_000

    start_dashboard(terminal, redis_url, tmp_path)
    wait_for(terminal, "100 keys here", timeout=20)  # the first page
    wait_for_status(terminal, "live: notifications")
    wait_for_status(terminal, "● up")

    _tmux("send-keys", "-t", terminal, "F")
    shown = wait_for(terminal, "Flush ALL IR entries?", timeout=20)
    assert "Redis: 50,000 keys" in shown, shown
    _tmux("send-keys", "-t", terminal, "y")
    started = time.monotonic()
    done = empty = False
    while not (done and empty):
        shown = screen(terminal)
        assert_never_down(shown, "during the flush")
        done = done or "Flushed all IR entries: 50,000 keys from Redis" in " ".join(shown.split())
        empty = "No IR keys in Redis yet" in shown
        assert time.monotonic() - started < 30, f"the flush did not finish within 30 s; screen was:\n{shown}"
        time.sleep(0.1)
    assert "Flush failed" not in shown and "Flush cancelled" not in shown

    assert ir_keys_in(sync_redis) == []
    assert sync_redis.dbsize() == len(foreign)
    for key, value in foreign.items():
        assert sync_redis.get(key) == value, key

    # the totals follow: 0 IR keys, still up, still live by notifications
    deadline = time.monotonic() + 10
    while not re.search(r"(?<![\d,])0 IR keys", status_line(shown)):
        assert time.monotonic() < deadline, f"the status never showed 0 IR keys:\n{shown}"
        time.sleep(0.2)
        shown = screen(terminal)
        assert_never_down(shown, "after the flush")
    assert "● up" in status_line(shown) and "live: notifications" in status_line(shown), status_line(shown)

    quit_dashboard(terminal)


def test_L_enlarges_the_log_in_a_real_terminal_and_slash_searches_it(terminal, redis_url, tmp_path):
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLES, specs)
    env = cli_env(redis_url, tmp_path / "cache" / "ir", TERM="xterm-256color")
    env_args = [f"{k}={v}" for k, v in env.items() if k in TERMINAL_ENV]
    _tmux("new-session", "-d", "-s", terminal, "-x", "160", "-y", "50", "env", "-i", *env_args, ENTRY_POINT, str(specs))
    wait_for(terminal, "Dashboard ready")
    small = screen(terminal)
    assert "Redis keys" in small
    _tmux("send-keys", "-t", terminal, "L")
    deadline = time.monotonic() + 20
    while "Redis keys" in screen(terminal):  # the panes make room for the log
        assert time.monotonic() < deadline, screen(terminal)
        time.sleep(0.2)
    big = screen(terminal)
    assert "Dashboard ready" in big and " L " in big.splitlines()[-1]  # the footer stays
    # typed at once, as a paste would: the box has the focus before the next key is read
    # typed at once, as a paste would: the box has the focus before the next key is read
    _tmux("send-keys", "-t", terminal, "/")
    _tmux("send-keys", "-t", terminal, "-l", "Dashboard")
    _tmux("send-keys", "-t", terminal, "Enter")
    wait_for(terminal, "/Dashboard · 1 of 1")
    _tmux("send-keys", "-t", terminal, "L")
    wait_for(terminal, "Redis keys")
