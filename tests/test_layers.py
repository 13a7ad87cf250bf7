"""The package's layering, checked by import-linter.

The contracts live in pyproject.toml under [tool.importlinter]; this file only
runs them. It checks the real package, then proves the checker can fail by
planting forbidden imports in a copy of the package and checking the copy with
the very same contracts. A last cheap check imports the library in a fresh
interpreter and looks at sys.modules.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
PACKAGE = "ircache_tui"

# `lint-imports`, run by this interpreter so it needs no activated venv or PATH.
LINT_IMPORTS = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"]


def contract_names() -> dict[str, str]:
    """Contract id -> the name lint-imports prints, read from pyproject.toml."""
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]
    return {contract["id"]: contract["name"] for contract in config["contracts"]}


def _env(first_on_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(first_on_path), env.get("PYTHONPATH")) if p)
    return env


def lint(project: Path, config: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the `ircache_tui` found first in `project`, with `config`."""
    env = _env(project)
    # The checker finds the package by importing its spec: make sure that is `project`'s copy.
    where = subprocess.run(
        [sys.executable, "-c", f"import importlib.util; print(importlib.util.find_spec({PACKAGE!r}).origin)"],
        cwd=project, env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()
    assert Path(where).resolve().is_relative_to(project.resolve()), f"{PACKAGE} resolves to {where}, not under {project}"
    return subprocess.run(
        [*LINT_IMPORTS, "--no-cache", "--no-logo", str(config)],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )


def report(proc: subprocess.CompletedProcess[str]) -> str:
    return f"lint-imports exited {proc.returncode}\n{proc.stdout}{proc.stderr}"


@pytest.fixture(scope="module")
def real_package_lint() -> subprocess.CompletedProcess[str]:
    return lint(ROOT, PYPROJECT)


def test_real_package_keeps_its_layer_contracts(real_package_lint):
    proc = real_package_lint
    assert "Contracts:" in proc.stdout, report(proc)  # it ran and checked contracts, not a config error
    assert proc.returncode == 0, report(proc)


# (contract id, file in the copy to plant into, line planted, chain lint-imports must report)
PLANTED = [
    pytest.param(
        "no-ui-below-tui", "cache/keys.py", "import textual",
        r"ircache_tui\.cache\.keys -> textual \(l\.\d+\)",
        id="cache-imports-textual",
    ),
    pytest.param(
        "layers", "cache/fs_tier.py", "from ..tui import app",
        r"ircache_tui\.cache\.fs_tier -> ircache_tui\.tui\.app \(l\.\d+\)",
        id="cache-imports-tui-upward",
    ),
    pytest.param(
        "layers", "settings.py", "from .cache.keys import DEFAULT_PREFIX",
        r"ircache_tui\.settings -> ircache_tui\.cache\.keys \(l\.\d+\)",
        id="settings-imports-cache-upward",
    ),
    pytest.param(
        "redis-only-in-cache", "tui/widgets/banner.py", "import redis",
        r"ircache_tui\.tui\.widgets\.banner -> redis \(l\.\d+\)",
        id="tui-imports-redis",
    ),
    pytest.param(  # the cycle the Redis tier once had with the hit counters (issue 19)
        "no-cycles", "cache/hits.py", "from .redis import tier",
        r"No cycles are allowed in ircache_tui\.cache\.",
        id="hits-and-redis-import-each-other",
    ),
    pytest.param(
        "no-cycles", "cache/redis/walk.py", "from . import tier",
        r"No cycles are allowed in ircache_tui\.cache\.redis\.",
        id="a-walk-imports-the-tier",
    ),
]


@pytest.mark.parametrize(("contract", "target", "planted", "chain"), PLANTED)
def test_checker_catches_a_planted_import(tmp_path, real_package_lint, contract, target, planted, chain):
    names = contract_names()
    assert contract in names, f"no contract with id {contract!r} in {PYPROJECT}"
    # Not already broken that way in the real package: the planted line is what the checker must catch.
    assert not re.search(chain, real_package_lint.stdout), report(real_package_lint)

    shutil.copytree(ROOT / PACKAGE, tmp_path / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    config = tmp_path / "pyproject.toml"
    shutil.copyfile(PYPROJECT, config)  # the same contracts, not a second copy of them
    module = tmp_path / PACKAGE / target
    source = module.read_text(encoding="utf-8")
    module.write_text(f"{source.rstrip()}\n\n{planted}  # planted by test_layers\n", encoding="utf-8")

    proc = lint(tmp_path, config)

    assert proc.returncode == 1, report(proc)
    assert f"{names[contract]} BROKEN" in proc.stdout, report(proc)
    assert re.search(chain, proc.stdout), report(proc)


@pytest.mark.parametrize(
    ("imports", "absent"),
    [
        pytest.param(
            ["ircache_tui", "ircache_tui.cache", "ircache_tui.settings", "ircache_tui.ir", "ircache_tui.specs"],
            ["textual", "watchfiles"],
            id="library",
        ),
        # The headless CLI imports the dashboard (and so Textual) only when it starts it.
        pytest.param(["ircache_tui.cli.main"], ["textual"], id="cli"),
    ],
)
def test_importing_does_not_load_ui_packages(imports, absent):
    code = (
        "import importlib, sys\n"
        f"for name in {imports!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(' '.join(sorted(m for m in {absent!r} if m in sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_env(ROOT), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"importing {', '.join(imports)} loaded: {proc.stdout.strip()}"


# The tiers' own objects, which only cache/ may touch: IRCache.redis, IRCache.fs, a tier's client.
TIER_ATTRIBUTES = {"redis", "fs", "client", "_run", "health"}
ABOVE_CACHE = ["tui", "watch", "specs", "cli"]


def reach_arounds(root: Path) -> list[str]:
    """`something.cache.redis`, `cache.fs`, `self._cache.redis.client`... in the layers above cache/."""
    import ast

    found = []
    for layer in ABOVE_CACHE:
        for path in sorted((root / PACKAGE / layer).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not (isinstance(node, ast.Attribute) and node.attr in TIER_ATTRIBUTES):
                    continue
                owner = node.value
                name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                if name in ("cache", "_cache"):
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {name}.{node.attr}")
    return found


def test_nothing_above_the_cache_reaches_around_its_door():
    assert reach_arounds(ROOT) == []


def test_the_door_check_finds_a_planted_reach_around(tmp_path):
    shutil.copytree(ROOT / PACKAGE, tmp_path / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    handler = tmp_path / PACKAGE / "watch" / "spec_handler.py"
    handler.write_text(handler.read_text() + "\n\nasync def _sneak(self):\n    await self._cache.redis.client.ping()\n")
    assert [line.split(": ", 1)[1] for line in reach_arounds(tmp_path)] == ["_cache.redis"]
