"""IR diffs: the pure comparison, `ircache-tui diff`, the watcher's one-line summary and `D` in the dashboard.

Real offline IRs of the example spec before and after an edit, a real Redis,
real files, the installed entry point and the real App under Textual's pilot.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from ircache_tui import IRCache, cache_key
from ircache_tui.ir.diff import diff_ir, render_lines
from ircache_tui.ir.generators.offline import parse_spec
from ircache_tui.specs.history import older_entry
from ircache_tui.tui.app import IRCacheApp
from ircache_tui.tui.screens.diff import DiffScreen
from ircache_tui.tui.services import Services
from ircache_tui.watch import SpecState, SpecWatcher
from tests.support.cli import cli_env, run_cli
from tests.support.generators import CountingGenerator
from tests.support.tui import static_text, until

EXAMPLES = Path(__file__).parent.parent / "examples" / "specs"
PETSTORE = (EXAMPLES / "petstore-spec.md").read_text()

TOY_ENTITY = "### Toy\nSomething to play with.\n- id: uuid (primary key)\n- name: string (required)\n\n"
TOY_RULE = '- Toy.name: must be unique "Toy names are unique"\n'
ORDER_RULE = "- Order.total: must be greater than or equal to 0\n"
LAST_ENDPOINT = "- GET /orders/{id} - Fetch an order (auth)\n"


def add_toy(text: str, *, endpoints: tuple[str, ...] = ("GET /toys - List toys",), rule: bool = True,
            drop_order_rule: bool = False) -> str:
    """The petstore spec with a Toy entity, endpoints and (optionally) a rule added, as a person would edit it."""
    assert "## Relationships" in text and LAST_ENDPOINT in text and ORDER_RULE in text
    text = text.replace("## Relationships", TOY_ENTITY + "## Relationships")
    text = text.replace(LAST_ENDPOINT, LAST_ENDPOINT + "".join(f"- {e}\n" for e in endpoints))
    if rule:
        text = text.replace(ORDER_RULE, ORDER_RULE + TOY_RULE)
    if drop_order_rule:
        text = text.replace(ORDER_RULE, "")
    return text


EMPTY = {"added": [], "removed": [], "changed": {}}


# -- the pure diff ----------------------------------------------------------------------------
def test_added_entity_endpoint_and_rule():
    old = parse_spec(PETSTORE, "petstore-spec")
    new = parse_spec(add_toy(PETSTORE), "petstore-spec")
    diff = diff_ir(old, new)
    assert diff.as_json("petstore-spec", "petstore-spec_00000001", "petstore-spec_00000002") == {
        "spec_name": "petstore-spec",
        "from": "petstore-spec_00000001",
        "to": "petstore-spec_00000002",
        "entities": {"added": ["Toy"], "removed": [], "changed": {}},
        "endpoints": {"added": ["GET /toys"], "removed": [], "changed": {}},
        "flows": EMPTY,
        "rules": {"added": ["Toy.name uniqueness"], "removed": [], "changed": {}},
    }
    assert diff.summary() == "+1 entity, +1 endpoint, +1 rule"
    assert not diff.is_empty
    # the other way round, everything added is removed
    back = diff_ir(new, old)
    assert (back.entities.removed, back.endpoints.removed, back.rules.removed) == (
        ("Toy",), ("GET /toys",), ("Toy.name uniqueness",))
    assert back.summary() == "\u22121 entity, \u22121 endpoint, \u22121 rule"


def test_the_same_ir_and_a_reworded_one_are_no_structural_change():
    old = parse_spec(PETSTORE, "petstore-spec")
    assert diff_ir(old, old).is_empty and diff_ir(old, old).summary() == "no structural change"
    reworded = PETSTORE.replace("An animal for sale.", "A creature looking for a home.").replace(
        "List pets", "Every pet in the shop")
    again = diff_ir(old, parse_spec(reworded, "petstore-spec"))
    assert again.is_empty, again  # descriptions and summaries are prose, not structure
    assert render_lines(again) == []


def test_changed_attributes_endpoints_flows_and_rules_plural_and_singular():
    old = parse_spec(PETSTORE, "petstore-spec")
    text = (PETSTORE
            .replace("- price: decimal (required)", "- price: integer (required)\n- color: string")
            .replace("- born_at: datetime (optional)\n", "")
            .replace("- GET /pets - List pets", "- GET /pets - List pets (auth)")
            .replace("- POST /pets - Add a pet (auth)\n", "")
            .replace("2. Compute the total", "2. Compute the total with tax")
            .replace('"Price must be positive"', '"Price must be above zero"'))
    text = add_toy(text, endpoints=("GET /toys - List toys", "POST /toys - Add a toy (auth)"), rule=False,
                   drop_order_rule=True)
    diff = diff_ir(old, parse_spec(text, "petstore-spec"))
    assert diff.entities.changed == {"Pet": {"attributes": {
        "added": ["color"], "removed": ["born_at"],
        "changed": {"price": {"data_type": {"from": "float", "to": "integer"}}},
    }}}
    assert diff.endpoints.added == ("GET /toys", "POST /toys") and diff.endpoints.removed == ("POST /pets",)
    assert diff.endpoints.changed == {"GET /pets": {"auth_required": {"from": False, "to": True}}}
    steps = diff.flows.changed["Checkout"]["steps"]
    assert steps["from"][1] == "Compute the total" and steps["to"][1] == "Compute the total with tax"
    assert diff.rules.removed == ("Order.total range",)
    assert diff.rules.changed == {"Pet.price range": {"error_message": {"from": "Price must be positive",
                                                                        "to": "Price must be above zero"}}}
    assert diff.summary() == ("+1 entity, ~1 entity, +2 endpoints, \u22121 endpoint, ~1 endpoint, ~1 flow, "
                              "\u22121 rule, ~1 rule")
    lines = render_lines(diff)
    assert ("changed", "    ~ attribute price: data_type float \u2192 integer") in lines
    assert ("added", "    + attribute color") in lines and ("removed", "  \u2212 POST /pets") in lines


def test_rules_sharing_a_natural_key_are_told_apart_by_condition():
    base = PETSTORE.replace(ORDER_RULE, ORDER_RULE + "- Order: must be reviewed\n")
    two = base.replace("- Order: must be reviewed\n", "- Order: must be reviewed\n- Order: must be signed\n")
    diff = diff_ir(parse_spec(base, "p"), parse_spec(two, "p"))
    assert diff.rules.added == ("Order custom: must be signed",) and not diff.rules.removed
    assert diff.summary() == "+1 rule"


# -- the command --------------------------------------------------------------------------------
@pytest.fixture
def env(redis_url, cache_dir):
    return cli_env(redis_url, cache_dir, IR_GENERATOR="offline")


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.e2e
def test_cli_diff_after_an_edit(env, specs, sync_redis):
    spec = specs / "petstore-spec.md"
    got = run_cli("get", str(spec), env=env)
    assert got.returncode == 0, got.stderr
    old_key = cache_key(spec.read_text(), str(spec))

    nothing = run_cli("diff", str(spec), "--json", env=env)  # only one version so far
    assert nothing.returncode == 1 and nothing.stdout == ""
    assert "nothing to compare" in one_line(nothing.stderr) and "Traceback" not in nothing.stderr

    spec.write_text(add_toy(spec.read_text()))
    new_key = cache_key(spec.read_text(), str(spec))
    out = run_cli("diff", str(spec), "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "spec_name": "petstore-spec", "from": old_key, "to": new_key,
        "entities": {"added": ["Toy"], "removed": [], "changed": {}},
        "endpoints": {"added": ["GET /toys"], "removed": [], "changed": {}},
        "flows": EMPTY,
        "rules": {"added": ["Toy.name uniqueness"], "removed": [], "changed": {}},
    }
    assert sync_redis.exists(f"ir_cache:{new_key}")  # the current version was generated and cached

    text = run_cli("diff", str(spec), "--no-generate", env=env)  # cached now; plain text when piped
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[:2] == [f"petstore-spec: {old_key} \u2192 {new_key}",
                                            "  +1 entity, +1 endpoint, +1 rule"]
    assert "  + Toy" in text.stdout.splitlines() and "\x1b[" not in text.stdout

    backwards = run_cli("diff", str(spec), "--from", new_key, "--json", env=env)  # itself: no change
    assert backwards.returncode == 0, backwards.stderr
    data = json.loads(backwards.stdout)
    assert data["from"] == data["to"] == new_key and data["entities"] == EMPTY and data["rules"] == EMPTY

    # read-only behaves like --no-generate, and reads the filesystem while Redis holds nothing
    sync_redis.flushall()
    ro = run_cli("diff", str(spec), "--read-only", "--json", env=env)
    assert ro.returncode == 0, ro.stderr
    assert json.loads(ro.stdout)["from"] == old_key


@pytest.mark.e2e
def test_cli_diff_bad_usage_and_nothing_cached(env, specs, sync_redis, cache_dir):
    spec = specs / "petstore-spec.md"
    for bad in ("not-a-key", "petstore-spec_XYZ", "petstore-spec_0a1b2c3"):
        out = run_cli("diff", str(spec), "--from", bad, env=env)
        assert out.returncode == 2, (bad, out.stderr)
        assert "--from" in one_line(out.stderr)
    assert run_cli("diff", env=env).returncode == 2
    assert run_cli("diff", str(specs / "nope.md"), env=env).returncode == 2

    out = run_cli("diff", str(spec), "--no-generate", env=env)  # not cached, and may not generate
    assert out.returncode == 1 and out.stdout == ""
    line = one_line(out.stderr)
    assert "not cached" in line and "--no-generate" in line
    key = cache_key(spec.read_text(), str(spec))
    assert not sync_redis.exists(f"ir_cache:{key}") and not (cache_dir / f"{key}.json").exists()  # nothing generated

    out = run_cli("diff", str(spec), "--from", "petstore-spec_0a1b2c3d", "--no-generate", env=env)
    assert out.returncode == 1  # still not cached: the current IR comes first


# -- history ------------------------------------------------------------------------------------
async def test_older_entry_is_the_most_recent_other_one_in_either_tier(redis_url, cache_dir, specs, sync_redis):
    spec = specs / "petstore-spec.md"
    v1, v2, v3 = PETSTORE, add_toy(PETSTORE), add_toy(PETSTORE, rule=False)
    k1, k2, k3 = (cache_key(t, str(spec)) for t in (v1, v2, v3))
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as cache:
        for text in (v1, v2, v3):
            await cache.lookup(text, str(spec))
            await asyncio.sleep(0.01)  # distinct generated_at
        assert await older_entry(cache, "petstore-spec", k3) == (k2, "redis")
        sync_redis.delete(f"ir_cache:{k2}")
        assert await older_entry(cache, "petstore-spec", k3) == (k2, "filesystem")
        (cache_dir / f"{k2}.json").write_text("{ not json")  # corrupt: skipped
        assert await older_entry(cache, "petstore-spec", k3) == (k1, "redis")
        assert await older_entry(cache, "petstore-spec", k1) == (k3, "redis")
        assert await older_entry(cache, "ecommerce-api-spec-human", "ecommerce-api-spec-human_0a1b2c3d") is None


# -- the watcher --------------------------------------------------------------------------------
async def test_the_watcher_says_what_a_regeneration_changed(redis_url, cache_dir, tmp_path, sync_redis, caplog):
    caplog.set_level(logging.INFO, logger="ircache")
    d = tmp_path / "watched"
    d.mkdir()
    spec = d / "petstore-spec.md"
    spec.write_text(PETSTORE)
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as cache:
        watcher = SpecWatcher(cache, [d], debounce_ms=50, redis_check_interval=None)  # no keeper: nothing re-warms
        task = asyncio.create_task(watcher.run())
        try:
            await asyncio.wait_for(watcher.wait_idle(), 10)
            path = spec.parent.resolve() / spec.name
            first = cache_key(PETSTORE, str(spec))
            assert watcher.statuses[path].cache_key == first and watcher.statuses[path].state is SpecState.IN_REDIS

            def summaries() -> list[str]:
                return [r.getMessage() for r in caplog.records
                        if r.name == "ircache.watch" and r.getMessage().startswith("petstore-spec: ")]

            assert summaries() == []  # a first generation replaces nothing
            await asyncio.sleep(0.3)  # the watcher follows the directory now
            edited = add_toy(PETSTORE, endpoints=("GET /toys - List toys", "POST /toys - Add a toy (auth)"),
                             rule=False, drop_order_rule=True)
            spec.write_text(edited)
            second = cache_key(edited, str(spec))
            await _until(lambda: watcher.statuses[path].cache_key == second
                         and watcher.statuses[path].state is SpecState.IN_REDIS, "the edit regenerated")
            await asyncio.wait_for(watcher.wait_idle(), 10)
            assert summaries() == ["petstore-spec: +1 entity, +2 endpoints, \u22121 rule"]
            record = next(r for r in caplog.records if r.getMessage() == summaries()[0])
            assert record.levelno == logging.INFO

            # the previous entry is gone from both tiers: the regeneration lands without a summary
            for key in (first, second):  # first too, so that the revert is generated, not found
                sync_redis.delete(f"ir_cache:{key}")
                (cache_dir / f"{key}.json").unlink()
            await asyncio.sleep(0.3)
            generated = cache.generator.calls
            spec.write_text(PETSTORE)
            await _until(lambda: watcher.statuses[path].cache_key == first and cache.generator.calls > generated
                         and watcher.statuses[path].state is SpecState.IN_REDIS, "the revert regenerated")
            await asyncio.wait_for(watcher.wait_idle(), 10)
            assert len(summaries()) == 1, summaries()
        finally:
            watcher.stop()
            await asyncio.wait_for(task, 10)


async def _until(predicate, what: str, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


# -- the dashboard ------------------------------------------------------------------------------
@pytest.fixture
async def two_versions(redis_url, cache_dir, specs):
    """The example specs cached, then petstore-spec edited and cached again: its first entry is stale."""
    spec = specs / "petstore-spec.md"
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as cache:
        for path in sorted(specs.glob("*.md")):
            await cache.get_application_ir(path.read_text(), str(path))
        old = cache_key(spec.read_text(), str(spec))
        spec.write_text(add_toy(spec.read_text()))
        await cache.get_application_ir(spec.read_text(), str(spec))
        yield cache, old, cache_key(spec.read_text(), str(spec))


def make_app(cache: IRCache, specs: Path) -> IRCacheApp:
    return IRCacheApp(Services(cache=cache, spec_dirs=[specs], watch=False, generate_on_watch=False))


async def pick_spec(pilot, app, specs: Path, name: str) -> None:
    await until(pilot, lambda: app.first_page_shown, what="first page")
    await until(pilot, lambda: len(app.specs_pane.statuses) == 2
                and all(s.state is SpecState.IN_REDIS for s in app.specs_pane.statuses.values()), what="specs")
    await pilot.press("3")
    await until(pilot, lambda: app.tabs.active == "tab-specs", what="specs tab")
    row = str((specs / f"{name}.md").resolve())
    table = app.specs_pane.table
    table.focus()
    table.move_cursor(row=table.get_row_index(row))
    await until(pilot, lambda: app.picked() is not None and app.picked().spec_name == name, what=f"{name} picked")


async def test_d_on_a_spec_with_a_stale_entry_shows_the_diff(two_versions, specs):
    cache, old, new = two_versions
    app = make_app(cache, specs)
    async with app.run_test(size=(140, 40)) as pilot:
        await pick_spec(pilot, app, specs, "petstore-spec")
        assert any(b.key == "D" and b.description == "Diff" for b in app.BINDINGS)
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, DiffScreen), what="the diff screen")
        await pilot.pause(0.1)
        body = static_text(app, "#diff-body")
        assert "+ Toy" in body and "+ GET /toys" in body and "+ Toy.name uniqueness" in body
        assert static_text(app, "#diff-title") == f"petstore-spec: {old} \u2192 {new}"
        assert static_text(app, "#diff-summary") == "+1 entity, +1 endpoint, +1 rule"
        styles = {span.style for span in app.screen.query_one("#diff-body").content.spans}
        assert "green" in styles  # added lines are coloured
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DiffScreen), what="the diff screen closed")
        assert len(app.screen_stack) == 1

        # the stale key itself, in the keys tab: compared with the spec's current entry
        await pilot.press("1")
        table = app.keys_pane.table
        table.focus()
        table.move_cursor(row=table.get_row_index(old))
        await until(pilot, lambda: app.picked() is not None and app.picked().cache_key == old, what="stale key")
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, DiffScreen), what="the diff screen, from the key")
        assert (app.screen.from_key, app.screen.to_key) == (old, new)
        await pilot.press("escape")


async def test_d_with_nothing_older_says_so(two_versions, specs):
    cache, _, _ = two_versions
    app = make_app(cache, specs)
    async with app.run_test(size=(140, 40)) as pilot:
        await pick_spec(pilot, app, specs, "ecommerce-api-spec-human")
        await pilot.press("D")
        await until(pilot, lambda: any("Nothing to compare" in n.message for n in app._notifications),
                    what="the notification")
        assert not isinstance(app.screen, DiffScreen)
