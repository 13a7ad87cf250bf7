"""AnthropicGenerator against the real `anthropic` SDK, talking HTTP to a loopback fake Messages API.

Nothing is mocked: the SDK builds, sends, retries and parses real requests;
tests/support/messages_api.py answers them from a script and records what
it received.
"""

from __future__ import annotations

import json
import time

import pytest

from ircache_tui.cache.ircache import IRCache
from ircache_tui.cache.keys import cache_key
from ircache_tui.ir.envelope import decode_entry
from ircache_tui.ir.generators import GenerationError
from ircache_tui.ir.generators.anthropic import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODEL,
    SYSTEM_PROMPT,
    AnthropicGenerator,
    ir_json_schema,
)
from ircache_tui.ir.model import ApplicationIR
from ircache_tui.settings import Settings
from tests.support import entry_keys
from tests.support.generators import SPEC
from tests.support.messages_api import (
    MessagesAPI,
    Reply,
    api_error,
    error,
    message,
    overloaded,
    refusal,
    truncated,
)

API_KEY = "test-key"
MODEL = "claude-test-model"

IR = {
    "name": "Shop API",
    "description": "Sells things.",
    "version": "1.0.0",
    "domain_model": {
        "entities": [
            {
                "name": "Product",
                "description": "",
                "attributes": [
                    {"name": "id", "data_type": "uuid", "is_primary_key": True, "is_nullable": False, "is_unique": True, "description": ""},
                    {"name": "price", "data_type": "float", "is_primary_key": False, "is_nullable": False, "is_unique": False, "description": ""},
                ],
                "relationships": [],
            }
        ]
    },
    "api_model": {
        "endpoints": [
            {"method": "GET", "path": "/products", "summary": "List products", "auth_required": False, "parameters": []}
        ]
    },
    "behavior_model": {"flows": []},
    "validation_model": {
        "rules": [
            {"entity": "Product", "attribute": "price", "type": "range", "condition": "price > 0", "error_message": "price must be greater than 0"}
        ]
    },
    "infrastructure_model": {"database": {"type": "postgresql", "name": "shop"}},
}
IR_JSON = json.dumps(IR)
# Valid JSON, invalid ApplicationIR: "decimal" is not a DataType.
BAD_ENUM = IR_JSON.replace('"data_type": "float"', '"data_type": "decimal"')
NOT_JSON = "Here is the IR you asked for: {name: Shop API"


