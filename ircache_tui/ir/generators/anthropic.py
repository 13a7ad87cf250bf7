"""ApplicationIR from Claude, through the official `anthropic` SDK.

Structured output (`output_config.format` = the IR's JSON schema) asks the
model for JSON of the right shape; the answer is still validated against the
pydantic model, because nothing invalid may ever reach the cache. A cut-off
(`max_tokens`), a refusal or an invalid answer gets one repair turn, then a
GenerationError that says which.

Every failure is a GenerationError of one line that says what happened in
words (`the Messages API rate-limited us (429) after 3 attempts: ...`, `the
API refused the key (401): check ANTHROPIC_API_KEY`, `a proxy answered 502
with an HTML page ...`), never a traceback. The SDK retries 408, 409, 429
and 5xx answers and connection failures itself (`max_retries`); the message
says how many attempts were made.

Every GenerationError text goes through `redact.scrub`, and the API key (or
auth token) is registered with it when the generator is built: a gateway that
echoes the request's `x-api-key` / `Authorization` header in its error body
must not put the key on stderr or in the dashboard's log.

Configuration is by argument only: `model` (default claude-sonnet-5-5),
`max_tokens` (default 16000) and `deadline` (for the whole generation, retries
and repair turn included, default 300 s, 0 = none); this class reads no
environment variable. `Settings.make_generator` passes IR_MODEL, IR_MAX_TOKENS
and IR_GENERATE_TIMEOUT (ir/ sits below the settings, which read them). The
SDK's per-request timeout follows the deadline unless given.

Prompt caching: every request starts with the same prefix, the system prompt
and the IR's schema, marked with a `cache_control` breakpoint (5-minute TTL;
`cache_ttl="1h"` for requests that wait longer between them, as a batch's
do), so the second generation onwards reads it at a tenth of the input price.
A breakpoint on a prefix shorter than the model's minimum cacheable length
costs nothing and caches nothing: the API then reports no cache write and no
read, and the generator says so once.

Incremental regeneration (`regenerate_with_usage`, the optional method of
base.RegeneratesFromPatch): the same system block, then a user turn with the
previous IR, the spec's unified diff, the new spec and the instructions, and
structured output in the JSON Patch wire format of ir/patch.py. The answer's
operations are applied to the previous IR and the result validated; there is
no repair turn (the cache's fallback is a full generation), so a refusal, a
cut-off or a patch that does not apply is an IncrementalFailed at once.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Literal

import anthropic
from anthropic.types import MessageParam, OutputConfigParam, TextBlockParam
from pydantic import ValidationError

from ... import redact
from .. import patch
from ..model import ApplicationIR
from ..usage import TOKEN_FIELDS, Usage, sane_tokens
from .base import IncrementalFailed, fingerprint_of
from .said import failure as _failure
from .said import one_line as _line

if TYPE_CHECKING:
    from .anthropic_batches import AnthropicBatches

log = logging.getLogger("ircache")

DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_MAX_TOKENS = 16_000
DEFAULT_DEADLINE = 300.0  # as settings.DEFAULT_GENERATE_TIMEOUT (ir/ may not import settings)
NO_DEADLINE_TIMEOUT = 600.0  # the SDK's own per-request default, when there is no deadline

SYSTEM_PROMPT = """You turn a markdown software specification into an ApplicationIR: \
a JSON document describing the application's entities (with attributes and \
relationships), HTTP endpoints, business flows, validation rules and database. \
Use only what the spec states or clearly implies. Answer with the JSON document only."""

#: how each block of a patch request begins (the tests' oracle finds the previous IR and the spec by them)
PREVIOUS_IR_HEAD = "The previous ApplicationIR of spec"
DIFF_HEAD = "The unified diff of the spec from that version to the new one"
NEW_SPEC_HEAD = "The new spec in full"


