"""A private redis-server on a unix socket, for when no REDIS_URL is given.

The server lives in `{cache_dir}/.redis/` (socket, pid file, log, lock
files), one per cache dir, shared by every process that uses it and stopped by
the last one to leave. It is a cache and nothing more: no persistence.

- server.py: EmbeddedRedis (start, ensure_running, stop), stop_owned, find_redis_server
- lease.py: who uses the server, counted by the OS with flocks in `.redis/`
- trust.py: where the socket lives, and why that directory can be trusted
- identity.py: which process the server is (what it said, and /proc), for when it hangs
- resp.py: the few commands sent as raw RESP over the socket
"""
from __future__ import annotations

from .server import EmbeddedRedis, find_redis_server, stop_owned

__all__ = ["EmbeddedRedis", "find_redis_server", "stop_owned"]
