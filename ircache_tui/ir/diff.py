"""Structural diffs of two ApplicationIRs: what a new version of a spec added, removed or changed.

`diff_ir(old, new)` is pure: it compares the models, never their JSON text.
Items are matched by identity, then their structural fields are compared:

    section     identity                           compared
    entity      name                               attributes, relationships
      attribute name                               data_type, is_primary_key, is_nullable, is_unique
      relation  "Source -> Target"                 type
    endpoint    "METHOD /path" (method upper-cased) auth_required, parameters
      parameter name                               location, data_type, required
    flow        name                               trigger, steps
    rule        "Entity.attribute type"            condition, error_message
                ("Entity type" without attribute)

Validation rules have no name: their natural key is the entity, the attribute
and the rule type. When two rules of one IR share that key (two `custom` rules
on one entity), the rules under it are told apart by their condition
("Pet.name custom: no emoji"), in both IRs. Any identity still repeated within
one IR gets " #2", " #3"... in order of appearance.

Prose is not compared (entity, attribute and parameter descriptions, endpoint
summaries, the application's description): a regeneration rewords it freely,
and it changes nothing that is built from the IR.

The JSON of a section is `{"added": [ids], "removed": [ids], "changed": {id:
detail}}`. A detail names only what changed: a field as `{"from": old, "to":
new}`, a nested collection (attributes, relationships, parameters) as its own
`{"added", "removed", "changed"}`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from ..fmt import plural
from .model import ApplicationIR, Attribute, Endpoint, Entity, Flow, Parameter, Relationship, ValidationRule

MINUS = "\u2212"  # "−", the sign in summaries and rendered lines

# section → (singular, plural), in the order sections are reported
SECTIONS: dict[str, tuple[str, str]] = {
    "entities": ("entity", "entities"),
    "endpoints": ("endpoint", "endpoints"),
    "flows": ("flow", "flows"),
    "rules": ("rule", "rules"),
}
# nested collections of a changed item → the noun of one of their items
_NESTED_NOUNS = {"attributes": "attribute", "relationships": "relationship", "parameters": "parameter"}

Detail = dict[str, Any]
_T = TypeVar("_T")  # one section's item: an Entity, an Endpoint...


@dataclass(frozen=True, slots=True)
class SectionDiff:
    """One section's changes: identities added and removed, and what changed in the items in both."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: dict[str, Detail] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def as_json(self) -> dict[str, Any]:
        return {"added": list(self.added), "removed": list(self.removed), "changed": dict(self.changed)}


@dataclass(frozen=True, slots=True)
class IRDiff:
    entities: SectionDiff = field(default_factory=SectionDiff)
    endpoints: SectionDiff = field(default_factory=SectionDiff)
    flows: SectionDiff = field(default_factory=SectionDiff)
    rules: SectionDiff = field(default_factory=SectionDiff)

    def sections(self) -> Iterator[tuple[str, SectionDiff]]:
        for name in SECTIONS:
            yield name, getattr(self, name)

    @property
    def is_empty(self) -> bool:
        return all(section.is_empty for _, section in self.sections())

    def summary(self) -> str:
        """`+1 entity, +2 endpoints, −1 rule`; `~1 entity` for changed ones; `no structural change`."""
        parts = []
        for name, section in self.sections():
            one, many = SECTIONS[name]
            for sign, n in (("+", len(section.added)), (MINUS, len(section.removed)), ("~", len(section.changed))):
                if n:
                    parts.append(sign + plural(n, one, many))
        return ", ".join(parts) or "no structural change"

    def as_json(self, spec_name: str, from_key: str, to_key: str) -> dict[str, Any]:
        """The `ircache-tui diff --json` document."""
        out: dict[str, Any] = {"spec_name": spec_name, "from": from_key, "to": to_key}
        for name, section in self.sections():
            out[name] = section.as_json()
        return out


# -- the comparison ----------------------------------------------------------------------------
def diff_ir(old: ApplicationIR, new: ApplicationIR) -> IRDiff:
    """What changed structurally from `old` to `new` (see the module docstring)."""
    return IRDiff(
        entities=_section(old.domain_model.entities, new.domain_model.entities, _entity_id, _entity_changes),
        endpoints=_section(old.api_model.endpoints, new.api_model.endpoints, endpoint_id, _endpoint_changes),
        flows=_section(old.behavior_model.flows, new.behavior_model.flows, _flow_id, _flow_changes),
        rules=_rules(old.validation_model.rules, new.validation_model.rules),
    )


def endpoint_id(endpoint: Endpoint) -> str:
    """`GET /pets/{id}`."""
    return f"{endpoint.method.upper()} {endpoint.path}"


def rule_id(rule: ValidationRule) -> str:
    """`Pet.price range`, or `Order custom` for a rule on the entity as a whole."""
    target = f"{rule.entity}.{rule.attribute}" if rule.attribute else rule.entity
    return f"{target} {rule.type}"


def _entity_id(entity: Entity) -> str:
    return entity.name


def _flow_id(flow: Flow) -> str:
    return flow.name


def _relationship_id(rel: Relationship) -> str:
    return f"{rel.source_entity} -> {rel.target_entity}"


def _index(items: Iterable[_T], key: Callable[[_T], str]) -> dict[str, _T]:
    """identity → item, in order; an identity seen again becomes `id #2`, `id #3`..."""
    out: dict[str, _T] = {}
    seen: Counter[str] = Counter()
    for item in items:
        ident = key(item)
        seen[ident] += 1
        out[ident if seen[ident] == 1 else f"{ident} #{seen[ident]}"] = item
    return out


