"""The headless subcommands, run as subprocesses of the installed entry point."""

import json
from pathlib import Path

import pytest

from ircache_tui import cache_key
from ircache_tui.ir.generators import OfflineGenerator
from tests.support.foreign import entry_value, plant_foreign
from tests.support import entry_keys
from tests.support.cli import run_cli, cli_env
from tests.support.redis_server import free_port

EXAMPLES = Path(__file__).parent.parent / "examples" / "specs"


@pytest.fixture
def env(redis_url, cache_dir):
    return cli_env(redis_url, cache_dir)


@pytest.mark.e2e
def test_version_and_help():
    env = cli_env(None, Path("/nonexistent"))
    out = run_cli("--version", env=env)
    assert out.returncode == 0 and out.stdout.startswith("ircache-tui ")
    for command in ("stats", "keys", "get", "warm", "flush", "prune", "watch"):
        out = run_cli(command, "--help", env=env)
        assert out.returncode == 0, out.stderr
        assert "example" in out.stdout and f"ircache-tui {command}" in out.stdout


@pytest.mark.e2e
def test_bad_usage_exits_2(env):
    assert run_cli("get", env=env).returncode == 2
    assert run_cli("stats", "--bogus", env=env).returncode == 2
    out = run_cli("--ttl", "soon", "stats", env=env)
    assert out.returncode == 2 and "--ttl" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("prune", "/no/such/dir", env=env)
    assert out.returncode == 2 and "/no/such/dir" in out.stderr


@pytest.mark.server  # stats: MEMORY USAGE as this server counts it
@pytest.mark.e2e
def test_get_then_stats(env, specs, sync_redis):
    spec = specs / "petstore-spec.md"
    first = run_cli("get", str(spec), "--json", env=env)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    key = cache_key(spec.read_text(), str(spec))
    assert data["cache_key"] == key and data["tier"] == "generator"
    assert data["summary"] == {"entities": 3, "endpoints": 5, "flows": 1, "rules": 3}
    assert data["application_ir"]["name"] == "Petstore API"
    assert data["generator"] == {"name": "offline", "model": None, "fingerprint": OfflineGenerator().fingerprint}

    second = run_cli("get", str(spec), env=env)
    assert second.returncode == 0
    assert second.stdout.splitlines()[0] == f"{key}: from redis"
    assert "3 entities, 5 endpoints" in second.stdout

    forced = json.loads(run_cli("get", str(spec), "--force", "--json", env=env).stdout)
    assert forced["tier"] == "generator" and forced["generated_at"] > data["generated_at"]

    stats = run_cli("stats", "--json", env=env)
    assert stats.returncode == 0
    info = json.loads(stats.stdout)
    assert info["redis"]["reachable"] is True
    assert info["redis"]["total_keys"] == 1 and info["redis"]["specs"] == ["petstore-spec"]
    assert info["redis"]["total_size_bytes"] == sync_redis.memory_usage(f"ir_cache:{key}", samples=0)
    assert info["filesystem"]["file_count"] == 1
    text = run_cli("stats", env=env).stdout
    assert "IR keys   1" in text and "petstore-spec" in text


@pytest.mark.e2e
def test_get_bad_spec_file(env, tmp_path):
    bad = tmp_path / "latin1.md"
    bad.write_bytes(b"# caf\xe9\n")
    out = run_cli("get", str(bad), env=env)
    assert out.returncode == 2 and "not UTF-8" in out.stderr


