"""The loopback Messages API answering like the real one: every spec answered, Message Batches,
service tiers and prompt-cache accounting, for the real SDK.

    with AnsweringAPI(api_key="k", responder=offline_ir, batch_delay=2.0) as api:
        client = anthropic.AsyncAnthropic(base_url=api.base_url, api_key="k")

A Messages request that finds the script (MessagesAPI.script) empty is answered by `responder(request)`
(the IR text for that request, or a Reply, e.g. an IROracle's (tests/support/ir_oracle.py), whose text
and stop_reason are taken, the usage being this API's own) after `delay` seconds, with usage whose
`service_tier` is "standard".

Batches: POST /v1/messages/batches validates like the API (1 to 100,000 requests, each `custom_id`
1-64 characters of [a-zA-Z0-9_-] and unique) and answers a MessageBatch "in_progress";
`api.batch_creates` holds the ids created, in order. Its requests are answered in order in a thread
after the create returns (each as a direct request would be, service tier "batch"); the batch ends `batch_delay` seconds
after its creation, or when `api.end_batches()` is called (batch_delay None). `outcome(custom_id)`
says how each request ends: "succeeded" (default), "errored", "expired" or "canceled";
`api.batch_requests` holds every request of every batch, `api.batch_retrievals` counts status requests. GET
/v1/messages/batches/{id} is its status, GET …/{id}/results its JSONL results once ended.

Prompt caching: the system blocks up to the one marked `cache_control` are the prefix; its hash
seen within its TTL ("5m" or "1h", the marker's) is a read (`cache_read_input_tokens`), else a
write (`cache_creation_input_tokens`, split by TTL in `usage.cache_creation`); `input_tokens` is
the rest. Tokens are counted as a quarter of the characters (at least 1).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from .messages_api import MessagesAPI, Reply, error

BATCHES_PATH = "/v1/messages/batches"
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
MAX_REQUESTS = 100_000
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
_ids = itertools.count(1)

Responder = Callable[[dict[str, Any]], "str | Reply"]


def tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat().replace("+00:00", "Z")


class AnsweringAPI(MessagesAPI):
    def __init__(self, api_key: str = "test-key", *, responder: Responder, delay: float = 0.0,
                 batch_delay: float | None = 0.0, outcome: Callable[[str], str] | None = None) -> None:
        super().__init__(api_key)
        self.responder = responder
        self.delay = delay
        self.batch_delay = batch_delay
        self.outcome = outcome or (lambda custom_id: "succeeded")
        self.batch_creates: list[str] = []
        self.batch_requests: list[dict[str, Any]] = []  # every request of every batch created, in order
        self.batch_retrievals = 0
        self.answered: list[dict[str, Any]] = []  # the usage of every answer, direct and batched, in order
        self._cached: dict[str, float] = {}  # prefix hash → when it expires (time.monotonic())
        self._batches: dict[str, dict[str, Any]] = {}
        self._ended = threading.Event()

    def end_batches(self) -> None:
        """End every batch now (those made with batch_delay None wait for this)."""
        self._ended.set()

    # -- answering one request -------------------------------------------------------
    def answer(self, body: dict[str, Any], tier: str) -> dict[str, Any]:
        """The Message the API would send for `body` (caller holds the lock)."""
        prefix, ttl = _cached_prefix(body.get("system"))
        rest = json.dumps(body.get("messages", [])) + _uncached_system(body.get("system"))
        usage: dict[str, Any] = {"input_tokens": tokens(rest), "cache_read_input_tokens": 0,
                                 "cache_creation_input_tokens": 0,
                                 "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                                 "service_tier": tier}
        if prefix is not None:
            digest = hashlib.sha256(prefix.encode()).hexdigest()
            now = time.monotonic()
            size = tokens(prefix)
            if self._cached.get(digest, 0.0) > now:
                usage["cache_read_input_tokens"] = size
            else:
                usage["cache_creation_input_tokens"] = size
                usage["cache_creation"][f"ephemeral_{ttl}_input_tokens"] = size
            self._cached[digest] = now + TTL_SECONDS[ttl]  # a read refreshes the TTL
        said = self.responder(body)
        text, stop_reason = said, "end_turn"
        if isinstance(said, Reply):  # an IROracle's answer: its text and stop_reason, our accounting
            text = "".join(b.get("text", "") for b in said.body.get("content", []))
            stop_reason = said.body.get("stop_reason", "end_turn")
        usage["output_tokens"] = tokens(text)
        self.answered.append(usage)
        return {"id": f"msg_loop{next(_ids):08d}", "type": "message", "role": "assistant",
                "model": body.get("model", "claude-test-model"), "content": [{"type": "text", "text": text}],
                "stop_reason": stop_reason, "stop_sequence": None, "usage": usage}

    def _unscripted(self, body: dict[str, Any]) -> Reply | None:
        return Reply(200, self.answer(body, "standard"), delay=self.delay)

    # -- batches --------------------------------------------------------------------
    def _routes(self, path: str) -> bool:
        return path == BATCHES_PATH

    def _post_other(self, path: str, body: dict[str, Any]) -> Reply:
        requests = body.get("requests")
        if not isinstance(requests, list) or not 1 <= len(requests) <= MAX_REQUESTS:
            return _invalid(f"requests: between 1 and {MAX_REQUESTS} requests")
        ids = [r.get("custom_id") if isinstance(r, dict) else None for r in requests]
        for custom_id in ids:
            if not isinstance(custom_id, str) or not CUSTOM_ID.fullmatch(custom_id):
                return _invalid(f"custom_id {custom_id!r}: 1-64 characters of a-z, A-Z, 0-9, _ and -")
        if len(set(ids)) != len(ids):
            return _invalid("custom_id values must be unique within a batch")
        with self._lock:
            batch_id = f"msgbatch_loop{next(_ids):08d}{'x' * 8}"
            batch: dict[str, Any] = {"created": time.time(), "results": None, "total": len(requests)}
            self._batches[batch_id] = batch
            self.batch_creates.append(batch_id)
            self.batch_requests += requests
            reply = Reply(200, self._status(batch_id))
        # answered while the batch is in progress, as the API does (not before the create returns)
        threading.Thread(target=self._process, args=(batch, requests), daemon=True).start()
        return reply

    def _process(self, batch: dict[str, Any], requests: list[dict[str, Any]]) -> None:
        results = []
        for request in requests:
            with self._lock:  # one at a time: status requests are answered meanwhile
                results.append(self._result(request))
        with self._lock:
            batch["results"] = results

    def _result(self, request: dict[str, Any]) -> dict[str, Any]:
        custom_id = request["custom_id"]
        kind = self.outcome(custom_id)
        if kind == "succeeded":
            return {"custom_id": custom_id, "result": {"type": "succeeded",
                                                       "message": self.answer(request["params"], "batch")}}
        if kind == "errored":
            return {"custom_id": custom_id, "result": {"type": "errored", "error": {
                "type": "error", "error": {"type": "api_error", "message": "Internal server error"}}}}
        return {"custom_id": custom_id, "result": {"type": kind}}

    def _ended_at(self, batch: dict[str, Any]) -> float | None:
        if batch["results"] is None:
            return None  # still answering its requests
        if self._ended.is_set():
            return batch.setdefault("ended", time.time())
        if self.batch_delay is not None and time.time() >= batch["created"] + self.batch_delay:
            return batch.setdefault("ended", batch["created"] + self.batch_delay)
        return None

    def _status(self, batch_id: str) -> dict[str, Any]:
        batch = self._batches[batch_id]
        ended = self._ended_at(batch)
        kinds = [r["result"]["type"] for r in batch["results"]] if ended else []
        counts = {k: kinds.count(k) for k in ("succeeded", "errored", "canceled", "expired")}
        counts["processing"] = 0 if ended else batch["total"]
        return {"id": batch_id, "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
                "request_counts": counts, "created_at": _stamp(batch["created"]),
                "expires_at": _stamp(batch["created"] + 86_400), "ended_at": _stamp(ended) if ended else None,
                "archived_at": None, "cancel_initiated_at": None,
                "results_url": f"{self.base_url}{BATCHES_PATH}/{batch_id}/results" if ended else None}

    def _get(self, path: str) -> Reply:
        parts = path[len(BATCHES_PATH) + 1:].split("/") if path.startswith(BATCHES_PATH + "/") else []
        with self._lock:
            batch = self._batches.get(parts[0]) if parts else None
            if batch is None:
                return error(404, "not_found_error", f"no batch at {path}")
            if parts[1:] == []:
                self.batch_retrievals += 1
                return Reply(200, self._status(parts[0]))
            if parts[1:] == ["results"] and self._ended_at(batch):
                jsonl = "".join(json.dumps(r) + "\n" for r in batch["results"])
                return Reply(200, {}, raw=jsonl.encode(), content_type="application/binary")
        return error(404, "not_found_error", f"no route GET {path}")


def _invalid(text: str) -> Reply:
    return Reply(400, {"type": "error", "error": {"type": "invalid_request_error", "message": text}},
                 {"x-should-retry": "false"})


def _cached_prefix(system: Any) -> tuple[str | None, str]:
    """The system text up to the block marked cache_control, and the marker's TTL."""
    if not isinstance(system, list):
        return None, "5m"
    text = ""
    for block in system:
        text += block.get("text", "")
        marker = block.get("cache_control")
        if marker:
            return text, marker.get("ttl", "5m")
    return None, "5m"


def _uncached_system(system: Any) -> str:
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        return ""
    marked = [i for i, b in enumerate(system) if b.get("cache_control")]
    return "".join(b.get("text", "") for b in system[(marked[-1] + 1 if marked else 0):])


def offline_responder() -> Responder:
    """Answers each request with the offline generator's IR for the spec it carries (the oracle)."""
    from ircache_tui.ir.generators.offline import parse_spec

    def respond(body: dict[str, Any]) -> str:
        first = body["messages"][0]["content"]
        text = first if isinstance(first, str) else first[0]["text"]
        name, _, markdown = text.partition("\n\n")
        ir = parse_spec(markdown, name.removeprefix("Spec `").rstrip(":`"))
        return ir.model_dump_json()

    return respond
