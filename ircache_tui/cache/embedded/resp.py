"""A few commands to the embedded server as raw RESP over its unix socket.

Probing it, asking who it is and shutting it down need no client library or
event loop: one connection, one command, one reply.
"""
from __future__ import annotations

import socket


def reply_complete(buf: bytes) -> bool:
    """True once `buf` holds one whole RESP reply of the kinds we ask for (simple, error, integer, bulk)."""
    end = buf.find(b"\r\n")
    if end < 0:
        return False
    if buf[:1] != b"$":
        return True
    try:
        size = int(buf[1:end])
    except ValueError:
        return True
    return size < 0 or len(buf) >= end + 2 + size + 2


def command(socket_path: str, *words: bytes, timeout: float = 0.5) -> bytes | None:
    """Send one command as raw RESP and return the reply's bytes.

    Returns b"" when the server closed the connection without replying (SHUTDOWN
    does that), and None when it could not be reached or did not answer in time.
    No client library or event loop is needed.
    """
    payload = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(socket_path)
            s.sendall(payload)
            buf = b""
            while not reply_complete(buf):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            return buf
    except OSError:
        return None


def ping(socket_path: str, timeout: float = 0.5) -> bool:
    """A raw RESP PING, so that probing needs no client library or event loop."""
    return (command(socket_path, b"PING", timeout=timeout) or b"").startswith(b"+PONG")


def info_fields(reply: bytes) -> dict[bytes, bytes]:
    """`INFO server`'s `name:value` lines, as raw RESP from command()."""
    fields = {}
    for line in reply.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep:
            fields[name] = value
    return fields
