"""A loopback HTTP server that answers like the Anthropic Messages API, for the real SDK.

    with MessagesAPI(api_key="test-key") as api:
        api.script(overloaded(), message(json.dumps(ir)))
        client = anthropic.AsyncAnthropic(base_url=api.base_url, api_key="test-key")

Every POST to `/v1/messages` takes the next scripted `Reply` off the queue;
`api.requests` holds the JSON bodies received, in order, and `api.headers`
the matching request headers. A request that carries no credential (or the
wrong one) is answered 401 `authentication_error` and does not consume a
reply. A request that finds the queue empty is answered 500 with
`x-should-retry: false` and counted in `api.unscripted`, so a test that
sends more requests than it scripted fails loudly instead of hanging.

`echo_error()` scripts an error whose body echoes the request's `x-api-key`
and `authorization` headers verbatim, like a careless gateway;
`MessagesAPI(echo_rejected=True)` does the same in its 401 answers. Tests
use them to show that the API key never reaches a message.

Faults beyond the API's own errors: `html_error(502)` is a proxy's HTML error
page (content-type text/html), `rate_limited()` a 429 with `retry-after`, and
`hang()` accepts the request and never answers (until the server stops); a reply
with a `gate` (a threading.Event) answers once the test sets it: a generation as slow as
the test needs, with no wall-clock guess.
`api.received` counts every POST that reached the handler, authenticated or not;
`api.times` holds when each of `api.requests` arrived (time.monotonic()).

`api.respond_with(fn)`: a request that finds the queue empty is answered by
`fn(request_body)` instead (a responder that computes its answer, like the
IR oracle of tests/support/ir_oracle.py); scripted replies still go first.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MESSAGES_PATH = "/v1/messages"
_ids = itertools.count(1)


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP answer: status, JSON body, extra headers, and a delay before answering.

    With `render`, the body sent is `render(request_headers)` instead of `body`; with
    `raw`, those exact bytes are sent as `content_type` (an HTML page, plain text).
    """

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    render: Callable[[dict[str, str]], dict[str, Any]] | None = None
    raw: bytes | None = None
    content_type: str = "application/json"
    gate: threading.Event | None = None  # answer only once this is set (or the server stops)

    def body_for(self, request_headers: dict[str, str]) -> dict[str, Any]:
        return self.render(request_headers) if self.render is not None else self.body


def message(
    text: str,
    *,
    stop_reason: str = "end_turn",
    model: str = "claude-test-model",
    input_tokens: int = 1200,
    output_tokens: int = 800,
    delay: float = 0.0,
    usage: dict[str, Any] | None = None,
) -> Reply:
    """A 200 Message whose only content block is `text`; `usage`: more of the answer's usage fields
    (cache_read_input_tokens, cache_creation: {ephemeral_5m_input_tokens, …}, service_tier…)."""
    n = next(_ids)
    return Reply(
        200,
        {
            "id": f"msg_test{n:08d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}] if text else [],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens, **(usage or {})},
        },
        delay=delay,
    )


def truncated(text: str, **kw: Any) -> Reply:
    """A Message cut off by max_tokens (its text is whatever fitted)."""
    return message(text, stop_reason="max_tokens", **kw)


def refusal(text: str = "", **kw: Any) -> Reply:
    """A Message the model refused to answer."""
    return message(text, stop_reason="refusal", **kw)


def error(status: int, error_type: str, text: str, *, delay: float = 0.0) -> Reply:
    """An API error in the Messages API's shape, with retry headers that keep SDK retries fast."""
    return Reply(
        status,
        {"type": "error", "error": {"type": error_type, "message": text}},
        headers={"retry-after-ms": "10", "retry-after": "0"},
        delay=delay,
    )


