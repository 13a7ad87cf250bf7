"""What the Messages API can do wrong, end to end: `ircache-tui get SPEC` against a loopback fake.

Nothing is mocked. The real CLI runs as a subprocess with IR_GENERATOR=anthropic,
ANTHROPIC_BASE_URL pointing the real `anthropic` SDK at tests/support/messages_api.py,
and REDIS_URL at the suite's redis-server. For every fault the server is scripted to
produce (429, 529, 500, a proxy's HTML 502, a rejected key, a hang, a refusal, a
cut-off answer, text that is not JSON, JSON that is not an ApplicationIR) a test shows:

* exit status 1, and one line on stderr that says what happened in words, no traceback
  (the cache's ERROR log line repeating it is tolerated: see test_the_failure_is_said_once);
* how many requests reached the server: the SDK's retries happened where it retries
  (429/529/5xx, numbered by x-stainless-retry-count) and stopped at max_retries, one
  repair turn for a bad answer, a single request where nothing is retried;
* nothing cached, in Redis or in the cache dir;
* the next run, the server answering well, succeeds and caches in both tiers.

Every stdout, stderr and log record of every test here is checked for the API key
(`no_secret_anywhere`); the key is deliberately not `sk-ant-...`-shaped, so only its
registration with ircache_tui.redact can mask it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from ircache_tui.cache.ircache import IRCache
from ircache_tui.cache.keys import cache_key
from ircache_tui.ir.envelope import decode_entry
from ircache_tui.ir.generators import GenerationError
from ircache_tui.ir.generators.anthropic import AnthropicGenerator
from ircache_tui.ir.model import ApplicationIR
from ircache_tui.settings import Settings
from tests.support.cli import cli_env, run_cli
from tests.support.generators import SPEC
from tests.support.messages_api import (
    MessagesAPI,
    api_error,
    hang,
    html_error,
    message,
    overloaded,
    rate_limited,
    refusal,
    truncated,
)
from tests.test_anthropic_generator import BAD_ENUM, IR, IR_JSON, NOT_JSON

SECRET = "fault-suite-SECRET-5f1c0e9a7b2d"  # the API key: must never be shown
PREFIX = "ir_cache"
ATTEMPTS = 3  # the generator's SDK client: max_retries=2, so one request and two retries


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture
def shown() -> list[str]:
    """Every stream a test captured; `no_secret_anywhere` greps them all."""
    return []


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@pytest.fixture(autouse=True)
def no_secret_anywhere(shown, capfd):
    """After each test: the API key is in no captured output, CLI or in-process, and no log record.

    The log is caught at DEBUG from the cache (`ircache`), the SDK (`anthropic`) and its
    HTTP client, whether or not their records propagate to the root logger.
    """
    handler = _Records()
    names = ["", "ircache", "anthropic", "httpx", "httpcore", "httpx2", "httpcore2"]
    before = {name: (logging.getLogger(name).level, logging.getLogger(name).propagate) for name in names}
    for name in names:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        if name:
            logger.propagate = False  # each record once, through our handler on its own logger
    try:
        yield
    finally:
        for name, (level, propagate) in before.items():
            logger = logging.getLogger(name)
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
    out, err = capfd.readouterr()
    for text in [*shown, out, err, *handler.lines]:
        assert SECRET not in text, text


@pytest.fixture
def api():
    with MessagesAPI(api_key=SECRET) as server:
        yield server


@pytest.fixture
def spec_file(tmp_path) -> Path:
    path = tmp_path / "specs" / "shop.md"
    path.parent.mkdir()
    path.write_text(SPEC, encoding="utf-8")
    return path


@pytest.fixture
def get(spec_file, redis_url, cache_dir, shown):
    """Run `ircache-tui get SPEC` against `server`; every stream it printed goes to `shown`."""

    def run(server: MessagesAPI, *args: str, timeout: str = "60", **env: str):
        extra = {
            "IR_GENERATOR": "anthropic",
            "ANTHROPIC_API_KEY": SECRET,
            "ANTHROPIC_BASE_URL": server.base_url,
            "IR_GENERATE_TIMEOUT": timeout,
            **env,
        }
        out = run_cli(*args, "get", str(spec_file), env=cli_env(redis_url, cache_dir, **extra), timeout=120)
        shown.extend([out.stdout, out.stderr])
        return out

    return run


# -- what every fault must leave behind ------------------------------------------------------------
def failed(out, *words: str, verbose: bool = False) -> str:
    """Exit 1, nothing on stdout, no traceback, and stderr ending with the command's one error line,
    which holds every one of `words`. Returns the error (without `ircache-tui get: `).

    `verbose`: the run had -v/-vv, so the INFO and DEBUG lines of the log are expected too."""
    both = out.stdout + out.stderr
    assert out.returncode == 1, both
    assert out.stdout == "", both
    assert "Traceback" not in both and '  File "' not in both, both
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("ircache-tui get: "), both
    error = lines[-1].removeprefix("ircache-tui get: ")
    for word in words:
        assert word in error, f"{word!r} not in the error line: {error}"
    # at default verbosity the error line is all; -v adds the log, whose ERROR line says the same
    others = [
        line for line in lines[:-1]
        if not (verbose and (line.startswith(("INFO: ", "DEBUG: "))
                             or line == f"ERROR: IR generation failed for shop: {error}"))
    ]
    assert others == [], both
    return error


def nothing_cached(sync_redis, cache_dir: Path) -> None:
    assert sync_redis.keys(f"{PREFIX}:*") == []
    assert sync_redis.keys("*") == []  # no lock left behind either
    entries = [p for p in cache_dir.rglob("*") if p.is_file()] if cache_dir.exists() else []
    assert entries == []


def cached(out, spec_file: Path, sync_redis, cache_dir: Path) -> None:
    """The run succeeded, from the generator, and its entry is in both tiers, identical."""
    assert out.returncode == 0, out.stdout + out.stderr
    key = cache_key(SPEC, str(spec_file))
    assert out.stdout.splitlines()[0] == f"{key}: from generator", out.stdout
    assert "Traceback" not in out.stderr and "ERROR" not in out.stderr, out.stderr
    on_disk = (cache_dir / f"{key}.json").read_bytes()
    assert sync_redis.get(f"{PREFIX}:{key}") == on_disk
    entry = decode_entry(on_disk, key[-8:])
    assert entry.generator.name == "anthropic"
    assert entry.application_ir == ApplicationIR.model_validate(IR)
    # the entry, and the counts of the lookup that made it (cache/hits.py): no lock left behind
    assert sorted(k.decode() for k in sync_redis.keys("*")) == sorted([f"{PREFIX}:stats:hits", f"{PREFIX}:{key}"])


def retry_counts(server: MessagesAPI) -> list[str]:
    """x-stainless-retry-count of every request received: "0" for a first try, "1", "2" for the SDK's retries."""
    return [h.get("x-stainless-retry-count") for h in server.headers]