@pytest.fixture
def api():
    with MessagesAPI(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def make_generator(api):
    made: list[AnthropicGenerator] = []

    def make(**kw) -> AnthropicGenerator:
        if "base_url" not in kw:
            kw["base_url"] = api.base_url
        kw.setdefault("api_key", API_KEY)
        kw.setdefault("model", MODEL)
        kw.setdefault("max_retries", 2)
        kw.setdefault("deadline", 30.0)
        gen = AnthropicGenerator(**kw)
        made.append(gen)
        return gen

    yield make
    for gen in made:
        await gen.aclose()


def _roles(request: dict) -> list[str]:
    return [m["role"] for m in request["messages"]]


def _one_line(exc: pytest.ExceptionInfo[GenerationError]) -> str:
    text = str(exc.value)
    assert text and "\n" not in text, f"not a one-line message: {text!r}"
    return text


# -- success -------------------------------------------------------------------
async def test_valid_answer_is_returned_and_request_is_a_structured_output_call(api, make_generator):
    api.script(message(IR_JSON))
    gen = make_generator(max_tokens=12_345)

    ir = await gen.generate(SPEC, "shop")

    assert isinstance(ir, ApplicationIR)
    assert ir == ApplicationIR.model_validate(IR)
    assert ir.summary() == {"entities": 1, "endpoints": 1, "flows": 0, "rules": 1}
    assert len(api.requests) == 1 and api.paths == ["/v1/messages"]
    sent = api.last_request
    assert sent["model"] == MODEL
    assert sent["max_tokens"] == 12_345
    # the stable prefix first (the system prompt and the schema), marked for prompt caching
    [system] = sent["system"]
    assert system["text"].startswith(SYSTEM_PROMPT) and json.dumps(ir_json_schema(), separators=(",", ":"),
                                                                   sort_keys=True) in system["text"]
    assert system["cache_control"] == {"type": "ephemeral", "ttl": "5m"}
    assert sent["output_config"]["format"]["type"] == "json_schema"
    schema = sent["output_config"]["format"]["schema"]
    assert schema == ir_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(ApplicationIR.model_fields)
    assert _roles(sent) == ["user"]
    assert "shop" in sent["messages"][0]["content"] and SPEC in sent["messages"][0]["content"]
    # the SDK authenticated with the key it was given (this SDK version sends it as a Bearer token)
    headers = api.headers[-1]
    assert headers.get("x-api-key") == API_KEY or headers.get("authorization") == f"Bearer {API_KEY}"
    assert api.rejected == [] and api.unscripted == 0


async def test_schema_is_tightened_for_structured_output():
    schema = ir_json_schema()

    def schemas(node):
        if isinstance(node, dict):
            yield node
            for value in node.values():
                yield from schemas(value)
        elif isinstance(node, list):
            for value in node:
                yield from schemas(value)

    found = [n for n in schemas(schema) if n.get("type") == "object"]
    assert len(found) >= 10  # ApplicationIR and every nested model
    assert all(o["additionalProperties"] is False for o in found)
    assert not [n for n in schemas(schema) if "title" in n or "default" in n]
    assert ApplicationIR.model_json_schema() != schema  # the model's own schema is untouched


# -- retries inside the SDK ------------------------------------------------------
async def test_overloaded_529_is_retried_by_the_sdk(api, make_generator):
    api.script(overloaded(), message(IR_JSON))
    gen = make_generator(max_retries=2)

    ir = await gen.generate(SPEC, "shop")

    assert ir.name == "Shop API"
    assert len(api.requests) == 2
    assert api.requests[0] == api.requests[1]  # the same request, resent
    assert api.headers[1].get("x-stainless-retry-count") == "1"
    assert api.remaining == 0


@pytest.mark.parametrize(
    ("reply", "status", "words"),
    [(overloaded, 529, "Overloaded"), (api_error, 500, "Internal server error")],
)
async def test_persistent_api_error_beyond_max_retries_is_a_generation_error(api, make_generator, reply, status, words):
    api.script(*(reply() for _ in range(3)), message(IR_JSON))
    gen = make_generator(max_retries=2)

    with pytest.raises(GenerationError) as exc:
        await gen.generate(SPEC, "shop")

    text = _one_line(exc)
    assert str(status) in text and words in text and "shop" in text
    assert len(api.requests) == 3  # the first try and max_retries=2 retries, no more
    assert api.remaining == 1


async def test_unreachable_api_is_a_generation_error(make_generator, api):
    base_url = api.base_url
    api.stop()  # nothing listens there any more
    gen = make_generator(base_url=base_url, max_retries=0)

    with pytest.raises(GenerationError) as exc:
        await gen.generate(SPEC, "shop")

    assert "unreachable" in _one_line(exc)


async def test_rejected_api_key_is_a_generation_error_without_retries(api, make_generator):
    api.script(message(IR_JSON))
    gen = make_generator(api_key="wrong-key", max_retries=2)

    with pytest.raises(GenerationError) as exc:
        await gen.generate(SPEC, "shop")

    text = _one_line(exc)
    assert "401" in text and "invalid API key" in text
    assert len(api.rejected) == 1 and api.requests == [] and api.remaining == 1


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (Reply(200, {}, raw=b"<html><head><title>Sign in</title></head></html>", content_type="text/html"),
         'an HTML page ("Sign in")'),
        (Reply(200, {"status": "ok"}), 'a JSON document without "type": "message"'),
        (Reply(200, {}, raw=b"this is not json"), "a body that is not JSON"),
    ],
    ids=["html-login-page", "other-json", "not-json"],
)
async def test_a_200_that_is_not_a_message_is_a_generation_error_without_a_repair_turn(api, make_generator, reply, words):
    api.script(reply, message(IR_JSON))
    gen = make_generator()

    with pytest.raises(GenerationError) as exc:
        await gen.generate(SPEC, "shop")

    text = _one_line(exc)
    assert f"Anthropic API answer for shop is {words}, not a Message: check ANTHROPIC_BASE_URL" in text
    assert len(api.requests) == 1 and api.remaining == 1  # not the model's fault: no repair turn


