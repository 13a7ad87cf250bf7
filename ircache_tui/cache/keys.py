"""Cache keys: `{spec_name}_{hash8}`, the Redis key and the file name built from it.

A spec name comes from a path the caller hands us, so it is treated as
hostile: only its last component is used, and anything that could leave the
Redis prefix or the cache directory is refused with a clear error.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import filterfalse

# The prefix rule belongs to settings (a lower layer); re-exported here for callers.
from ..errors import IRCacheError
from ..fmt import INVISIBLE, shown_name
from ..ir.envelope import ENTRY_HEAD
from ..settings import _FORBIDDEN, DEFAULT_PREFIX, validate_prefix

HASH_LEN = 8
MAX_SPEC_NAME_BYTES = 200  # leaves room for `_{hash8}.json` under NAME_MAX (255)

# An IR key is exactly `{spec}_{8 lowercase hex}`; anything else under the
# prefix (locks, other tools' keys) is not ours to list or delete.
_KEY_RE = re.compile(r"^(?P<spec>.+)_(?P<hash>[0-9a-f]{8})\Z", re.DOTALL)  # \Z: `$` allows a trailing newline
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\^])")


class InvalidSpecName(IRCacheError, ValueError):
    """A spec name that cannot safely become a key or a file name."""


@dataclass(frozen=True, slots=True)
class CacheKey:
    """A cache key `{spec_name}_{hash8}`, checked once (`parse`, `for_spec`) and then passed as a
    value: the tiers build their Redis key and file name from it without parsing it again."""

    spec_name: str
    hash8: str
    #: the key as text, `{spec_name}_{hash8}` (built once: it is the memo's and the counters' key)
    cache_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache_key", f"{self.spec_name}_{self.hash8}")

    def __str__(self) -> str:
        return self.cache_key

    @classmethod
    def parse(cls, text: str) -> CacheKey:
        """The key `text` names; InvalidSpecName when it is not an IR key."""
        parsed = parse_cache_key(text)
        if parsed is None:
            raise InvalidSpecName(f"{text!r} is not a cache key of the form {{spec_name}}_{{hash8}}")
        return parsed

    @classmethod
    def for_spec(cls, spec_markdown: str, spec_path: str) -> tuple[CacheKey, str]:
        """The key of a spec's text and path, and the text's full SHA-256 digest (InvalidSpecName
        when the path's name cannot be a key). Remembered for the last 128 specs keyed (the oldest
        first out): a process that asks for the same spec again does not hash its text again
        (SHA-256 of a 5 KB spec is ~2% of a Redis hit; the text's own hash, which a dict lookup
        needs, is cached by Python on the string)."""
        memo = (spec_path, spec_markdown)
        known = _SPEC_KEYS.get(memo)
        if known is not None:
            return known
        digest = spec_hash(spec_markdown)
        made = cls(spec_name_from_path(spec_path), digest[:HASH_LEN]), digest
        if len(spec_markdown) <= _SPEC_KEYS_MAX_CHARS:
            with _SPEC_KEYS_LOCK:  # (worker threads may look specs up too)
                _SPEC_KEYS[memo] = made
                while len(_SPEC_KEYS) > _SPEC_KEYS_MAX:
                    del _SPEC_KEYS[next(iter(_SPEC_KEYS))]
        return made


#: (spec path, spec text) -> its key and digest, oldest first; bounded in entries and in text size
_SPEC_KEYS: dict[tuple[str, str], tuple[CacheKey, str]] = {}
_SPEC_KEYS_MAX = 128
_SPEC_KEYS_MAX_CHARS = 32 * 1024  # larger specs are hashed every time; at most 128 × 32 Ki characters kept
_SPEC_KEYS_LOCK = threading.Lock()


#: what the tiers accept as a key: a CacheKey, or its text (parsed, and so checked, on arrival)
KeyLike = CacheKey | str


def as_key(key: KeyLike) -> CacheKey:
    """`key` as a CacheKey; text is parsed (InvalidSpecName when it is not an IR key)."""
    return key if isinstance(key, CacheKey) else CacheKey.parse(key)


def spec_of(cache_key: str) -> str:
    """The spec name of a cache key that is known to be one (its hash8 never holds an underscore)."""
    return cache_key.rsplit("_", 1)[0]


def spec_hash(spec_markdown: str) -> str:
    """Full SHA-256 hex digest of the spec's UTF-8 text."""
    return hashlib.sha256(spec_markdown.encode("utf-8")).hexdigest()


