"""A deterministic generator that reads the IR off the markdown's structure.

No network, no randomness: the same spec gives the same IR, so the whole
product (and its tests and screenshots) works without an API key. It
understands the shapes specs are usually written in:

- `# Title` and the paragraph under it → name and description;
- an "Entities"/"Models"/"Data" section whose `###` sub-headings are entities,
  with attributes as bullets (`- price: float (required)`) or a table
  (`| name | type | notes |`);
- lines like `GET /products/{id} - Fetch one` anywhere → endpoints;
- a "Relationships" section (`- Order many_to_one Customer`, `Customer has many Order`);
- a "Flows" section with `###` flows, a `Trigger:` line and numbered steps;
- a "Validation"/"Rules" section (`- Product.price: must be greater than 0`).
"""

from __future__ import annotations

import re
from typing import Any

from .base import fingerprint_of
from ..model import (
    APIModel,
    ApplicationIR,
    BehaviorModel,
    DatabaseConfig,
    DomainModel,
    Endpoint,
    Entity,
    Flow,
    InfrastructureModel,
    Parameter,
    ValidationModel,
    ValidationRule,
)

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$")
_ENDPOINT = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+`?(/[^\s`|]*)`?")
_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}|:([A-Za-z_][A-Za-z0-9_]*)")
_ATTR_BULLET = re.compile(
    r"^\**`?(?P<name>[A-Za-z_][A-Za-z0-9_]*)`?\**\s*(?:\((?P<ptype>[^)]*)\))?\s*[:\-—–]?\s*(?P<rest>.*)$"
)
_REL_EXPLICIT = re.compile(
    r"(?P<a>[A-Za-z_]\w*)\s+(?P<t>one[_ -]to[_ -]one|one[_ -]to[_ -]many|many[_ -]to[_ -]one|many[_ -]to[_ -]many)\s+(?P<b>[A-Za-z_]\w*)",
    re.I,
)
_REL_PHRASE = re.compile(
    r"(?P<a>[A-Za-z_]\w*)\s+(?P<p>has many|has one|belongs to|has and belongs to many)\s+(?P<b>[A-Za-z_]\w*)",
    re.I,
)
_RULE_TARGET = re.compile(r"^`?(?P<entity>[A-Za-z_]\w*)(?:\.(?P<attr>[A-Za-z_]\w*))?`?\s*[:\-—–]?\s*(?P<cond>.*)$")
_QUOTED = re.compile(r"[\"“]([^\"”]+)[\"”]")

_TYPE_WORDS: list[tuple[tuple[str, ...], str]] = [
    (("uuid", "guid"), "uuid"),
    (("datetime", "timestamp", "date", "time"), "datetime"),
    (("bool", "boolean", "flag"), "boolean"),
    (("float", "decimal", "number", "numeric", "double", "money", "price", "real"), "float"),
    (("int", "integer", "bigint", "count", "serial"), "integer"),
    (("json", "object", "dict", "map", "array", "list"), "json"),
    (("enum", "choice", "status"), "enum"),
    (("str", "string", "text", "varchar", "email", "url", "char"), "string"),
]
_DATABASES = ("postgresql", "postgres", "mysql", "sqlite", "mongodb", "mariadb", "redis")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def _data_type(text: str) -> str | None:
    words = _words(text)
    for candidates, dtype in _TYPE_WORDS:
        if any(w in candidates for w in words):
            return dtype
    return None


def _section_kind(title: str) -> str:
    t = title.lower()
    for kind, needles in (
        ("relationships", ("relationship", "association")),
        ("rules", ("validation", "rule", "constraint", "invariant")),
        ("flows", ("flow", "workflow", "process", "behavio", "use case", "scenario")),
        ("endpoints", ("endpoint", "api", "route", "operation")),
        ("entities", ("entit", "model", "resource", "data", "schema", "domain")),
        ("infrastructure", ("infrastructure", "database", "deployment", "storage")),
    ):
        if any(n in t for n in needles):
            return kind
    return "other"


def _clean(text: str) -> str:
    return re.sub(r"\*+|`+|(?<!\w)__|__(?!\w)", "", text).strip()