def _echoed(headers: dict[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in ("x-api-key", "authorization") if name in headers}


def echo_body(headers: dict[str, str], status: int, error_type: str, *, in_message: bool = True) -> dict[str, Any]:
    """An error body that repeats the request's credential headers verbatim.

    in_message=True puts them in `error.message` (the credential bare, then as header
    lines and as JSON: what the generator reports); False leaves `error.message` out,
    so the SDK's own message (the whole body) is all there is to report.
    """
    echoed = _echoed(headers)
    auth = echoed.get("authorization", "")
    credential = echoed.get("x-api-key") or (auth.split(None, 1)[1] if " " in auth else auth)
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type}, "request_headers": echoed}
    if in_message:
        lines = " ".join(f"{name}: {value}" for name, value in echoed.items())
        body["error"]["message"] = (
            f"gateway rejected credential {credential} ({status}); you sent {lines} / {json.dumps(echoed)}"
        )
    else:
        body["credential"] = credential  # bare, with no header name next to it
    return body


def echo_error(status: int = 400, error_type: str = "invalid_request_error", *, in_message: bool = True) -> Reply:
    """An error whose JSON body echoes the request's `x-api-key` and `authorization` headers."""
    return Reply(
        status,
        {},
        headers={"retry-after-ms": "10", "retry-after": "0", "x-should-retry": "false"},
        render=lambda headers: echo_body(headers, status, error_type, in_message=in_message),
    )


def overloaded() -> Reply:
    return error(529, "overloaded_error", "Overloaded")


def rate_limited(
    retry_after: str = "0",
    *,
    retry_after_ms: str | None = "10",
    text: str = "Number of request tokens has exceeded your per-minute rate limit",
) -> Reply:
    """429 rate_limit_error with `retry-after` (seconds) and the `anthropic-ratelimit-*` headers the API sends.

    The SDK honours `retry-after-ms` first (10 ms by default keeps retries fast);
    `retry_after_ms=None` leaves it out, so `retry-after` alone sets the wait.
    """
    headers = {
        "retry-after": retry_after,
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "0",
    }
    if retry_after_ms is not None:
        headers["retry-after-ms"] = retry_after_ms
    return Reply(429, {"type": "error", "error": {"type": "rate_limit_error", "message": text}}, headers=headers)


BAD_GATEWAY_PAGE = """<!DOCTYPE html>
<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx/1.25.3</center>
</body>
</html>
"""


def html_error(status: int = 502, page: str = BAD_GATEWAY_PAGE) -> Reply:
    """A proxy's HTML error page (content-type text/html), not the API's JSON error."""
    return Reply(
        status, {}, headers={"retry-after-ms": "10"}, raw=page.encode("utf-8"), content_type="text/html; charset=utf-8"
    )


def hang() -> Reply:
    """Accept the request and never answer (the handler waits until the server stops)."""
    return Reply(200, {}, delay=24 * 3600.0)


def api_error() -> Reply:
    return error(500, "api_error", "Internal server error")


