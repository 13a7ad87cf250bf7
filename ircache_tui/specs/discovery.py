"""Find spec files under directories and compute their cache keys.

A spec that cannot be used (unreadable, not UTF-8, too large) is returned
with `error` set rather than raised, so one bad file never stops a walk over
a thousand good ones. A file whose name cannot be a key (not UTF-8, invisible
or bidi characters, a leading dot, too long) is not a spec: a walk skips it
with one warning per name and process (`read_spec` of it still says why).
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..cache.keys import HASH_LEN, InvalidSpecName, spec_hash, spec_name_from_path
from ..fmt import shown_name

log = logging.getLogger("ircache")

DEFAULT_PATTERN = "*.md"
DEFAULT_MAX_BYTES = 1024 * 1024
IGNORED_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", ".cache"}
# Editor temp and swap files: vim (.swp/.swo/~), emacs (#x#, .#x), others' .tmp/.bak
_IGNORED_FILE_GLOBS = ("*.swp", "*.swo", "*.swx", "*~", "#*#", ".#*", "*.tmp", "*.bak", ".*.kate-swp", "4913")


@dataclass(frozen=True, slots=True)
class SpecFile:
    path: Path
    spec_name: str = ""
    digest: str = ""
    text: str = ""
    error: str = ""

    @property
    def cache_key(self) -> str:
        return f"{self.spec_name}_{self.digest[:HASH_LEN]}" if self.digest else ""

    @property
    def hash8(self) -> str:
        return self.digest[:HASH_LEN]

    @property
    def ok(self) -> bool:
        return not self.error


def is_ignored(path: Path, root: Path | None = None, extra_ignored: list[Path] | None = None) -> bool:
    """True for editor temp files, VCS dirs below `root`, and anything under an extra
    ignored dir (the cache dir). Only the part of the path below `root` is checked,
    so a spec tree that itself lives under, say, `~/.cache/` is still seen."""
    name = path.name
    if any(fnmatch.fnmatch(name, pattern) for pattern in _IGNORED_FILE_GLOBS):
        return True
    below = path
    if root is not None:
        with contextlib.suppress(ValueError):
            below = path.relative_to(root)
    if set(below.parts[:-1]) & IGNORED_DIRS:
        return True
    for ignored in extra_ignored or []:
        try:
            path.resolve().relative_to(ignored.resolve())
            return True
        except ValueError:
            continue
    return False


#: `error` of a spec file that went between being seen (a walk, a watch event) and being read
NO_LONGER_EXISTS = "file no longer exists"
#: `error` of a path given by a person (`ircache-tui get PATH`) where there is no file
NO_SUCH_FILE = "no such file"
#: `error` of a symlink whose target does not exist
BROKEN_LINK = "broken symlink (its target does not exist)"


def read_spec(path: Path, max_bytes: int = DEFAULT_MAX_BYTES, *, seen: bool = True) -> SpecFile:
    """Read and key one spec file; problems land in `error`, one line naming the reason.

    `seen` says the caller saw the file exist (a directory walk, a watch event, a spec
    the dashboard knows): if it is gone, it `no longer exists`. A path a person typed
    was never seen (`seen=False`): if there is nothing there, it is `no such file`.
    """
    try:
        name = spec_name_from_path(str(path))
    except InvalidSpecName as exc:
        return SpecFile(path, error=str(exc))
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            # a FIFO or device named *.md would block the read forever
            return SpecFile(path, name, error="is a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file")
        size = st.st_size
        if size > max_bytes:
            return SpecFile(path, name, error=f"larger than the {max_bytes}-byte limit ({size} bytes)")
        raw = path.read_bytes()
    except FileNotFoundError:
        if path.is_symlink():
            return SpecFile(path, name, error=BROKEN_LINK)
        return SpecFile(path, name, error=NO_LONGER_EXISTS if seen else NO_SUCH_FILE)
    except IsADirectoryError:
        return SpecFile(path, name, error="is a directory")
    except PermissionError:
        return SpecFile(path, name, error="permission denied")
    except OSError as exc:
        return SpecFile(path, name, error=exc.strerror or str(exc))
    if len(raw) > max_bytes:
        return SpecFile(path, name, error=f"larger than the {max_bytes}-byte limit ({len(raw)} bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return SpecFile(path, name, error=f"not UTF-8 (byte {exc.start})")
    return SpecFile(path, name, spec_hash(text), text)


def discover_specs(
    dirs: list[Path],
    pattern: str = DEFAULT_PATTERN,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    ignored: list[Path] | None = None,
) -> list[SpecFile]:
    """Every spec under `dirs` (recursive), sorted by path."""
    found: dict[Path, SpecFile] = {}
    for root in dirs:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS)
            for filename in filenames:
                path = Path(dirpath) / filename
                if not fnmatch.fnmatch(filename, pattern) or is_ignored(path, root, extra_ignored=ignored):
                    continue
                try:
                    spec_name_from_path(filename)
                except InvalidSpecName as exc:
                    _warn_once(path, f"Skipping spec file {shown_name(path)}: {exc}")
                    continue
                found[path] = read_spec(path, max_bytes)
    return [found[p] for p in sorted(found)]


_warned: set[str] = set()


def _warn_once(path: Path, message: str) -> None:
    """A long-lived process walks the same dirs again and again: say it once."""
    key = os.fsdecode(path)
    if key not in _warned:
        _warned.add(key)
        log.warning("%s", message)
