"""Run the installed `ircache-tui` entry point as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ENTRY_POINT = str(Path(sys.executable).parent / "ircache-tui")


def cli_env(redis_url: str | None, cache_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "IR_", "REDIS_"))}
    env["IR_CACHE_DIR"] = str(cache_dir)
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], input: str | None = None, cwd: Path | None = None, timeout: float = 60):
    return subprocess.run(
        [ENTRY_POINT, *args], env=env, input=input, capture_output=True, text=True, timeout=timeout,
        cwd=cwd, stdin=None if input is not None else subprocess.DEVNULL,
    )


def start_cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """The entry point running in the background, its output piped (read it line by line, or communicate)."""
    return subprocess.Popen([ENTRY_POINT, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def reap(*procs: subprocess.Popen[str] | None) -> None:
    """Kill what a failed test left running (call it in a `finally`); a process already done is left be."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
