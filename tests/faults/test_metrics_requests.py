"""`watch --metrics-port` under bad requests (the real CLI, raw sockets): bytes that are not HTTP,
requests cut short, resets. None may put a traceback (or the request's bytes) on stderr."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import struct
import time

from tests.support.cli import cli_env
from tests.test_metrics import Watch, value, wait_for


def bad_request(port: int, kind: str) -> None:
    """One request that is not one: bytes that are not HTTP, a request cut short, a reset."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        if kind == "garbage":  # not HTTP, with a terminal escape sequence in it
            s.sendall(b"\x00\xff\x1b[31m\x1b]0;owned\x07 not http\r\n\r\n")
            with contextlib.suppress(OSError):
                s.recv(4096)
        elif kind == "half":  # a request line cut short, then closed
            s.sendall(b"GET /metr")
        elif kind == "reset":  # a request line, then a reset instead of the rest
            s.sendall(b"GET /metrics HTTP/1.1\r\n")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:  # reset before a byte was sent
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_bad_requests_never_put_a_traceback_on_stderr(redis_url, cache_dir, specs):
    """Before: 400 malformed requests put about a hundred socketserver tracebacks (1,750 lines) on
    a watch's stderr. Now they are counted: one line at the first, then at most one a minute."""
    env = cli_env(redis_url, cache_dir, IR_GENERATOR="offline")
    w = Watch(str(specs), "--no-generate", "--metrics-port", "0", env=env)
    try:
        port = int(w.expect(r"serving Prometheus metrics at http://127\.0\.0\.1:(\d+)/metrics")[1])
        w.expect(r"initial walk done")
        started = time.monotonic()
        kinds = ("garbage", "half", "reset", "reset-at-once")
        for _ in range(100):
            for kind in kinds:
                bad_request(port, kind)
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(url, lambda g: value(g, "ircache_lookups_total", tier="redis") is not None, "metrics still served")
        code, output = w.stop(signal.SIGTERM)
        minutes = (time.monotonic() - started) / 60  # (a loaded machine may take over a minute: a line more)
    finally:
        w.kill()
    assert code == 0, output
    assert "Traceback" not in output and "Exception occurred" not in output and "\x1b" not in output, output
    lines = output.splitlines()
    assert all(re.match(r"\d\d:\d\d:\d\d [A-Z]+: ", line) for line in lines), output  # log lines, whole
    said = [line for line in lines if "metrics server:" in line]
    assert 1 <= len(said) <= 2 + int(minutes), output  # the first, then one a minute, and the rest at the end
    assert all(line.split(" ", 2)[1] == "WARNING:" for line in said), said
    counted = sum(int(re.search(r"metrics server: ([\d,]+) requests? failed", line)[1].replace(",", ""))
                  for line in said)
    assert 1 <= counted <= 4 * 100, said
