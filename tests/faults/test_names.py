"""Hostile names: a spec or entry name that cannot be a key is skipped with one warning
naming it (escaped), by every command; one bad file never stops a walk; names that are
odd but safe (spaces, globs, case variants) are first-class.

Bug 1: a non-UTF-8 file name ended `warm` and `prune` in a UnicodeEncodeError traceback.
Bug 2: `get s/.hidden.md` wrote `.hidden_<h8>.json`, which no listing saw.
Bug 11: names with U+202E or zero-width characters were accepted (spoofing on screen).
"""

from __future__ import annotations

import json
import os

import pytest

from ircache_tui.cache.keys import spec_hash
from ircache_tui.fmt import INVISIBLE

from tests.support import entry_keys
from .conftest import cli_env, one_line, run

pytestmark = pytest.mark.e2e  # the installed command over bad names

SPEC = "# {name}\n\n## Entities\n- Thing: name (str)\n"

#: file name (bytes, as on disk) → how a message must spell it
BAD = {
    b"\xff.md": "'\\xff'",
    "ev\u202eil.md".encode(): "'ev\\u202eil'",
    "zero\u200bwidth.md".encode(): "'zero\\u200bwidth'",
    "bom\ufeff.md".encode(): "'bom\\ufeff'",
    b".hidden.md": "'.hidden'",
    b"new\nline.md": "'new\\nline'",
    b"x" * 250 + b".md": "'" + "x" * 40 + "'",
}
#: odd but valid: each is its own spec
GOOD = ["a.md", "with space.md", "glob*[?].md", "Case.md", "case.md", "dash-é.md"]


def make_specs(tmp_path) -> os.PathLike:
    d = tmp_path / "specs"
    d.mkdir()
    for name in GOOD:
        (d / name).write_text(SPEC.format(name=name))
    for raw in BAD:
        with open(os.path.join(os.fsencode(d), raw), "w") as f:
            f.write(SPEC.format(name="bad"))
    return d


def assert_warned_once_each(stderr: str) -> None:
    for shown in BAD.values():
        hits = [ln for ln in stderr.splitlines() if shown in ln]
        assert len(hits) == 1, f"{shown}: {hits}\n{stderr}"
    assert not INVISIBLE.search(stderr.replace("\n", "")), "a raw control or bidi character reached the terminal"


def good_keys(d) -> set[str]:
    return {f"{n[:-3]}_{spec_hash((d / n).read_text())[:8]}" for n in GOOD}


def test_warm_skips_each_bad_name_with_one_warning_and_caches_the_rest(secured_url, admin, tmp_path):
    d = make_specs(tmp_path)
    cache = tmp_path / "cache"
    proc = run("warm", str(d), "--json", env=cli_env(secured_url, cache))
    assert proc.returncode == 0, proc.stderr
    assert_warned_once_each(proc.stderr)
    result = json.loads(proc.stdout)
    assert result["specs"] == len(GOOD) and result["failures"] == []
    in_redis = {k.decode()[len("ir_cache:"):] for k in entry_keys(admin, "ir_cache:*")}
    assert in_redis == good_keys(d)
    assert {p.stem for p in cache.glob("*.json")} == good_keys(d)


@pytest.mark.slow
def test_watch_once_prune_stats_and_flush_never_trip_on_bad_names(secured_url, admin, tmp_path):
    d = make_specs(tmp_path)
    cache = tmp_path / "cache"
    env = cli_env(secured_url, cache)
    assert run("warm", str(d), env=env).returncode == 0
    # entry-shaped files whose spec name cannot be a key, as an older version or another tool left them
    planted = [b"\xff_0a1b2c3d.json", b".hidden_0a1b2c3d.json", "ev\u202eil_0a1b2c3d.json".encode()]
    for raw in planted:
        with open(os.path.join(os.fsencode(cache), raw), "w") as f:
            f.write("{}")
    for args in (("prune", str(d), "--dry-run"), ("stats", "--json")):
        proc = run(*args, env=env)
        assert proc.returncode == 0, proc.stderr
        for shown in ("'\\xff_0a1b2c3d.json'", "'.hidden_0a1b2c3d.json'", "'ev\\u202eil_0a1b2c3d.json'"):
            assert sum(shown in ln for ln in proc.stderr.splitlines()) == 1, proc.stderr
    stats = json.loads(run("stats", "--json", env=env).stdout)
    assert stats["filesystem"]["file_count"] == len(GOOD)  # the planted files are not entries
    proc = run("flush", "--filesystem", "--yes", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"redis": len(GOOD), "filesystem": len(GOOD), "foreign_kept": 0}
    left = sorted(os.listdir(os.fsencode(cache)))
    assert [n for n in left if n.endswith(b".json")] == sorted(planted)  # reported, and left as they were


@pytest.mark.parametrize("raw", list(BAD), ids=lambda r: repr(r)[:20])
def test_get_of_a_bad_name_is_one_line_and_writes_nothing(raw, secured_url, admin, tmp_path):
    d = make_specs(tmp_path)
    cache = tmp_path / "cache"
    path = os.fsdecode(os.path.join(os.fsencode(d), raw))
    proc = run("get", path, env=cli_env(secured_url, cache))
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert BAD[raw] in line and line.isprintable()
    assert admin.dbsize() == 0
    assert not cache.exists() or not [p for p in os.listdir(cache) if p.endswith(".json")]


@pytest.mark.slow
def test_glob_and_case_names_flush_exactly(secured_url, admin, tmp_path):
    d = make_specs(tmp_path)
    env = cli_env(secured_url, tmp_path / "cache")
    assert run("warm", str(d), env=env).returncode == 0
    before = {k.decode() for k in admin.scan_iter("ir_cache:*")}
    for name in ("glob*[?]", "case"):
        proc = run("flush", name, "--yes", "--json", env=env)
        assert json.loads(proc.stdout) == {"redis": 1, "foreign_kept": 0}, proc.stdout
    after = {k.decode() for k in admin.scan_iter("ir_cache:*")}
    assert {k.split(":", 1)[1].rsplit("_", 1)[0] for k in before - after} == {"glob*[?]", "case"}
    assert any(k.startswith("ir_cache:Case_") for k in after)
