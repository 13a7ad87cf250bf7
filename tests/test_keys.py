import hashlib
import os

import pytest

from ircache_tui import cache_key
from ircache_tui.cache.keys import (
    CacheKey,
    InvalidSpecName,
    KeySpace,
    glob_escape,
    parse_cache_key,
    spec_name_from_path,
    spec_of,
)
from ircache_tui.fmt import INVISIBLE


def test_cache_key_is_stem_and_first_8_hex_of_sha256():
    text = "# Petstore\nnaïve ünïcode\n"
    expected = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    assert cache_key(text, "specs/petstore-spec.md") == f"petstore-spec_{expected}"


def test_same_text_same_key_different_text_different_key():
    assert cache_key("a", "x.md") == cache_key("a", "other/dir/x.md")
    assert cache_key("a", "x.md") != cache_key("b", "x.md")


@pytest.mark.parametrize(
    "path, name",
    [
        ("../../etc/passwd.md", "passwd"),
        ("/etc/shadow.md", "shadow"),
        ("C:\\specs\\win.md", "win"),
        ("a/b/c.spec.md", "c.spec"),
        ("weird[*?].md", "weird[*?]"),
    ],
)
def test_spec_name_is_last_component_stem(path, name):
    assert spec_name_from_path(path) == name


@pytest.mark.parametrize("path", ["", "..", "/", "bad\x00name.md", "tab\tname.md", "x" * 300 + ".md"])
def test_hostile_spec_names_are_refused(path):
    with pytest.raises(InvalidSpecName):
        spec_name_from_path(path)


@pytest.mark.parametrize(
    "path, shown",
    [
        (os.fsdecode(b"\xff.md"), "'\\xff'"),  # os.listdir's name for a non-UTF-8 file
        ("evil\u202egpj.md", "'evil\\u202egpj'"),  # bidi override: reads as "evil" + "jpg" reversed
        ("zero\u200bwidth.md", "'zero\\u200bwidth'"),
        ("c1\x85.md", "'c1\\x85'"),  # a C1 control, spelled as Python does
        (".hidden.md", "'.hidden'"),
        (".md", "'.md'"),
    ],
)
def test_unshowable_and_hidden_names_are_refused_and_named_escaped(path, shown):
    """The message prints the name escaped: never a raw control or bidi character on a terminal."""
    with pytest.raises(InvalidSpecName) as raised:
        spec_name_from_path(path)
    message = str(raised.value)
    assert shown in message
    assert not INVISIBLE.search(message) and message.isprintable()


def test_keys_never_leave_prefix_or_dir():
    ks = KeySpace("ir_cache")
    key = cache_key("x", "../../../etc/evil.md")
    assert ks.redis_key(key) == f"ir_cache:{key}"
    assert "/" not in key and ".." not in key.split("_")[0]
    with pytest.raises(InvalidSpecName):
        ks.redis_key("../x_12345678/../../y")


def test_parse_cache_key():
    p = parse_cache_key("ecommerce_v2_0a1b2c3d")
    assert (p.spec_name, p.hash8) == ("ecommerce_v2", "0a1b2c3d")
    assert parse_cache_key("ecommerce_v2") is None
    assert parse_cache_key("x_0A1B2C3D") is None  # uppercase is not ours
    assert parse_cache_key("x_12345678:lock") is None


def test_cache_key_value():
    key, digest = CacheKey.for_spec("# Shop\n", "specs/shop.md")
    assert str(key) == key.cache_key == cache_key("# Shop\n", "specs/shop.md") == f"shop_{digest[:8]}"
    assert digest == hashlib.sha256(b"# Shop\n").hexdigest()
    assert CacheKey.parse(key.cache_key) == key and hash(CacheKey.parse(str(key))) == hash(key)
    assert CacheKey.parse("ecommerce_v2_0a1b2c3d").spec_name == "ecommerce_v2"
    for bad in ("ecommerce", "x_0A1B2C3D", "x_12345678:lock", "../x_12345678", ".hidden_12345678"):
        with pytest.raises(InvalidSpecName):
            CacheKey.parse(bad)
    with pytest.raises(InvalidSpecName):
        CacheKey.for_spec("x", "a\x1b[2J.md")
    assert spec_of("ecommerce_v2_0a1b2c3d") == "ecommerce_v2"
    ks = KeySpace("team:ir")
    assert ks.redis_key(key) == ks.redis_key(str(key)) == f"team:ir:{key}"
    with pytest.raises(InvalidSpecName):
        ks.redis_key("not-a-key")


def test_glob_escape():
    assert glob_escape("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f"


def test_match_pattern_is_exact_for_a_spec():
    ks = KeySpace()
    assert ks.match_pattern("eco*") == "ir_cache:eco\\*_" + "[0-9a-f]" * 8
    assert ks.belongs(b"ir_cache:ecommerce_0a1b2c3d", "ecommerce")
    assert not ks.belongs(b"ir_cache:ecommerce_v2_0a1b2c3d", "ecommerce")
    assert not ks.belongs(b"ir_cache:ecommerce-api_0a1b2c3d", "ecommerce")
    assert not ks.belongs(b"other:ecommerce_0a1b2c3d", "ecommerce")
    assert not ks.belongs(b"ir_cache:ecommerce_0a1b2c3d:lock")


def test_prefix_validation():
    with pytest.raises(ValueError):
        KeySpace("")
    with pytest.raises(ValueError):
        KeySpace("a/b")
    assert KeySpace("team:ir").redis_key("s_0a1b2c3d") == "team:ir:s_0a1b2c3d"


@pytest.mark.parametrize(
    "url, shown",
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:pw@h/1", "rediss://user:***@h/1"),
        ("unix:///tmp/r.sock?password=pw&db=2", "unix:///tmp/r.sock?password=***&db=2"),
        ("redis://localhost:6379", "redis://localhost:6379"),
    ],
)
def test_mask_url(url, shown):
    from ircache_tui.cache.urls import mask_url

    assert mask_url(url) == shown
