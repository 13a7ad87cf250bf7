"""The record of a Message Batch in flight: `{cache_dir}/.batches/{batch_id}.json`.

`warm --batch` writes it (atomically) as soon as the API has accepted the batch, before its first
status request, and removes it once every result is stored (or retried directly). It holds what
a later run needs to finish the job without resubmitting anything: the batch id, when it was
submitted, and per spec its custom_id, cache key, digest, path and markdown, and for a patch request
(incremental regeneration) the previous entry's cache key. A warm killed at any
point leaves it; the next `warm --batch` resumes that batch (polls it, fetches its results).

While a process collects a batch it holds a machine lock named after it (machine_lock.py, in
`.locks/`; the kernel frees it if the process dies): a `get` for a key in a record waits for the
entry when someone holds it, and generates directly when no one does (the record is an orphan
until a warm resumes it).

custom_id: the API takes 1-64 characters of [a-zA-Z0-9_-], unique within a batch. A cache key may
hold any printable character and be 200 bytes long, so the id is the key's name with every other
character made `-`, cut to 40, then `_` and 16 hex digits of the key's SHA-256: unique per key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..fmt import describe_os_error
from .errors import BatchInFlight
from .fs_tier import atomic_write
from .keys import CacheKey
from .machine_lock import MachineLock
from .results import NOTICE, Lookup
from .tiers import Accept, Tiers

log = logging.getLogger("ircache")

#: how often a `get` waiting for a spec in another process's batch looks for its entry
BATCH_WAIT_POLL = 0.5

BATCH_DIR = ".batches"
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")
#: the API's limits on one batch: requests, and bytes of the create request (with a margin for its framing)
MAX_REQUESTS = 100_000
MAX_BYTES = 256 * 1024 * 1024 - 64 * 1024


def custom_id_for(cache_key: str) -> str:
    """A custom_id the API accepts, unique per cache key (see the module docstring)."""
    digest = hashlib.sha256(cache_key.encode("utf-8")).hexdigest()[:16]
    return f"{_NOT_ID.sub('-', cache_key.rsplit('_', 1)[0])[:40]}_{digest}"


@dataclass(frozen=True, slots=True)
class BatchSpec:
    custom_id: str
    cache_key: str
    digest: str
    spec_path: str
    markdown: str
    #: a patch request's previous entry (its cache key, reloaded from disk when the results come);
    #: None: a full request (as in every record written before batches asked for patches)
    previous_key: str | None = None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    batch_id: str
    submitted_at: float  # epoch seconds
    generator: str
    model: str | None
    specs: tuple[BatchSpec, ...]

    @property
    def submitted_clock(self) -> str:
        """`14:02` (local time), as a waiter says it."""
        return time.strftime("%H:%M", time.localtime(self.submitted_at))

    def to_json(self) -> bytes:
        return json.dumps({**asdict(self), "specs": [asdict(s) for s in self.specs]}).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> BatchRecord:
        data: dict[str, Any] = json.loads(raw)
        if not isinstance(data.get("batch_id"), str) or not _BATCH_ID.fullmatch(data["batch_id"]):
            raise ValueError("no batch id")
        return cls(data["batch_id"], float(data["submitted_at"]), str(data["generator"]), data.get("model"),
                   tuple(BatchSpec(**s) for s in data["specs"]))


class BatchBook:
    """The batch records of one cache dir."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.directory = cache_dir / BATCH_DIR
        self._read: dict[str, tuple[tuple[int, int], BatchRecord | None]] = {}  # name → ((mtime, size), record)

    def path(self, batch_id: str) -> Path:
        return self.directory / f"{batch_id}.json"

    def write(self, record: BatchRecord) -> None:
        atomic_write(self.path(record.batch_id), record.to_json())

    def remove(self, batch_id: str) -> None:
        """Drop a collected batch's record. None there (it could not be written: FileNotFoundError, or
        NotADirectoryError where `.batches` is not a directory) is fine; one that stays is said, never
        raised: the entries are stored, and a later warm finds the batch ended and tries again."""
        try:
            self.path(batch_id).unlink()
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:
            log.warning("Could not remove the record of collected batch %s (%s): the next warm --batch finds it "
                        "ended and removes it", batch_id, describe_os_error(exc))
        self._read.pop(f"{batch_id}.json", None)

    def records(self) -> list[BatchRecord]:
        """Every readable record, oldest first (a record that is not one is said once, and skipped)."""
        try:
            names = sorted(p.name for p in self.directory.iterdir() if p.suffix == ".json")
        except OSError:  # none yet, or a cache dir that cannot be read (the tiers say why)
            return []
        found: list[BatchRecord] = []
        for name in names:
            path = self.directory / name
            try:
                info = path.stat()
                stamp = (info.st_mtime_ns, info.st_size)
                known = self._read.get(name)
                if known is None or known[0] != stamp:
                    try:
                        record: BatchRecord | None = BatchRecord.from_json(path.read_bytes())
                    except (ValueError, TypeError, KeyError):
                        record = None
                        log.warning("%s is not a batch record; ignored", path)
                    known = self._read[name] = (stamp, record)
            except OSError:
                continue
            if known[1] is not None:
                found.append(known[1])
        return sorted(found, key=lambda r: r.submitted_at)

    def holding(self, cache_key: str) -> BatchRecord | None:
        """The record of a batch in flight with this key in it, if any."""
        for record in self.records():
            if any(spec.cache_key == cache_key for spec in record.specs):
                return record
        return None

    def lock(self, batch_id: str) -> MachineLock:
        """The lock its collector holds (see the module docstring)."""
        return MachineLock(self.cache_dir, f"batch-{batch_id}")

    def collected(self, batch_id: str) -> bool:
        """True while a live process collects this batch."""
        lock = self.lock(batch_id)
        try:
            if lock.try_acquire():
                lock.release()
                return False
        except OSError:
            return False
        return True


async def made_in_batch(book: BatchBook, tiers: Tiers, key: CacheKey, wait: bool,
                        accept: Accept | None = None) -> Lookup | None:
    """The entry a batch in flight makes for `key`, once stored and `accept`ed (as Tiers.read; a
    lookup's single flight with `warm --batch`); None when `key` is in no batch, or in one nobody collects (then it is generated
    directly: said once). `wait` False: BatchInFlight instead of waiting."""
    record = book.holding(key.cache_key)
    if record is None:
        return None
    where = f"batch {record.batch_id} (submitted {record.submitted_clock})"
    if not wait:
        raise BatchInFlight(f"{key.spec_name} is being generated in {where}; try again later")
    said = False
    while (record := book.holding(key.cache_key)) is not None:
        if not book.collected(record.batch_id):
            log.warning("%s is in %s, which no process is collecting (`warm --batch` resumes it): "
                        "generating it directly", key.spec_name, where)
            return None
        if not said:
            log.log(NOTICE, "IR for %s is being generated in %s; waiting for it", key.spec_name, where)
            said = True
        await asyncio.sleep(BATCH_WAIT_POLL)
        hit = await tiers.read(key, again=True, accept=accept)
        if hit is not None:
            return hit
    return await tiers.read(key, again=True, accept=accept)
