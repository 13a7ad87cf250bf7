"""Secrets never reach a message: ircache_tui.redact, and the places that print through it.

The scrubber is tested on its own, then end to end: the real `anthropic` SDK
talks to the loopback Messages API (tests/support/messages_api.py) configured
to echo the request's credential headers in its error bodies, as a careless
gateway does, and the key must appear nowhere the user can see it: the
GenerationError, the `ircache` log on stderr, print_json, and the CLI's
output.
"""

from __future__ import annotations

import io
import json
import logging
import re
from urllib.parse import quote, quote_plus

import anthropic
import pytest

from ircache_tui import redact
from ircache_tui.cache.ircache import IRCache
from ircache_tui.cli.common import eprint, print_json, settings_from_args, setup_logging
from ircache_tui.ir.generators import GenerationError
from ircache_tui.ir.generators.anthropic import AnthropicGenerator
from ircache_tui.redact import MASK, RedactingFilter, install, register, register_url_password, scrub
from tests.support.cli import cli_env, run_cli
from tests.support.generators import SPEC
from tests.support.messages_api import MessagesAPI, echo_error

ANT_KEY = "sk-ant-test-SECRET1234567890"
# A key no pattern recognises: only its registration can mask it.
GATEWAY_KEY = "gw-key-SECRET0987654321"
SECRET_MARK = "SECRET"  # in both keys; no masked text may still contain it


@pytest.fixture(autouse=True)
def fresh_registry():
    """Each test starts with no registered secret, and leaves none behind."""
    redact.reset()
    yield
    redact.reset()


@pytest.fixture
def ircache_logger():
    """Restore the `ircache` logger (handlers, filters, level, propagate) after the test."""
    logger = logging.getLogger("ircache")
    saved = (logger.handlers[:], logger.filters[:], logger.level, logger.propagate)
    yield logger
    logger.handlers[:], logger.filters[:], logger.level, logger.propagate = saved


# -- scrub: patterns -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key is sk-ant-api03-AbC_dEf-123456", "key is sk-ant-***"),
        ("ANTHROPIC_API_KEY=sk-ant-admin01-xyz", "ANTHROPIC_API_KEY=sk-ant-***"),
        (f"{ANT_KEY}.", "sk-ant-***."),
    ],
)
def test_anthropic_keys_are_masked(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sent Bearer abc.DEF-123_x~y+z/w== to the gateway", "sent Bearer *** to the gateway"),
        ("token: bearer abcdef123", "token: bearer ***"),
    ],
)
def test_bearer_tokens_are_masked(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x-api-key: gwkey-1234", "x-api-key: ***"),
        ("X-Api-Key:gwkey-1234 next", "X-Api-Key:*** next"),
        ('{"x-api-key": "gwkey-1234", "a": 1}', '{"x-api-key": "***", "a": 1}'),
        ("{'x-api-key': 'gwkey-1234'}", "{'x-api-key': '***'}"),
        ('"{\\"x-api-key\\": \\"gwkey-1234\\"}"', '"{\\"x-api-key\\": \\"***\\"}"'),  # JSON inside a JSON string
        ("x-api-key=gwkey-1234&b=2", "x-api-key=***&b=2"),
    ],
)
def test_x_api_key_values_are_masked(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer tok-1234", "Authorization: ***"),
        ("authorization: Basic dXNlcjpwYXNz", "authorization: ***"),
        ("Authorization: tok-1234\nnext line", "Authorization: ***\nnext line"),
        ('{"authorization": "Bearer tok-1234"}', '{"authorization": "***"}'),
        ("{'Authorization': 'Token tok-1234', 'x': 1}", "{'Authorization': '***', 'x': 1}"),
        ("Proxy-Authorization: Digest abc", "Proxy-Authorization: ***"),
    ],
)
def test_authorization_values_are_masked(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://user:hunter2@db:6379/0", "redis://user:***@db:6379/0"),
        ("rediss://:hunter2@db/1", "rediss://:***@db/1"),
        ("redis://u:p%40ss%2Fw@db", "redis://u:***@db"),
        ("redis://u:p@ss@db:6379", "redis://u:***@db:6379"),  # an unencoded @ in the password
        ("connect to redis://db:6379/0?password=hunter2&db=1 failed", "connect to redis://db:6379/0?password=***&db=1 failed"),
        ("https://me:pw123@example.com/x and more", "https://me:***@example.com/x and more"),
    ],
)
def test_url_passwords_are_masked(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Dashboard ready: redis://localhost:6379/0, live updates by keyspace notifications",
        "Redis is down (Error 111 connecting to localhost:6379. Connection refused.); retrying every 2s",
        "unix:///tmp/pytest-of-me/redis.sock?db=0",
        "redis://:***@db:6379/0",  # what cache.urls.mask_url already shows
        "IR for specs/shop.md (ir_cache_shop_abcdef0123456789) from redis at 12:30:01 in 0.3 ms",
        "mail ops@example.com, see https://example.com/a@b, price: 3.50, ratio 1:2",
        "the user's password attribute is required; authentication failed",
        "GET /users?page=2&sort=name",
    ],
)
def test_ordinary_text_is_untouched(text):
    assert scrub(text) == text


