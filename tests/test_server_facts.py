"""What the server says of itself (issue 23, item 4), and the keyspace notifications the dashboard
sets back on exit (item 7): `IRCache.server_facts`, `stats` (text and --json), the `i` panel.

Real servers: the session's, a cluster of three primaries, servers of our own with an eviction
policy or notifications off, and an ACL user refused INFO and CONFIG.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
import uuid

import pytest
import redis

from ircache_tui.cache.ircache import IRCache
from ircache_tui.fmt import human_bytes
from ircache_tui.cache.server_facts import ServerFacts, node_facts
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.screens.server import WARNING, ServerScreen, facts_table
from ircache_tui.tui.services import Services
from tests.support.cli import ENTRY_POINT, cli_env, run_cli
from tests.support.redis_server import RedisServer
from tests.support.tui import static_text, until
from tests.test_server_identity import this_server

pytestmark = pytest.mark.server

PASSWORD = "Zq7-facts-test-4Wm"
LRU_RISK = "allkeys-lru: Redis may evict IR entries when memory is full"


@pytest.fixture(scope="module")
def lru_server():
    with RedisServer("--maxmemory-policy", "allkeys-lru", "--maxmemory", "100mb") as server:
        yield server


@pytest.fixture
def quiet_server():
    """A server of the test's own with notifications off (the server's default)."""
    with RedisServer() as server:
        yield server


async def test_facts_of_a_plain_server(redis_url, sync_redis, cache_dir):
    sync_redis.ping()  # connected: one of the clients counted
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir) as cache:
        facts = await cache.server_facts()
    config = sync_redis.config_get("*")
    assert facts.mode == "standalone" and facts.server == this_server()
    assert facts.label == f"{this_server().label} standalone"
    [node] = facts.nodes
    assert node.role == "primary" and node.replicas == 0 and node.refused == frozenset() and facts.refused == ()
    assert facts.policy == config["maxmemory-policy"] == "noeviction" and facts.eviction_risk is None
    assert facts.max_memory == int(config["maxmemory"]) == 0
    assert facts.notifications == config["notify-keyspace-events"] != ""  # the session's server: KEA
    assert facts.used_memory and facts.peak_memory and facts.peak_memory >= facts.used_memory
    assert facts.clients and facts.clients >= 2  # ours and the test's
    assert facts.evicted_keys == 0
    assert facts.persistence.rdb_schedule == " ".join(config["save"].split())
    assert facts.persistence.aof_enabled is (config["appendonly"] == "yes")
    words = dict((label, text) for label, text, _ in facts.lines())
    assert re.fullmatch(r"[\d.]+ [KM]iB, no maxmemory \(peak [\d.]+ [KM]iB\)", words["Used"]), words["Used"]
    assert words["Eviction"] == "noeviction" and words["Notify"].startswith("on (notify-keyspace-events ")


async def test_an_evicting_policy_is_said_in_words(lru_server, tmp_path):
    async with IRCache(redis_url=lru_server.url, cache_dir=tmp_path / "c") as cache:
        facts = await cache.server_facts()
        assert facts.policy == "allkeys-lru" and facts.max_memory == 100 * 1024 * 1024
        assert facts.eviction_risk == LRU_RISK
        assert ("", f"WARNING: {LRU_RISK}", True) in facts.lines()
        admin = redis.Redis.from_url(lru_server.url)
        try:
            # volatile-*: our entries carry a TTL, so they may go too
            admin.config_set("maxmemory-policy", "volatile-ttl")
            risk = (await cache.server_facts()).eviction_risk
            assert risk is not None and risk.startswith("volatile-ttl: Redis may evict IR entries when memory is full")
            assert "they carry a TTL" in risk and "only noeviction never evicts" in risk
            admin.config_set("maxmemory", "0")  # no limit: nothing is evicted until one is set
            assert (await cache.server_facts()).eviction_risk.startswith(
                "volatile-ttl: Redis may evict IR entries once a maxmemory limit is set (none now)")
            admin.config_set("maxmemory-policy", "noeviction")
            assert (await cache.server_facts()).eviction_risk is None
        finally:
            admin.config_set("maxmemory-policy", "allkeys-lru")
            admin.config_set("maxmemory", "100mb")
            admin.close()


def test_stats_says_the_server_facts_and_the_risk(lru_server, tmp_path):
    env = cli_env(lru_server.url, tmp_path / "cache")
    text, as_json = run_cli("stats", env=env), run_cli("stats", "--json", env=env)
    assert text.returncode == 0 and as_json.returncode == 0, text.stderr + as_json.stderr
    lines = text.stdout.splitlines()
    assert f"Server      {this_server().label} standalone" in lines
    assert "  eviction  allkeys-lru" in lines
    assert f"            WARNING: {LRU_RISK}" in lines
    assert "  evicted   0 keys" in lines
    assert "  notify    off (notify-keyspace-events '')" in lines
    assert any(re.fullmatch(r"  used      [\d.]+ [KM]iB of maxmemory 100\.0 MiB \(peak [\d.]+ [KM]iB\)", line)
               for line in lines), text.stdout
    data = json.loads(as_json.stdout)
    server = data["server"]
    assert data["redis"]["server"] == this_server().as_json()  # the old field, as it was
    assert {k: server[k] for k in ("name", "version", "mode", "maxmemory_policy", "eviction_risk",
                                   "notify_keyspace_events", "evicted_keys", "refused")} == {
        **this_server().as_json(), "mode": "standalone", "maxmemory_policy": "allkeys-lru", "eviction_risk": LRU_RISK,
        "notify_keyspace_events": "", "evicted_keys": 0, "refused": []}
    assert server["memory"]["max_bytes"] == 100 * 1024 * 1024 and server["memory"]["used_bytes"] > 0
    assert server["connected_clients"] >= 1 and set(server["persistence"]) == {
        "rdb_save", "rdb_last_save", "rdb_changes_since_save", "rdb_last_status", "aof"}
    [node] = server["nodes"]
    assert node["address"] == f"127.0.0.1:{lru_server.port}" and node["role"] == "primary"
    assert node["maxmemory_policy"] == "allkeys-lru"


def test_an_acl_user_refused_info_and_config_gets_unknowns_not_a_crash(tmp_path):
    user = f"facts-{uuid.uuid4().hex[:6]}"
    with RedisServer() as server:
        admin = redis.Redis.from_url(server.url)
        admin.acl_setuser(user, enabled=True, passwords=[f"+{PASSWORD}"], keys=["ir_cache:*"],
                          commands=["+ping", "+get", "+exists", "+scan", "+ttl", "+getrange", "+memory|usage", "+hello"])
        admin.close()
        url = f"redis://{user}:{PASSWORD}@127.0.0.1:{server.port}/0"
        env = cli_env(url, tmp_path / "cache")
        text, as_json = run_cli("stats", env=env), run_cli("stats", "--json", env=env)
    assert text.returncode == 0 and as_json.returncode == 0, text.stderr + as_json.stderr
    assert PASSWORD not in text.stdout + as_json.stdout
    facts = json.loads(as_json.stdout)["server"]
    assert facts["name"] == this_server().name  # HELLO still says which server it is
    assert facts["maxmemory_policy"] is None and facts["memory"]["used_bytes"] is None
    assert facts["notify_keyspace_events"] is None and facts["connected_clients"] is None
    assert facts["eviction_risk"] is None
    [info, config] = facts["refused"]  # each reason once, naming the rule to add
    assert info.startswith("Redis refused INFO") and "add +info to its ACL" in info
    assert config.startswith("Redis refused CONFIG|GET") and "add +config|get to its ACL" in config
    lines = text.stdout.splitlines()
    assert "  eviction  unknown (INFO and CONFIG refused)" in lines
    assert "  used      unknown (INFO refused)" in lines and "  clients   unknown (INFO refused)" in lines and "  notify    unknown (CONFIG refused)" in lines
    assert f"  refused   {info}" in lines and f"  refused   {config}" in lines


def test_server_strings_are_words_and_numbers_or_nothing():
    """Whatever a server (or a proxy in front of one) puts in INFO and CONFIG, only numbers and short
    words come out of the parse, and the panel shows those as text."""
    hostile = "[bold red]x[/]\x1b]52;c;ZXZpbA==\x07\u202e"
    facts = ServerFacts("standalone", None, (node_facts(
        "127.0.0.1:6379",
        {"memory": {"used_memory": "12abc", "used_memory_peak": -5, "maxmemory": hostile,
                    "maxmemory_policy": hostile}, "stats": {"evicted_keys": 1.5},
         "clients": {"connected_clients": "7"}, "replication": {"role": hostile},
         "persistence": {"rdb_last_bgsave_status": hostile, "aof_enabled": "yes"}},
        {"notify-keyspace-events": hostile, "save": hostile}, frozenset(), None),))
    [node] = facts.nodes
    assert (node.used_memory, node.peak_memory, node.max_memory, node.evicted_keys) == (None, None, None, None)
    assert (node.policy, node.role, node.notifications, node.persistence.rdb_schedule) == (None, None, None, None)
    assert node.clients == 7 and node.persistence.rdb_last_status is None and node.persistence.aof_enabled is None
    shown = "".join(cell.plain for column in facts_table(facts).columns for cell in column._cells)
    assert "\x1b" not in shown and "\u202e" not in shown and "[bold red]" not in shown


async def test_facts_of_a_cluster_list_every_primary(cluster, nodes, tmp_path):
    async with IRCache(redis_url=cluster.url, cache_dir=tmp_path / "c") as cache:
        facts = await cache.server_facts()
    assert facts.mode == "cluster" and facts.label == f"{this_server().label} cluster, 3 primaries"
    assert sorted(n.address for n in facts.nodes) == sorted(f"127.0.0.1:{p}" for p in cluster.primary_ports())
    assert {n.role for n in facts.nodes} == {"primary"} and {n.replicas for n in facts.nodes} == {0}
    assert facts.used_memory == sum(n.used_memory for n in facts.nodes)
    node_lines = [text for label, text, _ in facts.lines() if label == "Node"]
    assert sorted(node_lines) == sorted(
        f"{n.address} primary, used {human_bytes(n.used_memory)}, "
        f"noeviction, 0 replicas" for n in facts.nodes)


async def test_a_cluster_s_notifications_are_set_back_on_every_primary(cluster, nodes, tmp_path):
    async with IRCache(redis_url=cluster.url, cache_dir=tmp_path / "c") as cache:
        assert await cache.enable_live_updates()
        assert all(n.config_get("notify-keyspace-events")["notify-keyspace-events"] != "" for n in nodes)
        restored = await cache.restore_notifications()
        assert await cache.restore_notifications() is None  # once: nothing is left to set back
    assert restored is not None and restored.restored and len(restored.nodes) == 3
    assert restored.sentence == ("Keyspace notifications: set notify-keyspace-events back to '' on 3 nodes, "
                                 "as the dashboard found it")
    assert {n.config_get("notify-keyspace-events")["notify-keyspace-events"] for n in nodes} == {""}


# -- the `i` panel ------------------------------------------------------------------

async def test_the_i_panel_shows_version_policy_and_the_warning(lru_server, tmp_path):
    async with IRCache(redis_url=lru_server.url, cache_dir=tmp_path / "c") as cache:
        app = IRCacheApp(Services(cache=cache, watch=False))
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: app.first_page_shown, what="first page")
            await pilot.press("i")
            await until(pilot, lambda: isinstance(app.screen, ServerScreen) and app.screen.facts is not None,
                        what="the server panel")
            shown = static_text(app, "#server-facts")
            assert f"{this_server().label} standalone" in shown
            assert re.search(r"Eviction\s+allkeys-lru", shown) and f"WARNING: {LRU_RISK}" in shown
            assert re.search(r"Notify\s+on \(notify-keyspace-events ", shown)  # live updates turned them on
            warning = [cell for cell in facts_table(app.screen.facts).columns[1]._cells
                       if cell.plain.startswith("WARNING")]
            assert [str(cell.style) for cell in warning] == [WARNING]
            await pilot.press("i")
            await until(pilot, lambda: not isinstance(app.screen, ServerScreen), what="the panel closed")


# -- notifications set back on exit (item 7) -----------------------------------------------

async def _dashboard_session(url, tmp_path, during=None) -> tuple[IRCacheApp, str]:
    """A dashboard over `url` with live updates; what notify-keyspace-events is while it runs."""
    async with IRCache(redis_url=url, cache_dir=tmp_path / "c") as cache:
        app = IRCacheApp(Services(cache=cache, watch=False))
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: "live: notifications" in static_text(app, "#status"), what="notifications")
            admin = redis.Redis.from_url(url, decode_responses=True)
            running = admin.config_get("notify-keyspace-events")["notify-keyspace-events"]
            if during is not None:
                during(admin)
            admin.close()
    return app, running


async def test_exit_sets_back_the_notifications_the_dashboard_turned_on(quiet_server, tmp_path):
    app, running = await _dashboard_session(quiet_server.url, tmp_path)
    assert running and "K" in running
    admin = redis.Redis.from_url(quiet_server.url, decode_responses=True)
    assert admin.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""
    admin.close()
    assert app.exit_note == "Keyspace notifications: set notify-keyspace-events back to '', as the dashboard found it"


async def test_notifications_found_on_are_left_alone_and_nothing_is_said(tmp_path):
    with RedisServer("--notify-keyspace-events", "KEA") as server:
        app, running = await _dashboard_session(server.url, tmp_path)
        admin = redis.Redis.from_url(server.url, decode_responses=True)
        assert admin.config_get("notify-keyspace-events")["notify-keyspace-events"] == running
        admin.close()
    assert app.exit_note is None


async def test_a_value_changed_by_someone_else_meanwhile_is_left(quiet_server, tmp_path):
    app, _ = await _dashboard_session(quiet_server.url, tmp_path,
                                      during=lambda admin: admin.config_set("notify-keyspace-events", "KEA"))
    admin = redis.Redis.from_url(quiet_server.url, decode_responses=True)
    now = admin.config_get("notify-keyspace-events")["notify-keyspace-events"]
    admin.close()
    assert set(now) == set("AKE")
    assert app.exit_note == (f"Left keyspace notifications on: notify-keyspace-events is {now!r} "
                             "(it changed since the dashboard set it: left as it is)")


async def test_redis_gone_at_exit_says_the_notifications_were_left_on(tmp_path):
    server = RedisServer().start()
    try:
        app, running = await _dashboard_session(server.url, tmp_path, during=lambda admin: server.stop())
    finally:
        server.stop()
    assert app.exit_note is not None
    assert app.exit_note.startswith(f"Left keyspace notifications on: notify-keyspace-events is {running!r} "
                                    "(could not set back '': Redis unavailable at "), app.exit_note


@pytest.mark.e2e
def test_the_command_says_it_set_them_back_after_the_dashboard_closes(quiet_server, tmp_path):
    """In a real terminal: the line comes after the screen is gone, on the terminal itself."""
    assert shutil.which("tmux"), "tmux is required"
    session = f"ircache-facts-{uuid.uuid4().hex[:8]}"
    env = cli_env(quiet_server.url, tmp_path / "cache", TERM="xterm-256color")
    keep = ("REDIS_URL", "IR_CACHE_DIR", "IRCACHE_REDIS_SERVER", "PATH", "HOME", "TERM", "PYTHONPATH")
    env_args = " ".join(f"{k}='{v}'" for k, v in env.items() if k in keep)
    script = f"env -i {env_args} {ENTRY_POINT} --no-watch; echo \"exit status $?\"; sleep 60"
    tmux = ["tmux", "new-session", "-d", "-s", session, "-x", "140", "-y", "40", "sh", "-c", script]
    subprocess.run(tmux, check=True, timeout=10)
    try:
        def screen() -> str:
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True,
                                  timeout=10).stdout

        def wait_for(text: str) -> str:
            deadline = time.monotonic() + 30
            while text not in (shown := screen()):
                assert time.monotonic() < deadline, f"{text!r} never appeared:\n{shown}"
                time.sleep(0.2)
            return shown

        wait_for("live: notifications")
        admin = redis.Redis.from_url(quiet_server.url, decode_responses=True)
        assert admin.config_get("notify-keyspace-events")["notify-keyspace-events"] != ""
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True, timeout=10)
        shown = wait_for("exit status 0")
        assert "Keyspace notifications: set notify-keyspace-events back to '', as the dashboard found it" in shown
        assert admin.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""
        admin.close()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


# -- another session still listening: notifications stay on (review #3) ---------------------------

def _listener(url: str) -> redis.client.PubSub:
    """Session B: a real pattern subscription to our keys' events, as a dashboard or `watch` that
    found notifications on holds one."""
    pubsub = redis.Redis.from_url(url, decode_responses=True).pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("__keyspace@0__:ir_cache:*")
    return pubsub


def _event_for(pubsub: redis.client.PubSub, key: str) -> dict | None:
    """The next event on `key` B receives (waits for it, up to 10 s; None if none came)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1)
        if message is not None and message["channel"] == f"__keyspace@0__:{key}":
            return message
    return None