# -- retried by the SDK, then reported ---------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.slow
def test_rate_limited_429_is_retried_after_retry_after_then_reported(api, get, spec_file, sync_redis, cache_dir):
    # retry-after alone (no retry-after-ms): the SDK must wait what it says
    api.script(*(rate_limited("1", retry_after_ms=None) for _ in range(ATTEMPTS)), message(IR_JSON))

    out = get(api)

    error = failed(out, "Anthropic API error 429 for shop", f"after {ATTEMPTS} attempts",
                   "rate-limited us (429)", "asks to wait 1s", "per-minute rate limit")
    assert error.startswith("Anthropic API error 429 for shop after 3 attempts: the Messages API rate-limited us")
    assert len(api.requests) == ATTEMPTS and api.remaining == 1  # bounded: the good answer was left alone
    assert retry_counts(api) == ["0", "1", "2"]  # the SDK's retries, not new generations
    assert api.requests[0] == api.requests[1] == api.requests[2]
    gaps = [b - a for a, b in zip(api.times, api.times[1:])]
    assert all(gap >= 0.9 for gap in gaps), gaps  # retry-after: 1 was honoured (the SDK's own backoff starts at 0.5 s)
    nothing_cached(sync_redis, cache_dir)

    cached(get(api), spec_file, sync_redis, cache_dir)
    assert len(api.requests) == ATTEMPTS + 1


@pytest.mark.e2e
@pytest.mark.slow
def test_overloaded_529_is_retried_then_reported(api, get, spec_file, sync_redis, cache_dir):
    api.script(*(overloaded() for _ in range(ATTEMPTS)), message(IR_JSON))

    out = get(api)

    failed(out, "Anthropic API error 529 for shop after 3 attempts", "the Messages API is overloaded (529)", "Overloaded")
    assert len(api.requests) == ATTEMPTS and retry_counts(api) == ["0", "1", "2"] and api.remaining == 1
    nothing_cached(sync_redis, cache_dir)

    cached(get(api), spec_file, sync_redis, cache_dir)