def _split_table_row(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


class _Parser:
    def __init__(self, markdown: str, fallback_name: str) -> None:
        self.lines = markdown.splitlines()
        self.name = fallback_name
        self.description = ""
        # Drafts are plain dicts: the IR models are immutable, so they are built once, at the end.
        self.entities: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[tuple[str, str], Endpoint] = {}
        self.relationships: list[tuple[str, str, str]] = []
        self.flows: list[dict[str, Any]] = []
        self.rules: list[ValidationRule] = []
        self.database = ""

    # -- building blocks -------------------------------------------------
    def _entity(self, name: str, description: str = "") -> dict[str, Any]:
        key = name.lower()
        if key not in self.entities:
            self.entities[key] = {"name": name, "description": description, "attributes": [], "relationships": []}
        return self.entities[key]

    def _add_attribute(self, entity: dict[str, Any], name: str, type_text: str, notes: str) -> None:
        if any(a["name"] == name for a in entity["attributes"]):
            return
        lowered = f"{type_text} {notes}".lower()
        dtype = _data_type(type_text) or _data_type(name) or "string"
        pk = "primary key" in lowered or re.search(r"\bpk\b", lowered) is not None
        required = pk or "required" in lowered or "not null" in lowered or "mandatory" in lowered
        nullable = not required
        entity["attributes"].append(
            {
                "name": name,
                "data_type": dtype,
                "is_primary_key": pk,
                "is_nullable": nullable,
                "is_unique": pk or "unique" in lowered,
                "description": _clean(notes),
            }
        )

    def _endpoint(self, line: str) -> None:
        for m in _ENDPOINT.finditer(line):
            method, path = m.group(1), m.group(2).rstrip(".,;:")
            if (method, path) in self.endpoints:
                continue
            tail = line[m.end():]
            summary = _clean(re.sub(r"^[\s`|:\-—–]+", "", tail).split("|")[0])
            summary = re.sub(r"\s*\((?:auth[^)]*|public|no auth)\)\s*$", "", summary, flags=re.I)
            lowered = line.lower()
            auth = ("auth" in lowered or "🔒" in line) and "no auth" not in lowered and "public" not in lowered
            params = tuple(
                Parameter(name=p[0] or p[1], location="path", required=True)
                for p in _PATH_PARAM.findall(path)
            )
            self.endpoints[(method, path)] = Endpoint(
                method=method, path=path, summary=summary, auth_required=auth, parameters=params
            )

    def _relationship(self, text: str, default_source: str | None) -> bool:
        m = _REL_EXPLICIT.search(text)
        if m:
            kind = re.sub(r"[ -]", "_", m["t"].lower())
            self.relationships.append((m["a"], m["b"], kind))
            return True
        m = _REL_PHRASE.search(text)
        if m:
            phrase = m["p"].lower()
            kind = {
                "has many": "one_to_many",
                "has one": "one_to_one",
                "belongs to": "many_to_one",
                "has and belongs to many": "many_to_many",
            }[phrase]
            self.relationships.append((m["a"], m["b"], kind))
            return True
        return False

    def _rule(self, text: str, default_entity: str | None) -> None:
        m = _RULE_TARGET.match(_clean(text) if "`" not in text else text.replace("*", ""))
        entity, attr, cond = default_entity or "", "", _clean(text)
        if m and (m["attr"] or m["entity"].lower() in self.entities or default_entity is None):
            entity, attr, cond = m["entity"], m["attr"] or "", _clean(m["cond"]) or cond
        lowered = cond.lower()
        if "required" in lowered or "must be provided" in lowered or "not empty" in lowered:
            kind = "required"
        elif "unique" in lowered:
            kind = "uniqueness"
        elif re.search(r"greater|less|between|at least|at most|>|<|positive|negative|minimum|maximum", lowered):
            kind = "range"
        elif re.search(r"format|email|pattern|match", lowered):
            kind = "format"
        elif "length" in lowered or "characters" in lowered:
            kind = "length"
        else:
            kind = "custom"
        quoted = _QUOTED.search(text)
        if quoted:
            cond = _QUOTED.sub("", cond).strip()
        message = quoted.group(1) if quoted else f"{entity}{'.' + attr if attr else ''} {cond}".strip()
        self.rules.append(
            ValidationRule(entity=entity, attribute=attr, type=kind, condition=cond, error_message=message)
        )

    # -- the walk --------------------------------------------------------
    def parse(self) -> ApplicationIR:
        section = "other"
        sub: str | None = None  # current ### heading inside the section
        flow: dict[str, Any] | None = None
        table_header: list[str] | None = None
        in_code = False
        seen_title = False

        for raw in self.lines:
            line = raw.rstrip()
            if line.lstrip().startswith("```"):
                in_code = not in_code
                continue
            if not in_code:
                self._endpoint(line)
            if in_code:
                continue
            for db in _DATABASES:
                if not self.database and re.search(rf"\b{db}\b", line.lower()):
                    self.database = "postgresql" if db == "postgres" else db

            h = _HEADING.match(line)
            if h:
                level, title = len(h.group(1)), _clean(h.group(2))
                table_header = None
                if level == 1 and not seen_title:
                    self.name, seen_title = title or self.name, True
                    section, sub, flow = "intro", None, None
                elif level <= 2:
                    section, sub, flow = _section_kind(title), None, None
                else:
                    sub = title.split(":")[0].strip()
                    flow = None
                    if section == "entities" and re.match(r"^[A-Za-z_]\w*$", sub):
                        self._entity(sub)
                    elif section == "flows" and sub:
                        flow = {"name": sub, "trigger": "", "steps": []}
                        self.flows.append(flow)
                continue

            stripped = line.strip()
            if not stripped:
                table_header = None
                continue

            if section == "intro" and not self.description and not stripped.startswith(("|", "-", "*")):
                self.description = _clean(stripped)
                continue

            if stripped.startswith("|"):
                cells = _split_table_row(stripped)
                if all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                    continue
                if table_header is None:
                    table_header = [c.lower() for c in cells]
                    continue
                if section == "entities" and sub and sub.lower() in self.entities:
                    row = dict(zip(table_header, cells))
                    name = _clean(row.get("name") or row.get("field") or row.get("attribute") or cells[0])
                    if re.fullmatch(r"[A-Za-z_]\w*", name):
                        type_text = row.get("type") or row.get("data type") or (cells[1] if len(cells) > 1 else "")
                        notes = " ".join(v for k, v in row.items() if k not in {"name", "field", "attribute", "type", "data type"})
                        self._add_attribute(self.entities[sub.lower()], name, type_text, notes)
                continue

            bullet = _BULLET.match(line)
            text = bullet.group(1).strip() if bullet else stripped

            if section == "flows":
                if flow is None and bullet and ":" in text and not _ENDPOINT.search(text.split(":")[0]):
                    name, _, rest = text.partition(":")
                    steps = [_clean(s) for s in re.split(r";|→|->", rest) if s.strip()]
                    self.flows.append({"name": _clean(name), "trigger": "", "steps": steps})
                elif flow is not None:
                    if text.lower().startswith(("trigger:", "**trigger")):
                        flow["trigger"] = _clean(text.split(":", 1)[1])
                    elif bullet:
                        flow["steps"].append(_clean(text))
                continue

            if section == "relationships" or (section == "entities" and bullet and self._looks_relational(text)):
                if self._relationship(text, sub):
                    continue

            if section == "rules" and bullet:
                self._rule(text, sub if sub and sub.lower() in self.entities else None)
                continue

            if section == "entities" and bullet and sub and sub.lower() in self.entities:
                m = _ATTR_BULLET.match(_clean(text) if "(" not in text else text.replace("*", "").replace("`", ""))
                if m:
                    rest = m["rest"]
                    type_text = m["ptype"] or rest.split("(")[0].split(",")[0]
                    notes = rest if m["ptype"] else rest[len(type_text):]
                    paren = re.search(r"\(([^)]*)\)", rest)
                    if paren and not m["ptype"]:
                        notes = paren.group(1) + " " + rest[paren.end():]
                    self._add_attribute(self.entities[sub.lower()], m["name"], type_text, notes.strip(" ,-—–"))
                continue

            if section == "entities" and not bullet and sub and sub.lower() in self.entities:
                ent = self.entities[sub.lower()]
                if not ent["description"]:
                    ent["description"] = _clean(stripped)

        return self._build()

    @staticmethod
    def _looks_relational(text: str) -> bool:
        return _REL_EXPLICIT.search(text) is not None or _REL_PHRASE.search(text) is not None

    def _build(self) -> ApplicationIR:
        for entity in self.entities.values():
            attributes = entity["attributes"]
            if attributes and not any(a["is_primary_key"] for a in attributes):
                for a in attributes:
                    if a["name"] == "id":
                        a.update(is_primary_key=True, is_unique=True, is_nullable=False)
        for source, target, kind in self.relationships:
            owner = self.entities.get(source.lower())
            if owner is None:
                owner = self._entity(source)
            owner["relationships"].append({"source_entity": owner["name"], "target_entity": target, "type": kind})
        return ApplicationIR(
            name=self.name,
            description=self.description,
            domain_model=DomainModel(entities=tuple(Entity.model_validate(e) for e in self.entities.values())),
            api_model=APIModel(endpoints=tuple(self.endpoints.values())),
            behavior_model=BehaviorModel(flows=tuple(Flow.model_validate(f) for f in self.flows)),
            validation_model=ValidationModel(rules=tuple(self.rules)),
            infrastructure_model=InfrastructureModel(
                database=DatabaseConfig(type=self.database or "postgresql", name=re.sub(r"\W+", "_", self.name.lower()).strip("_"))
            ),
        )


#: Bump when the parser reads a spec differently: entries made before are then outdated
#: (their fingerprint differs), and `warm DIR --outdated` makes them again.
ALGORITHM_VERSION = 1


class OfflineGenerator:
    """Derives an ApplicationIR from a spec's markdown structure, deterministically."""

    name = "offline"
    model: str | None = None
    #: no model is asked: the cache's miss line must not say "generating with LLM"
    uses_llm = False

    @property
    def fingerprint(self) -> str:
        """Its name and ALGORITHM_VERSION: what it makes of a spec changes only with them."""
        return fingerprint_of(self.name, str(ALGORITHM_VERSION))

    async def generate(self, spec_markdown: str, spec_name: str) -> ApplicationIR:
        return parse_spec(spec_markdown, spec_name)


def parse_spec(spec_markdown: str, spec_name: str) -> ApplicationIR:
    """The synchronous core of OfflineGenerator, for callers without a loop."""
    return _Parser(spec_markdown, spec_name).parse()
