"""Single-flight does not depend on Redis: with Redis down, a file lock in the cache dir keeps
one generation per key per machine; a waiter says whom it waits for.

Bug 7: 8 processes, 50 specs, Redis down: 164 generations, up to 8 for one spec.
Bug 8: a waiter that found a lock waited ~27 s saying nothing unless -v.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.support.redis_server import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # worker processes and the installed command

ROOT = Path(__file__).resolve().parents[2]


def run_workers(url: str, tmp_path: Path, processes: int, n: int, delay: float) -> tuple[Counter[str], list[dict]]:
    log = tmp_path / "generations.log"
    procs = [
        subprocess.Popen([sys.executable, "-m", "tests.faults.flight_worker", url, str(tmp_path / "cache"), str(log),
                          str(n), str(delay), str(seed)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for seed in range(processes)
    ]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err
            results.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    generated = Counter(line.split()[1] for line in log.read_text().splitlines())
    return generated, results


@pytest.mark.parametrize("redis", ["down", "up"])
def test_eight_processes_generate_each_spec_once(redis, tmp_path, secured_url):
    url = f"redis://127.0.0.1:{free_port()}/0" if redis == "down" else secured_url
    n = 50
    generated, results = run_workers(url, tmp_path, processes=8, n=n, delay=0.2)
    assert sorted(generated) == sorted(f"spec-{i:03d}" for i in range(n))
    assert max(generated.values()) == 1, generated.most_common(3)
    assert all(r["errors"] == [] for r in results), [r["errors"][:3] for r in results]
    lookups = sum(sum(r["tiers"].values()) for r in results)
    assert lookups == 8 * 4 * n
    assert not list((tmp_path / "cache" / ".locks").glob("*.lock"))  # each holder removed its lock file


def test_a_waiter_says_whom_it_waits_for_at_default_verbosity(tmp_path, secured_url):
    """Two `get`s of one spec while the first generation is slow: the second says it waits, for whom."""
    from tests.support.cli import ENTRY_POINT, cli_env
    from tests.support.messages_api import MessagesAPI, message

    from .conftest import API_KEY, assert_clean
    from .entries import spec_text

    spec = tmp_path / "shop.md"
    spec.write_text(spec_text(7))
    ir = {"name": "Shop", "entities": [], "endpoints": [], "flows": [], "validation_rules": []}
    with MessagesAPI(api_key=API_KEY) as api:
        api.script(message(json.dumps(ir), delay=8))  # the second process starts in ~1-2 s, then waits
        env = cli_env(secured_url, tmp_path / "cache", ANTHROPIC_API_KEY=API_KEY, ANTHROPIC_BASE_URL=api.base_url,
                      IR_GENERATOR="anthropic")
        first = subprocess.Popen([ENTRY_POINT, "get", str(spec)], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            deadline_ok = _wait(lambda: api.requests, 15)
            assert deadline_ok, "the first generation never reached the API"
            second = subprocess.run([ENTRY_POINT, "get", str(spec)], env=env, capture_output=True, text=True,
                                    timeout=60, stdin=subprocess.DEVNULL)
            out1, err1 = first.communicate(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
    assert_clean(out1, err1, second.stdout, second.stderr)
    assert first.returncode == 0 and second.returncode == 0, err1 + second.stderr
    assert len(api.requests) == 1  # the second waited instead of generating
    assert second.stdout.splitlines()[0].endswith("from redis"), second.stdout
    assert second.stderr.splitlines() == [
        f"NOTICE: Waiting for pid {first.pid} on {socket.gethostname()} to finish generating shop"], second.stderr


def _wait(predicate, timeout: float) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
