"""The README's examples run as written: the library example and every headless command line."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.cli import ENTRY_POINT, cli_env

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


def test_library_example_runs_as_written(tmp_path):
    (example,) = blocks("python")
    env = cli_env(None, tmp_path / "unused")
    env.pop("IR_CACHE_DIR")  # as written: the default .cache/ir in the working directory
    out = subprocess.run([sys.executable, "-c", example], cwd=workdir(tmp_path), env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Petstore API {'entities': 3, 'endpoints': 5, 'flows': 1, 'rules': 3}"
    assert lines[1] == "second call answered by redis"
    assert "'total_keys': 1" in lines[2] and "'file_count': 1" in lines[2]
    assert not (tmp_path / ".cache" / "ir" / ".redis" / "dump.rdb").exists()  # a cache: nothing persisted


def test_every_command_line_runs_as_written(tmp_path):
    commands = [line.split("#")[0].strip() for block in blocks("sh") for line in block.splitlines()]
    commands = [c for c in commands if c.startswith("ircache-tui ")]
    assert len(commands) >= 7
    cwd = workdir(tmp_path)
    env = cli_env(None, tmp_path / "unused")
    env.pop("IR_CACHE_DIR")
    # as a person types them: through a shell (pipes, redirections, quotes), the command on PATH
    env["PATH"] = f"{Path(ENTRY_POINT).parent}{os.pathsep}{env.get('PATH', '')}"
    for command in commands:
        out = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], cwd=cwd, env=env, capture_output=True,
                             text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert out.returncode == 0, (command, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr, command
