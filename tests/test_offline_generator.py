from pathlib import Path

import pytest

from ircache_tui.ir.generators import OfflineGenerator
from ircache_tui.ir.generators.anthropic import AnthropicGenerator
from ircache_tui.ir.generators.offline import parse_spec
from ircache_tui.settings import Settings

EXAMPLES = Path(__file__).parent.parent / "examples" / "specs"


def test_petstore_example():
    ir = parse_spec((EXAMPLES / "petstore-spec.md").read_text(), "petstore-spec")
    assert ir.name == "Petstore API"
    assert ir.description.startswith("A small pet store")
    assert [e.name for e in ir.domain_model.entities] == ["Pet", "Customer", "Order"]
    pet = ir.domain_model.entities[0]
    by_name = {a.name: a for a in pet.attributes}
    assert by_name["id"].data_type == "uuid" and by_name["id"].is_primary_key and not by_name["id"].is_nullable
    assert by_name["price"].data_type == "float" and not by_name["price"].is_nullable
    assert by_name["species"].data_type == "enum"
    assert by_name["born_at"].is_nullable
    customer = ir.domain_model.entities[1]
    assert [a.name for a in customer.attributes] == ["id", "email", "full_name"]  # from a table
    assert next(a for a in customer.attributes if a.name == "email").is_unique
    assert [(r.source_entity, r.target_entity, r.type) for r in customer.relationships] == [("Customer", "Order", "one_to_many")]
    endpoints = [(e.method, e.path, e.auth_required) for e in ir.api_model.endpoints]
    assert ("GET", "/pets/{id}", False) in endpoints and ("POST", "/orders", True) in endpoints
    one = next(e for e in ir.api_model.endpoints if e.path == "/pets/{id}")
    assert [(p.name, p.location) for p in one.parameters] == [("id", "path")]
    flow = ir.behavior_model.flows[0]
    assert flow.name == "Checkout" and flow.trigger == "POST /orders" and len(flow.steps) == 3
    rule = ir.validation_model.rules[0]
    assert (rule.entity, rule.attribute, rule.type, rule.error_message) == ("Pet", "price", "range", "Price must be positive")
    assert ir.infrastructure_model.database.type == "postgresql"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.md")), ids=lambda p: p.stem)
async def test_every_example_is_deterministic_and_non_empty(path):
    text = path.read_text()
    a = await OfflineGenerator().generate(text, path.stem)
    b = await OfflineGenerator().generate(text, path.stem)
    assert a == b
    assert a.domain_model.entities and a.api_model.endpoints


def test_endpoints_anywhere_and_code_blocks_ignored():
    ir = parse_spec("# T\n\nCall `DELETE /things/:id` to remove.\n\n```\nGET /not-real\n```\n", "t")
    assert [(e.method, e.path) for e in ir.api_model.endpoints] == [("DELETE", "/things/:id")]
    assert ir.api_model.endpoints[0].parameters[0].name == "id"


def test_no_title_uses_spec_name():
    assert parse_spec("just text", "fallback").name == "fallback"


async def test_the_settings_generator_follows_the_api_key():
    assert Settings.from_env({}).make_generator().name == "offline"
    gen = Settings.from_env({"ANTHROPIC_API_KEY": "sk-test"}).make_generator()
    assert isinstance(gen, AnthropicGenerator)
    await gen.aclose()
    chosen = Settings.from_env({"ANTHROPIC_API_KEY": "sk-test", "IR_GENERATOR": "offline"})
    assert chosen.make_generator().name == "offline"
