"""Incremental regeneration's pure parts: the spec's diff, the patch format asked of a model, and
applying it (RFC 6902 JSON Patch, with the `jsonpatch` library) to the previous IR.

The wire format. Structured output needs object schemas with `additionalProperties: false` and
every property named, and an RFC 6902 `value` may be any JSON (an object, a string, a number...),
which such a schema cannot say without listing every shape of the IR. So each operation carries
its value as JSON *text* (`value_json`, parsed here), and `from` / `value_json` are "" when the
operation has none:

    {"operations": [{"op": "add", "path": "/api_model/endpoints/3", "from": "",
                     "value_json": "{\\"method\\": \\"GET\\", \\"path\\": \\"/tags\\"}"}]}

`rfc6902()` turns that into the standard operations, `apply()` applies them to the previous IR and
validates the result as an ApplicationIR like any generation; anything wrong on the way is a
PatchFailed whose reason is one line for the log.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

import jsonpatch  # 1.48 ships its own stubs (jsonpatch-stubs): strict mypy needs no override
import jsonpointer
from pydantic import ValidationError

from ..errors import IRCacheError
from .model import ApplicationIR

OPS = ("add", "remove", "replace", "move", "copy", "test")
#: an answer with more operations than this is no small edit: the full generation is cheaper to trust
MAX_OPERATIONS = 500

PATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "operations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "op": {"type": "string", "enum": list(OPS)},
                    "path": {"type": "string"},
                    "from": {"type": "string"},
                    "value_json": {"type": "string"},
                },
                "required": ["op", "path", "from", "value_json"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["operations"],
    "additionalProperties": False,
}

PATCH_INSTRUCTIONS = """The specification above changed as the unified diff shows. Answer with \
RFC 6902 JSON Patch operations that turn the previous ApplicationIR into the ApplicationIR of the \
new specification: change only what the diff changes, and leave everything else as it is. Paths \
are JSON Pointers into the previous ApplicationIR as shown (array items by index, applied in \
order). Each operation has "op" (add, remove, replace, move, copy or test), "path", "from" (the \
source pointer of move and copy, else "") and "value_json" (the value of add, replace and test as \
JSON text, e.g. "{\\"name\\": \\"sku\\"}" or "\\"text\\"" or "3", else "")."""


class PatchFailed(IRCacheError):
    """A patch that cannot be used; `reason` is one line for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SpecDiff:
    """The unified diff between two versions of a spec, and how much of it changed."""

    text: str
    changed_lines: int  # max(lines removed, lines added): a line edited in place counts once
    total_lines: int  # lines of the longer version

    @property
    def fraction(self) -> float:
        return self.changed_lines / max(self.total_lines, 1)


def spec_diff(previous: str, current: str, spec_name: str) -> SpecDiff:
    old, new = previous.splitlines(keepends=True), current.splitlines(keepends=True)
    lines = list(difflib.unified_diff(old, new, f"a/{spec_name}", f"b/{spec_name}"))
    added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
    return SpecDiff(text, max(added, removed), max(len(old), len(new)))


def ir_document(ir: ApplicationIR) -> dict[str, Any]:
    """The IR as the JSON document patches address (every field, defaults included)."""
    return ir.model_dump(mode="json")


def rfc6902(answer: str | dict[str, Any]) -> list[dict[str, Any]]:
    """The standard operations of an answer in the wire format (see the module docstring)."""
    try:
        data = json.loads(answer) if isinstance(answer, str) else answer
    except ValueError as exc:
        raise PatchFailed(f"the answer is not JSON ({exc})") from None
    found = data.get("operations") if isinstance(data, dict) else None
    if not isinstance(found, list):
        raise PatchFailed('the answer has no "operations" list')
    if len(found) > MAX_OPERATIONS:
        raise PatchFailed(f"the answer has {len(found)} operations, more than {MAX_OPERATIONS}")
    ops: list[dict[str, Any]] = []
    for n, item in enumerate(found, 1):
        if not isinstance(item, dict) or item.get("op") not in OPS or not isinstance(item.get("path"), str):
            raise PatchFailed(f"operation {n} is not an operation of {', '.join(OPS)} with a path")
        op: dict[str, Any] = {"op": item["op"], "path": item["path"]}
        if op["op"] in ("move", "copy"):
            source = item.get("from")
            if not isinstance(source, str) or not source.startswith("/"):
                raise PatchFailed(f"operation {n} ({op['op']}) has no source pointer")
            op["from"] = source
        elif op["op"] in ("add", "replace", "test"):
            try:
                op["value"] = json.loads(item.get("value_json") or "")
            except (TypeError, ValueError):
                raise PatchFailed(f"operation {n} ({op['op']} {op['path']}): value_json is not JSON text") from None
        ops.append(op)
    return ops


def wire(ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Standard operations in the wire format (what a model is asked for; the tests' oracle answers so)."""
    return {"operations": [{"op": op["op"], "path": op["path"], "from": op.get("from", ""),
                            "value_json": json.dumps(op["value"]) if "value" in op else ""} for op in ops]}


def make_patch(previous: ApplicationIR, current: ApplicationIR) -> list[dict[str, Any]]:
    """The standard operations that turn `previous` into `current` (jsonpatch's own diff)."""
    return jsonpatch.make_patch(ir_document(previous), ir_document(current)).patch


#: how far a patch's copies may grow the IR: this many times its size, or this many bytes more
GROWTH = 4
GROWTH_FLOOR = 256 * 1024


def apply(previous: ApplicationIR, ops: list[dict[str, Any]]) -> ApplicationIR:
    """`previous` with `ops` applied, validated as an ApplicationIR; PatchFailed when either fails."""
    document = ir_document(previous)
    # `copy` is the one operation that can grow the document past what the answer itself holds (each
    # copy of a node into its own child doubles it): 30 of them would be gigabytes. The answer comes
    # from a model steered by spec text, so the document is measured after each copy, and bounded.
    limit = max(GROWTH * len(json.dumps(document)), len(json.dumps(document)) + GROWTH_FLOOR)
    try:
        patched: Any = document
        for op in ops:
            patched = jsonpatch.apply_patch(patched, [op], in_place=True)
            if op["op"] == "copy" and (size := len(json.dumps(patched))) > limit:
                raise PatchFailed(f"the patch grows the IR past {limit:,} bytes ({size:,} after a copy to "
                                  f"{str(op['path'])[:80]}): refused")
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise PatchFailed(f"the patch does not apply ({exc.__class__.__name__}: {_line(exc)})") from None
    except (TypeError, ValueError, KeyError, IndexError) as exc:  # a malformed pointer the library did not name
        raise PatchFailed(f"the patch does not apply ({exc.__class__.__name__}: {_line(exc)})") from None
    try:
        return ApplicationIR.model_validate(patched)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise PatchFailed(f"the patched IR is not a valid ApplicationIR ({where}: {first['msg']}{more})") from None


def _line(exc: BaseException, limit: int = 160) -> str:
    flat = " ".join(str(exc).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
