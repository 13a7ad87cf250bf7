"""An ACL refusal is named the same way whatever the server's words (issue 22).

Redis 6.2, 7.0 and Valkey 8, 9 each word a refusal their own way, and differently inside
a script (cache/refusals.py has the table). Each wording, as the servers send it, must
come out as the one line that names the rule to add; and on the real server this run
uses (IRCACHE_REDIS_SERVER; `make test` runs these on every server of the matrix), a lock
release the ACL refuses is said, and a key outside the user's patterns met inside a
script is named. Nothing is mocked: real servers, real ACL users.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
import redis
from redis.exceptions import NoPermissionError, ResponseError

from ircache_tui.cache.errors import RedisKeyPermissionError, RedisPermissionError
from ircache_tui.cache.ircache import IRCache
from ircache_tui.cache.keys import KeySpace, spec_hash
from ircache_tui.cache.redis import RedisTier
from ircache_tui.cache.refusals import command_error
from ircache_tui.cache.server import from_hello
from tests.support.cli import cli_env, run_cli
from tests.support.foreign import entry_value
from tests.support.generators import SPEC, CountingGenerator
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.server

PASSWORD = "Qv8-refusal-test-3Lm"
KEYSPACE = KeySpace("ir_cache")
# the README's read-write user, rule for rule
RW_RULES = ["+ping", "+get", "+set", "+exists", "+getrange", "+scan", "+unlink", "+memory|usage", "+evalsha",
            "+script|load"]
UNLINK_REFUSED = "Redis refused UNLINK for this user (NOPERM): add +unlink to its ACL"
KEY_REFUSED = "Redis refused access to a key for this user (NOPERM): add ~ir_cache:* to its ACL key patterns"

# -- every wording, as redis-py hands it over (a NOPERM reply is a NoPermissionError without its word) --
WORDINGS = [
    # a command, outside a script
    ("redis 6.2", NoPermissionError("this user has no permissions to run the 'unlink' command or its subcommand"),
     UNLINK_REFUSED),
    ("redis 7.0", NoPermissionError("this user has no permissions to run the 'unlink' command"), UNLINK_REFUSED),
    ("valkey 8/9", NoPermissionError("User lim has no permissions to run the 'unlink' command"), UNLINK_REFUSED),
    # a command inside a script: Valkey names it; Redis 6.2 and 7.0 do not, so the cache's scripts
    # translate their refusal into the NOPERM above (scripts.py `named`)
    ("valkey 8/9 script", ResponseError("ACL failure in script: User lim has no permissions to run the 'unlink' "
                                        "command script: 079d9df723effbafac70059b105ee58df4428b7b, on @user_script:1."),
     UNLINK_REFUSED),
    ("valkey 8/9 pcall", ResponseError("ACL failure in script: User lim has no permissions to run the 'unlink' "
                                       "command"), UNLINK_REFUSED),
    ("named by a script", NoPermissionError("this user has no permissions to run the 'unlink' command"),
     UNLINK_REFUSED),
    # a key outside the user's patterns, outside a script
    ("redis 6.2/7.0 key", NoPermissionError("this user has no permissions to access one of the keys used as "
                                            "arguments"), KEY_REFUSED),
    ("valkey 8/9 key", NoPermissionError("No permissions to access a key"), KEY_REFUSED),
    # ... and inside a script (an undeclared key: one SCAN found)
    ("redis 6.2 key script", ResponseError("Error running script (call to f_9769d4f2aac8a14015734fe7006aaf1532343e9c)"
                                           ": @user_script:1: @user_script: 1: The user executing the script can't "
                                           "access at least one of the keys mentioned in the command arguments"),
     KEY_REFUSED),
    ("redis 7.0 key script", ResponseError("The user executing the script can't access at least one of the keys "
                                           "mentioned in the command arguments script: 9769d4f2aac8a14015734fe7006aaf"
                                           "1532343e9c, on @user_script:1."), KEY_REFUSED),
    ("valkey 8/9 key script", ResponseError("ACL failure in script: No permissions to access a key script: on "
                                            "@user_script:1."), KEY_REFUSED),
]


@pytest.mark.parametrize("raw, expected", [w[1:] for w in WORDINGS], ids=[w[0] for w in WORDINGS])
def test_each_wording_is_the_same_one_line(raw, expected):
    mapped = command_error(raw, prefix="ir_cache")
    assert isinstance(mapped, RedisPermissionError)
    assert str(mapped) == expected


# -- the real server ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server():
    with RedisServer() as s:
        yield s


@pytest.fixture
def admin(server):
    client = redis.Redis(unix_socket_path=server.socket_path)
    client.flushall()
    client.script_flush()
    users: list[str] = []
    client.users_made = users  # type: ignore[attr-defined]
    yield client
    for name in users:
        client.acl_deluser(name)
    client.close()


def make_user(server: RedisServer, admin: redis.Redis, rules: list[str], keys: str = "~ir_cache:*") -> str:
    name = f"lim-{uuid.uuid4().hex[:8]}"
    admin.execute_command("ACL", "SETUSER", name, "on", f">{PASSWORD}", "resetkeys", "resetchannels", "-@all",
                          *rules, keys)
    admin.users_made.append(name)  # type: ignore[attr-defined]
    return f"redis://{name}:{PASSWORD}@127.0.0.1:{server.port}/0"


def this_server(admin: redis.Redis) -> str:
    return from_hello(admin.execute_command("HELLO")).label


def test_this_servers_own_words_are_named(server, admin):
    """What this server answers, as it words it, direct and inside a script, for a command and a key."""
    url = make_user(server, admin, ["+get", "+eval"], keys="~ir_cache:mine*")
    user = redis.Redis.from_url(url)
    said = {}
    for what, call in {
        "command": lambda: user.unlink("ir_cache:mine_00000000"),
        "command in a script": lambda: user.eval("return redis.call('unlink', KEYS[1])", 1, "ir_cache:mine_0"),
        "key": lambda: user.get("ir_cache:theirs_00000000"),
        "key in a script": lambda: user.eval("return redis.call('get', ARGV[1])", 0, "ir_cache:theirs_00000000"),
    }.items():
        with pytest.raises(ResponseError) as refused:
            call()
        said[what] = (str(refused.value), str(command_error(refused.value, prefix="ir_cache")))
    user.close()
    server_label = this_server(admin)
    assert said["command"][1] == UNLINK_REFUSED, (server_label, said["command"])
    assert said["key"][1] == KEY_REFUSED, (server_label, said["key"])
    assert said["key in a script"][1] == KEY_REFUSED, (server_label, said["key in a script"])
    # a command refused inside a script: named where the server names it (Valkey), and never
    # mistaken for anything but a refusal where it does not (Redis 6.2, 7.0: the scripts name it)
    in_script = said["command in a script"]
    if "'unlink'" in in_script[0]:
        assert in_script[1] == UNLINK_REFUSED, (server_label, in_script)
    else:
        assert in_script[1].startswith("Redis refused "), (server_label, in_script)


async def test_a_refused_lock_release_is_said_once_naming_the_rule(server, admin, tmp_path, ircache_logs):
    """The README's read-write user without +unlink: the generation lock is taken, the IR generated,
    and its release refused inside the script. On every server: one WARNING naming +unlink, and the
    lock left to its TTL (on Valkey this was swallowed: no word, and every later process waited out
    the TTL)."""
    url = make_user(server, admin, [r for r in RW_RULES if r != "+unlink"])
    lock = KEYSPACE.lock_key(f"shop_{spec_hash(SPEC)[:8]}")
    async with IRCache(url, tmp_path / "cache", generator=CountingGenerator()) as cache:
        assert (await cache.lookup(SPEC, "shop.md")).tier == "generator"
        assert cache.redis.locks.known_mode == "script"
    warnings = [r.getMessage() for r in ircache_logs.records if r.levelno >= logging.WARNING]
    assert warnings == [f"Cannot release a generation lock: {UNLINK_REFUSED} (until then a lock lasts its full "
                        "TTL)"], (this_server(admin), ircache_logs.text)
    assert admin.pttl(lock) > 0, "the refused release should leave the lock to its TTL"


@pytest.mark.e2e
async def test_a_key_outside_the_users_patterns_met_inside_a_script_is_named(server, admin, tmp_path):
    """A user whose key patterns cover only some specs' entries: a flush of everything SCANs another
    spec's entry, and the script that tells entries from other keys (GETRANGE) is refused it. Named
    as the key pattern to add, on every server; nothing is deleted on trust."""
    url = make_user(server, admin, RW_RULES, keys="~ir_cache:mine*")
    mine, theirs = KEYSPACE.redis_key("mine_0a1b2c3d"), KEYSPACE.redis_key("theirs_0a1b2c3d")
    admin.set(mine, entry_value())
    admin.set(theirs, entry_value())

    tier = RedisTier(url, KEYSPACE, ttl=3600)
    try:
        with pytest.raises(RedisKeyPermissionError) as refused:
            await tier.clear_ir_cache()
    finally:
        await tier.aclose()
    assert str(refused.value) == KEY_REFUSED and refused.value.rule == "~ir_cache:*"
    assert admin.exists(mine, theirs) == 2
    assert admin.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0) >= 1  # it was the script

    out = run_cli("flush", "--yes", env=cli_env(url, tmp_path / "cache"))
    assert (out.returncode, out.stdout, out.stderr) == (1, "", f"ircache-tui flush: {KEY_REFUSED}\n"), \
        this_server(admin)
    assert admin.exists(mine, theirs) == 2


# -- the server's own compare-and-delete (Valkey 9: DELIFEQ; Redis 8.4: DELEX IFEQ) ---------------------

@pytest.fixture
def native(admin):
    """The server's compare-and-delete command, or skip where it has none."""
    info = from_hello(admin.execute_command("HELLO"))
    if info is None or info.compare_and_delete is None:
        pytest.skip(f"{info.label if info else 'this server'} has no compare-and-delete command")
    return info.compare_and_delete