async def test_an_unknown_model_404_says_check_ir_model(api, make_generator):
    api.script(error(404, "not_found_error", "model: claude-nope"))
    gen = make_generator(model="claude-nope")

    with pytest.raises(GenerationError) as exc:
        await gen.generate(SPEC, "shop")

    text = _one_line(exc)
    assert "Anthropic API error 404 for shop: the Messages API does not know the model 'claude-nope'" in text
    assert "check IR_MODEL" in text and "attempt" not in text
    assert len(api.requests) == 1


# -- the repair turn -----------------------------------------------------------------
async def test_invalid_json_gets_one_repair_turn(api, make_generator):
    api.script(message(NOT_JSON), message(IR_JSON))
    gen = make_generator()

    ir = await gen.generate(SPEC, "shop")

    assert ir == ApplicationIR.model_validate(IR)
    assert len(api.requests) == 2
    first, second = api.requests
    assert _roles(first) == ["user"]
    assert _roles(second) == ["user", "assistant", "user"]
    assert second["messages"][0] == first["messages"][0]
    assert second["messages"][1]["content"] == NOT_JSON
    assert "not a valid ApplicationIR" in second["messages"][2]["content"]
    # the repair turn is still a structured-output call for the same model
    assert second["model"] == MODEL and second["system"] == first["system"]  # the same cached prefix
    assert second["output_config"] == first["output_config"]


async def test_invalid_twice_is_a_one_line_generation_error(api, make_generator):
    api.script(message(BAD_ENUM), message(BAD_ENUM), message(IR_JSON))
    gen = make_generator()

    with pytest.raises(GenerationError) as exc:
        await gen.generate(SPEC, "shop")

    text = _one_line(exc)
    assert "shop" in text and "repair" in text and "invalid ApplicationIR" in text
    # says where the document is wrong
    assert "domain_model.entities.0.attributes.1.data_type" in text
    assert len(api.requests) == 2 and api.remaining == 1
    assert "data_type" in api.requests[1]["messages"][2]["content"]


async def test_not_json_twice_is_a_generation_error(api, make_generator):
    api.script(message(NOT_JSON), message(NOT_JSON))
    gen = make_generator()

    with pytest.raises(GenerationError) as exc:
        await gen.generate(SPEC, "shop")

    text = _one_line(exc)
    assert "invalid ApplicationIR" in text and "JSON" in text
    assert len(api.requests) == 2


async def test_max_tokens_cut_off_gets_a_repair_turn(api, make_generator):
    cut = IR_JSON[:80]
    api.script(truncated(cut), message(IR_JSON))
    gen = make_generator(max_tokens=500)

    ir = await gen.generate(SPEC, "shop")

    assert ir.name == "Shop API"
    assert len(api.requests) == 2
    second = api.requests[1]
    assert _roles(second) == ["user", "assistant", "user"]
    assert second["messages"][1]["content"] == cut
    assert "cut off" in second["messages"][2]["content"]


async def test_max_tokens_twice_is_a_generation_error_naming_max_tokens(api, make_generator):
    api.script(truncated(IR_JSON[:80]), truncated(IR_JSON[:60]))
    gen = make_generator(max_tokens=500)

    with pytest.raises(GenerationError) as exc:
        await gen.generate(SPEC, "shop")

    text = _one_line(exc)
    assert "max_tokens" in text and "500" in text and "shop" in text
    assert len(api.requests) == 2


