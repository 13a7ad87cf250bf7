"""One scrubber for every message that leaves the process: secrets become `***`, and
(`printable`) characters that would drive a terminal become visible escapes.

The bottom layer: it imports nothing from the rest of the package, so ir/,
cache/, cli/ and tui/ may all use it.

Two kinds of masking, both done by `scrub(text)`:

* registered secrets (`register(secret)`, `register_url_password(url)`): the
  API key, the Redis password... Each is masked verbatim and in the encoded
  forms it takes in a URL or a JSON body. Registration is process-wide. A
  short one that is a plain word or number (a password `wrong`, `redis` or
  `6379`) would mask our own words ("wrong password") and port numbers, so it
  is masked only where it stands as a secret: after `AUTH [user]`, as the value
  of `password=` / `"password": "…"`, before `@` in `user:…@host`, and (the
  patterns) in URLs.
* patterns that need no registration: Anthropic keys (`sk-ant-...`),
  `Bearer <token>`, the value of an `x-api-key` / `Authorization` header in
  header, JSON or repr form, and passwords in URLs
  (`redis://user:PASSWORD@host`, `?password=...`).

`printable(text)` is what every output boundary uses: `scrub`, then every
character a terminal would act on or hide (controls, bidi and zero-width
characters, lone surrogates) spelled as an escape (`\x1b`, `\u202e`), so
text from outside (an IR from an LLM, a file name, a server's reply) is shown
as text and never drives the terminal. Only what is shown changes, never the
data.

`RedactingFilter` applies both to log records; `install()` puts one on the
`ircache` logger.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

__all__ = [
    "INVISIBLE",
    "MASK",
    "MASK_ANYWHERE_LENGTH",
    "MIN_SECRET_LENGTH",
    "RedactingFilter",
    "install",
    "printable",
    "register",
    "register_url_password",
    "reset",
    "scrub",
]

MASK = "***"
#: Shorter strings are not registered: masking "a" or "123" would mask everything.
MIN_SECRET_LENGTH = 4
#: A registered secret shorter than this that is only letters or only digits could be a word or a
#: number of a message of ours ("refused the password (wrong password…)", a port): it is masked only
#: where it stands as a secret (_in_position). Longer ones, and any with a mix (`hunter2`, `s3cr/t`),
#: are masked wherever they appear.
MASK_ANYWHERE_LENGTH = 12
_WORD_LIKE = re.compile(r"[A-Za-z]+|[0-9]+")

_URL_SECRET_PARAMS = frozenset({"password", "pass", "auth"})

# -- the patterns: one compiled regex ------------------------------------------------
# A header value: up to the closing quote when quoted, else an optional auth scheme and one token.
_QUOTED_VALUE = r"""(?P<hquote>\\?["'])(?P<hqval>[^"'\\\r\n]*)"""
_BARE_VALUE = r"""(?P<hbare>(?:(?i:bearer|basic|token|digest)[ \t]+)?[^\s"'\\,;&)}\]]+)"""

_PATTERN = re.compile(
    "|".join(
        [
            # Anthropic API keys: sk-ant-api03-..., sk-ant-admin01-...
            r"(?P<antkey>\bsk-ant-)[A-Za-z0-9_\-]+",
            # header-like pairs: `x-api-key: v`, `"x-api-key": "v"`, `'authorization': 'Bearer v'`, `authorization=v`
            r"(?P<hname>(?i:\bx-api-key|\bauthorization))(?P<hsep>\\?[\"']?[ \t]*[:=][ \t]*)"
            + rf"(?:{_QUOTED_VALUE}|{_BARE_VALUE})",
            # a bearer token anywhere else
            r"(?P<bearer>(?i:\bbearer)[ \t]+)[A-Za-z0-9\-._~+/]+=*",
            # scheme://user:PASSWORD@host
            r"(?P<urlhead>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*:)[^\s/?#]*(?=@)",
            # ?password=... / &auth=... in a URL query
            r"(?P<qhead>[?&](?i:password|pass|auth)=)[^&#\s\"']+",
        ]
    )
)


#: Cheap substring tests (on the lower-cased text) that must hold for _PATTERN to match at all;
#: most log lines contain none of them and skip the regex.
_HINTS = ("sk-ant-", "x-api-key", "authorization", "bearer", "://", "pass", "auth=")


def _masked(m: re.Match[str]) -> str:
    g = m.group
    if g("antkey") is not None:
        return "sk-ant-" + MASK
    if g("hname") is not None:
        if g("hquote") is not None:
            return g("hname") + g("hsep") + g("hquote") + MASK
        return g("hname") + g("hsep") + MASK
    if g("bearer") is not None:
        return g("bearer") + MASK
    if g("urlhead") is not None:
        return g("urlhead") + MASK
    return g("qhead") + MASK


# -- the registry ---------------------------------------------------------------------
_lock = threading.Lock()
_secrets: set[str] = set()
#: Every form to mask, longest first (a secret that contains another is masked whole).
#: Replaced wholesale under the lock, read without it: scrub() never sees a half-built tuple.
_forms: tuple[str, ...] = ()
#: The word-like short secrets, as one regex of the places a secret stands (None: there are none).
_in_position: re.Pattern[str] | None = None


def _positions(words: set[str]) -> re.Pattern[str]:
    """Where a word-like secret is one: `AUTH [user] WORD`, `password=WORD`, `"password": "WORD"`,
    `pwd: WORD`, `user:WORD@host`. (URLs with a scheme are the patterns' already.)"""
    alt = "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))
    return re.compile(
        r"(?P<pre>(?i:\bauth)[ \t]+(?:\S+[ \t]+)?"
        r"|(?i:\b(?:password|passwd|pass|pwd|requirepass|masterauth|secret))[\"']?[ \t]*[:=][ \t]*[\"']?)"
        rf"(?:{alt})(?![A-Za-z0-9])"
        rf"|(?P<colon>:)(?:{alt})(?=@)"
    )


def _positioned(m: re.Match[str]) -> str:
    return (m.group("pre") if m.group("pre") is not None else m.group("colon")) + MASK


def _forms_of(secret: str) -> set[str]:
    """The secret as it may appear in a message: verbatim, percent-encoded, JSON-escaped."""
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1]}
    encoded = quote(secret, safe="")
    forms.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded))  # lower-case hex
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def register(secret: str | None) -> None:
    """Mask `secret` in every later `scrub`. Empty and very short strings are ignored."""
    if not secret or not isinstance(secret, str) or len(secret.strip()) < MIN_SECRET_LENGTH:
        return
    global _forms, _in_position
    with _lock:
        if secret in _secrets:
            return
        _secrets.add(secret)
        if len(secret) < MASK_ANYWHERE_LENGTH and _WORD_LIKE.fullmatch(secret):
            _in_position = _positions({s for s in _secrets if len(s) < MASK_ANYWHERE_LENGTH and _WORD_LIKE.fullmatch(s)})
            return
        forms = set(_forms) | _forms_of(secret)
        _forms = tuple(sorted(forms, key=lambda f: (-len(f), f)))


