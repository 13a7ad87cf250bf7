"""Helpers the subcommands share."""

from __future__ import annotations

from pathlib import Path

from ...cache.errors import IRCacheError
from ...cache.ircache import IRCache
from ..common import EXIT_USAGE, CommandError, redis_down_reported


async def require_redis(cache: IRCache) -> None:
    """Fail with one line (exit 1) when the command cannot work without Redis: the error
    says where and why, so the health tracker's WARNING saying the same is left out."""
    try:
        with redis_down_reported():
            await cache.require_redis()
    except IRCacheError as exc:
        raise CommandError(str(exc)) from None


def spec_dirs(paths: list[str]) -> list[Path]:
    dirs = [Path(p) for p in paths]
    for d in dirs:
        if not d.is_dir():
            raise CommandError(f"spec directory {d} does not exist or is not a directory", EXIT_USAGE)
    return dirs
