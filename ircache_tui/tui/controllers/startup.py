"""Opening the cache for the dashboard, and choosing how it learns of key changes."""

from __future__ import annotations

from typing import Any

from textual import work

from ...cache.ircache import IRCache
from .. import messages as m
from .base import Controller


class Startup(Controller):
    def __init__(self, cache: IRCache, *, live: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        self.live = live  # "auto" (notifications if possible, else polling) or "poll"

    @work(group="startup", exit_on_error=False)
    async def open_cache(self) -> None:
        """Posts CacheReady, or StartupFailed (the filesystem works without Redis)."""
        try:
            if not self.cache.is_open:
                await self.cache.open()
        except Exception as exc:  # embedded redis-server missing, a refused socket dir...
            self.post_message(m.StartupFailed(str(exc)))
            return
        live = "polling"
        if self.live == "auto":
            live = "notifications" if await self.cache.enable_live_updates() else "polling"
        self.post_message(m.CacheReady(live))
