"""Which process the embedded server is, known by what it said and by /proc, never by its title.

The server may be Redis or Valkey (IRCACHE_REDIS_SERVER, or a `redis-server`
on PATH that is Valkey), so it is known by what it says, never by its process
title: INFO server over the socket gives its pid, run_id, name and version,
and the first process to see it answer records them in `.redis/server-id`
with that pid's start time and binary from /proc. A server that no longer
answers (hung, SIGSTOPped) is the pid file's pid while /proc still shows that
same process; it is stopped, never left running beside a new one.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

from ..server import ServerInfo
from .trust import why

log = logging.getLogger("ircache")

#: in .redis/, beside the pid file: who the server is, as it said when started or first seen answering
#: (INFO server's process_id and run_id, its name and version) and as /proc saw that pid then (its
#: start time and binary): how a server that no longer answers (hung, SIGSTOPped) is still known
SERVER_RECORD = "server-id"


def _running(pid: int) -> bool:
    """Present and not a zombie (a dead child its parent has not reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc (not Linux): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state != "Z"


def _proc_start(pid: int) -> str | None:
    """When `pid` started (clock ticks since boot, /proc/PID/stat field 22): with the pid, a
    process's identity (a pid is recycled; a pid and a start time are not). None without /proc."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _proc_exe(pid: int) -> str | None:
    """The binary `pid` runs (/proc/PID/exe, symlinks resolved: Debian's redis-server is
    redis-check-rdb), whatever it calls itself; None without /proc."""
    try:
        return os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")  # (upgraded under it)
    except OSError:
        return None


class ServerRecord:
    """The record at `path` (`.redis/server-id`, see SERVER_RECORD): who the server is."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, object] | None:
        """The record, or None (none, or not one we wrote)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as f:
                record = json.loads(f.read(4096))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def note(self, pid: int, run_id: str, server: ServerInfo | None) -> None:
        """Record who the server is if it is news (a server started by another process, or by an
        older version: adopted), so that it is known when it no longer answers."""
        known = self.read()
        if known is None or known.get("pid") != pid or known.get("run_id") != run_id:
            self._write({
                "pid": pid, "run_id": run_id, "start": _proc_start(pid), "exe": _proc_exe(pid),
                **(server.as_json() if server else {}),
            })

    def _write(self, record: dict[str, object]) -> None:
        """Temp file + rename (readers see all or nothing); a read-only dir leaves none (see names)."""
        temp = self.path.parent / f".{self.path.name}.{os.getpid()}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
            os.replace(temp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            log.debug("Cannot record the embedded server in %s: %s", self.path, why(exc))

    def names(self, pid: int, socket_path: str) -> bool:
        """`pid` runs (not a zombie) and is the server on `socket_path`, not a recycled pid.

        Known by the record, never by what the process calls itself (Valkey titles itself
        `valkey-server`, and a `redis-server` may be Valkey): the same pid, started at the
        same time, running the same binary. A server nobody recorded (an older version
        started it, or the disk was full) is ours if its command line names our socket
        (`unixsocket:PATH` once it has retitled itself, `--unixsocket PATH` before).
        """
        if not _running(pid):
            return False
        known = self.read()
        if known is not None and known.get("pid") == pid:
            start, exe = _proc_start(pid), _proc_exe(pid)
            return (start is None or start == known.get("start")) and (exe is None or exe == known.get("exe"))
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split()
        except FileNotFoundError:
            return False
        except OSError:
            return True  # no /proc to ask (not Linux): the pid file is all there is
        return f"unixsocket:{socket_path}" in args or f"--unixsocket {socket_path}" in " ".join(args)

    def program(self) -> str:
        """What the recorded server is called in log lines: `valkey-server` when it said it is Valkey."""
        known = self.read()
        name = known.get("name") if known else None
        return f"{name}-server" if isinstance(name, str) and name else "redis-server"
