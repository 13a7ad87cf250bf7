"""Environment variables are read in settings.py only, and what they say is passed down from there.

The static check parses every module of the package; the rest runs the real parts: the settings,
the Anthropic generator they make, the embedded redis-server (a wrapper script around the run's own
binary, to see which binary was started), and `ircache-tui` as a process (on a pseudo-terminal for
the colours of `diff`).
"""

from __future__ import annotations

import ast
import os
import pty
import stat
import subprocess
from pathlib import Path

import pytest

import ircache_tui
from ircache_tui.cache.embedded import EmbeddedRedis, find_redis_server
from ircache_tui.cache.ircache import IRCache
from ircache_tui.ir.generators import OfflineGenerator
from ircache_tui.ir.generators.anthropic import DEFAULT_DEADLINE, DEFAULT_MAX_TOKENS, AnthropicGenerator
from ircache_tui.settings import DEFAULT_METRICS_REFRESH, Settings, SettingsError, redis_server_from_env
from tests.support.cli import ENTRY_POINT, cli_env, run_cli

PACKAGE = Path(ircache_tui.__file__).parent
ENV_READERS = {"environ", "environb", "getenv", "getenvb"}


# -- (a) nothing but settings.py reads the environment --------------------------------------------
def _env_reads(path: Path) -> list[str]:
    """Where `path` reads the environment: os.environ / os.getenv (and their bytes twins), as an
    attribute of `os` or imported from it. Comments and strings do not count: the code is parsed."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.Attribute) and node.attr in ENV_READERS
                and isinstance(node.value, ast.Name) and node.value.id == "os"):
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: from os import {alias.name}"
                      for alias in node.names if alias.name in ENV_READERS]
    return found


def test_only_settings_py_reads_the_environment():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert PACKAGE / "settings.py" in modules and len(modules) > 50  # the package, not an empty glob
    assert _env_reads(PACKAGE / "settings.py")  # the check sees a read where there is one
    elsewhere = [hit for path in modules if path != PACKAGE / "settings.py" for hit in _env_reads(path)]
    assert elsewhere == []


# -- (b) what the settings make of the variables ----------------------------------------------------
async def test_the_settings_generator_carries_model_max_tokens_and_deadline():
    env = {"ANTHROPIC_API_KEY": "sk-settings-test", "IR_MODEL": "claude-from-settings", "IR_MAX_TOKENS": "4321",
           "IR_GENERATE_TIMEOUT": "12.5"}
    gen = Settings.from_env(env).make_generator()
    assert isinstance(gen, AnthropicGenerator)
    try:
        assert (gen.model, gen.max_tokens, gen.deadline, gen.timeout) == ("claude-from-settings", 4321, 12.5, 12.5)
        # and its messages name the variables to change
        assert gen._max_tokens_hint == "raise IR_MAX_TOKENS or shorten the spec"
        assert gen._deadline_source == " (IR_GENERATE_TIMEOUT)"
    finally:
        await gen.aclose()


async def test_unset_variables_leave_the_generator_its_defaults_and_0_means_no_deadline():
    gen = Settings.from_env({"ANTHROPIC_API_KEY": "sk-settings-test"}).make_generator()
    assert isinstance(gen, AnthropicGenerator)
    try:
        assert (gen.max_tokens, gen.deadline) == (DEFAULT_MAX_TOKENS, DEFAULT_DEADLINE)
    finally:
        await gen.aclose()
    gen = Settings.from_env({"ANTHROPIC_API_KEY": "sk-settings-test", "IR_GENERATE_TIMEOUT": "0"}).make_generator()
    assert isinstance(gen, AnthropicGenerator)
    try:
        assert gen.deadline is None
    finally:
        await gen.aclose()


def test_metrics_refresh_no_color_and_redis_server_are_settings(tmp_path):
    binary = find_redis_server()
    settings = Settings.from_env({"IR_METRICS_REFRESH": "2.5", "NO_COLOR": "1", "IRCACHE_REDIS_SERVER": binary})
    assert (settings.metrics_refresh, settings.no_color, settings.redis_server) == (2.5, True, binary)
    # NO_COLOR set to anything but "" turns colour off (no-color.org); unset or empty does not
    assert Settings.from_env({"NO_COLOR": "0"}).no_color is True
    unset = Settings.from_env({"NO_COLOR": ""})
    assert (unset.metrics_refresh, unset.no_color, unset.redis_server) == (DEFAULT_METRICS_REFRESH, False, None)


def _not_executable(tmp_path: Path) -> Path:
    path = tmp_path / "redis-server"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o644)
    return path


@pytest.mark.parametrize("env, named", [
    ({"IR_METRICS_REFRESH": "soon"}, "IR_METRICS_REFRESH"),
    ({"IR_METRICS_REFRESH": "0"}, "IR_METRICS_REFRESH"),
    ({"IR_METRICS_REFRESH": "-1"}, "IR_METRICS_REFRESH"),
    ({"IR_MAX_TOKENS": "lots"}, "IR_MAX_TOKENS"),
    ({"IR_MAX_TOKENS": "0"}, "IR_MAX_TOKENS"),
    ({"IR_GENERATE_TIMEOUT": "-3"}, "IR_GENERATE_TIMEOUT"),
    ({"IRCACHE_REDIS_SERVER": "{tmp}/redis-server"}, "IRCACHE_REDIS_SERVER"),  # not executable
    ({"IRCACHE_REDIS_SERVER": "{tmp}/nowhere/redis-server"}, "IRCACHE_REDIS_SERVER"),
    ({"IRCACHE_REDIS_SERVER": "{tmp}"}, "IRCACHE_REDIS_SERVER"),  # a directory
], ids=["refresh-word", "refresh-0", "refresh-negative", "max-tokens-word", "max-tokens-0", "timeout-negative",
        "server-not-executable", "server-missing", "server-a-directory"])
def test_a_bad_value_is_a_settings_error_naming_the_variable(env, named, tmp_path):
    _not_executable(tmp_path)
    env = {k: v.format(tmp=tmp_path) for k, v in env.items()}
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_redis_server_from_env(tmp_path):
    binary = find_redis_server()
    assert redis_server_from_env({}) is None and redis_server_from_env({"IRCACHE_REDIS_SERVER": ""}) is None
    assert redis_server_from_env({"IRCACHE_REDIS_SERVER": binary}) == binary
    with pytest.raises(SettingsError, match="IRCACHE_REDIS_SERVER"):
        redis_server_from_env({"IRCACHE_REDIS_SERVER": str(_not_executable(tmp_path))})


@pytest.mark.e2e
@pytest.mark.parametrize("variable", ["IR_METRICS_REFRESH", "IRCACHE_REDIS_SERVER"])
def test_a_bad_variable_is_one_line_and_exit_2_from_any_command(variable, tmp_path, cache_dir):
    bad = {"IR_METRICS_REFRESH": "soon", "IRCACHE_REDIS_SERVER": str(_not_executable(tmp_path))}[variable]
    out = run_cli("stats", env=cli_env(None, cache_dir, **{variable: bad}))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0] and "Traceback" not in out.stderr, out.stderr
    assert not (cache_dir / ".redis").exists()  # refused before anything started


# -- the embedded server's binary -------------------------------------------------------------------
def _wrapper(tmp_path: Path) -> tuple[str, Path]:
    """A server binary that notes each start in a file, then becomes the run's real server."""
    marker = tmp_path / "started"
    script = tmp_path / "bin" / "noting-redis-server"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\necho "$$" >> "{marker}"\nexec "{find_redis_server()}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), marker


