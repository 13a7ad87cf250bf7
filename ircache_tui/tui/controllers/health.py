"""Whether Redis answers, for the whole dashboard: the one place that says up or down.

Only a failed probe (a PING through `IRCache.probe`, which asks even inside the door's
fast-fail window) says down. Anything else that fails as if Redis were down (a page, the
totals, the key listener) is a suspicion: it asks for a probe now. A probe that could not tell
(every connection of our own pool busy: RedisBusy) changes nothing; one that Redis answered,
even with a refusal, says up.

Probes run one at a time, every `up_interval` while Redis answers and every `down_interval`
while it does not. The next one is armed when a probe ends, whatever ended it, so the rounds
never stop and never overlap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from textual import on, work
from textual.message import Message
from textual.timer import Timer

from ...cache.errors import IRCacheError, RedisBusy, RedisCommandError, RedisUnavailable
from ...cache.ircache import IRCache
from .. import messages as m
from .base import Controller


def first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class Health(Controller):
    @dataclass
    class _Probed(Message):
        up: bool | None  # None: the probe could not tell
        reason: str = ""

    def __init__(self, cache: IRCache, *, clock: Callable[[], datetime], up_interval: float, down_interval: float,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        self.clock = clock
        self.up_interval = up_interval
        self.down_interval = down_interval
        #: the last verdict: None until the first probe
        self.up: bool | None = None
        self.last_answered: datetime | None = None
        self._started = False
        self._probing = False
        self._timer: Timer | None = None

    def start(self) -> None:
        """The cache is open: probe now, and from then on every interval."""
        self._started = True
        self.probe_now()

    def answered(self) -> None:
        """A Redis call succeeded somewhere: noted; if Redis was said down, a probe says so again."""
        self.last_answered = self.clock()
        if self.up is not True:
            self.probe_now()

    def suspect(self) -> None:
        """A call failed as if Redis were down: not a verdict, a reason to probe now."""
        self.probe_now()

    def probe_now(self) -> None:
        if not self._started or self._probing:
            return  # the probe under way answers for this one too
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._probing = True
        self.probe()

    @work(group="health", exit_on_error=False)
    async def probe(self) -> None:
        outcome = self._Probed(None)
        try:
            await self.cache.probe()
            outcome = self._Probed(True)
        except RedisBusy:
            pass  # every connection of ours in use, none free in time: our burst, no outage
        except RedisUnavailable as exc:
            outcome = self._Probed(False, first_line(exc))
        except RedisCommandError:
            outcome = self._Probed(True)  # it answered (an ACL without +ping refuses PING)
        except (IRCacheError, OSError) as exc:
            outcome = self._Probed(False, first_line(exc))
        finally:
            self.post_message(outcome)  # the next probe is armed there, however this one ended

    @on(_Probed)
    def _probed(self, message: _Probed) -> None:
        self._probing = False
        if message.up is not None:
            was, self.up = self.up, message.up
            if message.up:
                self.last_answered = self.clock()
            self.post_message(m.RedisProbed(message.up, was, message.reason, self.last_answered))
        self._timer = self.set_timer(self.down_interval if self.up is False else self.up_interval, self.probe_now)