def _compare(
    old: Iterable[_T], new: Iterable[_T], key: Callable[[_T], str], changes: Callable[[_T, _T], Detail],
) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, Detail]]:
    before, after = _index(old, key), _index(new, key)
    added = tuple(k for k in after if k not in before)
    removed = tuple(k for k in before if k not in after)
    changed: dict[str, Detail] = {}
    for k, item in after.items():
        if k in before:
            detail = changes(before[k], item)
            if detail:
                changed[k] = detail
    return added, removed, changed


def _section(
    old: Iterable[_T], new: Iterable[_T], key: Callable[[_T], str], changes: Callable[[_T, _T], Detail],
) -> SectionDiff:
    return SectionDiff(*_compare(old, new, key, changes))


def _nested(
    old: Iterable[_T], new: Iterable[_T], key: Callable[[_T], str], changes: Callable[[_T, _T], Detail],
) -> Detail | None:
    added, removed, changed = _compare(old, new, key, changes)
    if not (added or removed or changed):
        return None
    return {"added": list(added), "removed": list(removed), "changed": changed}


def _fields(old: Any, new: Any, names: Sequence[str]) -> Detail:
    out: Detail = {}
    for name in names:
        a, b = getattr(old, name), getattr(new, name)
        if a != b:
            out[name] = {"from": list(a) if isinstance(a, tuple) else a, "to": list(b) if isinstance(b, tuple) else b}
    return out


def _attribute_changes(old: Attribute, new: Attribute) -> Detail:
    return _fields(old, new, ("data_type", "is_primary_key", "is_nullable", "is_unique"))


def _relationship_changes(old: Relationship, new: Relationship) -> Detail:
    return _fields(old, new, ("type",))


def _parameter_changes(old: Parameter, new: Parameter) -> Detail:
    return _fields(old, new, ("location", "data_type", "required"))


def _entity_changes(old: Entity, new: Entity) -> Detail:
    out: Detail = {}
    attributes = _nested(old.attributes, new.attributes, lambda a: a.name, _attribute_changes)
    if attributes:
        out["attributes"] = attributes
    relationships = _nested(old.relationships, new.relationships, _relationship_id, _relationship_changes)
    if relationships:
        out["relationships"] = relationships
    return out


def _endpoint_changes(old: Endpoint, new: Endpoint) -> Detail:
    out = _fields(old, new, ("auth_required",))
    parameters = _nested(old.parameters, new.parameters, lambda p: p.name, _parameter_changes)
    if parameters:
        out["parameters"] = parameters
    return out


def _flow_changes(old: Flow, new: Flow) -> Detail:
    return _fields(old, new, ("trigger", "steps"))


def _rule_changes(old: ValidationRule, new: ValidationRule) -> Detail:
    return _fields(old, new, ("condition", "error_message"))


def _rules(old: Sequence[ValidationRule], new: Sequence[ValidationRule]) -> SectionDiff:
    # A natural key repeated within either IR is ambiguous: its rules are told apart by condition.
    counts_old, counts_new = Counter(map(rule_id, old)), Counter(map(rule_id, new))
    ambiguous = {k for k, n in (counts_old + counts_new).items() if counts_old[k] > 1 or counts_new[k] > 1}

    def key(rule: ValidationRule) -> str:
        base = rule_id(rule)
        return f"{base}: {rule.condition}" if base in ambiguous else base

    return _section(old, new, key, _rule_changes)


# -- rendering, for the command's text output and the dashboard -----------------------------------
LineKind = Literal["heading", "added", "removed", "changed", "detail"]


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + "; ".join(map(str, value)) + "]"
    if value == "":
        return '""'
    return str(value)


def _is_field(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"from", "to"}


def _detail_lines(detail: Detail, depth: int) -> Iterator[tuple[LineKind, str]]:
    pad = "  " * depth
    for name, value in detail.items():
        if _is_field(value):
            yield "detail", f"{pad}{name}: {_value(value['from'])} \u2192 {_value(value['to'])}"
            continue
        noun = _NESTED_NOUNS.get(name, name)
        for ident in value["added"]:
            yield "added", f"{pad}+ {noun} {ident}"
        for ident in value["removed"]:
            yield "removed", f"{pad}{MINUS} {noun} {ident}"
        for ident, sub in value["changed"].items():
            if all(_is_field(v) for v in sub.values()):
                what = ", ".join(f"{k} {_value(v['from'])} \u2192 {_value(v['to'])}" for k, v in sub.items())
                yield "changed", f"{pad}~ {noun} {ident}: {what}"
            else:
                yield "changed", f"{pad}~ {noun} {ident}"
                yield from _detail_lines(sub, depth + 1)


def render_lines(diff: IRDiff) -> list[tuple[LineKind, str]]:
    """The diff as lines of text, each with its kind (for colour): sections with changes only.

        entities
          + Toy
          ~ Pet
            + attribute color
            ~ attribute price: data_type float → integer
        rules
          − Order.total range
    """
    lines: list[tuple[LineKind, str]] = []
    for name, section in diff.sections():
        if section.is_empty:
            continue
        lines.append(("heading", name))
        lines.extend(("added", f"  + {ident}") for ident in section.added)
        lines.extend(("removed", f"  {MINUS} {ident}") for ident in section.removed)
        for ident, detail in section.changed.items():
            lines.append(("changed", f"  ~ {ident}"))
            lines.extend(_detail_lines(detail, 2))
    return lines
