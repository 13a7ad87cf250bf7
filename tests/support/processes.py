"""Processes found in /proc, not by asking them (a server under test may be hung or gone deaf)."""

from __future__ import annotations

import os
from pathlib import Path


def alive(pid: int) -> bool:
    """Running: present and not a zombie (a dead child its parent has not reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def binary_of(pid: int) -> str:
    """The file `pid` runs, symlinks resolved (Debian's redis-server is a link to redis-check-rdb)."""
    return os.path.realpath(f"/proc/{pid}/exe")


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, IndexError, ValueError):
        return 0


def _on_socket(args: list[str], socket_path: str) -> bool:
    # a server retitles itself `{binary} unixsocket:PATH`; before it has, its arguments say `--unixsocket PATH`
    return f"unixsocket:{socket_path}" in args or any(
        a == "--unixsocket" and b == socket_path for a, b in zip(args, args[1:]))


def servers_on(socket_path: str | Path) -> list[int]:
    """Running servers on the unix socket `socket_path`, whatever their binary is called
    (redis-server, valkey-server, a copy): known by the socket in their command line. A wrapper
    that runs one (runuser) carries the same arguments: a match whose child matches is left out."""
    socket_path = str(socket_path)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # the retitled command line is one string, words apart by spaces (no NUL between them)
            args = (entry / "cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split()
        except OSError:
            continue
        if _on_socket(args, socket_path) and alive(int(entry.name)):
            found.append(int(entry.name))
    wrappers = {_ppid(pid) for pid in found}
    return [pid for pid in found if pid not in wrappers]