def test_scrub_is_idempotent():
    register(GATEWAY_KEY)
    text = f"x-api-key: {GATEWAY_KEY} Bearer {ANT_KEY} redis://u:pw12@h {GATEWAY_KEY}"
    once = scrub(text)
    assert SECRET_MARK not in once and "pw12" not in once
    assert scrub(once) == once


# -- scrub: registered secrets --------------------------------------------------------------
def test_registered_secret_is_masked_verbatim_and_encoded():
    secret = "p@ss w/rd:\"x\"+1"
    register(secret)
    forms = {
        "verbatim": secret,
        "percent": quote(secret, safe=""),
        "percent, / kept": quote(secret),
        "form": quote_plus(secret),
        "percent, lower-case hex": re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(secret, safe="")),
        "json": json.dumps(secret)[1:-1],
    }
    for how, form in forms.items():
        text = f"before {form} after"
        assert scrub(text) == f"before {MASK} after", how


def test_a_registered_secret_needs_no_pattern():
    assert scrub(f"credential {GATEWAY_KEY} rejected") == f"credential {GATEWAY_KEY} rejected"
    register(GATEWAY_KEY)
    assert scrub(f"credential {GATEWAY_KEY} rejected") == f"credential {MASK} rejected"


@pytest.mark.parametrize("secret", [None, "", "   ", "a", "abc"])
def test_empty_and_very_short_secrets_are_ignored(secret):
    register(secret)
    assert scrub("a abc 123 the cat sat") == "a abc 123 the cat sat"


def test_a_secret_containing_another_is_masked_whole():
    register("abcd-9")
    register("abcd-9-efgh-ijkl")
    assert scrub("x abcd-9-efgh-ijkl y abcd-9 z") == f"x {MASK} y {MASK} z"


# A password that is a word of our own messages: the banner once read "refused the password (***
# password, or *** user name)" under a Redis password `wrong`.
@pytest.mark.parametrize("password", ["wrong", "password", "6379", "Redis"])
def test_a_short_word_like_password_is_masked_only_where_it_is_the_secret(password):
    register_url_password(f"redis://:{password}@127.0.0.1:6379/0")
    ours = ("127.0.0.1:6379 refused the password (wrong password, or wrong user name); "
            "Redis at 127.0.0.1:6379 on port 6379 asked for a password")
    assert scrub(ours) == ours
    where_it_is_the_secret = {
        f"redis://:{password}@db:6379/0": f"redis://:{MASK}@db:6379/0",
        f"redis://default:{password}@db": f"redis://default:{MASK}@db",
        f"user:{password}@db": f"user:{MASK}@db",
        f"AUTH {password}": f"AUTH {MASK}",
        f"auth default {password} failed": f"auth default {MASK} failed",
        f"password={password}&db=2": f"password={MASK}&db=2",
        f'{{"password": "{password}"}}': f'{{"password": "{MASK}"}}',
        f"pwd: {password}": f"pwd: {MASK}",
    }
    for text, masked in where_it_is_the_secret.items():
        assert scrub(text) == masked, text
    assert scrub(f"password={password}x") == f"password={password}x"  # another word that begins like it