async def test_a_dashboard_leaving_keeps_them_on_while_another_session_listens(quiet_server, tmp_path):
    """A turns them on, B subscribes, A quits: B still gets its events, and A's last line says why."""
    listening: list[redis.client.PubSub] = []
    app, running = await _dashboard_session(quiet_server.url, tmp_path,
                                            during=lambda _admin: listening.append(_listener(quiet_server.url)))
    [b] = listening
    admin = redis.Redis.from_url(quiet_server.url, decode_responses=True)
    try:
        assert admin.config_get("notify-keyspace-events")["notify-keyspace-events"] == running != ""
        assert app.exit_note == ("Left keyspace notifications on: another client still listens "
                                 f"(1 pattern subscription; notify-keyspace-events {running!r})")
        admin.set("ir_cache:after_a_left", "x")
        assert _event_for(b, "ir_cache:after_a_left") is not None, "B stopped receiving events"
    finally:
        b.close()
        admin.close()


async def test_the_library_restores_once_the_other_listener_is_gone(quiet_server, tmp_path):
    """Two caches: A restores while B listens (left on), then a third session, alone, restores."""
    admin = redis.Redis.from_url(quiet_server.url, decode_responses=True)
    b = None
    try:
        async with IRCache(redis_url=quiet_server.url, cache_dir=tmp_path / "a") as a:
            assert await a.enable_live_updates()
            b = _listener(quiet_server.url)
            kept = await a.restore_notifications()
        on = admin.config_get("notify-keyspace-events")["notify-keyspace-events"]
        assert kept is not None and not kept.restored and [n.listening for n in kept.nodes] == [1]
        assert "K" in on and kept.nodes[0].left == on
        b.close()
        admin.config_set("notify-keyspace-events", "")  # (as found again: the next session turns them on)
        async with IRCache(redis_url=quiet_server.url, cache_dir=tmp_path / "c") as c:
            assert await c.enable_live_updates()
            restored = await c.restore_notifications()
        assert restored is not None and restored.restored
        assert admin.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""
    finally:
        if b is not None:
            b.close()
        admin.close()


