"""The audit trail: one JSON line per action that changes the cache, in `{cache_dir}/audit.jsonl`.

Flush, prune, delete, TTL change, regenerate and warm, from the dashboard, a command or the
library, each append a line: when (ISO 8601, UTC), who (user, uid, host, pid), from where
(`origin`: "dashboard", "cli flush", "library"), what (action, spec or key, tiers), how many it
touched, and how it ended ("ok", "failed: …", "cancelled"). So "who flushed the cache at
14:02?" has an answer on a shared machine.

Each line is one `os.write` on an `O_APPEND` descriptor, so lines from several processes never
interleave or overwrite each other. The file rotates once it passes `max_bytes`
(`audit.jsonl` → `audit.jsonl.1` → … → `.{keep}`, the oldest dropped), under a lock file so that
two processes never rotate at once. A read-only cache writes nothing (it changes nothing). A
trail that cannot be written is said once, as a WARNING, and never fails the action it records.

With IR_AUDIT_REDIS=1 each line also goes to a capped Redis stream (`mirror`: audit_mirror.py),
so that every machine sharing the Redis reads one trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import getpass
import json
import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .results import AuditRecords

log = logging.getLogger("ircache")

AUDIT_FILE = "audit.jsonl"
MAX_BYTES = 4 * 1024 * 1024  # then it rotates
KEEP = 3  # rotated files kept besides the current one
_LOCK_FILE = ".audit.lock"


def _who() -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a uid with no passwd entry (a container)
        user = str(os.getuid())
    return {"user": user, "uid": os.getuid(), "host": socket.gethostname(), "pid": os.getpid()}


@dataclass(slots=True)
class Touched:
    """What an action touched, filled in as it goes (so that a failure still says it)."""

    counts: dict[str, int] = field(default_factory=dict)
    #: how it ended when it returned without raising but did not finish ("stopped: …")
    outcome: str = "ok"


class AuditTrail:
    def __init__(self, directory: Path, origin: str, *, enabled: bool, max_bytes: int = MAX_BYTES,
                 keep: int = KEEP) -> None:
        self.path = directory / AUDIT_FILE
        self.origin = origin
        self.enabled = enabled
        self.max_bytes = max_bytes
        self.keep = keep
        self._said = False
        #: also given each line, when set (IR_AUDIT_REDIS=1: the stream); must not block or raise
        self.mirror: Callable[[bytes], None] | None = None

    @contextlib.contextmanager
    def recording(self, action: str, *, spec: str | None = None, key: str | None = None,
                  tiers: Sequence[str] = ()) -> Iterator[Touched]:
        """Record `action` when the block ends: "ok", "failed: <its first line>" or "cancelled",
        with what the block put in the `Touched` it was given."""
        touched = Touched()
        try:
            yield touched
        except asyncio.CancelledError:
            self.write(action, spec=spec, key=key, tiers=tiers, touched=touched.counts, outcome="cancelled")
            raise
        except BaseException as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            self.write(action, spec=spec, key=key, tiers=tiers, touched=touched.counts, outcome=f"failed: {first}")
            raise
        self.write(action, spec=spec, key=key, tiers=tiers, touched=touched.counts, outcome=touched.outcome)

    def write(self, action: str, *, spec: str | None = None, key: str | None = None, tiers: Sequence[str] = (),
              touched: dict[str, int] | None = None, outcome: str = "ok") -> None:
        if not self.enabled:
            return
        record = {"at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), **_who(),
                  "from": self.origin, "action": action, "spec": spec, "key": key, "tiers": list(tiers),
                  "touched": touched or {}, "outcome": outcome}
        line = (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._rotate_if_full()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, line)  # one write of one line: appends never interleave
            finally:
                os.close(fd)
        except OSError as exc:
            if not self._said:
                self._said = True
                log.warning("Cannot write the audit trail %s: %s (actions go on unrecorded)", self.path,
                            exc.strerror or exc)
        if self.mirror is not None:
            self.mirror(line)

    def _rotate_if_full(self) -> None:
        try:
            if self.path.stat().st_size < self.max_bytes:
                return
        except FileNotFoundError:
            return
        fd = os.open(self.path.parent / _LOCK_FILE, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if self.path.stat().st_size < self.max_bytes:  # another process rotated it meanwhile
                return
            for n in range(self.keep, 0, -1):
                older = self.path.with_name(f"{AUDIT_FILE}.{n}")
                newer = self.path if n == 1 else self.path.with_name(f"{AUDIT_FILE}.{n - 1}")
                if newer.exists():
                    os.replace(newer, older)
        finally:
            os.close(fd)  # (releases the lock)


def read_trail(directory: Path, since: datetime | None = None) -> tuple[list[dict[str, Any]], int]:
    """The trail's records, oldest first (the rotated files too), those at or after `since`; and how
    many lines could not be read as a record (said by the caller)."""
    records: list[dict[str, Any]] = []
    bad = 0
    files = sorted(directory.glob(f"{AUDIT_FILE}.*"), key=lambda p: -_rotation(p)) + [directory / AUDIT_FILE]
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            if not line.strip():
                continue
            parsed = parse_record(line)
            if parsed is None:
                bad += 1
            elif since is None or parsed[1] >= since:
                records.append(parsed[0])
    return records, bad


def file_records(directory: Path, since: datetime | None = None) -> AuditRecords:
    """This cache dir's trail (read_trail), as IRCache.audit_records gives it."""
    records, bad = read_trail(directory, since)
    return AuditRecords(tuple(records), bad, str(directory / AUDIT_FILE))


def stream_records(lines: list[bytes], since: datetime | None, source: str) -> AuditRecords:
    """The stream's lines (oldest first) as records; those before `since` by their own time left out."""
    records: list[dict[str, Any]] = []
    bad = 0
    for line in lines:
        parsed = parse_record(line)
        if parsed is None:
            bad += 1
        elif since is None or parsed[1] >= since:
            records.append(parsed[0])
    return AuditRecords(tuple(records), bad, source)


def parse_record(line: str | bytes) -> tuple[dict[str, Any], datetime] | None:
    """A trail line as its record and when, or None when it is not one (the file's and the stream's)."""
    try:
        record = json.loads(line)
        at = datetime.fromisoformat(record["at"])
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(record, dict):
        return None
    return record, at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _rotation(path: Path) -> int:
    suffix = path.name.rsplit(".", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0
