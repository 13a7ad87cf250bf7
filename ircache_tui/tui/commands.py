"""The command palette (ctrl+p) knows every key: each binding of the screen it was opened on.

The footer has room for a few keys; the palette lists them all, from the
App's bindings and those of the focused pane (the keys tab's delete, TTL,
export…), by their description, with the key and what it does as help. It
reads the screen's active bindings rather than a list of its own, so a new
binding is in the palette the moment it exists, and a key the screen hides
(another screen on top, no flush running) is not offered. A greyed-out key
(a write in a read-only session) is offered, and choosing it says why it is
off, as pressing it does.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode
from textual.markup import escape

from .text import plain


def _declared(cls: type) -> set[tuple[str, str]]:
    """The (action, description) of the bindings our own classes declare: a table's cursor keys and
    Textual's focus keys are not the dashboard's actions."""
    return {(b.action, b.description) for c in cls.__mro__ if c.__module__.startswith("ircache_tui.")
            for b in c.__dict__.get("BINDINGS", ()) if isinstance(b, Binding) and b.description}


class BindingCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self.app
        seen: set[tuple[int, str]] = set()
        commands = []
        for active in self.screen.active_bindings.values():
            binding = active.binding
            # one entry per action and node, whatever the number of keys; Textual's own commands have quit
            if (binding.action == "quit" or (id(active.node), binding.action) in seen
                    or (binding.action, binding.description) not in _declared(type(active.node))):
                continue
            seen.add((id(active.node), binding.action))
            keys = [b.binding for b in self.screen.active_bindings.values()
                    if b.node is active.node and b.binding.action == binding.action]
            shown = ", ".join(app.get_key_display(b) for b in keys)
            help_text = f"{binding.tooltip or binding.description} · key {shown}"
            if active.enabled:
                run: Callable[[], object] = partial(self._run, binding.action, active.node)
            else:
                reason = self._reason(binding.action)
                help_text += f" · off: {reason}"
                run = partial(app.notify, reason, severity="warning", markup=False)
            # the palette reads help as markup: `[` (the previous-tab key) must stay a bracket
            commands.append((binding.description, escape(help_text), run))
        return commands

    def _reason(self, action: str) -> str:
        explain: Callable[[str], str] | None = getattr(self.app, "disabled_reason", None)
        return explain(action) if explain is not None else "not available here"

    def _run(self, action: str, node: DOMNode) -> None:
        self.app.call_later(self.app.run_action, action, node)

    async def discover(self) -> Hits:
        for name, help_text, run in self._commands():
            yield DiscoveryHit(plain(name), run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, run in self._commands():
            # the help text is searched too, at half weight: "ttl" finds "Reset TTL" and "Set TTL"
            score = max(matcher.match(name), matcher.match(help_text) * 0.5)
            if score > 0:
                yield Hit(score, matcher.highlight(name), run, help=help_text)