@pytest.mark.parametrize("password", ["hunter2", "s3cr/t", "correcthorsebattery"])
def test_a_password_that_is_no_word_of_ours_is_masked_anywhere(password):
    register_url_password(f"redis://:{quote(password, safe='')}@127.0.0.1:6379/0")
    assert scrub(f"the server echoed {password} back") == f"the server echoed {MASK} back"


def test_register_url_password_registers_userinfo_and_query_passwords():
    register_url_password("redis://app:s3cr%2Ft-pw@db:6379/0?password=q-secret-9&db=2")
    register_url_password("redis://db:6379/0")  # no password: nothing to do
    register_url_password("not a url at all")
    register_url_password(None)
    text = "auth failed with s3cr/t-pw, s3cr%2Ft-pw and q-secret-9"
    assert scrub(text) == f"auth failed with {MASK}, {MASK} and {MASK}"


# -- logging ---------------------------------------------------------------------------------
def test_redacting_filter_scrubs_message_args_and_traceback():
    register(GATEWAY_KEY)
    logger = logging.getLogger("ircache.test_redact.filter")
    logger.propagate = False
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.handlers[:] = [handler]
    logger.filters[:] = []
    logger.addFilter(RedactingFilter())
    try:
        logger.warning("key %s, header %s", GATEWAY_KEY, f"x-api-key: {ANT_KEY}")
        try:
            raise RuntimeError(f"connect redis://app:{GATEWAY_KEY}@db failed")
        except RuntimeError:
            logger.exception("lookup failed for %s", "shop")
    finally:
        logger.handlers[:] = []
        logger.filters[:] = []
    text = out.getvalue()
    assert SECRET_MARK not in text, text
    assert f"WARNING key {MASK}, header x-api-key: {MASK}" in text
    assert "ERROR lookup failed for shop" in text
    assert "Traceback (most recent call last)" in text and f"RuntimeError: connect redis://app:{MASK}@db failed" in text


def test_install_puts_one_filter_on_the_logger(ircache_logger):
    first = install("ircache")
    second = install("ircache")
    assert first is second
    assert [f for f in ircache_logger.filters if isinstance(f, RedactingFilter)] == [first]


def test_setup_logging_scrubs_the_ircache_logger_and_its_children(ircache_logger, capsys):
    register(GATEWAY_KEY)
    setup_logging(1)

    logging.getLogger("ircache").error("IR generation failed for shop: %s", f"credential {GATEWAY_KEY}")
    logging.getLogger("ircache.watch").warning("watcher: Authorization: Bearer %s", GATEWAY_KEY)  # a child logger

    err = capsys.readouterr().err
    assert SECRET_MARK not in err, err
    assert f"ERROR: IR generation failed for shop: credential {MASK}" in err
    assert f"WARNING: watcher: Authorization: {MASK}" in err


def test_print_json_and_eprint_scrub(capsys):
    register(GATEWAY_KEY)
    print_json({"error": f"rejected {GATEWAY_KEY}", "headers": {"authorization": f"Bearer {ANT_KEY}", "x-api-key": GATEWAY_KEY}})
    eprint(f"ircache-tui get: gateway said x-api-key: {ANT_KEY}")

    out, err = capsys.readouterr()
    assert SECRET_MARK not in out + err
    assert json.loads(out) == {"error": f"rejected {MASK}", "headers": {"authorization": MASK, "x-api-key": MASK}}
    assert err == f"ircache-tui get: gateway said x-api-key: {MASK}\n"


