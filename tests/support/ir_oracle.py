"""An oracle for the loopback Messages API: it answers what a perfect model would.

    oracle = IROracle(tokens_per_second=2000)
    api.respond_with(oracle)

A full request (structured output with the ApplicationIR schema) is answered with the IR the
offline generator reads off the spec in the request: the "expected" IR of that spec version. A
patch request (the schema with "operations") is answered with `jsonpatch.make_patch(previous,
expected)` in the wire format of ircache_tui/ir/patch.py, where `previous` is the IR in the request
and `expected` the offline IR of the new spec in it. Output tokens are billed by length
(len(text) // 4), input tokens likewise (the system block as a prompt-cache read), and the answer
waits first_token + output_tokens / tokens_per_second when tokens_per_second is given (a model's
time to its first token, then its output at a steady rate).

`patches=` makes patch answers go wrong for the fallback tests: "unappliable" (a `test` op that
fails, then a remove of an index that is not there), "invalid" (applies, but the result is no
ApplicationIR), "refusal" (stop_reason refusal), "cutoff" (stop_reason max_tokens, half the text).
"""

from __future__ import annotations

import json
import threading
from typing import Any, Literal

from ircache_tui.ir.generators.anthropic import NEW_SPEC_HEAD, PREVIOUS_IR_HEAD
from ircache_tui.ir.generators.offline import parse_spec
from ircache_tui.ir.model import ApplicationIR
from ircache_tui.ir.patch import ir_document, make_patch, wire

from .messages_api import Reply, message

Fault = Literal["none", "unappliable", "invalid", "refusal", "cutoff"]


def tokens(text: str) -> int:
    return len(text) // 4


class IROracle:
    def __init__(self, *, tokens_per_second: float | None = None, first_token: float = 0.0,
                 patches: Fault = "none", model: str = "claude-test-model") -> None:
        self.tokens_per_second = tokens_per_second
        self.first_token = first_token
        self.patches: Fault = patches
        self.model = model
        self.full_requests = 0
        self.patch_requests = 0
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Reply:
        schema = body.get("output_config", {}).get("format", {}).get("schema", {})
        system = "".join(block.get("text", "") for block in body.get("system") or [])
        content = body["messages"][0]["content"]
        if "operations" in schema.get("properties", {}):
            with self._lock:
                self.patch_requests += 1
            return self._patch(content, system)
        with self._lock:
            self.full_requests += 1
        header, spec = content.split("\n\n", 1)
        name = header.split("`")[1]
        text = parse_spec(spec, name).model_dump_json()
        return self._answer(text, json.dumps(content), system)

    def _patch(self, blocks: list[dict[str, Any]], system: str) -> Reply:
        texts = [b["text"] for b in blocks]
        previous_block = next(t for t in texts if t.startswith(PREVIOUS_IR_HEAD))
        head, previous_json = previous_block.split("\n\n", 1)
        name = head.split("`")[1]
        spec = next(t for t in texts if t.startswith(NEW_SPEC_HEAD)).split("\n\n", 1)[1]
        previous = ApplicationIR.model_validate_json(previous_json)
        ops = make_patch(previous, parse_spec(spec, name))
        if self.patches == "unappliable":
            ops = [{"op": "test", "path": "/name", "value": "not the name"},
                   {"op": "remove", "path": "/api_model/endpoints/999"}] + ops
        elif self.patches == "invalid":
            ops = ops + [{"op": "replace", "path": "/domain_model/entities", "value": {"not": "a list"}}]
        text = json.dumps(wire(ops))
        stop = "end_turn"
        if self.patches == "refusal":
            text, stop = "", "refusal"
        elif self.patches == "cutoff":
            text, stop = text[: len(text) // 2], "max_tokens"
        return self._answer(text, "".join(texts), system, stop_reason=stop)

    def _answer(self, text: str, prompt: str, system: str, *, stop_reason: str = "end_turn") -> Reply:
        out = max(tokens(text), 1)
        delay = self.first_token + out / self.tokens_per_second if self.tokens_per_second else 0.0
        return message(text, stop_reason=stop_reason, model=self.model, input_tokens=tokens(prompt),
                       output_tokens=out, delay=delay,
                       usage={"cache_read_input_tokens": tokens(system), "cache_creation_input_tokens": 0})


def expected_ir(spec: str, name: str) -> dict[str, Any]:
    """What the oracle's full answer for `spec` is, as the JSON document."""
    return ir_document(parse_spec(spec, name))
