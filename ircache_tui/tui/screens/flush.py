"""Flush confirmation: how many keys, which tiers; Redis only by default."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Label, RadioSet

from ...fmt import kept_sentence, plural
from ..text import plain
from ..toggles import RadioChoice
from .dialog import Dialog


@dataclass(frozen=True)
class FlushRequest:
    spec_name: str | None
    redis: bool
    filesystem: bool


class FlushScreen(Dialog[FlushRequest | None]):
    DEFAULT_CSS = """
    FlushScreen > Vertical { border: thick $error; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("y", "confirm", "Flush")]

    def __init__(self, spec_name: str | None, redis_keys: int | None, files: int, redis_error: str = "",
                 *, foreign: int = 0) -> None:
        """`redis_keys` None: Redis cannot be counted (down); only the filesystem can be flushed.
        `foreign`: keys named like entries that hold another tool's values, which the flush keeps."""
        super().__init__()
        self.spec_name = spec_name
        self.redis_keys = redis_keys
        self.files = files
        self.redis_error = redis_error
        self.foreign = foreign

    def compose(self) -> ComposeResult:
        # the spec's name and Redis's words are text, not markup
        what = (Text.assemble("spec ", plain(self.spec_name, "bold")) if self.spec_name
                else Text.assemble(("ALL", "bold"), " IR entries"))
        down = self.redis_keys is None
        redis = f"unavailable ({self.redis_error})" if self.redis_keys is None else plural(self.redis_keys, "key")
        with Vertical():
            yield Label(Text.assemble("Flush ", what, "?"), id="flush-title")
            yield Label(
                Text.assemble(plain(f"Redis: {redis} · filesystem: {plural(self.files, 'file')}."), "\n",
                              f"{kept_sentence(self.foreign).capitalize()}: kept.\n" if self.foreign and not down else "",
                              "Only IR entries under the prefix are touched. The filesystem is the cold-start tier."),
                id="flush-counts",
            )
            with RadioSet(id="flush-tiers"):
                yield RadioChoice(f"Redis only ({'—' if down else self.redis_keys})", value=not down,
                                  id="tier-redis", disabled=down)
                yield RadioChoice(f"Filesystem only ({self.files})", value=down, id="tier-fs")
                yield RadioChoice(f"Both ({'—' if self.redis_keys is None else self.redis_keys + self.files})",
                                  id="tier-both", disabled=down)
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Flush", variant="error", id="confirm")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(RadioSet).focus()

    def _request(self) -> FlushRequest:
        # `y` can come before the dialog is composed (a key typed ahead): then the default tier
        sets = self.query(RadioSet)
        pressed = sets.first().pressed_button if sets else None
        choice = pressed.id if pressed is not None else ("tier-fs" if self.redis_keys is None else "tier-redis")
        return FlushRequest(
            self.spec_name, redis=choice in ("tier-redis", "tier-both"), filesystem=choice in ("tier-fs", "tier-both")
        )

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        self.dismiss(self._request())

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
