"""`ircache-tui keys` and the dashboard's `e`: the entries as data, over a prefix shared with other
tools' keys (values under names of our grammar, and names that are not of it).

The command runs as a subprocess of the installed entry point over the session's redis-server;
the dashboard through Textual's pilot over the same server.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import io
import json
import os
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from ircache_tui import IRCache, cache_key
from ircache_tui.cache.browse import KeyRow
from ircache_tui.cache.export import CHUNK, FIELDS
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.screens.export import ExportScreen
from ircache_tui.tui.services import Services
from tests.support import hostile
from tests.support.cli import ENTRY_POINT, cli_env, run_cli
from tests.support.foreign import entry_value, fill_cluster, plant_foreign
from tests.support.generators import CountingGenerator
from tests.support.redis_server import free_port
from tests.support.tui import until

# names under the prefix that are not of our grammar: never listed, even with --foreign
NOT_OURS = [b"ir_cache:foo", b"ir_cache:alpha_00000001:lock", b"ir_cache:alpha_0000000G", b"other:alpha_00000001"]
#: the README's read-only user, less MEMORY USAGE (a server that refuses it) and the hit counts' HMGET
RO_RULES = ["+ping", "+get", "+exists", "+scan", "+ttl", "+getrange", "+config|get"]


@pytest.fixture
async def world(redis_url, sync_redis, cache_dir, specs, tmp_path):
    """The example specs cached (petstore hit twice more, its counts flushed), seven `alpha` entries
    of falling TTL and an `alpha_v2` cousin with none, the hostile corpus, other tools' values
    under our names (`teamb-…`, `alpha-…`) and names that are not ours."""
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as cache:
        for path in sorted(specs.glob("*.md")):
            await cache.get_application_ir(path.read_text(), str(path))
        pet = specs / "petstore-spec.md"
        for _ in range(2):
            await cache.get_application_ir(pet.read_text(), str(pet))
        await cache.hits.flush()
    for i in range(7):
        sync_redis.set(f"ir_cache:alpha_{i:08x}", entry_value(), ex=5000 - 100 * i)
    sync_redis.set("ir_cache:alpha_v2_0000000a", entry_value())
    corpus = hostile.build(tmp_path / "hostile", sync_redis)
    foreign = plant_foreign(sync_redis, 3, 2) + plant_foreign(sync_redis, 2, 0, spec="alpha")
    for key in NOT_OURS:
        sync_redis.set(key, b"{}")
    return {"specs": specs, "corpus": corpus, "foreign": {k.decode() for k in foreign},
            "pet": "ir_cache:" + cache_key(pet.read_text(), str(pet)), "env": cli_env(redis_url, cache_dir),
            "cache_dir": cache_dir, "url": redis_url}


def entry_names(client: redis.Redis, foreign: set[str]) -> set[str]:
    """Every entry under the prefix, by our grammar less other tools' values."""
    names = {k.decode() for k in client.scan_iter(match="ir_cache:*")}
    return {n for n in names if not n.endswith(":hits") and n not in foreign and n.encode() not in NOT_OURS
            and n != "ir_cache:stats:hits"}


