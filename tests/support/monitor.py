"""Which commands a real redis-server ran, seen with MONITOR on a connection of its own.

`CommandLog` runs MONITOR on a thread (redis-py's `Redis.monitor()`), from `start()` until
`stop()`, which sends a marker (ECHO) and waits until the thread has seen it: every command
the server ran before the marker is in `commands`. Commands that scripts run show too
(client type `lua`): a walk done by EVALSHA steps is seen by its SCANs.
"""

from __future__ import annotations

import contextlib
import threading
import uuid

import redis


class CommandLog:
    def __init__(self, url: str) -> None:
        self.url = url
        self.commands: list[dict] = []
        self.error: BaseException | None = None
        self._marker = f"ircache-test-monitor-stop-{uuid.uuid4().hex}"
        self._lock = threading.Lock()

    def start(self) -> "CommandLog":
        self._monitor = redis.Redis.from_url(self.url).monitor()
        self._monitor.__enter__()  # MONITOR answered OK: from here on every command is seen
        self._thread = threading.Thread(target=self._collect, name="redis-monitor", daemon=True)
        self._thread.start()
        return self

    def _collect(self) -> None:
        try:
            while True:
                command = self._monitor.next_command()
                if command is None:
                    continue
                if self._marker in command["command"]:
                    return
                with self._lock:
                    self.commands.append(command)
        except BaseException as exc:  # said by stop()
            self.error = exc

    def mark(self) -> int:
        """How many commands are logged so far (a position to count from)."""
        with self._lock:
            return len(self.commands)

    def since(self, position: int) -> list[str]:
        with self._lock:
            return [c["command"] for c in self.commands[position:]]

    def stop(self, *, check: bool = True) -> None:
        """Stop once every command sent so far is logged; `check=False`: leave a MONITOR failure
        in `error` for the caller to report."""
        with contextlib.closing(redis.Redis.from_url(self.url)) as admin:
            admin.echo(self._marker)
        self._thread.join(10)
        alive = self._thread.is_alive()
        with contextlib.suppress(Exception):
            self._monitor.__exit__(None, None, None)
        assert not alive, "the MONITOR thread never saw the stop marker"
        assert not check or self.error is None, f"MONITOR failed: {self.error!r}"


def scan_walks(commands: list[str], *, page: int | None = None) -> list[str]:
    """The walks over the keyspace among `commands`, in order: each begins with a SCAN at cursor 0
    (sent by a client or by a script). Each is named by its MATCH pattern (`{hash8}` for the
    eight hex digits), or "page" when its COUNT is `page` (a key pane's page)."""
    walks = []
    for command in commands:
        words = command.split()
        if len(words) >= 2 and words[0].upper() == "SCAN" and words[1] == "0":
            upper = [w.upper() for w in words]
            option = dict(zip(upper[2::2], words[3::2]))
            if page is not None and option.get("COUNT") == str(page):
                walks.append("page")
            else:
                walks.append(option.get("MATCH", "*").replace("[0-9a-f]" * 8, "{hash8}"))
    return walks