class MessagesAPI:
    """The fake Messages API. Use as a context manager (or `start()` / `stop()`)."""

    def __init__(self, api_key: str = "test-key", *, echo_rejected: bool = False) -> None:
        self.api_key = api_key
        self.echo_rejected = echo_rejected  # 401 answers echo the credential headers back
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.rejected: list[dict[str, str]] = []  # headers of requests refused for want of a credential
        self.unscripted = 0
        self.received = 0  # every POST the handler saw, rejected or not
        self.times: list[float] = []  # time.monotonic() at which each of `requests` arrived
        self._replies: deque[Reply] = deque()
        self._responder: Callable[[dict[str, Any]], Reply] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting ------------------------------------------------------------
    def script(self, *replies: Reply) -> "MessagesAPI":
        with self._lock:
            self._replies.extend(replies)
        return self

    def respond_with(self, responder: Callable[[dict[str, Any]], Reply] | None) -> "MessagesAPI":
        """Answer requests that find no scripted reply with `responder(body)` (None: stop)."""
        with self._lock:
            self._responder = responder
        return self

    @property
    def remaining(self) -> int:
        """Scripted replies not yet sent."""
        with self._lock:
            return len(self._replies)

    @property
    def last_request(self) -> dict[str, Any]:
        with self._lock:
            if not self.requests:
                raise AssertionError("the fake Messages API has received no request")
            return self.requests[-1]

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("MessagesAPI is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> "MessagesAPI":
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                api._handle(self)

            def do_GET(self) -> None:
                api._handle_get(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-messages-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers that are sleeping out a delay
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> "MessagesAPI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the handler ------------------------------------------------------------
    def _credential(self, headers: dict[str, str]) -> str | None:
        key = headers.get("x-api-key")
        if key:
            return key
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[len("bearer "):].strip() or None
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in h.headers.items()}
        path = h.path.split("?", 1)[0]
        with self._lock:
            self.received += 1
        if path != MESSAGES_PATH and not self._routes(path):
            self._send(h, error(404, "not_found_error", f"no route {h.command} {path}"))
            return
        if not self._authenticated(h, headers):
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(h, error(400, "invalid_request_error", "request body is not JSON"))
            return
        if path != MESSAGES_PATH:
            self._send(h, self._post_other(path, body), headers)
            return
        with self._lock:
            self.requests.append(body)
            self.times.append(time.monotonic())
            self.headers.append(headers)
            self.paths.append(path)
            reply = self._replies.popleft() if self._replies else self._unscripted(body)
            responder = self._responder
            if reply is None and responder is None:
                self.unscripted += 1
        if reply is None and responder is not None:
            reply = responder(body)
        if reply is None:
            reply = Reply(
                500,
                {"type": "error", "error": {"type": "api_error", "message": "fake Messages API: no scripted reply left"}},
                {"x-should-retry": "false"},
            )
        if reply.delay and self._stopping.wait(reply.delay):
            return  # the server is shutting down; the client has long gone
        while reply.gate is not None and not reply.gate.wait(0.05):
            if self._stopping.is_set():
                return
        self._send(h, reply, headers)

    def _authenticated(self, h: BaseHTTPRequestHandler, headers: dict[str, str]) -> bool:
        """True when the request carries the key; else it is answered 401 here."""
        credential = self._credential(headers)
        if credential is not None and credential == self.api_key:
            return True
        with self._lock:
            self.rejected.append(headers)
        reply = error(401, "authentication_error", "invalid API key")
        body = echo_body(headers, 401, "authentication_error") if self.echo_rejected else reply.body
        self._send(h, Reply(reply.status, body, {"x-should-retry": "false"}))
        return False

    # -- hooks for a subclass that answers more of the API (messages_batches.py) ----------
    def _routes(self, path: str) -> bool:
        """Whether a POST to `path` (other than /v1/messages) is answered by `_post_other`."""
        return False

    def _post_other(self, path: str, body: dict[str, Any]) -> Reply:
        return error(404, "not_found_error", f"no route POST {path}")

    def _unscripted(self, body: dict[str, Any]) -> Reply | None:
        """The answer to a Messages request when the script is empty; None: a loud 500."""
        return None

    def _get(self, path: str) -> Reply:
        return error(404, "not_found_error", f"no route GET {path}")

    def _handle_get(self, h: BaseHTTPRequestHandler) -> None:
        headers = {k.lower(): v for k, v in h.headers.items()}
        if self._authenticated(h, headers):
            self._send(h, self._get(h.path.split("?", 1)[0]), headers)

    def _send(self, h: BaseHTTPRequestHandler, reply: Reply, request_headers: dict[str, str] | None = None) -> None:
        if reply.raw is not None:
            payload = reply.raw
        else:
            payload = json.dumps(reply.body_for(request_headers or {})).encode("utf-8")
        try:
            h.send_response(reply.status)
            h.send_header("content-type", reply.content_type)
            h.send_header("content-length", str(len(payload)))
            h.send_header("request-id", f"req_test{next(_ids):08d}")
            for name, value in reply.headers.items():
                h.send_header(name, value)
            h.end_headers()
            h.wfile.write(payload)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a deadline test)
