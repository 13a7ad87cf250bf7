"""Everything the dashboard needs, built once and injected into the App.

Tests build the same App over a test Redis by passing their own Services
(an opened IRCache, a frozen clock); `build_services` is the factory the
command line uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..cache.ircache import IRCache
from ..settings import Settings


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Services:
    cache: IRCache
    spec_dirs: list[Path] = field(default_factory=list)
    page_size: int = 100
    #: seconds of scanning between two progress reports of a key page that is still filling (IR
    #: keys rare in a huge keyspace); the page itself is always shown whole (cache/browse.py)
    page_time_budget: float = 0.5
    #: seconds between polls of the key page when keyspace notifications are off
    poll_interval: float = 5.0
    #: seconds between the periodic rounds of totals (key count, memory, hits and savings)
    stats_interval: float = 30.0
    #: seconds between health probes (PING) while Redis is down
    health_interval: float = 2.0
    #: seconds between health probes while Redis answers: a stall is said within about this,
    #: even when nothing else asks Redis
    check_interval: float = 5.0
    watch: bool = True
    generate_on_watch: bool = True
    spec_pattern: str = "*.md"
    #: injectable clocks: snapshot tests freeze them
    clock: Callable[[], datetime] = utc_now
    monotonic: Callable[[], float] = time.monotonic
    #: live key updates: "auto" (notifications if possible, else polling) or "poll"
    live: str = "auto"

    @property
    def settings(self) -> Settings:
        return self.cache.settings

    @property
    def read_only(self) -> bool:
        """Read-only is the cache's property (enforced where the writes are), not the app's."""
        return self.cache.read_only


#: Redis connections the whole dashboard may hold (the key listener's one included): a burst of
#: changes, a flush and the watcher's checks wait for one of these instead of opening more.
DASHBOARD_CONNECTIONS = 4


def build_services(settings: Settings, spec_dirs: list[Path], **options: object) -> Services:
    """The production factory: one IRCache from the settings (opened by the app)."""
    cache = IRCache(settings=settings, max_connections=DASHBOARD_CONNECTIONS, origin="dashboard")
    return Services(cache=cache, spec_dirs=spec_dirs, **options)  # type: ignore[arg-type]