def validate_spec_name(name: str) -> str:
    """Return `name` if it is safe as a key and a file name, else raise InvalidSpecName.

    Refused, with the name escaped in the message: path separators, bytes that
    are not UTF-8 (os.listdir hands them over as surrogates), controls and
    invisible characters (a bidi override lets `gpj.md` pass for `dm.jpg`), a
    leading dot (hidden files: the cache dir keeps its own there, and a listing
    that skips them must never miss an entry), and more than 200 bytes.
    """
    if not isinstance(name, str) or not name:
        raise InvalidSpecName("spec name is empty")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidSpecName(f"spec name {shown_name(name)} is not valid UTF-8") from None
    if _FORBIDDEN.search(name):
        raise InvalidSpecName(f"spec name {shown_name(name)} contains a path separator or control character")
    if INVISIBLE.search(name):
        raise InvalidSpecName(f"spec name {shown_name(name)} contains an invisible or bidi control character")
    if name.startswith("."):
        raise InvalidSpecName(f"spec name {shown_name(name)} starts with a dot (hidden files are not specs)")
    if size > MAX_SPEC_NAME_BYTES:
        raise InvalidSpecName(f"spec name {shown_name(name[:40])}… is longer than {MAX_SPEC_NAME_BYTES} bytes")
    return name


def spec_name_from_path(spec_path: str) -> str:
    """The file stem of the last path component; `../../etc/x.md` gives `x`."""
    last = str(spec_path).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    # PurePath.stem's rule, without building a path object on every cache hit
    dot = last.rfind(".")
    stem = last[:dot] if 0 < dot < len(last) - 1 and last not in (".", "..") else last
    return validate_spec_name(stem)


def cache_key(spec_markdown: str, spec_path: str) -> str:
    """`{spec_name}_{hash8}` for a spec's text and path."""
    return f"{spec_name_from_path(spec_path)}_{spec_hash(spec_markdown)[:HASH_LEN]}"


@dataclass(frozen=True, slots=True)
class Selection:
    """The IR entries a walk (flush, stats) touches.

    `match` narrows on the server; `keep` is the exact name rule in Python, and
    the server-side scripts apply the same rule from `head`, `spec_name`
    and `max_spec_bytes`. A name is not enough: the key must also hold an
    entry, a value that begins with `entry` (envelope.ENTRY_HEAD), which the
    scripts check beside the delete or count (redis/walk.py, redis/sizes.py).
    """

    match: str
    head: str
    spec_name: str | None
    keep: Callable[[bytes], bool]
    #: accepts the common keys (a printable-ASCII spec name) and nothing `keep` refuses
    quick: Callable[[bytes], object]
    max_spec_bytes: int = MAX_SPEC_NAME_BYTES
    entry: bytes = ENTRY_HEAD

    def keep_many(self, keys: list[bytes]) -> list[bytes]:
        """The keys `keep` accepts (in no particular order).

        `quick` runs as a C loop over the page; only the keys it turns away,
        usually none, get the full check.
        """
        kept = list(filter(self.quick, keys))
        if len(kept) < len(keys):
            kept.extend(k for k in filterfalse(self.quick, keys) if self.keep(k))
        return kept

    def spec_of(self, key: bytes) -> bytes:
        """The spec name part of a key that `keep` accepted."""
        return key[len(self.head.encode("utf-8")) : -(HASH_LEN + 1)]


def parse_cache_key(key: str) -> CacheKey | None:
    """Split a cache key into spec name and hash8, or None if it is not an IR key."""
    m = _KEY_RE.match(key)
    if not m:
        return None
    try:
        validate_spec_name(m["spec"])
    except InvalidSpecName:
        return None
    return CacheKey(m["spec"], m["hash"])


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so `text` matches only itself."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