@pytest.mark.e2e
@pytest.mark.slow
def test_internal_error_500_is_retried_then_reported(api, get, spec_file, sync_redis, cache_dir):
    api.script(*(api_error() for _ in range(ATTEMPTS)), message(IR_JSON))

    out = get(api)

    failed(out, "Anthropic API error 500 for shop after 3 attempts", "the Messages API failed (500 api_error)",
           "Internal server error")
    assert len(api.requests) == ATTEMPTS and retry_counts(api) == ["0", "1", "2"] and api.remaining == 1
    nothing_cached(sync_redis, cache_dir)

    cached(get(api), spec_file, sync_redis, cache_dir)


@pytest.mark.e2e
@pytest.mark.slow
def test_a_proxys_html_502_page_is_named_as_such(api, get, spec_file, sync_redis, cache_dir):
    api.script(*(html_error(502) for _ in range(ATTEMPTS)), message(IR_JSON))

    out = get(api)

    error = failed(out, "Anthropic API error 502 for shop after 3 attempts",
                   'a proxy answered 502 with an HTML page ("502 Bad Gateway"), not the Messages API')
    assert "<" not in error and "nginx" not in error  # the page's title, not its markup
    assert len(api.requests) == ATTEMPTS and retry_counts(api) == ["0", "1", "2"] and api.remaining == 1
    nothing_cached(sync_redis, cache_dir)

    cached(get(api), spec_file, sync_redis, cache_dir)


# -- not retried ------------------------------------------------------------------------------------
@pytest.mark.parametrize("verbosity", [[], ["-vv"]], ids=["quiet", "debug-log"])
@pytest.mark.e2e
@pytest.mark.slow
def test_a_rejected_key_401_says_check_the_key_and_never_shows_it(verbosity, get, spec_file, sync_redis, cache_dir):
    # the server expects another key, and echoes the one it got in its 401 body, like a careless gateway
    with MessagesAPI(api_key="the-key-the-api-expects", echo_rejected=True) as server:
        server.script(message(IR_JSON))

        out = get(server, *verbosity)

        error = failed(out, "Anthropic API error 401 for shop", "the API refused the key (401): check ANTHROPIC_API_KEY",
                       "gateway rejected credential ***", verbose=bool(verbosity))
        assert "attempt" not in error  # not retried, and not said to be
        # the key really went out, and really came back in the body (so the scrub is what hid it)
        assert server.received == 1 and server.rejected[0]["authorization"] == f"Bearer {SECRET}"
        assert server.requests == [] and server.remaining == 1
        nothing_cached(sync_redis, cache_dir)

        server.api_key = SECRET  # the key is fixed
        cached(get(server, *verbosity), spec_file, sync_redis, cache_dir)
        assert server.received == 2


@pytest.mark.e2e
@pytest.mark.slow
def test_a_hang_ends_at_the_deadline_and_the_sdk_timeout_follows_it(api, get, spec_file, sync_redis, cache_dir):
    api.script(hang(), message(IR_JSON))

    out = get(api, timeout="2")  # the request hangs for a day: that the command ends at all (run_cli waits 120 s)

    failed(out, "anthropic generator did not finish shop within 2s (IR_GENERATE_TIMEOUT); nothing was cached")
    assert len(api.requests) == 1 and api.remaining == 1  # the hung request was never retried into success
    # the SDK's own per-request (read) timeout is the deadline, not its 600 s default
    assert float(api.headers[0]["x-stainless-read-timeout"]) == 2.0
    nothing_cached(sync_redis, cache_dir)

    cached(get(api, timeout="2"), spec_file, sync_redis, cache_dir)
    assert len(api.requests) == 2


# -- a 200, but no usable answer: one repair turn, then reported ---------------------------------------
def _repaired(server: MessagesAPI, words: str) -> None:
    """Exactly two requests: the first, and the repair turn that quotes the problem."""
    assert len(server.requests) == 2 and retry_counts(server) == ["0", "0"]
    first, second = server.requests
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    assert second["messages"][0] == first["messages"][0]
    assert words in second["messages"][2]["content"]


@pytest.mark.e2e
@pytest.mark.slow
def test_a_refusal_is_reported_as_a_refusal(api, get, spec_file, sync_redis, cache_dir):
    api.script(refusal("I can't help with that."), refusal("I can't help with that."), message(IR_JSON))

    out = get(api)

    failed(out, "Anthropic generation for shop failed after a repair turn",
           "the model refused to answer (stop_reason refusal)")
    _repaired(api, "ApplicationIR JSON")
    assert api.remaining == 1
    nothing_cached(sync_redis, cache_dir)

    cached(get(api), spec_file, sync_redis, cache_dir)


