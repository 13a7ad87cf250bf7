"""ApplicationIR from Claude, through the official `anthropic` SDK.

Structured output (`output_config.format` = the IR's JSON schema) asks the
model for JSON of the right shape; the answer is still validated against the
pydantic model, because nothing invalid may ever reach the cache. A cut-off
(`max_tokens`), a refusal or an invalid answer gets one repair turn, then a
GenerationError that says which.

Every GenerationError text goes through `redact.scrub`, and the API key (or
auth token) is registered with it when the generator is built: a gateway that
echoes the request's `x-api-key` / `Authorization` header in its error body
must not put the key on stderr or in the dashboard's log.
"""

from __future__ import annotations

import asyncio
import copy
import os
from typing import Any

import anthropic
from pydantic import ValidationError

from ... import redact
from ..model import ApplicationIR
from .base import GenerationError

DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_MAX_TOKENS = 16_000

SYSTEM_PROMPT = """You turn a markdown software specification into an ApplicationIR: \
a JSON document describing the application's entities (with attributes and \
relationships), HTTP endpoints, business flows, validation rules and database. \
Use only what the spec states or clearly implies. Answer with the JSON document only."""


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
    return "".join(getattr(block, "text", "") for block in message.content if block.type == "text")


def _short(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "document"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


class AnthropicGenerator:
    """Generates an ApplicationIR with Claude. Configured from the environment by default.

    `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL` are read by the SDK itself;
    `IR_MODEL` picks the model.
    """

    name = "anthropic"

    def __init__(
        self,
        *,
        model: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
        deadline: float = 300.0,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        client: anthropic.AsyncAnthropic | None = None,
    ) -> None:
        self.model = model or os.environ.get("IR_MODEL") or DEFAULT_MODEL
        self.deadline = deadline
        self.max_tokens = max_tokens
        self._client = client or anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        # the credential the client will send, whether given here or read from the environment
        redact.register(api_key)
        redact.register(getattr(self._client, "api_key", None))
        redact.register(getattr(self._client, "auth_token", None))
        self._schema = ir_json_schema()

    async def aclose(self) -> None:
        await self._client.close()

    async def generate(self, spec_markdown: str, spec_name: str) -> ApplicationIR:
        try:
            async with asyncio.timeout(self.deadline):
                return await self._generate(spec_markdown, spec_name)
        except TimeoutError:
            raise _failure(f"Anthropic generation for {spec_name} exceeded its {self.deadline:g}s deadline") from None
        except anthropic.APIStatusError as exc:
            raise _failure(f"Anthropic API error {exc.status_code} for {spec_name}: {_api_message(exc)}") from None
        except anthropic.APIConnectionError as exc:
            raise _failure(f"Anthropic API unreachable for {spec_name}: {exc.__class__.__name__}") from None

    async def _generate(self, spec_markdown: str, spec_name: str) -> ApplicationIR:
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": f"Spec `{spec_name}`:\n\n{spec_markdown}"},
        ]
        problem = ""
        for attempt in range(2):  # the first answer, then one repair
            message = await self._client.messages.create(
                model=self.model,
                max_tokens=self.max_tokens,
                system=SYSTEM_PROMPT,
                messages=messages,
                output_config={"format": {"type": "json_schema", "schema": self._schema}},
            )
            text = _text_of(message)
            if message.stop_reason == "refusal":
                problem = "the model refused"
                repair = "Please produce the ApplicationIR JSON for this specification."
            elif message.stop_reason == "max_tokens":
                problem = f"the answer was cut off at max_tokens ({self.max_tokens})"
                repair = "Your answer was cut off. Answer again with a more compact ApplicationIR: shorter descriptions, no repetition."
            else:
                try:
                    return ApplicationIR.model_validate_json(text)
                except ValidationError as exc:
                    problem = f"invalid ApplicationIR ({_short(exc)})"
                    repair = f"That JSON is not a valid ApplicationIR: {_short(exc)}. Answer again with a corrected document."
            if attempt == 0:
                messages = messages + [
                    {"role": "assistant", "content": text or "(no answer)"},
                    {"role": "user", "content": repair},
                ]
        raise _failure(f"Anthropic generation for {spec_name} failed after a repair attempt: {problem}")


def _failure(text: str) -> GenerationError:
    """A GenerationError whose message has been scrubbed of secrets."""
    return GenerationError(redact.scrub(text))


def _api_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    # scrubbed before it is cut: a key cut in half would no longer be recognised
    text = redact.scrub(str(error.get("message") or exc.message))
    return (text.splitlines() or [""])[0][:200]
