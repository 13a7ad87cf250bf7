"""A checkbox and a radio button that read right without colour.

Textual's ToggleButton draws `▐X▌` ticked or not (a radio button `▐●▌`, chosen or not) and tells
the two apart by colour alone: an unticked box reads as ticked on a monochrome terminal, in a
screen reader or a copied screen, and every option of a radio set looks chosen. These draw the
state itself: `[x]` / `[ ]` and `(•)` / `( )`, the mark in the button's colour too.
"""

from __future__ import annotations

from textual.content import Content
from textual.style import Style
from textual.widgets import Checkbox, RadioButton


def _glyph(left: str, mark: str, right: str, on: bool, mark_style: Style) -> Content:
    return Content.assemble(left, (mark, mark_style) if on else " ", right)


class TickBox(Checkbox):
    """A Checkbox drawn `[x]` when ticked and `[ ]` when not."""

    @property
    def _button(self) -> Content:
        return _glyph("[", "x", "]", self.value, self.get_visual_style("toggle--button"))


class RadioChoice(RadioButton):
    """A RadioButton drawn `(•)` when chosen and `( )` when not (in a RadioSet, as RadioButton)."""

    @property
    def _button(self) -> Content:
        return _glyph("(", "•", ")", self.value, self.get_visual_style("toggle--button"))
