"""Routes the `ircache` logger into the dashboard's live log, from any thread.

Each line is rendered for people (`render`) and scrubbed of secrets
(`redact.scrub`) before it is posted, with its shape (`shape_of`): the log pane
shows a run of records of one shape as one line with a count. The log itself is not touched: other
handlers (the CLI's stderr, files, pipelines that grep) still get the lines
exactly as logged.
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from textual.app import App

from .. import redact
from ..fmt import plural
from .messages import LogLine

# The log calls that carry a dict (`grep -rn 'log\.' ircache_tui | grep '{'`), by their
# format string. If one of these strings changes at its source, its line is shown as
# logged: tests/test_wording.py renders records made by the real code paths. (The one
# call that formats a list, watch/watcher.py's "initial walk done", is a sentence already.)
CLEARED_REDIS = "Cleared IR cache from Redis %s"  # cache/redis/tier.py: {"pattern", "deleted"}
CLEARED_FILESYSTEM = "Cleared IR cache from filesystem %s"  # cache/fs_tier.py: {"directory", "spec", "deleted"}
PRUNED = "Pruned stale IR entries %s"  # specs/stale.py: {"redis", "filesystem"}

# the tail of every SCAN MATCH pattern KeySpace.match_pattern builds: `_` and eight hex classes
_HASH_GLOB = "_" + "[0-9a-f]" * 8
_GLOB_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
#: longer messages of those formats are shown as logged rather than parsed
_MAX_LITERAL = 8192


def spec_of_pattern(pattern: str, prefix: str | None = None) -> str | None:
    """The spec name a flush's MATCH pattern selects: "" for every spec, None if it is not one of ours.

    `ir_cache:petstore-spec_[0-9a-f]…` → `petstore-spec`; `ir_cache:*_[0-9a-f]…` → "".
    Names and prefixes cannot hold a backslash, so every backslash is a glob escape.
    Without `prefix` the name is what follows the last `:` (a prefix may hold colons,
    a spec name, a file stem, rarely does).
    """
    if not pattern.endswith(_HASH_GLOB):
        return None
    head_and_spec = pattern[: -len(_HASH_GLOB)]
    if head_and_spec.endswith("*") and not head_and_spec.endswith("\\*"):
        return ""
    text = _GLOB_ESCAPE.sub(r"\1", head_and_spec)
    if prefix is not None:
        head = f"{prefix}:"
        if not text.startswith(head):
            return None
        return text[len(head):] or None
    _, colon, spec = text.rpartition(":")
    return spec if colon and spec else None


def _cleared_redis(d: Mapping[str, Any], prefix: str | None) -> str | None:
    spec = spec_of_pattern(d["pattern"], prefix)
    if spec is None:
        return None
    of = f" of {spec}" if spec else ""
    return f"Cleared {plural(d['deleted'], 'IR key')}{of} from Redis"


def _cleared_filesystem(d: Mapping[str, Any], prefix: str | None) -> str:
    of = f" of {d['spec']}" if d.get("spec") else ""
    return f"Cleared {plural(d['deleted'], 'entry file')}{of} from {d['directory']}"


def _pruned(d: Mapping[str, Any], prefix: str | None) -> str:
    return f"Pruned {plural(d['redis'], 'Redis key')} and {plural(d['filesystem'], 'file')}"


_RENDERERS: dict[str, Callable[[Mapping[str, Any], str | None], str | None]] = {
    CLEARED_REDIS: _cleared_redis,
    CLEARED_FILESYSTEM: _cleared_filesystem,
    PRUNED: _pruned,
}


def _logged_dict(record: logging.LogRecord, fmt: str) -> Mapping[str, Any] | None:
    """The dict a record of `fmt` carries: from `record.args` when it still has them, else
    read back from the message. `redact.RedactingFilter` on the `ircache` logger formats
    and scrubs every record before any handler sees it (msg = the text, args = ()), so in
    the dashboard the dict survives only as its repr: a literal, read with literal_eval."""
    args = record.args
    if args:
        # LogRecord unwraps a lone non-empty mapping argument: record.args is then the dict itself
        data = args if isinstance(args, Mapping) else args[0] if isinstance(args, tuple) and len(args) == 1 else None
        return data if isinstance(data, Mapping) else None
    head = fmt[: -len("%s")]
    text = record.msg
    if not text.startswith(head) or len(text) > _MAX_LITERAL:
        return None
    try:
        data = ast.literal_eval(text[len(head):])
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def render(record: logging.LogRecord, prefix: str | None = None) -> str:
    """The message of `record` as a sentence: the lines that log a dict are spelled
    out from the dict itself; every other line is its message as logged.

    `prefix` is the Redis key prefix, to find the spec name in a flush's pattern.
    """
    msg = record.msg
    if isinstance(msg, str):
        for fmt, renderer in _RENDERERS.items():
            if msg == fmt or (not record.args and msg.startswith(fmt[: -len("%s")])):
                data = _logged_dict(record, fmt)
                try:
                    text = renderer(data, prefix) if data is not None else None
                except (KeyError, TypeError, ValueError):  # not the shape we know: show it as logged
                    text = None
                if text is not None:
                    return text
                break
    return record.getMessage()


# a %-format placeholder (`%s`, `%r`, `%5.1f`, `%(name)s`), and the `%%` that is none
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa]|%%")
_WORDS = re.compile(r"[^\W\d_]{3}")
_LAST_MAX = 120  # characters of a run's last values shown ("(last: …)")


def shape_of(record: logging.LogRecord, text: str) -> tuple[str, str]:
    """(shape, summary): records of one shape in a row are shown as one line, "N × summary".

    The shape is the message's template (its format string, before the values went in: the
    redacting filter keeps it as `msg_template`; a child logger's record still has it as `msg`),
    so "spec %s: cannot warm Redis: %s" for 252 specs is one run, and the summary is the template
    with … for the values and the last record's values: "spec …: cannot warm Redis: … (last:
    petstore-spec, …)". A template of placeholders only (`"%s"`) says nothing in common: those
    records, and those logged without values, have the text itself as their shape (only the same
    line repeated collapses), and the text as summary.
    """
    template = getattr(record, "msg_template", None)
    values: tuple[object, ...] | None = getattr(record, "msg_values", None)
    if template is None and isinstance(record.msg, str) and isinstance(record.args, tuple) and record.args:
        template, values = record.msg, record.args
    if isinstance(template, str) and values and template not in _RENDERERS:
        masked = _PLACEHOLDER.sub(lambda m: "%" if m.group() == "%%" else "…", template)
        if _WORDS.search(_PLACEHOLDER.sub("", template)):
            last = ", ".join(redact.scrub(str(value)) for value in values)
            if len(last) > _LAST_MAX:
                last = last[: _LAST_MAX - 1] + "…"
            return f"{record.levelno}:{template}", redact.scrub(f"{masked} (last: {last})")
    return f"{record.levelno}={text}", text


class AppLogHandler(logging.Handler):
    def __init__(self, app: App[Any], clock: Callable[[], datetime], *, prefix: str | None = None) -> None:
        super().__init__(logging.INFO)
        self.app = app
        self.clock = clock
        self.prefix = prefix

    def emit(self, record: logging.LogRecord) -> None:
        try:
            head = f"{self.clock():%H:%M:%S} {record.levelname:<7} "
            message = redact.scrub(render(record, self.prefix))
            shape, summary = shape_of(record, message)
            self.app.post_message(LogLine(record.levelno, head + message, shape, head, summary))  # thread-safe
        except Exception:  # a log line must never take the app down
            self.handleError(record)
