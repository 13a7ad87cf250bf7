"""Files whose name cannot become a cache key: each is reported once, then left alone.

A spec or cache entry named with bytes that are not UTF-8, a control,
bidi or zero-width character, a leading dot, or more than 200 bytes can be
no key (`cache.keys.validate_spec_name`). The watcher skips such a file and
says so in ONE warning naming it (escaped by `fmt.shown_name`, through
`log.show`): once per path for the life of the watcher, however many events
it raises. (A file right in the cache dir named like an entry,
`{anything}_{hash8}.json`, is the cache's to name: its listing warns once.)

watchfiles cannot even report a path that is not UTF-8: its Rust side
fails the whole batch with "Unable to decode path ... to string" and its
notifier is unusable after that (`undecodable_paths` reads the path back
out of that message, so that the file can be named).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .log import log, show

#: the warning's reason for a name watchfiles could not decode
UNDECODABLE = "its name is not valid UTF-8, so it can be no spec nor cache entry"

# watchfiles' message; the path in it is Rust's Debug rendering of an OsStr
_UNDECODABLE = re.compile(r'Unable to decode path "(?P<path>.*)" to string\Z', re.DOTALL)
_RUST_ESCAPE = re.compile(r'\\(?:x(?P<x>[0-9A-Fa-f]{2})|u\{(?P<u>[0-9A-Fa-f]{1,6})\}|(?P<c>[0tnr\\"\']))')
_SIMPLE = {"0": b"\0", "t": b"\t", "n": b"\n", "r": b"\r", "\\": b"\\", '"': b'"', "'": b"'"}


def rust_debug_path(text: str) -> Path:
    """The path Rust's `{:?}` of a unix path spells as `text`: `/s/\\xFF.md` → the bytes b'/s/\\xff.md'
    (as Python names them: undecodable bytes as surrogates)."""
    out = bytearray()
    pos = 0
    for m in _RUST_ESCAPE.finditer(text):
        out += text[pos : m.start()].encode("utf-8", "surrogateescape")
        if m["x"]:
            out.append(int(m["x"], 16))
        elif m["u"]:
            out += chr(int(m["u"], 16)).encode("utf-8", "surrogatepass")
        else:
            out += _SIMPLE[m["c"]]
        pos = m.end()
    out += text[pos:].encode("utf-8", "surrogateescape")
    return Path(os.fsdecode(bytes(out)))


def undecodable_paths(exc: BaseException) -> list[Path] | None:
    """The paths named by watchfiles' "Unable to decode path" errors in `exc` (an ExceptionGroup
    from awatch's task group, or the error itself); None when `exc` holds any other error."""

    def undecodable(e: BaseException) -> bool:
        return isinstance(e, RuntimeError) and _UNDECODABLE.search(str(e)) is not None

    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(undecodable)
        if matched is None or rest is not None:
            return None
        leaves: list[BaseException] = []
        stack: list[BaseException] = [matched]
        while stack:
            e = stack.pop()
            if isinstance(e, BaseExceptionGroup):
                stack.extend(e.exceptions)
            else:
                leaves.append(e)
    elif undecodable(exc):
        leaves = [exc]
    else:
        return None
    return [rust_debug_path(_UNDECODABLE.search(str(e))["path"]) for e in leaves]  # type: ignore[index]


class BadNames:
    """The paths already reported as names that cannot become a key."""

    def __init__(self) -> None:
        self._seen: set[Path] = set()

    def __contains__(self, path: Path) -> bool:
        return path in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def note(self, path: Path, kind: str, reason: str) -> bool:
        """Warn about `path` unless already warned about; True when this call warned.

        `kind`: "spec", "entry" or "path" (a name watchfiles could not decode).
        """
        if path in self._seen:
            return False
        self._seen.add(path)
        if kind == "spec":
            log.warning("spec %s skipped: %s", show(path), reason)
        elif kind == "entry":
            log.warning("cache entry %s ignored: %s", show(path), reason)
        else:
            log.warning("%s ignored: %s", show(path), reason)
        return True