@pytest.mark.e2e
def test_warm(env, specs, sync_redis):
    assert run_cli("get", str(specs / "petstore-spec.md"), env=env).returncode == 0
    sync_redis.flushall()
    out = run_cli("warm", "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["warmed"] == 1
    assert len(entry_keys(sync_redis)) == 1
    out = run_cli("warm", str(specs), "--json", env=env)
    data = json.loads(out.stdout)
    assert data["specs"] == 2 and data["specs_by_tier"] == {"redis": 1, "filesystem": 0, "generator": 1}
    assert data["already_in_redis"] == 1 and len(entry_keys(sync_redis)) == 2


@pytest.mark.e2e
def test_flush_refuses_without_yes_when_not_a_terminal(env, specs, sync_redis):
    run_cli("get", str(specs / "petstore-spec.md"), env=env)
    out = run_cli("flush", env=env)
    assert out.returncode == 2 and "--yes" in out.stderr
    assert len(entry_keys(sync_redis)) == 1


@pytest.mark.e2e
def test_flush_exact_and_tiers(env, specs, sync_redis, cache_dir):
    run_cli("warm", str(specs), env=env)
    sync_redis.set("ir_cache:petstore-spec_v2_0a1b2c3d", entry_value())
    sync_redis.set("other:petstore-spec_0a1b2c3d", entry_value())
    foreign = plant_foreign(sync_redis, 2, 1)  # another tool's keys named like entries: kept, and said
    out = run_cli("flush", "petstore-spec", "--yes", "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"redis": 1, "foreign_kept": 0}
    assert sync_redis.exists("ir_cache:petstore-spec_v2_0a1b2c3d", "other:petstore-spec_0a1b2c3d") == 2
    assert len(list(cache_dir.glob("*.json"))) == 2  # Redis only by default
    out = run_cli("flush", "--filesystem", "--no-redis", "--yes", env=env)
    assert out.returncode == 0 and "2 files" in out.stdout
    assert not list(cache_dir.glob("*.json"))
    out = run_cli("flush", "--yes", env=env)
    assert "flushed ALL IR entries: 2 Redis keys" in out.stdout  # ecommerce + the _v2 one
    assert "kept 3 keys under the prefix that are not IR entries (another tool's values)" in out.stdout
    assert sync_redis.exists("other:petstore-spec_0a1b2c3d")
    assert sync_redis.exists(*foreign) == 3
    assert run_cli("flush", "a/b", "--yes", env=env).returncode == 2


@pytest.mark.e2e
def test_prune(env, specs, sync_redis, cache_dir):
    spec = specs / "petstore-spec.md"
    run_cli("warm", str(specs), env=env)
    old_key = cache_key(spec.read_text(), str(spec))
    spec.write_text(spec.read_text() + "\n- GET /pets/{id}/photos - Photos\n")
    run_cli("warm", str(specs), env=env)
    (specs / "ecommerce-api-spec-human.md").unlink()
    dry = run_cli("prune", str(specs), "--dry-run", env=env)
    assert dry.returncode == 0
    assert f"stale in Redis: {old_key}" in dry.stdout
    assert f"not under {specs} (kept) in Redis: ecommerce-api-spec-human_" in dry.stdout
    assert len(entry_keys(sync_redis)) == 3
    refused = run_cli("prune", str(specs), env=env)
    assert refused.returncode == 2 and len(entry_keys(sync_redis)) == 3
    # by default only the stale entry goes: the deleted spec's entries could be anyone's
    out = run_cli("prune", str(specs), "--yes", "--json", env=env)
    data = json.loads(out.stdout)
    assert data["removed"] == {"redis": 1, "filesystem": 1} and data["orphans"] == "kept"
    assert data["found"]["redis"]["stale"] == [old_key]
    assert len(entry_keys(sync_redis)) == 2
    out = run_cli("prune", str(specs), "--orphans", "--yes", "--json", env=env)
    data = json.loads(out.stdout)
    assert data["removed"] == {"redis": 1, "filesystem": 1} and data["orphans"] == "removed"
    left = [k.decode() for k in entry_keys(sync_redis)]
    assert left == [f"ir_cache:{cache_key(spec.read_text(), str(spec))}"]
    # the pruned entries' hit counts went with them; the totals stay
    assert {k.decode() for k in sync_redis.keys("*:hits")} <= {"ir_cache:stats:hits", f"{left[0]}:hits"}
    assert [p.stem for p in cache_dir.glob("*.json")] == [left[0].split(":", 1)[1]]


@pytest.mark.e2e
def test_redis_unreachable_is_one_line_exit_1(cache_dir, specs):
    env = cli_env(f"redis://127.0.0.1:{free_port()}/0", cache_dir)
    for args in (["stats"], ["flush", "--yes"], ["warm"]):
        out = run_cli(*args, env=env)
        assert out.returncode == 1, (args, out.stderr)
        assert "Traceback" not in out.stderr
        assert "unreachable" in (out.stdout + out.stderr) or "unavailable" in out.stderr
    # get still answers, from the generator, without Redis
    out = run_cli("get", str(specs / "petstore-spec.md"), env=env)
    assert out.returncode == 0 and "from generator" in out.stdout


@pytest.mark.e2e
def test_embedded_redis_when_no_url(tmp_path, specs):
    env = cli_env(None, tmp_path / "ir")
    out = run_cli("get", str(specs / "petstore-spec.md"), env=env)
    assert out.returncode == 0, out.stderr
    out = run_cli("stats", "--json", env=env)
    data = json.loads(out.stdout)
    # the last user stopped the server and it keeps nothing on disk: the file is the cold start
    assert data["redis"]["url"].startswith("unix://") and data["redis"]["total_keys"] == 0
    assert data["filesystem"]["file_count"] == 1


def test_spec_discovery_skips_fifos_and_sees_trees_under_dot_dirs(tmp_path):
    import os

    from ircache_tui.specs import discover_specs

    root = tmp_path / ".cache" / "team" / "specs"  # a spec tree that itself lives under a dot-dir
    (root / ".git").mkdir(parents=True)
    (root / "a.md").write_text("# A\n")
    (root / ".git" / "b.md").write_text("# B\n")
    (root / "a.md.swp").write_text("x")
    os.mkfifo(root / "pipe.md")
    found = {s.path.name: s for s in discover_specs([root])}
    assert sorted(found) == ["a.md", "pipe.md"]
    assert found["a.md"].ok and found["pipe.md"].error == "not a regular file"