async def test_the_cache_starts_the_settings_redis_server(tmp_path, cache_dir):
    script, marker = _wrapper(tmp_path)
    # the settings' own env, not the process's: the run's IRCACHE_REDIS_SERVER (if any) is not this one
    settings = Settings.from_env({"IRCACHE_REDIS_SERVER": script, "IR_CACHE_DIR": str(cache_dir)})
    async with IRCache(settings=settings, generator=OfflineGenerator()) as cache:
        assert cache.embedded is not None and cache.embedded.server_binary == script
        await cache.get_application_ir("# Shop\n", "specs/shop.md")  # it answers
    assert len(marker.read_text().split()) == 1


def test_an_embedded_server_without_a_binary_takes_ircache_redis_server(tmp_path, cache_dir, monkeypatch):
    # how the suite's server matrix reaches every EmbeddedRedis(cache_dir) a test builds itself
    script, marker = _wrapper(tmp_path)
    monkeypatch.setenv("IRCACHE_REDIS_SERVER", script)
    embedded = EmbeddedRedis(cache_dir)
    try:
        embedded.start()
        assert marker.read_text().split() != []
    finally:
        embedded.stop()
    monkeypatch.setenv("IRCACHE_REDIS_SERVER", str(_not_executable(tmp_path / "bin")))
    with pytest.raises(SettingsError, match="IRCACHE_REDIS_SERVER"):
        find_redis_server()


# -- NO_COLOR and `diff` ----------------------------------------------------------------------------
def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run ircache-tui with stdout on a pseudo-terminal: exit status, what it showed, stderr."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([ENTRY_POINT, *args], env=env, stdout=slave, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
    finally:
        os.close(slave)
    shown = bytearray()
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the command exited and the terminal has no writer left
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(master)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, shown.decode(errors="replace"), stderr.decode(errors="replace")


@pytest.mark.e2e
async def test_no_color_turns_the_colours_of_diff_off(redis_url, cache_dir, specs):
    spec = specs / "petstore-spec.md"
    before = spec.read_text()
    after = before.replace("## Relationships", "### Toy\nSomething to play with.\n- id: uuid (primary key)\n\n"
                                               "## Relationships")
    assert after != before
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=OfflineGenerator()) as cache:
        await cache.get_application_ir(before, str(spec))
        await cache.get_application_ir(after, str(spec))
    spec.write_text(after)
    env = cli_env(redis_url, cache_dir, IR_GENERATOR="offline")
    env.pop("NO_COLOR", None)

    code, shown, stderr = _on_a_terminal(["diff", str(spec), "--no-generate"], env)
    assert code == 0, stderr
    assert "\x1b[32m" in shown and "+ Toy" in shown  # added: green

    code, shown, stderr = _on_a_terminal(["diff", str(spec), "--no-generate"], {**env, "NO_COLOR": "1"})
    assert code == 0, stderr
    assert "+ Toy" in shown and "\x1b[" not in shown