def test_settings_from_args_registers_the_api_key_and_redis_password(monkeypatch, tmp_path):
    import argparse

    monkeypatch.setenv("ANTHROPIC_API_KEY", GATEWAY_KEY)
    monkeypatch.setenv("IR_CACHE_DIR", str(tmp_path))
    args = argparse.Namespace(redis_url="redis://app:redis-pw-SECRET@db:6379/0", generator="offline")

    settings_from_args(args)

    assert scrub(f"{GATEWAY_KEY} / redis-pw-SECRET") == f"{MASK} / {MASK}"


def test_dashboard_log_lines_are_scrubbed():
    from datetime import datetime

    from ircache_tui.tui.logbridge import AppLogHandler
    from ircache_tui.tui.messages import LogLine

    class PostBox:  # stands in for the App: it only receives the posted messages
        def __init__(self) -> None:
            self.posted: list[LogLine] = []

        def post_message(self, message: LogLine) -> bool:
            self.posted.append(message)
            return True

    register(GATEWAY_KEY)
    box = PostBox()
    handler = AppLogHandler(box, lambda: datetime(2025, 1, 2, 3, 4, 5))  # type: ignore[arg-type]
    logger = logging.getLogger("ircache.test_redact.bridge")
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    try:
        logger.error("Regeneration failed: %s / x-api-key: %s", GATEWAY_KEY, ANT_KEY)
    finally:
        logger.handlers[:] = []

    assert [m.text for m in box.posted] == [f"03:04:05 ERROR   Regeneration failed: {MASK} / x-api-key: {MASK}"]


# -- the Anthropic generator against an echoing gateway ------------------------------------
@pytest.fixture
async def gateway():
    """The loopback Messages API, accepting GATEWAY_KEY; generators made from it are closed after."""
    made: list[AnthropicGenerator] = []

    class Gateway:
        def __init__(self, api: MessagesAPI) -> None:
            self.api = api

        def generator(self, key: str, *, x_api_key_header: bool = False, max_retries: int = 0) -> AnthropicGenerator:
            self.api.api_key = key
            if x_api_key_header:  # this SDK authenticates with a Bearer token; add x-api-key as well
                client = anthropic.AsyncAnthropic(
                    base_url=self.api.base_url, api_key=key, max_retries=max_retries,
                    default_headers={"x-api-key": key},
                )
                gen = AnthropicGenerator(model="claude-test-model", client=client, deadline=30.0)
            else:
                gen = AnthropicGenerator(
                    model="claude-test-model", api_key=key, base_url=self.api.base_url,
                    max_retries=max_retries, deadline=30.0,
                )
            made.append(gen)
            return gen

    with MessagesAPI(api_key=GATEWAY_KEY, echo_rejected=True) as api:
        yield Gateway(api)
        for gen in made:
            await gen.aclose()


@pytest.mark.parametrize("key", [ANT_KEY, GATEWAY_KEY])
@pytest.mark.parametrize("in_message", [True, False], ids=["echo-in-message", "echo-in-body"])
@pytest.mark.parametrize("status", [400, 529])
async def test_echoed_credentials_never_reach_the_generation_error(gateway, key, in_message, status):
    gen = gateway.generator(key, x_api_key_header=True)
    gateway.api.script(echo_error(status, "overloaded_error" if status == 529 else "invalid_request_error", in_message=in_message))

    with pytest.raises(GenerationError) as exc:
        await gen.generate(SPEC, "shop")

    text = str(exc.value)
    # the gateway really did echo the key (so the test could fail) ...
    assert gateway.api.headers[-1]["x-api-key"] == key
    assert gateway.api.headers[-1]["authorization"] == f"Bearer {key}"
    # ... and the error still says what happened, without it
    assert f"Anthropic API error {status} for shop" in text and "\n" not in text
    assert key not in text and SECRET_MARK not in text, text
    if in_message:
        assert f"gateway rejected credential {MASK}" in text


