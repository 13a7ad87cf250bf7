"""The fault suite's shared parts: a Redis with a password, and a CLI runner that greps
every captured stream for the secrets and for tracebacks.

Each test here proves one promise of the issue "Faults and hostile input" against real
processes; `secured_url` is the Redis a team shares (a password, foreign keys added by
the tests that need them), so no output of the suite may carry its password.
"""

from __future__ import annotations

import subprocess

import pytest
import redis

from tests.support.cli import ENTRY_POINT, cli_env
from tests.support.redis_server import RedisServer

PASSWORD = "fault-suite-redis-pw-7Kq2"
API_KEY = "sk-ant-fault-suite-key-Zx91"
SECRETS = (PASSWORD, API_KEY)


@pytest.fixture(scope="session")
def secured_server():
    with RedisServer(password=PASSWORD) as server:
        yield server


@pytest.fixture
def secured_url(secured_server):
    client = redis.Redis.from_url(secured_server.url)
    client.flushall()
    client.close()
    return secured_server.url


@pytest.fixture
def admin(secured_url):
    client = redis.Redis.from_url(secured_url)
    yield client
    client.close()


def run(*args: str, env: dict[str, str], timeout: float = 120, **popen) -> subprocess.CompletedProcess[str]:
    """The real CLI; fails the test if a secret or a traceback reaches any stream."""
    proc = subprocess.run([ENTRY_POINT, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **popen)
    assert_clean(proc.stdout, proc.stderr)
    return proc


def assert_clean(*streams: str) -> None:
    for text in streams:
        for secret in SECRETS:
            assert secret not in text, f"a secret reached the output:\n{text}"
        assert "Traceback" not in text, text


def one_line(stderr: str) -> str:
    """The single line a failed command printed (warnings aside, which name their level)."""
    lines = [ln for ln in stderr.splitlines() if not ln.startswith(("WARNING:", "NOTICE:", "INFO:"))]
    assert len(lines) == 1, f"expected one line, got:\n{stderr}"
    return lines[0]


__all__ = ["API_KEY", "PASSWORD", "assert_clean", "cli_env", "one_line", "run"]