def ir_json_schema() -> dict[str, Any]:
    """The ApplicationIR JSON schema, tightened for structured output."""
    schema = copy.deepcopy(ApplicationIR.model_json_schema())

    def tighten(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("title", None)
            node.pop("default", None)
            if node.get("type") == "object":
                node["additionalProperties"] = False
            for value in node.values():
                tighten(value)
        elif isinstance(node, list):
            for value in node:
                tighten(value)

    tighten(schema)
    return schema


def _text_of(message: Any) -> str:
    content = getattr(message, "content", None) or []
    return "".join(
        text for block in content
        if getattr(block, "type", None) == "text" and isinstance(text := getattr(block, "text", ""), str)
    )


def _short(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "document"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


class AnthropicGenerator:
    """Generates an ApplicationIR with Claude, configured by its arguments.

    An argument not given is its documented default (DEFAULT_MODEL, DEFAULT_MAX_TOKENS,
    DEFAULT_DEADLINE), never an environment variable: `Settings.make_generator` is what
    applies IR_MODEL, IR_MAX_TOKENS and IR_GENERATE_TIMEOUT. The SDK itself reads
    `ANTHROPIC_API_KEY` (or `ANTHROPIC_AUTH_TOKEN`) and `ANTHROPIC_BASE_URL` when
    `api_key` / `base_url` are not given.

    `deadline` bounds the whole generation (every request, retry and the repair
    turn), 0 meaning none; `timeout` is the SDK's per-request timeout, by default
    the deadline (a request never outlives it). `deadline_name` and `max_tokens_name`:
    what the caller calls those two in error messages (the settings pass their
    variables' names), by default nothing and "max_tokens".
    """

    name = "anthropic"

    def __init__(
        self,
        *,
        model: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int = 2,
        deadline: float | None = None,
        max_tokens: int | None = None,
        client: anthropic.AsyncAnthropic | None = None,
        deadline_name: str | None = None,
        max_tokens_name: str = "max_tokens",
        cache_ttl: Literal["5m", "1h"] = "5m",
    ) -> None:
        self.model = model or DEFAULT_MODEL
        #: seconds for the whole generation; None = no deadline
        self.deadline: float | None = (DEFAULT_DEADLINE if deadline is None else deadline) or None
        self._deadline_source = f" ({deadline_name})" if deadline_name else ""
        self.max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
        self._max_tokens_hint = f"raise {max_tokens_name} or shorten the spec"
        if timeout is None:
            timeout = self.deadline or NO_DEADLINE_TIMEOUT
        self.timeout = timeout
        self.max_retries = max_retries
        self._client = client or anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        # the credential the client will send, whether given here or read from the environment
        redact.register(api_key)
        redact.register(getattr(self._client, "api_key", None))
        redact.register(getattr(self._client, "auth_token", None))
        self._credential_var = (
            "ANTHROPIC_API_KEY" if api_key or getattr(self._client, "api_key", None) else "ANTHROPIC_AUTH_TOKEN"
        )
        self._schema = ir_json_schema()
        #: the stable prefix of every request, cached by the API (see the module's docstring)
        self.cache_ttl = cache_ttl
        self._system = SYSTEM_PROMPT + "\n\nThe ApplicationIR JSON schema:\n" + json.dumps(
            self._schema, separators=(",", ":"), sort_keys=True)
        self._said_uncached = False
        # what shapes its answers: the model, the system prompt and the output schema (max_tokens
        # and the deadline only bound them)
        self.fingerprint = fingerprint_of(self.name, self.model, self._system,
                                          json.dumps(self._schema, separators=(",", ":"), sort_keys=True))

    async def aclose(self) -> None:
        await self._client.close()

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        return self._client

    def batches(self) -> AnthropicBatches:
        """Its Message Batches (anthropic_batches.py): what `warm --batch` submits through."""
        from .anthropic_batches import AnthropicBatches  # it builds on this module

        return AnthropicBatches(self)

    async def generate(self, spec_markdown: str, spec_name: str) -> ApplicationIR:
        return (await self.generate_with_usage(spec_markdown, spec_name))[0]

    async def generate_with_usage(self, spec_markdown: str, spec_name: str) -> tuple[ApplicationIR, Usage]:
        """The IR and the tokens every request of it used (the repair turn included)."""
        tally: dict[str, object] = dict.fromkeys(TOKEN_FIELDS)
        ir = await self._guarded(spec_name, self._generate(spec_markdown, spec_name, tally))
        self._check_cached(tally)
        return ir, Usage.model_validate({**tally, "mode": "full"})

    async def regenerate_with_usage(
        self, previous: ApplicationIR, spec_diff: str, spec_markdown: str, spec_name: str,
    ) -> tuple[ApplicationIR, Usage]:
        """The new IR as the previous one with the JSON Patch the model answers (ir/patch.py), and the
        tokens it used. One request, no repair turn: whatever goes wrong is an IncrementalFailed (or a
        GenerationError for the transport), and the cache's fallback is one full generation."""
        tally: dict[str, object] = dict.fromkeys(TOKEN_FIELDS)
        try:
            ir = await self._guarded(spec_name, self._patch(previous, spec_diff, spec_markdown, spec_name, tally))
        except IncrementalFailed as exc:
            raise IncrementalFailed(str(exc), Usage.model_validate({**tally, "mode": "incremental"})) from None
        return ir, Usage.model_validate({**tally, "mode": "incremental"})

    async def _patch(self, previous: ApplicationIR, spec_diff: str, spec_markdown: str, spec_name: str,
                     tally: dict[str, object]) -> ApplicationIR:
        params = self.patch_request_params(previous, spec_diff, spec_markdown, spec_name)
        message = await self._ask(params["messages"], patch.PATCH_SCHEMA, tally)
        return patched(previous, message)

    async def _ask(self, messages: list[MessageParam], schema: dict[str, Any], tally: dict[str, object]) -> Any:
        """One request with the cached system block and structured output; the Message, counted."""
        try:
            message = await self._client.messages.create(**self._params(messages, self.cache_ttl, schema))
        except json.JSONDecodeError:  # a 200 that says JSON and is not
            raise _NotAMessage("a body that is not JSON") from None
        if getattr(message, "type", None) != "message":  # a 200 from something else than the API
            raise _NotAMessage(_describe(message))
        _count(tally, getattr(message, "usage", None))
        return message

    async def _guarded(self, spec_name: str, work: Coroutine[Any, Any, ApplicationIR]) -> ApplicationIR:
        """`work` within the deadline, every failure of the SDK said as one GenerationError."""
        try:
            async with asyncio.timeout(self.deadline):
                return await work
        except TimeoutError:
            raise _failure(
                f"Anthropic generation for {spec_name} did not finish within its {self.deadline:g}s deadline"
                f"{self._deadline_source}; nothing was returned"
            ) from None
        except anthropic.APIStatusError as exc:
            raise _failure(
                f"Anthropic API error {exc.status_code} for {spec_name}{_after(exc)}: {self._status_problem(exc)}"
            ) from None
        except anthropic.APITimeoutError as exc:
            raise _failure(
                f"Anthropic API timed out for {spec_name}{_after(exc)}: no answer within {self.timeout:g}s "
                f"(the per-request timeout)"
            ) from None
        except anthropic.APIConnectionError as exc:
            raise _failure(
                f"Anthropic API unreachable for {spec_name}{_after(exc)}: nothing answers at {_origin(exc)} "
                f"({_cause(exc)}); check ANTHROPIC_BASE_URL and the network"
            ) from None
        except _NotAMessage as exc:
            raise _failure(
                f"Anthropic API answer for {spec_name} is {exc}, not a Message: check ANTHROPIC_BASE_URL and any proxy"
            ) from None
        except anthropic.APIError as exc:  # e.g. APIResponseValidationError (strict response validation)
            raise _failure(
                f"Anthropic generation for {spec_name} failed: the Messages API answered with something that is "
                f"not a Message ({exc.__class__.__name__}: {_line(exc.message)})"
            ) from None
        except anthropic.AnthropicError as exc:  # the SDK's own (no credential, bad configuration)
            raise _failure(
                f"Anthropic generation for {spec_name} failed: {exc.__class__.__name__}: {_line(str(exc))}"
            ) from None

    def _check_cached(self, tally: dict[str, object]) -> None:
        """Say once when the API cached nothing of the marked prefix: it is below the model's minimum."""
        reported = tally.get("cache_creation_input_tokens"), tally.get("cache_read_input_tokens")
        if reported == (0, 0) and not self._said_uncached:
            self._said_uncached = True
            log.info("Prompt caching: %s cached none of the %d-character system prompt and schema (shorter "
                     "than the model's minimum cacheable length): each request pays it in full", self.model,
                     len(self._system))

    def request_params(self, spec_markdown: str, spec_name: str, *,
                       cache_ttl: Literal["5m", "1h"] | None = None) -> dict[str, Any]:
        """The first request of a generation, as `messages.create` takes it (and a batch request's
        `params`): the cached system prompt and schema, the spec, the structured output format."""
        return self._params([{"role": "user", "content": f"Spec `{spec_name}`:\n\n{spec_markdown}"}],
                            cache_ttl or self.cache_ttl)

    def _params(self, messages: list[MessageParam], cache_ttl: str,
                schema: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"model": self.model, "max_tokens": self.max_tokens,
                "system": [{"type": "text", "text": self._system,
                            "cache_control": {"type": "ephemeral", "ttl": cache_ttl}}],
                "messages": messages,
                "output_config": OutputConfigParam(format={"type": "json_schema",
                                                           "schema": self._schema if schema is None else schema})}

    def patch_request_params(self, previous: ApplicationIR, spec_diff: str, spec_markdown: str, spec_name: str, *,
                             cache_ttl: Literal["5m", "1h"] | None = None) -> dict[str, Any]:
        """A patch request (regenerate_with_usage's, and a batch's), as `messages.create` takes it."""
        return self._params(patch_messages(previous, spec_diff, spec_markdown, spec_name), cache_ttl or self.cache_ttl,
                            patch.PATCH_SCHEMA)

    def read_patch_answer(self, previous: ApplicationIR, message: Any) -> tuple[ApplicationIR | None, str, Usage]:
        """A patch request's answer (a batch result's Message) read as a direct one is (`patched`): the
        new IR, or None and why not; and the tokens it used (mode "incremental")."""
        tally: dict[str, object] = dict.fromkeys(TOKEN_FIELDS)
        _count(tally, getattr(message, "usage", None))
        usage = Usage.model_validate({**tally, "mode": "incremental"})
        try:
            return patched(previous, message), "", usage
        except IncrementalFailed as exc:
            return None, str(exc), usage

    def read_answer(self, message: Any) -> tuple[ApplicationIR | None, str, Usage]:
        """One answer (a batch result's Message) read exactly as a direct answer is: its IR if it is
        a valid one, else None and what is wrong; and the tokens it used."""
        tally: dict[str, object] = dict.fromkeys(TOKEN_FIELDS)
        _count(tally, getattr(message, "usage", None))
        ir, problem, _repair = self._judge(message, _text_of(message))
        return ir, problem, Usage.model_validate({**tally, "mode": "full"})

    def _judge(self, message: Any, text: str) -> tuple[ApplicationIR | None, str, str]:
        """(the IR, "", "") for a valid answer, else (None, what is wrong, the repair turn's words)."""
        stop_reason = getattr(message, "stop_reason", None)
        if stop_reason == "refusal":
            return None, "the model refused to answer (stop_reason refusal)", \
                "Please produce the ApplicationIR JSON for this specification."
        compact = "Your answer was cut off. Answer again with a more compact ApplicationIR: shorter descriptions, no repetition."
        if stop_reason == "max_tokens":
            return None, f"the answer was cut off at max_tokens ({self.max_tokens}): {self._max_tokens_hint}", compact
        if stop_reason == "model_context_window_exceeded":
            return None, ("the answer was cut off by the model's context window (stop_reason "
                          "model_context_window_exceeded): shorten the spec"), compact
        try:
            return ApplicationIR.model_validate_json(text), "", ""
        except ValidationError as exc:
            if not text.strip():
                problem = f"the answer was empty (stop_reason {stop_reason}), not an ApplicationIR"
            elif any(e.get("type") == "json_invalid" for e in exc.errors()):
                problem = f"the answer was not JSON (invalid ApplicationIR: {_short(exc)})"
            else:
                problem = f"the answer did not match the ApplicationIR schema (invalid ApplicationIR: {_short(exc)})"
            return None, problem, f"That JSON is not a valid ApplicationIR: {_short(exc)}. Answer again with a corrected document."

    async def _generate(self, spec_markdown: str, spec_name: str, tally: dict[str, object]) -> ApplicationIR:
        # the first request is a batch request's params (request_params): the same bytes, the same cache
        messages: list[MessageParam] = self.request_params(spec_markdown, spec_name)["messages"]
        problem = ""
        for attempt in range(2):  # the first answer, then one repair
            message = await self._ask(messages, self._schema, tally)
            text = _text_of(message)
            ir, problem, repair = self._judge(message, text)
            if ir is not None:
                return ir
            if attempt == 0:
                messages = messages + [
                    {"role": "assistant", "content": text or "(no answer)"},
                    {"role": "user", "content": repair},
                ]
        raise _failure(f"Anthropic generation for {spec_name} failed after a repair turn: {problem}")

    def _status_problem(self, exc: anthropic.APIStatusError) -> str:
        """What an HTTP error answer means, in words (the status and attempts are said before it)."""
        status = exc.status_code
        page = _html_page(exc)
        if page is not None:
            title = f' ("{page}")' if page else ""
            return f"a proxy answered {status} with an HTML page{title}, not the Messages API"
        body = exc.body
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            first = _line(body if isinstance(body, str) else exc.message)
            return f"the server answered {status} with something that is not a Messages API error: {first}"
        kind = error.get("type") or "error"
        said = _api_message(exc)
        if status == 401:
            return f"the API refused the key (401): check {self._credential_var} ({said})"
        if status == 403:
            return f"the API refused access with this key (403 {kind}): {said}"
        if status == 429:
            wait = _retry_after(exc)
            wait = f", and asks to wait {wait}" if wait else ""
            return f"the Messages API rate-limited us (429){wait}: {said}"
        if status == 529:
            return f"the Messages API is overloaded (529): {said}"
        if status >= 500:
            return f"the Messages API failed ({status} {kind}): {said}"
        if status == 404 and "model" in said.lower():
            return f"the Messages API does not know the model {self.model!r} (404): check IR_MODEL ({said})"
        if status == 413:
            return f"the request is too large for the Messages API (413): shorten the spec ({said})"
        return f"the Messages API rejected the request ({status} {kind}): {said}"


def patch_messages(previous: ApplicationIR, spec_diff: str, spec_markdown: str, spec_name: str) -> list[MessageParam]:
    """The user turn of a patch request (with the full request's system block and PATCH_SCHEMA as
    structured output: a batch's request for it takes these same parameters)."""
    # The system block stays the full request's, byte for byte, so both read the same prompt-cache
    # prefix. The previous IR carries no breakpoint of its own: one patch request has no second
    # reader of it, and a write would only pay the 1.25x premium.
    previous_json = json.dumps(patch.ir_document(previous), separators=(",", ":"))
    content: list[TextBlockParam] = [
        {"type": "text", "text": f"{PREVIOUS_IR_HEAD} `{spec_name}`:\n\n{previous_json}"},
        {"type": "text", "text": f"{DIFF_HEAD}:\n\n{spec_diff}"},
        {"type": "text", "text": f"{NEW_SPEC_HEAD}:\n\n{spec_markdown}"},
        {"type": "text", "text": patch.PATCH_INSTRUCTIONS},
    ]
    return [{"role": "user", "content": content}]


def patched(previous: ApplicationIR, message: Any) -> ApplicationIR:
    """The new IR from a patch request's answer (a Message, or a batch's result message), or
    IncrementalFailed saying why not: a refusal, a cut-off, a patch that does not apply or an
    invalid result (no repair turn: the fallback is a full generation)."""
    stop_reason = getattr(message, "stop_reason", None)
    if stop_reason == "refusal":
        raise IncrementalFailed("the model refused to answer (stop_reason refusal)")
    if stop_reason in ("max_tokens", "model_context_window_exceeded"):
        raise IncrementalFailed(f"the answer was cut off (stop_reason {stop_reason})")
    try:
        return patch.apply(previous, patch.rfc6902(_text_of(message)))
    except patch.PatchFailed as exc:
        raise IncrementalFailed(_line(exc.reason, 400)) from None


class _NotAMessage(Exception):
    """A 200 answer that is not a Message (a login page, another service): what it was, in words."""


def _describe(answer: object) -> str:
    if isinstance(answer, str):
        if answer.lstrip().lower().startswith(("<!doctype html", "<html")):
            found = _TITLE.search(answer)
            return f'an HTML page ("{_line(found.group(1), 80)}")' if found else "an HTML page"
        return f"plain text ({_line(answer, 80)})" if answer.strip() else "an empty body"
    return 'a JSON document without "type": "message"'


def _api_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    found = body.get("error")
    error = found if isinstance(found, dict) else {}
    return _line(error.get("message") or exc.message)


def _attempts(exc: anthropic.APIError) -> int:
    """How many requests were sent: the SDK numbers its retries in `x-stainless-retry-count`."""
    request = getattr(exc, "request", None)
    try:
        return int(request.headers.get("x-stainless-retry-count", "0")) + 1  # type: ignore[union-attr]
    except (AttributeError, TypeError, ValueError):
        return 1


def _after(exc: anthropic.APIError) -> str:
    """` after 3 attempts` when the SDK retried (or may have: a retryable failure), else ``."""
    n = _attempts(exc)
    status = getattr(exc, "status_code", None)
    retryable = status is None or status in (408, 409, 429) or status >= 500
    if n == 1 and not retryable:
        return ""
    return f" after {n} attempt{'s' if n != 1 else ''}"


def _retry_after(exc: anthropic.APIStatusError) -> str:
    value = (exc.response.headers.get("retry-after") or "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return ""
    return f"{seconds:g}s" if seconds > 0 else ""


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _html_page(exc: anthropic.APIStatusError) -> str | None:
    """The title of an HTML error page (a proxy's, a gateway's), "" if it has none; None if not HTML."""
    content_type = exc.response.headers.get("content-type", "").lower()
    text = exc.body if isinstance(exc.body, str) else ""
    if "html" not in content_type and not text.lstrip().lower().startswith(("<!doctype html", "<html")):
        return None
    found = _TITLE.search(text)
    return _line(found.group(1), 80) if found else ""


def _origin(exc: anthropic.APIError) -> str:
    """scheme://host:port of the request, without any userinfo or path."""
    try:
        url = exc.request.url
        port = f":{url.port}" if url.port else ""
        return f"{url.scheme}://{url.host}{port}"
    except AttributeError:
        return "ANTHROPIC_BASE_URL"


def _cause(exc: BaseException) -> str:
    """The innermost cause's class and first line, e.g. `ConnectError: All connection attempts failed`."""
    inner, seen = exc, {id(exc)}
    while inner.__cause__ is not None and id(inner.__cause__) not in seen:
        inner = inner.__cause__
        seen.add(id(inner))
    if inner is exc:
        return exc.__class__.__name__
    said = _line(str(inner), 120)
    return f"{inner.__class__.__name__}: {said}" if said else inner.__class__.__name__


def _reported(usage: Any) -> dict[str, object]:
    """One answer's counts under our names: the writes by TTL and the thinking tokens are nested."""
    creation = getattr(usage, "cache_creation", None)
    details = getattr(usage, "output_tokens_details", None)
    counts = {name: getattr(usage, name, None) for name in TOKEN_FIELDS}
    counts["cache_creation_5m_input_tokens"] = getattr(creation, "ephemeral_5m_input_tokens", None)
    counts["cache_creation_1h_input_tokens"] = getattr(creation, "ephemeral_1h_input_tokens", None)
    counts["thinking_tokens"] = getattr(details, "thinking_tokens", None)
    return counts


def _count(tally: dict[str, object], usage: Any) -> None:
    """Add one answer's `usage` to the generation's tally (fields the API leaves out stay None). A
    count that is not plausible (negative, fractional, absurd: usage.sane_tokens) makes that field
    of the whole generation unknown, never a wrong sum; so do answers of different service tiers."""
    for name, value in _reported(usage).items():
        if value is None or tally.get(name, 0) == -1:
            continue
        count = sane_tokens(value)
        before = tally[name]
        tally[name] = -1 if count is None else (before if isinstance(before, int) else 0) + count  # -1: unknown
    tier = getattr(usage, "service_tier", None)
    if tier is not None:
        tally["service_tier"] = tier if tally.get("service_tier") in (None, tier) else "mixed"  # priced: unknown