async def test_valid_json_cut_off_at_max_tokens_is_not_accepted(api, make_generator):
    # Even a parseable prefix is not trusted when the model was cut off.
    api.script(truncated(json.dumps({"name": "Shop API"})), message(IR_JSON))
    gen = make_generator()

    ir = await gen.generate(SPEC, "shop")

    assert ir.description == "Sells things."
    assert len(api.requests) == 2


async def test_refusal_gets_a_repair_turn(api, make_generator):
    api.script(refusal(""), message(IR_JSON))
    gen = make_generator()

    ir = await gen.generate(SPEC, "shop")

    assert ir == ApplicationIR.model_validate(IR)
    assert len(api.requests) == 2
    second = api.requests[1]
    assert _roles(second) == ["user", "assistant", "user"]
    assert second["messages"][1]["content"].strip()  # never an empty assistant turn
    assert "ApplicationIR" in second["messages"][2]["content"]


async def test_refusal_twice_is_a_generation_error(api, make_generator):
    api.script(refusal("I can't help with that."), refusal("I can't help with that."))
    gen = make_generator()

    with pytest.raises(GenerationError) as exc:
        await gen.generate(SPEC, "shop")

    assert "refused" in _one_line(exc)
    assert len(api.requests) == 2


# -- the outer deadline -----------------------------------------------------------------
async def test_deadline_bounds_the_whole_generation(api, make_generator):
    # the answer would come after a day, the request's own timeout after a minute: only the
    # deadline can end this before the test's timeout, and the error must say it did
    api.script(message(IR_JSON, delay=24 * 3600.0))
    gen = make_generator(deadline=0.5, timeout=60.0)

    with pytest.raises(GenerationError) as exc:
        await gen.generate(SPEC, "shop")

    text = _one_line(exc)
    assert "deadline" in text and "0.5s" in text and "shop" in text
    assert len(api.requests) == 1


async def test_deadline_covers_retries_and_the_repair_turn(api, make_generator):
    # each answer is quick, but together they take longer than the deadline
    api.script(
        message(NOT_JSON, delay=0.7),
        message(IR_JSON, delay=0.7),
    )
    gen = make_generator(deadline=1.0)

    with pytest.raises(GenerationError) as exc:
        await gen.generate(SPEC, "shop")

    assert "deadline" in _one_line(exc)
    assert len(api.requests) == 2


