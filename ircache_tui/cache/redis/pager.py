"""The cursor a key page hands back, as the dashboard keeps it.

On one server it is SCAN's own cursor. Over a cluster the primaries a walk started with are
walked one after the other, and the cursor is composite: the node's own SCAN cursor in the high
bits, the walk's layout (which primaries, by name) and the node's index in it in the low ones.
0 still starts and ends a walk.
"""

from __future__ import annotations

from dataclasses import dataclass

#: bits of the node's index in its layout
NODE_BITS = 16
#: bits of the layout: the last 2**LAYOUT_BITS lists of primaries are kept, so a cursor names its
#: node in the list its walk started with (a primary added or gone since cannot send it elsewhere)
LAYOUT_BITS = 8
_NODE_MASK = (1 << NODE_BITS) - 1
_LAYOUT_MASK = (1 << LAYOUT_BITS) - 1


@dataclass(frozen=True, slots=True)
class ClusterCursor:
    node_cursor: int  # the node's own SCAN cursor
    layout: int  # which list of primaries the walk started with
    index: int  # the node's place in that list

    def encode(self) -> int:
        return (self.node_cursor << (NODE_BITS + LAYOUT_BITS)) | (self.layout << NODE_BITS) | self.index

    @classmethod
    def decode(cls, cursor: int) -> ClusterCursor:
        return cls(cursor >> (NODE_BITS + LAYOUT_BITS), (cursor >> NODE_BITS) & _LAYOUT_MASK, cursor & _NODE_MASK)


def nodes_done(cursor: int) -> int:
    """How many primaries a cluster walk at `cursor` has finished (its node's index)."""
    return cursor & _NODE_MASK


class Layouts:
    """Numbers the lists of primaries walks start with, for cursors: the last one's when unchanged."""

    def __init__(self) -> None:
        self._names: dict[int, tuple[str, ...]] = {}
        self._current = 0

    def number(self, names: tuple[str, ...]) -> int:
        if self._names.get(self._current) != names:
            self._current = (self._current + 1) % (1 << LAYOUT_BITS)
            self._names[self._current] = names
        return self._current

    def names(self, layout: int) -> tuple[str, ...]:
        return self._names.get(layout, ())
