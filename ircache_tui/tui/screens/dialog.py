"""The frame every dialog shares: centred, a bordered box of text, choices and buttons.

A dialog subclasses Dialog and, in its own DEFAULT_CSS, says only what differs: its width and
the border's colour (error: it deletes; warning: it changes or spends; accent: it asks or shows).
Textual applies a base class's DEFAULT_CSS to its subclasses (type selectors match the bases'
names), below the subclass's own rules.
"""

from __future__ import annotations

from typing import TypeVar

from textual.screen import ModalScreen

_R = TypeVar("_R")


class Dialog(ModalScreen[_R]):
    DEFAULT_CSS = """
    Dialog { align: center middle; }
    Dialog > Vertical { width: 64; max-width: 100%; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    Dialog Label { width: 100%; margin-bottom: 1; }
    Dialog RadioSet, Dialog Checkbox { width: 100%; margin-bottom: 1; }
    Dialog Horizontal { height: auto; align: right middle; }
    Dialog Button { margin-left: 2; }
    Dialog .dialog-error { color: $error; }
    """
