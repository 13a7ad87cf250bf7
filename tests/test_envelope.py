import json

import pytest

from ircache_tui.cache.keys import spec_hash
from ircache_tui.ir import SCHEMA_VERSION, ApplicationIR, CorruptEntry, StoredEntry, decode_entry


def make_entry(text="spec") -> StoredEntry:
    return StoredEntry.create(
        ApplicationIR(name="X"), spec_name="x", spec_hash=spec_hash(text), spec_path="x.md", generator="offline"
    )


def test_round_trip():
    entry = make_entry()
    raw = entry.to_json_bytes()
    back = decode_entry(raw, spec_hash("spec")[:8])
    assert back == entry
    data = json.loads(raw)
    assert set(data) == {
        "schema_version", "spec_name", "spec_hash", "spec_path", "generated_at", "generator", "application_ir", "usage",
        "spec_text",
    }
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["generator"] == {"name": "offline", "model": None}


def test_an_entry_written_before_usage_was_recorded_still_decodes_as_usage_unknown():
    """No regeneration bill from an upgrade: the old shape is valid, its usage None."""
    data = json.loads(make_entry().to_json_bytes())
    del data["usage"]
    old = decode_entry(json.dumps(data).encode(), spec_hash("spec")[:8])
    assert old.usage is None and old.application_ir.name == "X"


def test_usage_round_trips():
    from ircache_tui.ir.usage import Usage

    usage = Usage(input_tokens=1200, output_tokens=3400, duration_s=41.5, cost_usd=0.0396)
    entry = make_entry().model_copy(update={"usage": usage})
    assert decode_entry(entry.to_json_bytes(), spec_hash("spec")[:8]).usage == usage


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"{not json", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2]", "invalid entry"),
    ],
)
def test_garbage_is_corrupt(raw, reason):
    with pytest.raises(CorruptEntry) as err:
        decode_entry(raw)
    assert reason in err.value.reason


def test_other_schema_version_is_corrupt():
    data = make_entry().to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(CorruptEntry, match="schema_version"):
        decode_entry(json.dumps(data))
    data["application_ir"] = {"totally": "different"}
    with pytest.raises(CorruptEntry, match="schema_version"):
        decode_entry(json.dumps(data))
    del data["schema_version"]
    with pytest.raises(CorruptEntry, match="no schema_version"):
        decode_entry(json.dumps(data))


def test_invalid_ir_is_corrupt():
    data = make_entry().to_dict()
    data["application_ir"]["domain_model"] = {"entities": [{"name": "A", "attributes": [{"name": "a", "data_type": "blob"}]}]}
    with pytest.raises(CorruptEntry, match="data_type"):
        decode_entry(json.dumps(data))


def test_hash_must_match_key():
    raw = make_entry().to_json_bytes()
    with pytest.raises(CorruptEntry, match="does not match"):
        decode_entry(raw, "00000000")