# -- configuration: by argument, from the environment through the settings ---------------------
@pytest.fixture
def sdk_env(api, monkeypatch):
    """The SDK's own variable points it at the loopback server (the settings leave it to the SDK)."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)


async def test_the_settings_configure_the_generator_they_make(api, sdk_env):
    settings = Settings.from_env({"ANTHROPIC_API_KEY": API_KEY, "IR_MODEL": "claude-from-env"})
    api.script(message(IR_JSON, model="claude-from-env"))

    gen = settings.make_generator()
    assert isinstance(gen, AnthropicGenerator)
    try:
        assert gen.model == "claude-from-env"
        ir = await gen.generate(SPEC, "shop")
    finally:
        await gen.aclose()

    assert ir.name == "Shop API"
    assert len(api.requests) == 1  # it reached the loopback server, not api.anthropic.com
    assert api.last_request["model"] == "claude-from-env"
    assert api.rejected == []


async def test_ir_max_tokens_and_ir_generate_timeout_configure_the_settings_generator(api, sdk_env):
    settings = Settings.from_env({"ANTHROPIC_API_KEY": API_KEY, "IR_MAX_TOKENS": "4321", "IR_GENERATE_TIMEOUT": "0.5"})
    api.script(message(IR_JSON, delay=10.0))
    gen = settings.make_generator()
    assert isinstance(gen, AnthropicGenerator)
    try:
        assert gen.max_tokens == 4321 and gen.deadline == 0.5 and gen.timeout == 0.5
        with pytest.raises(GenerationError) as exc:
            await gen.generate(SPEC, "shop")
    finally:
        await gen.aclose()

    assert api.last_request["max_tokens"] == 4321
    assert "within its 0.5s deadline (IR_GENERATE_TIMEOUT)" in _one_line(exc)


async def test_a_generator_built_directly_reads_no_variable(monkeypatch):
    # the settings read these; the class has documented defaults, whatever the environment says
    for name, value in (("IR_MODEL", "claude-from-env"), ("IR_MAX_TOKENS", "4321"), ("IR_GENERATE_TIMEOUT", "7")):
        monkeypatch.setenv(name, value)
    gen = AnthropicGenerator(api_key=API_KEY, base_url="http://127.0.0.1:9")
    try:
        assert (gen.model, gen.max_tokens, gen.deadline, gen.timeout) == (
            DEFAULT_MODEL, DEFAULT_MAX_TOKENS, DEFAULT_DEADLINE, DEFAULT_DEADLINE)
        assert gen._max_tokens_hint == "raise max_tokens or shorten the spec" and gen._deadline_source == ""
    finally:
        await gen.aclose()


async def test_the_model_flag_beats_ir_model(api, sdk_env):
    settings = Settings.from_env({"ANTHROPIC_API_KEY": API_KEY, "IR_MODEL": "claude-from-env"}, model="claude-explicit")
    api.script(message(IR_JSON))
    gen = settings.make_generator()
    assert isinstance(gen, AnthropicGenerator)
    try:
        await gen.generate(SPEC, "shop")
    finally:
        await gen.aclose()

    assert api.last_request["model"] == "claude-explicit"


# -- with the cache -------------------------------------------------------------------------
def _cache_files(cache_dir) -> list:
    return [p for p in cache_dir.rglob("*") if p.is_file()] if cache_dir.exists() else []


async def test_failed_generation_caches_nothing(api, redis_url, cache_dir, sync_redis):
    api.script(message(BAD_ENUM), message(NOT_JSON))
    gen = AnthropicGenerator(base_url=api.base_url, api_key=API_KEY, model=MODEL, max_retries=1)

    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=gen) as cache:
        with pytest.raises(GenerationError) as exc:
            await cache.get_application_ir(SPEC, "specs/shop.md")

    assert "invalid ApplicationIR" in _one_line(exc)
    assert len(api.requests) == 2
    assert _cache_files(cache_dir) == []
    assert sync_redis.keys("*") == []


async def test_successful_generation_is_cached_with_generator_and_model(api, redis_url, cache_dir, sync_redis):
    api.script(overloaded(), message(IR_JSON))
    gen = AnthropicGenerator(base_url=api.base_url, api_key=API_KEY, model=MODEL, max_retries=1)
    key = cache_key(SPEC, "specs/shop.md")

    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=gen) as cache:
        first = await cache.lookup(SPEC, "specs/shop.md")
        again = await cache.lookup(SPEC, "specs/shop.md")
        redis_key = cache.keys.redis_key(key)

    assert first.tier == "generator" and first.cache_key == key
    assert first.ir == ApplicationIR.model_validate(IR)
    assert again.tier == "redis" and again.ir == first.ir
    assert len(api.requests) == 2  # the 529 and its retry; the second lookup never reached the API

    on_disk = (cache_dir / f"{key}.json").read_bytes()
    in_redis = sync_redis.get(redis_key)
    assert in_redis == on_disk
    entry = decode_entry(on_disk, key[-8:])
    assert entry.generator.name == "anthropic"
    assert entry.generator.model == MODEL
    assert entry.spec_name == "shop"
    assert entry.application_ir == ApplicationIR.model_validate(IR)
    assert [k.decode() for k in entry_keys(sync_redis)] == [redis_key]  # and no lock left behind