def ndjson(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_keys_json_lists_every_entry_with_its_fields_and_no_foreign_value(world, sync_redis):
    out = run_cli("keys", "--json", env=world["env"])
    assert out.returncode == 0 and out.stderr == "", out.stderr
    rows = ndjson(out.stdout)
    assert all(list(row) == list(FIELDS) for row in rows)
    by_key = {row["key"]: row for row in rows}
    assert len(by_key) == len(rows) and set(by_key) == entry_names(sync_redis, world["foreign"])
    pet = by_key[world["pet"]]
    assert pet["spec"] == "petstore-spec" and pet["hash"] == world["pet"][-8:] and pet["state"] == "ok"
    assert 0 < pet["ttl"] <= 3600 and pet["bytes"] > 0 and pet["generator"] == "counting"
    assert pet["hits"] == 2 and pet["last_hit"].endswith("Z") and pet["generated_at"].startswith("20")
    alpha = by_key["ir_cache:alpha_00000003"]
    assert alpha["state"] == "corrupt" and 4600 < alpha["ttl"] <= 4700 and alpha["hits"] == 0
    assert alpha["last_hit"] is None and alpha["cost_usd"] is None
    assert by_key["ir_cache:alpha_v2_0000000a"]["ttl"] is None  # no expiry

    with_foreign = run_cli("keys", "--json", "--foreign", env=world["env"])
    assert with_foreign.returncode == 0
    extra = {row["key"]: row["state"] for row in ndjson(with_foreign.stdout) if row["key"] not in by_key}
    assert extra == {key: "foreign" for key in world["foreign"]}  # and never a name outside our grammar


def test_keys_csv_is_the_json_as_columns(world):
    rows = ndjson(run_cli("keys", "--json", "--foreign", env=world["env"]).stdout)
    out = run_cli("keys", "--csv", "--foreign", env=world["env"])
    assert out.returncode == 0
    table = list(csv.reader(io.StringIO(out.stdout)))
    assert table[0] == list(FIELDS)
    ttl = FIELDS.index("ttl")
    as_text = [["" if v is None else str(v) for v in row.values()] for row in rows]
    # two runs: a TTL may have ticked between them
    assert sorted(r[:ttl] + r[ttl + 1:] for r in table[1:]) == sorted(r[:ttl] + r[ttl + 1:] for r in as_text)
    assert all(abs(int(a[ttl] or -1) - int(b[ttl] or -1)) <= 2 for a, b in zip(sorted(table[1:]), sorted(as_text)))


@pytest.mark.parametrize("flt", ["", "pet", "=alpha", "alpha", "alpha*", "*_0000000[0-2]", "=hostile", "teamb"])
async def test_filter_means_what_the_panes_slash_means(world, flt):
    """The CLI's --filter against the key pane's own pager with the same text, every page of it."""
    out = run_cli("keys", "--json", "--filter", flt, env=world["env"])
    assert out.returncode == 0, out.stderr
    listed = sorted(row["key"] for row in ndjson(out.stdout))
    async with IRCache(redis_url=world["url"], cache_dir=world["cache_dir"]) as cache:
        browser = cache.key_browser(page_size=3)
        browser.set_filter(flt)
        page = await browser.first()
        pane = [r for r in page.rows]
        while browser.has_next:
            pane += (await browser.next()).rows
    assert listed == sorted(f"ir_cache:{r.cache_key}" for r in pane if r.problem != "foreign")
    if flt == "=alpha":
        assert len(listed) == 7  # not alpha_v2, not the alpha-… values of another tool


def test_hostile_names_are_escaped_in_text_and_exact_in_json_and_csv(world):
    corpus, env = world["corpus"], world["env"]
    generator = f"{hostile.MARKUP}{hostile.C1_CSI} ({hostile.OSC52}{hostile.CSI_CLEAR})"
    rows = {row["key"]: row for row in ndjson(run_cli("keys", "--json", "--filter", "=hostile", env=env).stdout)}
    assert rows[f"ir_cache:{corpus.key}"]["generator"] == generator  # exact: escapes decoded, nothing lost

    text = run_cli("keys", "--filter", "=hostile", env=env)
    assert text.returncode == 0 and len(text.stdout.splitlines()) == 2
    assert hostile.SHOWN_OSC52 in text.stdout and hostile.SHOWN_C1 in text.stdout and hostile.MARKUP in text.stdout
    assert not hostile.RAW.search(text.stdout)

    piped = run_cli("keys", "--csv", "--filter", "=hostile", env=env)  # a pipe: the data as it is
    assert {row[-1] for row in csv.reader(io.StringIO(piped.stdout))} == {"generator", generator}


def test_spec_names_with_commas_quotes_and_markup_stay_whole(world, sync_redis):
    name = '[b]x,"y" é'
    sync_redis.set(f"ir_cache:{name}_0a1b2c3d", entry_value())
    rows = ndjson(run_cli("keys", "--json", "--filter", "=" + name, env=world["env"]).stdout)
    assert [(r["spec"], r["hash"]) for r in rows] == [(name, "0a1b2c3d")]
    table = list(csv.reader(io.StringIO(run_cli("keys", "--csv", "--filter", "x,", env=world["env"]).stdout)))
    assert [row[1] for row in table[1:]] == [name]
    text = run_cli("keys", "--filter", "x,", env=world["env"]).stdout
    assert f"ir_cache:{name}_0a1b2c3d" in text


async def test_a_spec_named_like_a_formula_is_text_in_the_csv_and_exact_in_the_json(world, tmp_path):
    """Spec files are named by anyone: `=HYPERLINK(…).md` must not become a live formula in the
    spreadsheet an operator opens the export in (OWASP's CSV injection), nor be changed in the JSON."""
    names = ['=HYPERLINK("evil.example","open me")', "+1+2", "-draft", "@SUM(A1)"]
    async with IRCache(redis_url=world["url"], cache_dir=world["cache_dir"], generator=CountingGenerator()) as cache:
        for name in names:
            path = tmp_path / f"{name}.md"
            path.write_text(f"# {name}\n\n## Endpoints\n- GET /x - X\n")
            await cache.get_application_ir(path.read_text(), str(path))
    for name in names:
        flt = "=" + name
        (row,) = ndjson(run_cli("keys", "--json", "--filter", flt, env=world["env"]).stdout)
        assert row["spec"] == name  # the data as it is
        piped = run_cli("keys", "--csv", "--filter", flt, env=world["env"])
        header, cells = list(csv.reader(io.StringIO(piped.stdout)))
        spec = dict(zip(header, cells))["spec"]
        assert spec == "'" + name, spec
    # numbers and our own fields are untouched
    plain = list(csv.DictReader(io.StringIO(run_cli("keys", "--csv", "--filter", "=petstore-spec",
                                                    env=world["env"]).stdout)))
    assert plain and all(not row[f].startswith("'") for row in plain for f in FIELDS)
    assert int(plain[0]["ttl"]) > 0


def test_a_reader_that_closes_the_pipe_ends_it_quietly(redis_url, sync_redis, cache_dir):
    """`| head -n 3`: the reader goes after three lines of a listing far bigger than a pipe holds."""
    pipe = sync_redis.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(f"ir_cache:bulk_{i:08x}", entry_value(), ex=3600)
    pipe.execute()
    proc = subprocess.Popen([ENTRY_POINT, "keys", "--json"], env=cli_env(redis_url, cache_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    first = [json.loads(proc.stdout.readline()) for _ in range(3)]
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert err == b"" and all(row["key"].startswith("ir_cache:bulk_") for row in first)


def test_unreachable_redis_is_one_line_and_exit_1(cache_dir):
    port = free_port()
    for args in (["keys"], ["keys", "--json"]):
        out = run_cli(*args, env=cli_env(f"redis://127.0.0.1:{port}/0", cache_dir))
        assert out.returncode == 1 and out.stdout == ""
        lines = out.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("ircache-tui keys: "), out.stderr
        assert "connection refused" in lines[0]


def test_a_bad_filter_is_usage(world):
    out = run_cli("keys", "--filter", "=a/b", env=world["env"])
    assert out.returncode == 2 and out.stdout == "" and len(out.stderr.splitlines()) == 1, out.stderr
    assert "--filter" in out.stderr


@pytest.mark.server  # ACL rules
def test_a_read_only_user_without_memory_usage_lists_with_unknown_bytes(world, sync_redis, redis_server):
    name, password = f"ro-{uuid.uuid4().hex[:8]}", "ro-Pass-7781"
    sync_redis.execute_command("ACL", "SETUSER", name, "on", f">{password}", "resetkeys", "-@all", *RO_RULES,
                               "~ir_cache:*")
    try:
        env = cli_env(f"redis://{name}:{password}@127.0.0.1:{redis_server.port}/0", world["cache_dir"])
        out = run_cli("keys", "--json", env=env)
        assert out.returncode == 0, out.stderr
        rows = ndjson(out.stdout)
        assert {r["key"] for r in rows} == entry_names(sync_redis, world["foreign"])
        assert all(r["bytes"] is None and r["hits"] is None for r in rows)
        assert {r["state"] for r in rows if r["key"] == world["pet"]} == {"ok"}
    finally:
        sync_redis.acl_deluser(name)


# -- the dashboard's `e` -------------------------------------------------------------------------------
def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


async def _export(pilot, app, path: Path, *, ndjson_format: bool = False) -> None:
    await pilot.press("e")
    await until(pilot, lambda: isinstance(app.screen, ExportScreen), what="the export modal")
    if ndjson_format:
        await pilot.press("ctrl+o")
    await pilot.press("ctrl+u", *str(path), "enter")
    await until(pilot, lambda: not isinstance(app.screen, ExportScreen), what="the modal closes")


async def test_e_exports_every_page_of_the_filtered_view_in_its_sort_order(world, tmp_path):
    async with IRCache(redis_url=world["url"], cache_dir=world["cache_dir"], read_only=True) as cache:
        app = IRCacheApp(Services(cache=cache, page_size=3, watch=False))  # read-only: it may export all the same
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: app.first_page_shown, what="first page")
            pane = app.keys_pane
            pane.table.focus()
            await pilot.press("slash", *"alpha", "enter")
            await until(pilot, lambda: pane._page is not None and str(pane._footer_line.render()).startswith("/alpha"),
                        what="the filter")
            await pilot.press("s")  # spec → TTL: the soonest to expire first
            assert pane.sort_by == "ttl"
            target = tmp_path / "alpha.csv"
            await _export(pilot, app, target)
            await until(pilot, lambda: any("Exported" in n for n in notes(app)), what="the notification")
            assert f"Exported 10 entries to {target}" in notes(app)
            table = list(csv.DictReader(target.open(newline="")))
            ours = [row["key"] for row in table if row["state"] != "foreign"]
            # seven alpha entries, soonest first, then alpha_v2 (no expiry); the pane shows 3 a page
            assert ours == [f"ir_cache:alpha_{i:08x}" for i in reversed(range(7))] + ["ir_cache:alpha_v2_0000000a"]
            assert {row["key"] for row in table if row["state"] == "foreign"} == {
                k for k in world["foreign"] if k.startswith("ir_cache:alpha-s")}  # what the pane shows, said

            second = tmp_path / "alpha.ndjson"
            await _export(pilot, app, second, ndjson_format=True)
            await until(pilot, lambda: any(str(second) in n for n in notes(app)), what="the second export")
            assert second.exists(), notes(app)
            assert [row["key"] for row in ndjson(second.read_text())] == [row["key"] for row in table]


async def test_an_export_that_cannot_be_written_says_why_and_the_dashboard_goes_on(world, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    existing = tmp_path / "kept.csv"
    existing.write_text("mine\n")
    async with IRCache(redis_url=world["url"], cache_dir=world["cache_dir"]) as cache:
        app = IRCacheApp(Services(cache=cache, watch=False))
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: app.first_page_shown, what="first page")
            app.keys_pane.table.focus()
            await _export(pilot, app, blocker / "keys.csv")
            await until(pilot, lambda: any("Export failed" in n for n in notes(app)), what="the error")
            said = [n for n in notes(app) if "Export failed" in n]
            assert said == [f"Export failed: Not a directory: {blocker / 'keys.csv'}"], said
            await _export(pilot, app, existing)  # never over a file that is there
            await until(pilot, lambda: f"Export failed: File exists: {existing}" in notes(app), what="the second error")
            assert existing.read_text() == "mine\n"
            assert not isinstance(app.screen, ExportScreen) and app.is_running
            await _export(pilot, app, tmp_path / "fine.csv")
            await until(pilot, lambda: (tmp_path / "fine.csv").exists() and any("fine.csv" in n for n in notes(app)))


class _Gate:
    """Holds the export's writer thread (never the event loop's) until the test lets it go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.left = threading.Event()

    def hold(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            self.entered.set()
            assert self.release.wait(60), "the test never let the writer go"
            self.left.set()


class _HeldName(str):
    """A spec name whose CSV cell (str()) is written only when the gate opens."""

    gate: _Gate

    def __str__(self) -> str:
        self.gate.hold()
        return str.__str__(self)


def _fds_on(path: Path) -> list[str]:
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    return [link for link in links if link.startswith(str(path))]


@pytest.mark.parametrize("held_in", ["sort", "write"])
async def test_a_cancelled_export_leaves_no_file_no_descriptor_and_no_stray_error(redis_url, cache_dir, tmp_path,
                                                                                   held_in):
    """Quitting the dashboard cancels its export worker; the cancel lands while the writer's thread
    is busy with the file (sorting, or writing the second chunk). The export waits for the thread,
    which closes and removes the file: nothing left, no descriptor open on it, only CancelledError."""
    gate = _Gate()
    rows = [KeyRow(f"s{i:05d}_{i:08x}", f"s{i:05d}", f"{i:08x}", -1, 100, None, None, 0.0) for i in range(3 * CHUNK)]
    held = _HeldName(rows[CHUNK + 1].spec_name)
    held.gate = gate
    if held_in == "write":  # the second chunk's second row: the first chunk is written by then
        rows[CHUNK + 1] = dataclasses.replace(rows[CHUNK + 1], spec_name=held)

    def sort_key(row: KeyRow) -> str:
        if held_in == "sort" and row is rows[0]:
            gate.hold()
        return row.cache_key

    stray: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: stray.append(context))
    target = tmp_path / "view.csv"
    try:
        async with IRCache(redis_url=redis_url, cache_dir=cache_dir) as cache:
            task = asyncio.create_task(cache.export_view(target, "csv", sort_key=sort_key, rows=rows))
            assert await asyncio.to_thread(gate.entered.wait, 60), "the writer never reached the gate"
            assert target.exists() and not task.done()  # made, and the writer's thread is on it now
            task.cancel()
            loop.call_soon(gate.release.set)  # after the task has taken the cancel: the thread still busy then
            with pytest.raises(asyncio.CancelledError):
                await task
            assert task.cancelled()
            assert gate.left.is_set()  # the export ended only after the thread was done with the file
            assert not target.exists()
            assert _fds_on(target) == []
    finally:
        loop.set_exception_handler(None)
    assert stray == []


@pytest.mark.server
@pytest.mark.cluster
def test_keys_walks_every_primary_of_a_cluster(cluster, nodes, tmp_path):
    ir = [f"ir_cache:spec{i % 7}_{i:08x}".encode() for i in range(900)]
    foreign = [f"ir_cache:teamb{i}_{i:08x}".encode() for i in range(30)] + [b"ir_cache:foo", b"other:x"]
    fill_cluster(cluster.url, ir, foreign)
    env = cli_env(cluster.url, tmp_path / "cache" / "ir")
    out = run_cli("keys", "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert sorted(row["key"] for row in ndjson(out.stdout)) == sorted(k.decode() for k in ir)
    out = run_cli("keys", "--json", "--foreign", "--filter", "teamb*", env=env)
    assert {row["key"]: row["state"] for row in ndjson(out.stdout)} == {k.decode(): "foreign" for k in foreign[:30]}