async def test_a_rejected_key_echoed_in_the_401_is_masked(gateway):
    gen = gateway.generator(GATEWAY_KEY)
    gateway.api.api_key = "another-key-entirely"  # the gateway rejects ours, and echoes it

    with pytest.raises(GenerationError) as exc:
        await gen.generate(SPEC, "shop")

    text = str(exc.value)
    assert "401" in text and GATEWAY_KEY not in text and SECRET_MARK not in text, text
    assert gateway.api.rejected[-1]["authorization"] == f"Bearer {GATEWAY_KEY}"


async def test_a_generator_built_from_the_environment_registers_its_key(gateway, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", GATEWAY_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", gateway.api.base_url)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    assert scrub(GATEWAY_KEY) == GATEWAY_KEY  # not registered yet

    gen = AnthropicGenerator()
    try:
        assert scrub(f"key {GATEWAY_KEY}") == f"key {MASK}"
    finally:
        await gen.aclose()


async def test_key_is_absent_from_the_log_and_print_json(gateway, redis_url, cache_dir, ircache_logger, capsys):
    gen = gateway.generator(ANT_KEY, x_api_key_header=True)
    gateway.api.script(echo_error(400, in_message=True))
    setup_logging(1)  # stderr, as the CLI sets it up

    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=gen) as cache:
        with pytest.raises(GenerationError) as exc:
            await cache.get_application_ir(SPEC, "specs/shop.md")
    # whatever else a caller might log about it
    logging.getLogger("ircache").error("request headers were %s", gateway.api.headers[-1])
    print_json({"error": str(exc.value), "request_headers": gateway.api.headers[-1], "body": exc.value.args})

    out, err = capsys.readouterr()
    assert "IR generation failed for shop" in err and "Anthropic API error 400" in err, err
    assert ANT_KEY not in err and SECRET_MARK not in err, err
    assert ANT_KEY not in out and SECRET_MARK not in out, out
    shown = json.loads(out)
    assert shown["request_headers"]["authorization"] == MASK and shown["request_headers"]["x-api-key"] == MASK


# -- end to end through the CLI --------------------------------------------------------------
@pytest.mark.parametrize("key", [ANT_KEY, GATEWAY_KEY])
@pytest.mark.parametrize("verbosity", [[], ["-vv"]], ids=["quiet", "debug-log"])
@pytest.mark.e2e
def test_cli_get_through_an_echoing_gateway_keeps_the_key_secret(key, verbosity, redis_url, cache_dir, tmp_path):
    spec = tmp_path / "shop.md"
    spec.write_text(SPEC, encoding="utf-8")
    with MessagesAPI(api_key=key) as api:
        api.script(echo_error(400, in_message=True))
        env = cli_env(redis_url, cache_dir, ANTHROPIC_API_KEY=key, ANTHROPIC_BASE_URL=api.base_url)

        out = run_cli(*verbosity, "get", str(spec), "--generator", "anthropic", env=env)

        assert api.headers and api.headers[-1]["authorization"] == f"Bearer {key}"  # the gateway was reached
    shown = out.stdout + out.stderr
    assert out.returncode == 1, shown
    assert "ircache-tui get: Anthropic API error 400 for" in out.stderr, shown
    # holds today because the generator scrubs its GenerationError; cli/main.py's own prints
    # (`ircache-tui {command}: {exc}`) are not scrubbed until they go through cli.common.eprint
    assert key not in shown and SECRET_MARK not in shown, shown
    if verbosity:
        assert "ERROR: IR generation failed" in out.stderr, shown


@pytest.mark.parametrize("output", [["--json"], ["-vv"]], ids=["json", "text-and-debug-log"])
@pytest.mark.e2e
def test_cli_never_shows_the_redis_password(output, cache_dir):
    password = "redis-pw-SECRET%2F42"  # percent-encoded in the URL: "redis-pw-SECRET/42"
    env = cli_env(None, cache_dir)

    # nothing listens on port 1: the error texts are what could carry the URL
    out = run_cli("--redis-url", f"redis://app:{password}@127.0.0.1:1/0", "stats", *output, env=env, timeout=60)

    shown = out.stdout + out.stderr
    assert "redis://app:***@127.0.0.1:1/0" in shown, shown
    assert SECRET_MARK not in shown, shown