def register_url_password(url: str | None) -> None:
    """Register the password of a (redis) URL: the userinfo one and any `?password=` in the query."""
    if not url:
        return
    try:
        parts = urlsplit(url)
        password = parts.password
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return
    if password:
        register(password)
        register(unquote(password))  # urlsplit leaves it percent-encoded
    for name, value in pairs:
        if name.lower() in _URL_SECRET_PARAMS:
            register(value)


def reset() -> None:
    """Forget every registered secret (for tests)."""
    global _forms, _in_position
    with _lock:
        _secrets.clear()
        _forms = ()
        _in_position = None


def scrub(text: str) -> str:
    """`text` with every registered secret and every secret-looking pattern replaced by `***`."""
    if not text:
        return text
    if not isinstance(text, str):
        text = str(text)
    for form in _forms:
        if form in text:
            text = text.replace(form, MASK)
    in_position = _in_position
    if in_position is not None:
        text = in_position.sub(_positioned, text)
    low = text.lower()
    if any(hint in low for hint in _HINTS):
        text = _PATTERN.sub(_masked, text)
    return text


# -- printable: text from outside shown as text ------------------------------------------
# What a terminal would not show as itself: controls (C0, DEL, and C1, where CSI, OSC and DCS are
# single characters), and the invisible or reordering format characters (soft hyphen, zero-width,
# bidi overrides and isolates, word joiner, BOM, tags) that let one name pass for another.
_FORMAT = "\xad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f"
INVISIBLE = re.compile(f"[\x00-\x1f\x7f-\x9f{_FORMAT}]")
# ... and lone surrogates: a file name that is not UTF-8 (os.fsdecode's surrogateescape).
_UNSHOWN = re.compile(f"[\x00-\x1f\x7f-\x9f{_FORMAT}\ud800-\udfff]")
_UNSHOWN_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_FORMAT}\ud800-\udfff]")
_SHORT_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    short = _SHORT_ESCAPES.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape's stand-in for a byte that is not UTF-8: that byte
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: object, *, newlines: bool = False) -> str:
    r"""`text` as it may be shown on a terminal: secrets masked (`scrub`), and every character a
    terminal would act on or not show spelled as an escape, the way Python spells it: ESC is
    `\x1b`, BEL `\x07`, a C1 CSI `\x9b`, a bidi override `\u202e`, a tab `\t`, a byte that is not
    UTF-8 `\xff`. Line breaks too (`\n`), unless `newlines` (a traceback keeps its lines).

    A backslash stays as it is: the result is for people to read, not to parse back.
    """
    if not isinstance(text, str):
        text = str(text)
    text = scrub(text)
    if text.isascii() and text.isprintable():  # the usual case: one pass in C, nothing to escape
        return text
    return (_UNSHOWN_BUT_NEWLINE if newlines else _UNSHOWN).sub(_escape, text)


