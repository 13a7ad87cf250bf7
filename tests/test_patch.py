"""The pure parts of incremental regeneration (ir/patch.py): the spec's diff and how much it
changed, the wire format asked of a model, and applying it to the previous IR."""

from __future__ import annotations

import json

import pytest

from ircache_tui.ir.generators.offline import parse_spec
from ircache_tui.ir.patch import MAX_OPERATIONS, PatchFailed, apply, make_patch, rfc6902, spec_diff, wire
from tests.support.generators import SPEC

EDITED = SPEC.replace("- price: float (required)\n", "- price: float (required)\n- name: string\n")


def test_a_line_edited_in_place_counts_once():
    diff = spec_diff(SPEC, SPEC.replace("Sells things.", "Sells good things."), "shop")
    assert (diff.changed_lines, diff.total_lines) == (1, len(SPEC.splitlines()))
    assert "-Sells things.\n+Sells good things.\n" in diff.text and diff.text.startswith("--- a/shop\n+++ b/shop\n")
    assert spec_diff(SPEC, SPEC, "shop").changed_lines == 0


def test_the_wire_format_round_trips_every_kind_of_value():
    before, after = parse_spec(SPEC, "shop"), parse_spec(EDITED, "shop")
    ops = make_patch(before, after) + [{"op": "test", "path": "/version", "value": "1.0.0"},
                                       {"op": "copy", "from": "/name", "path": "/description"}]
    sent = json.dumps(wire(ops))
    assert rfc6902(sent) == ops
    result = apply(before, rfc6902(sent))
    assert result.domain_model == after.domain_model and result.description == after.name


@pytest.mark.parametrize("answer, reason", [
    ("not json", "the answer is not JSON"),
    ('{"ops": []}', 'no "operations" list'),
    ('{"operations": [{"op": "frobnicate", "path": "/a"}]}', "operation 1 is not an operation"),
    ('{"operations": [{"op": "move", "path": "/a", "from": "", "value_json": ""}]}', "operation 1 (move) has no source"),
    ('{"operations": [{"op": "add", "path": "/a", "from": "", "value_json": "{oops"}]}', "value_json is not JSON text"),
    (json.dumps({"operations": [{"op": "remove", "path": "/x", "from": "", "value_json": ""}] * (MAX_OPERATIONS + 1)}),
     f"more than {MAX_OPERATIONS}"),
])
def test_an_answer_that_is_no_patch_says_why(answer, reason):
    with pytest.raises(PatchFailed) as exc:
        rfc6902(answer)
    assert reason in exc.value.reason


@pytest.mark.parametrize("ops, reason", [
    ([{"op": "remove", "path": "/api_model/endpoints/7"}], "the patch does not apply"),
    ([{"op": "test", "path": "/name", "value": "Other"}], "the patch does not apply (JsonPatchTestFailed"),
    ([{"op": "replace", "path": "/domain_model/entities/0/attributes/0/data_type", "value": "blob"}],
     "not a valid ApplicationIR (domain_model.entities.0.attributes.0.data_type"),
])
def test_a_patch_that_fails_says_why(ops, reason):
    with pytest.raises(PatchFailed) as exc:
        apply(parse_spec(SPEC, "shop"), ops)
    assert reason in exc.value.reason and "\n" not in exc.value.reason


def test_copies_that_would_grow_the_ir_without_bound_are_refused():
    """A node copied into its own child doubles the document each time: 40 such copies would be
    terabytes. The document is measured after each copy and the patch refused past the bound."""
    previous = parse_spec(SPEC, "shop")
    ops = [{"op": "copy", "from": "/domain_model/entities", "path": "/domain_model/entities/0/attributes/-"}
           for _ in range(40)]
    with pytest.raises(PatchFailed, match="grows the IR past"):
        apply(previous, ops)
