"""Our connections pack commands with hiredis; the bytes must be redis-py's own."""

import pytest
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError

from ircache_tui.cache.packing import HiredisPacking, with_hiredis_packing
from ircache_tui.cache.redis import make_client

COMMANDS = [
    ("GET", "ir_cache:petstore-spec_0a1b2c3d"),
    ("SET", "ir_cache:naïve_0a1b2c3d", b"\x00\xff{}", "EX", 604800),
    ("MEMORY USAGE", b"ir_cache:x_0a1b2c3d", "SAMPLES", 0),
    (b"CONFIG GET", "notify-keyspace-events"),
    ("UNLINK", *[f"ir_cache:spec{i}_{i:08x}".encode() for i in range(500)]),
    ("EVALSHA", "a" * 40, 0, 123, "ir_cache:", "", 200),
    ("SET", "k", "x" * 20000),  # above redis-py's buffer cutoff, where it splits the output
    ("SET", "k", bytearray(b"ba"), "GET"),
    ("SET", "k", memoryview(b"mv")),
    ("INCRBYFLOAT", "k", 1.5),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: str(a[0]))
def test_same_bytes_as_redis_py(args):
    ours = with_hiredis_packing(Connection)()
    theirs = Connection()
    assert b"".join(ours.pack_command(*args)) == b"".join(bytes(p) for p in theirs.pack_command(*args))


def test_bad_argument_is_a_data_error_as_in_redis_py():
    for conn in (with_hiredis_packing(Connection)(), Connection()):
        with pytest.raises(DataError):
            conn.pack_command("SET", "k", None)


async def test_every_url_scheme_keeps_its_connection_class(tmp_path):
    for url, base in (("redis://localhost:1/0", Connection), (f"unix://{tmp_path}/s.sock", UnixDomainSocketConnection),
                      ("rediss://localhost:1/0", SSLConnection)):
        client = make_client(url)
        cls = client.connection_pool.connection_class
        assert issubclass(cls, HiredisPacking) and issubclass(cls, base), url
        await client.aclose()
