"""redact.printable: the one function every output boundary uses for text from outside, and the log
filter and JSON output built on it."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest

from ircache_tui import redact
from ircache_tui.cli.common import print_json
from ircache_tui.fmt import shown_name
from ircache_tui.redact import INVISIBLE, RedactingFilter, printable
from tests.support.hostile import HOSTILE, MARKUP, RAW


@pytest.fixture(autouse=True)
def _no_registered_secrets():
    redact.reset()
    yield
    redact.reset()


@pytest.mark.parametrize(
    "text, shown",
    [
        ("petstore-spec", "petstore-spec"),
        ("\x1b]52;c;aGFja2VkCg==\x07", r"\x1b]52;c;aGFja2VkCg==\x07"),  # OSC 52: a clipboard write
        ("\x1b[2J", r"\x1b[2J"),
        ("a\rb\x08c\x00d\x7f", r"a\rb\x08c\x00d\x7f"),
        ("\x9b31m \x90q\x9c", r"\x9b31m \x90q\x9c"),  # C1: CSI, DCS and ST are single characters there
        ("two\nlines\tand a tab", r"two\nlines\tand a tab"),
        ("evil\u202egpj.md", r"evil\u202egpj.md"),  # bidi override
        ("zero\u200bwidth\ufeff\xad", r"zero\u200bwidth\ufeff\xad"),
        ("tag\U000e0041", r"tag\U000e0041"),
        (os.fsdecode(b"\xff.md"), r"\xff.md"),  # a file name that is not UTF-8: the byte
        ("lone \ud800", r"lone \ud800"),
        (MARKUP, MARKUP),  # markup is not printable's business: the TUI shows Text, never parses it
        ("naïve café — ok ✓", "naïve café — ok ✓"),
    ],
)
def test_printable_spells_what_a_terminal_would_act_on(text, shown):
    assert printable(text) == shown


def test_no_character_survives_that_a_terminal_would_act_on_or_hide():
    """Every code point at once: what comes out holds no control, invisible or bidi character,
    and no surrogate (it encodes as UTF-8)."""
    everything = "".join(map(chr, range(0x110000)))
    shown = printable(everything)
    assert not INVISIBLE.search(shown)
    shown.encode("utf-8")  # no lone surrogate left
    assert "\n" not in shown
    kept = printable(everything, newlines=True)
    assert not INVISIBLE.search(kept.replace("\n", "")) and kept.count("\n") == 1


def test_printable_masks_secrets_and_takes_any_object():
    redact.register("hunter2-redis-pw")
    assert printable("redis://:hunter2-redis-pw@h\x1b[2J") == r"redis://:***@h\x1b[2J"
    assert printable(ValueError("x-api-key: sk-ant-abc")) == "x-api-key: ***"
    assert printable(42) == "42"


def test_newlines_may_stay_but_nothing_else():
    assert printable("Traceback\n  line\r\x1b[2J\n", newlines=True) == "Traceback\n  line\\r\\x1b[2J\n"


def test_shown_name_spells_names_as_printable_does_quoted():
    assert shown_name(b"\xff.md") == r"'\xff.md'"
    assert shown_name("it's\x1b.md") == r"'it\'s\x1b.md'"
    assert shown_name("lone\ud800", quote=False) == r"lone\ud800"  # (it used to raise)


def test_the_log_filter_escapes_the_message_and_keeps_a_tracebacks_lines():
    """Before: a name with OSC 52 or a newline went to stderr raw (a clipboard write, a forged line)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("ircache.test-printable")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("spec %s changed", f"{HOSTILE}\nINFO: forged")
        try:
            raise ValueError(f"bad name {HOSTILE}")
        except ValueError:
            logger.exception("lookup failed for %s", "x\x07")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert not RAW.search(out), out
    lines = out.splitlines()
    assert lines[0].startswith("WARNING: spec [reverse]") and lines[0].endswith(r"\nINFO: forged changed")
    assert lines[1] == r"ERROR: lookup failed for x\x07"
    assert lines[2] == "Traceback (most recent call last):" and lines[-1].startswith("ValueError: bad name [reverse]")
    assert r"\x1b]52;c;aGFja2VkCg==\x07" in lines[-1]


def test_json_output_is_exact_and_escapes_every_control(capsys):
    """JSON's own escapes (ensure_ascii) cover C1 and bidi too, which json.dumps leaves raw without it."""
    data = {"name": HOSTILE, "path": "/orders/\x9b\u202e", "file": "é"}
    print_json(data)
    out = capsys.readouterr().out
    assert out.isascii() and not RAW.search(out)
    assert json.loads(out) == data