async def test_a_user_refused_pubsub_leaves_them_on_and_says_why(quiet_server, tmp_path):
    user = f"nopubsub-{uuid.uuid4().hex[:6]}"
    admin = redis.Redis.from_url(quiet_server.url, decode_responses=True)
    admin.acl_setuser(user, enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"], channels=["*"],
                      commands=["+@all", "-pubsub"])
    url = f"redis://{user}:{PASSWORD}@127.0.0.1:{quiet_server.port}/0"
    try:
        async with IRCache(redis_url=url, cache_dir=tmp_path / "c") as cache:
            assert await cache.enable_live_updates()
            kept = await cache.restore_notifications()
        on = admin.config_get("notify-keyspace-events")["notify-keyspace-events"]
    finally:
        admin.close()
    assert "K" in on and kept is not None and not kept.restored
    assert kept.sentence.startswith(f"Left keyspace notifications on: notify-keyspace-events is {on!r} "
                                    "(could not ask whether other clients still listen: Redis refused PUBSUB"), \
        kept.sentence
    assert PASSWORD not in kept.sentence


async def test_on_a_cluster_only_the_node_still_listened_to_keeps_them(cluster, nodes, tmp_path):
    """PUBSUB NUMPAT is per node: B listens on one primary; the other two are set back."""
    b = None
    try:
        async with IRCache(redis_url=cluster.url, cache_dir=tmp_path / "c") as cache:
            assert await cache.enable_live_updates()
            port = nodes[0].connection_pool.connection_kwargs["port"]
            b = _listener(f"redis://127.0.0.1:{port}/0")
            kept = await cache.restore_notifications()
        values = {n.connection_pool.connection_kwargs["port"]: n.config_get("notify-keyspace-events")
                  ["notify-keyspace-events"] for n in nodes}
    finally:
        if b is not None:
            b.close()
        for n in nodes:
            n.config_set("notify-keyspace-events", "")
    assert kept is not None and len(kept.nodes) == 3
    assert {n.address: n.listening for n in kept.nodes} == {
        f"127.0.0.1:{p}": (1 if p == port else 0) for p in values}
    assert "K" in values[port] and {v for p, v in values.items() if p != port} == {""}
    assert kept.sentence == (f"Left keyspace notifications on at 127.0.0.1:{port}: another client still listens "
                             f"(1 pattern subscription; notify-keyspace-events {values[port]!r})")


async def test_a_cache_still_listening_itself_cannot_tell_and_leaves_them_on(quiet_server, tmp_path):
    """Restored while this cache's own listener is open (NUMPAT would count it): left on, said why."""
    async with IRCache(redis_url=quiet_server.url, cache_dir=tmp_path / "c") as cache:
        assert await cache.enable_live_updates()
        subscribed = asyncio.Event()
        changes = cache.key_changes(subscribed.set)
        first = asyncio.ensure_future(anext(changes))
        await asyncio.wait_for(subscribed.wait(), 10)
        kept = await cache.restore_notifications()
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await changes.aclose()
    admin = redis.Redis.from_url(quiet_server.url, decode_responses=True)
    on = admin.config_get("notify-keyspace-events")["notify-keyspace-events"]
    admin.close()
    assert "K" in on and kept is not None and kept.sentence == (
        f"Left keyspace notifications on: notify-keyspace-events is {on!r} "
        "(this process still listens to them: it cannot tell whether other clients do)")