async def test_locks_need_no_script_rights_where_the_server_compares_and_deletes(server, admin, native, tmp_path,
                                                                                ircache_logs):
    """The read-write user without +evalsha +script|load, with the server's own command instead:
    one generation across two processes, the lock extended past its TTL and released, and not a
    word about scripts or a missing lock."""
    url = make_user(server, admin, [r for r in RW_RULES if r not in ("+evalsha", "+script|load")] + [f"+{native}"])
    admin.config_resetstat()
    calls = tmp_path / "calls.log"
    caches = [IRCache(url, tmp_path / f"cache-{i}", generator=CountingGenerator(delay=1.5, log_path=str(calls)),
                      lock_ttl_ms=500, lock_poll_interval=0.02) for i in range(2)]
    async with caches[0] as a, caches[1] as b:
        found = await asyncio.gather(a.lookup(SPEC, "shop.md"), b.lookup(SPEC, "shop.md"))
        assert a.redis.locks.known_mode == b.redis.locks.known_mode == "native"
    assert len(calls.read_text().splitlines()) == 1, ircache_logs.text
    assert sorted(f.tier for f in found) == ["generator", "redis"]
    assert admin.exists(KEYSPACE.lock_key(f"shop_{spec_hash(SPEC)[:8]}")) == 0
    assert not [r for r in ircache_logs.records if r.levelno >= logging.WARNING or any(
        words in r.getMessage() for words in ("refuses scripts", "WATCH/MULTI/EXEC", "refuses DELIFEQ",
                                              "refuses DELEX"))], ircache_logs.text
    stats = admin.info("commandstats")
    # the probe and the release; no script ran (a refused one would count as rejected, not as a call)
    assert stats[f"cmdstat_{native}"]["calls"] >= 2 and stats.get("cmdstat_evalsha", {}).get("calls", 0) == 0


async def test_a_refused_native_release_is_named(server, admin, native, ircache_logs):
    url = make_user(server, admin, RW_RULES + [f"+{native}"])
    tier = RedisTier(url, KEYSPACE, ttl=3600)
    try:
        assert await tier.locks.acquire("shop_0a1b2c3d", "token", 10_000) is True
        assert tier.locks.known_mode == "native"
        admin.execute_command("ACL", "SETUSER", url.split("//")[1].split(":")[0], f"-{native}")
        with pytest.raises(RedisPermissionError) as refused:
            await tier.locks.release("shop_0a1b2c3d", "token")
    finally:
        await tier.aclose()
    assert refused.value.rule == f"+{native}"
    said = [r.getMessage() for r in ircache_logs.records if r.levelno >= logging.WARNING]
    assert said == [f"Cannot release a generation lock: Redis refused {native.upper()} for this user (NOPERM): "
                    f"add +{native} to its ACL (until then a lock lasts its full TTL)"]