class KeySpace:
    """Maps cache keys to Redis keys under one prefix, and back."""

    __slots__ = ("prefix", "_head", "_ir_key")

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = validate_prefix(prefix)
        self._head = f"{prefix}:"
        # `belongs` runs on every key a flush or stats walk sees: one bytes regex
        # that says what parse_cache_key + validate_spec_name say, without decoding.
        self._ir_key = re.compile(
            rb"^" + re.escape(self._head.encode()) + rb"(?!\.)(?P<spec>[^\x00-\x1f\x7f/\\]+)_[0-9a-f]{8}\Z",
            re.DOTALL,
        )

    def redis_key(self, key: KeyLike) -> str:
        """The Redis key of a cache key (text is checked here; a CacheKey was checked when made)."""
        return self._head + as_key(key).cache_key

    def lock_key(self, key: KeyLike) -> str:
        # Ends in ':lock', so it never parses as an IR key and no flush touches it.
        return f"{self.redis_key(key)}:lock"

    def batch_claim_key(self, key: KeyLike) -> str:
        """An entry claimed by a Message Batch in flight (batch_claims.py); ends in ':batch', so never an
        IR key and no flush touches it."""
        return f"{self.redis_key(key)}:batch"

    def hits_key(self, key: KeyLike) -> str:
        """An entry's hit counts (cache/hits.py); ends in ':hits', so never an IR key."""
        return f"{self.redis_key(key)}:hits"

    @property
    def audit_key(self) -> str:
        """The audit trail's stream under IR_AUDIT_REDIS=1: `{prefix}:audit` (never an IR key)."""
        return f"{self._head}audit"

    @property
    def stats_key(self) -> str:
        """The cache's hit totals and savings: `{prefix}:stats:hits` (no `_{hash8}` end: never an IR key)."""
        return f"{self._head}stats:hits"

    def hits_pattern(self, spec_name: str | None = None) -> str:
        """SCAN MATCH for the per-entry hit keys of every entry, or of one spec's."""
        return self.match_pattern(spec_name) + ":hits"

    def target_of(self, text: str) -> CacheKey | str:
        """What someone typed to find an entry: a Redis key `{prefix}:{spec}_{hash8}` or a cache key
        `{spec}_{hash8}` (a CacheKey), or a spec name (`=name` for a name that ends like a key);
        InvalidSpecName (the text escaped) for anything else."""
        text = text.strip()
        if text.startswith("="):
            return validate_spec_name(text[1:])
        if text.startswith(self._head):
            text = text[len(self._head):]
        return parse_cache_key(text) or validate_spec_name(text)

    def cache_key_of(self, redis_key: str | bytes) -> CacheKey | None:
        """The parsed cache key of a Redis key, or None if it is not one of ours."""
        if isinstance(redis_key, bytes):
            try:
                redis_key = redis_key.decode("utf-8")
            except UnicodeDecodeError:
                return None
        if not redis_key.startswith(self._head):
            return None
        return parse_cache_key(redis_key[len(self._head):])

    def match_pattern(self, spec_name: str | None = None) -> str:
        """A SCAN MATCH pattern: every IR key, or exactly one spec's keys.

        The hash part is spelled as eight hex classes, so `ecommerce` does not
        match `ecommerce_v2_...` on the server already; callers still filter
        with `cache_key_of` because MATCH is a glob, not a parser.
        """
        hexdigit = "[0-9a-f]"
        head = glob_escape(self._head)
        if spec_name is None:
            return f"{head}*_{hexdigit * HASH_LEN}"
        return f"{head}{glob_escape(validate_spec_name(spec_name))}_{hexdigit * HASH_LEN}"

    def select(self, spec_name: str | None = None) -> Selection:
        """Every IR key, or exactly one spec's, for a flush or stats walk."""
        match = self.match_pattern(spec_name)
        head = re.escape(self._head.encode())
        if spec_name is None:
            # printable ASCII but '/' and '\\': always valid, so no decoding or length check in Python
            name = rb"(?!\.)[\x20-\x2e\x30-\x5b\x5d-\x7e]{1,%d}" % MAX_SPEC_NAME_BYTES
        else:
            name = re.escape(spec_name.encode("utf-8"))
        quick = re.compile(rb"^" + head + name + rb"_[0-9a-f]{8}\Z").match
        return Selection(match, self._head, spec_name, lambda key: self.belongs(key, spec_name), quick)

    def belongs(self, redis_key: str | bytes, spec_name: str | None = None) -> bool:
        """True if `redis_key` is an IR key under this prefix (of `spec_name`, if given)."""
        raw = redis_key.encode("utf-8") if isinstance(redis_key, str) else redis_key
        m = self._ir_key.match(raw)
        if m is None:
            return False
        spec = m.group("spec")
        if len(spec) > MAX_SPEC_NAME_BYTES:
            return False
        if spec_name is not None:
            return spec == spec_name.encode("utf-8")
        if spec.isascii():
            return True
        try:
            return not INVISIBLE.search(spec.decode("utf-8"))
        except UnicodeDecodeError:
            return False