@pytest.mark.e2e
@pytest.mark.slow
def test_an_answer_cut_off_at_max_tokens_says_how_to_fix_it(api, get, spec_file, sync_redis, cache_dir):
    # the second cut-off is valid JSON of the right shape so far: still not trusted
    api.script(truncated(IR_JSON[:80]), truncated(json.dumps({"name": "Shop API"})), message(IR_JSON))

    out = get(api, IR_MAX_TOKENS="4000")

    failed(out, "Anthropic generation for shop failed after a repair turn",
           "the answer was cut off at max_tokens (4000): raise IR_MAX_TOKENS or shorten the spec")
    _repaired(api, "cut off")
    assert [r["max_tokens"] for r in api.requests] == [4000, 4000]  # IR_MAX_TOKENS reached the request
    nothing_cached(sync_redis, cache_dir)

    cached(get(api, IR_MAX_TOKENS="4000"), spec_file, sync_redis, cache_dir)


@pytest.mark.e2e
@pytest.mark.slow
def test_an_answer_that_is_not_json_is_reported_as_not_json(api, get, spec_file, sync_redis, cache_dir):
    api.script(message(NOT_JSON), message(NOT_JSON), message(IR_JSON))

    out = get(api)

    failed(out, "Anthropic generation for shop failed after a repair turn", "the answer was not JSON",
           "Invalid JSON")
    _repaired(api, "not a valid ApplicationIR")
    nothing_cached(sync_redis, cache_dir)

    cached(get(api), spec_file, sync_redis, cache_dir)


@pytest.mark.e2e
@pytest.mark.slow
def test_json_that_is_not_an_application_ir_says_where(api, get, spec_file, sync_redis, cache_dir):
    api.script(message(BAD_ENUM), message(BAD_ENUM), message(IR_JSON))

    out = get(api)

    error = failed(out, "Anthropic generation for shop failed after a repair turn",
                   "the answer did not match the ApplicationIR schema",
                   "domain_model.entities.0.attributes.1.data_type")
    assert "not JSON" not in error
    _repaired(api, "data_type")
    nothing_cached(sync_redis, cache_dir)

    cached(get(api), spec_file, sync_redis, cache_dir)


# -- said once ----------------------------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.slow
def test_the_failure_is_said_once(api, get):
    """The cache logs the failure at ERROR and `get` prints it as its error line: once on stderr."""
    api.script(*(overloaded() for _ in range(ATTEMPTS)))

    out = get(api)

    failed(out, "overloaded")
    assert len(out.stderr.splitlines()) == 1, out.stderr


# -- in process, through IRCache ----------------------------------------------------------------------
async def test_in_process_a_rejected_key_is_one_scrubbed_line_and_nothing_is_cached(redis_url, cache_dir, sync_redis):
    with MessagesAPI(api_key="the-key-the-api-expects", echo_rejected=True) as server:
        gen = AnthropicGenerator(api_key=SECRET, base_url=server.base_url)
        async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=gen) as cache:
            with pytest.raises(GenerationError) as exc:
                await cache.get_application_ir(SPEC, "specs/shop.md")
            text = str(exc.value)
            assert "\n" not in text and SECRET not in text
            assert "the API refused the key (401): check ANTHROPIC_API_KEY" in text
            assert "gateway rejected credential ***" in text
            assert server.rejected[0]["authorization"] == f"Bearer {SECRET}"
            nothing_cached(sync_redis, cache_dir)

            server.api_key = SECRET
            server.script(message(IR_JSON))
            found = await cache.lookup(SPEC, "specs/shop.md")
    assert found.tier == "generator" and found.ir == ApplicationIR.model_validate(IR)
    assert sync_redis.exists(f"{PREFIX}:{found.cache_key}") and (cache_dir / f"{found.cache_key}.json").is_file()


async def test_the_generator_takes_its_deadline_and_request_timeout_from_ir_generate_timeout(monkeypatch):
    def made(timeout: str) -> AnthropicGenerator:
        gen = Settings.from_env({"ANTHROPIC_API_KEY": SECRET, "IR_GENERATE_TIMEOUT": timeout}).make_generator()
        assert isinstance(gen, AnthropicGenerator)
        return gen

    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    with MessagesAPI(api_key=SECRET) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)  # the SDK's own variable
        server.script(message(IR_JSON))
        gen = made("7")
        try:
            assert gen.deadline == 7 and gen.timeout == 7
            await gen.generate(SPEC, "shop")
        finally:
            await gen.aclose()
        assert float(server.headers[0]["x-stainless-read-timeout"]) == 7.0

    gen = made("0")  # no deadline: the SDK's own default per request
    try:
        assert gen.deadline is None and gen.timeout == 600
    finally:
        await gen.aclose()
