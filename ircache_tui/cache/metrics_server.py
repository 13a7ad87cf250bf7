"""The `/metrics` HTTP server: prometheus_client's WSGI app on a thread, quiet about bad requests.

prometheus_client's own `start_http_server` leaves a failed request to
socketserver, which prints a traceback to stderr for each one (a reset, a
request cut short, bytes that are not HTTP): 400 bad requests put 1,750
lines on a `watch`'s stderr. Here a failed request costs at most one
WARNING line, and a burst of them one line a minute (`REPORT_EVERY`) that
counts them, never a traceback. The line names the exception's class and
the client's address, not its message: a request's bytes never reach a
terminal. A request that sends nothing for `REQUEST_TIMEOUT` seconds is
dropped, so a client that holds connections half open costs no thread
for long.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

log = logging.getLogger("ircache.metrics")

REPORT_EVERY = 60.0  # seconds: at most one line per this long about failed requests
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request (a scrape takes milliseconds)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class FailureReport:
    """Counts failed requests and says so: the first at once, then at most one line per `every` s."""

    def __init__(self, every: float = REPORT_EVERY) -> None:
        self.every = every
        self.total = 0  # since the start
        self._unsaid = 0  # since the last line
        self._last_said: float | None = None
        self._lock = threading.Lock()

    def failed(self, exc: BaseException | None, client: str) -> None:
        """One request failed (`client`: its address, for the line)."""
        with self._lock:
            self.total += 1
            self._unsaid += 1
            now = time.monotonic()
            if self._last_said is not None and now - self._last_said < self.every:
                return
            count, self._unsaid, self._last_said = self._unsaid, 0, now
        what = exc.__class__.__name__ if exc is not None else "an error"
        log.warning("metrics server: %s failed (the last: %s, from %s)%s", _requests(count), what, client,
                    f"; at most one such line every {self.every:g} s" if count == self.total else "")

    def close(self) -> None:
        """Say what was counted since the last line."""
        with self._lock:
            count, self._unsaid = self._unsaid, 0
        if count:
            log.warning("metrics server: %s failed since the last report", _requests(count))


def _requests(n: int) -> str:
    return "1 request" if n == 1 else f"{n:,} requests"


def _address(client: object) -> str:
    """`host:port` of a client, whatever the shape of its address (it came from the kernel)."""
    if isinstance(client, tuple) and len(client) >= 2:
        return f"{client[0]}:{client[1]}" if ":" not in str(client[0]) else f"[{client[0]}]:{client[1]}"
    return "an unknown address"


class _Handler(WSGIRequestHandler):
    """No access log, no error page log; a request must arrive within REQUEST_TIMEOUT."""

    timeout = REQUEST_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing per request (a 400 or 414 answered to a bad one included)."""

    def get_stderr(self) -> Any:
        # wsgiref writes the app's tracebacks here; the app wrapper below has counted the failure
        return _Discard()


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class _Server(ThreadingMixIn, WSGIServer):
    """A thread per request, daemon threads (as prometheus_client's), failures counted."""

    daemon_threads = True
    report: FailureReport

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.report.failed(sys.exc_info()[1], _address(client_address))


def _counted(app: WSGIApp, report: FailureReport) -> WSGIApp:
    """`app`, with its failures counted (wsgiref then answers 500 and writes a traceback we drop)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            return app(environ, start_response)
        except Exception as exc:
            report.failed(exc, str(environ.get("REMOTE_ADDR", "an unknown address")))
            raise

    return wrapped


def start(app: WSGIApp, host: str, port: int) -> tuple[WSGIServer, threading.Thread, FailureReport]:
    """Serve `app` on host:port from a daemon thread; raises OSError when it cannot be bound."""
    # the address family from the host, as prometheus_client does (an IPv6 host needs AF_INET6)
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    address = sockaddr[0]
    if not isinstance(address, str):  # an AF_INET or AF_INET6 address: getaddrinfo gives no other for a host
        raise OSError(f"cannot listen on {host!r}: not an IP address family")
    report = FailureReport()
    server_class: type[_Server] = type("_MetricsServer", (_Server,), {"address_family": family, "report": report})
    httpd = make_server(address, port, _counted(app, report), server_class, handler_class=_Handler)
    thread = threading.Thread(target=httpd.serve_forever, name="ircache-metrics", daemon=True)
    thread.start()
    return httpd, thread, report
