"""An ACL refusal, in whatever words the server used, as the one line that names the rule to add.

Each server words a refusal its own way, and differently inside a script
(Redis 6.2 and 7.0 do not even say which command was refused there):

| refused | outside a script | inside a script |
| --- | --- | --- |
| a command, Redis 6.2 | `NOPERM this user has no permissions to run the 'unlink' command or its subcommand` | `The user executing the script can't run this command or subcommand` |
| a command, Redis 7.0 | `NOPERM this user has no permissions to run the 'unlink' command` | (as 6.2) |
| a command, Valkey 8, 9 | `NOPERM User lim has no permissions to run the 'unlink' command` | `ERR ACL failure in script: User lim has no permissions to run the 'unlink' command` |
| a key, Redis 6.2, 7.0 | `NOPERM this user has no permissions to access one of the keys used as arguments` | `The user executing the script can't access at least one of the keys mentioned in the command arguments` |
| a key, Valkey 8, 9 | `NOPERM No permissions to access a key` | `ERR ACL failure in script: No permissions to access a key` |

The cache's scripts translate what they meet into the NOPERM of the first
column, naming the command (scripts.py, `named`); this reads any of them.
"""

from __future__ import annotations

import re

from redis.exceptions import NoPermissionError, OutOfMemoryError, RedisError

from .. import redact
from .errors import RedisCommandError, RedisKeyPermissionError, RedisPermissionError

# 'client|setname' for a subcommand on Redis 7 and Valkey; Redis 6 names only the parent
_COMMAND = re.compile(r"permissions to run the '([^']+)' command", re.IGNORECASE)
_KEY = re.compile(r"permissions to access (?:a key|one of the keys)|can't access at least one of the keys",
                  re.IGNORECASE)
# a command refused inside a script, by Redis 6 and 7, which do not say which
_UNNAMED = "can't run this command or subcommand"
_SIGNS = (_UNNAMED, "acl failure", "no permissions to", "can't access at least one of the keys")

# Redis 6 names only the parent command in NOPERM ('script'); the rule to add is
# the subcommand we send, not the whole family (+script also grants SCRIPT FLUSH).
_SUBCOMMAND_SENT = {"script": "script|load", "memory": "memory|usage", "client": "client|setname",
                    "config": "config|get"}


def is_refusal(exc: BaseException) -> bool:
    """An ACL refusal, direct or from inside a script, in any server's words."""
    if isinstance(exc, NoPermissionError):
        return True
    text = str(exc).lower()
    return text.startswith("noperm") or any(sign in text for sign in _SIGNS)


def refused_command(exc: BaseException) -> str | None:
    """The command a refusal names (`evalsha`, `client|setname`), lowercase; None if it names none."""
    m = _COMMAND.search(str(exc))
    return m.group(1).lower() if m else None


def permission_error(exc: BaseException, sent: str | None = None, *, prefix: str | None = None) -> RedisPermissionError:
    """The refused command (or key), from the server's words, and the ACL rule that allows it.

    `sent`: the (sub)command the caller sent, when the server names only its parent.
    `prefix`: the key prefix, for the key pattern a refused key asks for.
    """
    text = str(exc)
    m = _COMMAND.search(text)
    if m:
        command = m.group(1).lower()
        if "|" not in command:
            command = sent if sent and sent.split("|")[0] == command else _SUBCOMMAND_SENT.get(command, command)
        return RedisPermissionError(command)
    if _KEY.search(text):  # a key outside the user's key patterns
        return RedisKeyPermissionError(f"~{prefix or 'ir_cache'}:*")
    if _UNNAMED in text:
        return RedisPermissionError("evalsha", "a command inside the script is refused: the cache's scripts "
                                    "run +get +set +getrange +exists +unlink +memory|usage")
    return RedisPermissionError("a command", redact.scrub(text.splitlines()[0]) if text else "")


def command_error(exc: RedisError, sent: str | None = None, *, prefix: str | None = None) -> RedisCommandError:
    """Any other Redis error, as one line."""
    if is_refusal(exc):
        return permission_error(exc, sent, prefix=prefix)
    if isinstance(exc, OutOfMemoryError):  # redis-py drops the OOM word from the server's text
        return RedisCommandError("Redis is full: it refuses writes (OOM: used memory is over maxmemory "
                                 "and the eviction policy is noeviction)")
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return RedisCommandError(f"Redis error: {redact.scrub(text)}")  # a server may echo what it was sent