# -- logging ---------------------------------------------------------------------------
class RedactingFilter(logging.Filter):
    """Makes a record's message (and any traceback or stack) `printable` in place: secrets
    scrubbed, controls escaped, so a logged name can neither forge a log line nor drive the
    terminal. Never drops a record.

    The message is formatted once here and stored as `record.msg` with no args (the
    format string and its values, made printable, stay as `record.msg_template` and
    `record.msg_values`). A
    traceback is formatted into `record.exc_text`, made printable (its own line breaks
    kept), and `exc_info` is cleared, so handlers print that text instead of formatting
    the exception again (`logging.Formatter` appends `exc_text` by itself).
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True  # a bad format string: leave it to the handler to report as usual
        if record.args and isinstance(record.msg, str) and isinstance(record.args, tuple):
            # what the message was before formatting, for a reader that groups lines by it (the
            # dashboard's log collapses a run of one template); the values as shown, scrubbed
            record.msg_template = record.msg
            record.msg_values = tuple(printable(value) for value in record.args)
        record.msg = printable(message)
        record.args = ()
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = printable(record.exc_text, newlines=True)
        if record.stack_info:
            record.stack_info = printable(record.stack_info, newlines=True)
        return True


def install(logger_name: str = "ircache") -> RedactingFilter:
    """Put a RedactingFilter on the logger, once. Returns the filter that is installed.

    A logger's filters see only the records logged through that logger itself,
    not those propagated from its children (`ircache.watch`): put the filter on
    handlers too (`handler.addFilter(...)`) where children log to them.
    """
    logger = logging.getLogger(logger_name)
    with _lock:
        for existing in logger.filters:
            if isinstance(existing, RedactingFilter):
                return existing
        f = RedactingFilter()
        logger.addFilter(f)
        return f
