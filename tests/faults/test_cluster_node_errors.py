"""Redis Cluster: an error that comes from one node names that node, not the URL's.

Its own cluster (3 primaries, no replicas), because the last test leaves a
node dead. REDIS_URL names node A; the fault is on node B: B alone has
another password (`CONFIG SET requirepass` on each node), or B is SIGKILLed
(no replica takes over). The one line the CLI prints still carries the URL
given (its password masked), and says that B refused the password or the
connection. Before the fix, both were said of A: `Redis unavailable at
redis://:***@127.0.0.1:A/0 (cluster, 3 primaries): it refused the password`.
"""

from __future__ import annotations

import json

import pytest
import redis
from redis.cluster import RedisCluster as SyncCluster

from tests.support.foreign import entry_value

from .conftest import cli_env, run

pytestmark = [pytest.mark.server, pytest.mark.cluster, pytest.mark.e2e]  # cluster nodes' errors

PASSWORD = "Good-pw-N7q2"
OTHER = "Other-pw-K4x9"


def error_line(done) -> str:
    """The one line a failed command prints (exit 1)."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def set_passwords(cluster, passwords: dict[int, str], current: dict[int, str | None]) -> None:
    for port, password in passwords.items():
        with redis.Redis(host="127.0.0.1", port=port, password=current.get(port)) as c:
            c.config_set("requirepass", password)


def test_a_node_with_another_password_is_named(cluster, tmp_path):
    url_node, other, third = cluster.ports[:3]
    with SyncCluster.from_url(cluster.url) as filler:  # an entry on every primary, so that every walk has work
        for i in range(60):
            filler.set(f"ir_cache:spec-{i:02d}_{i:08x}", entry_value(), ex=600)
    # (B's password, the others', the URL's password): B refuses ours; B wants one, the URL has none
    cases = [(OTHER, PASSWORD, PASSWORD, "refused the password (wrong password, or wrong user name)"),
             (OTHER, "", None, "needs a password, and the URL gives none")]
    outputs: list[str] = []
    for b_password, others, given, words in cases:
        wanted = {url_node: others, other: b_password, third: others}
        set_passwords(cluster, wanted, {})
        try:
            auth = f":{given}@" if given else ""
            env = cli_env(f"redis://{auth}127.0.0.1:{url_node}/0", tmp_path / "cache" / "ir")
            for args in (["flush", "--yes"], ["stats"]):
                done = run(*args, env=env)
                line = error_line(done)
                outputs += [done.stdout, done.stderr]
                shown = f"redis://{':***@' if given else ''}127.0.0.1:{url_node}/0"
                assert line.startswith(f"ircache-tui {args[0]}: Redis unavailable at {shown} (cluster"), line
                assert line.endswith(f": 127.0.0.1:{other} {words}"), line
                assert "it refused" not in line and "it needs" not in line
        finally:
            set_passwords(cluster, {p: "" for p in wanted}, {p: pw or None for p, pw in wanted.items()})
    assert not any(PASSWORD in text or OTHER in text for text in outputs)
    with SyncCluster.from_url(cluster.url) as client:  # nothing was deleted: no flush began
        assert sum(1 for _ in client.scan_iter("ir_cache:*", target_nodes=SyncCluster.PRIMARIES)) == 60


@pytest.mark.slow
def test_a_dead_primary_is_named(cluster, tmp_path):
    """Last in the module: the node stays dead (no replica). Slots a dead node served stay its
    own (cluster-require-full-coverage no: the others keep answering), so every command that
    needs it fails on it; the flush waits for a failover that never comes, then names it."""
    url_node, victim = cluster.ports[0], cluster.ports[1]
    for port in cluster.ports:
        with cluster.client(port) as c:
            c.config_set("cluster-require-full-coverage", "no")
    cluster.kill(victim)
    env = cli_env(cluster.url, tmp_path / "cache" / "ir")
    line = error_line(run("flush", "--yes", env=env))
    assert line.startswith(f"ircache-tui flush: Redis unavailable at redis://127.0.0.1:{url_node}/0 (cluster"), line
    assert line.endswith(f": 127.0.0.1:{victim} refused the connection (nothing is listening there)"), line

    stats = run("stats", "--json", env=env)
    assert stats.returncode == 1, stats.stderr
    said = json.loads(stats.stdout)["redis"]
    assert said["reachable"] is False
    assert said["error"].endswith(f"127.0.0.1:{victim} refused the connection (nothing is listening there)"), said
