"""The ApplicationIR: what a spec turns into, modelled on the pipeline's IR.

Every field has a default so that a partial document (an older entry, a
sparse LLM answer) still validates where it safely can; the enums are closed
so that nonsense does not.

The models are immutable (frozen, tuples rather than lists): the cache hands
the same decoded IR to every caller that reads the same stored bytes, so no
caller can change what another one sees. Derive a changed copy with
`model_copy(update=...)`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# Literals, not Enums: pydantic checks them in Rust, and every cache hit
# validates the whole IR (an Enum costs a Python call per field).
DataType = Literal["string", "integer", "float", "boolean", "datetime", "uuid", "json", "enum"]
RelationshipType = Literal["one_to_one", "one_to_many", "many_to_one", "many_to_many"]


class Attribute(_Model):
    name: str
    data_type: DataType = "string"
    is_primary_key: bool = False
    is_nullable: bool = True
    is_unique: bool = False
    description: str = ""


class Relationship(_Model):
    source_entity: str
    target_entity: str
    type: RelationshipType


class Entity(_Model):
    name: str
    description: str = ""
    attributes: tuple[Attribute, ...] = Field(default_factory=tuple)
    relationships: tuple[Relationship, ...] = Field(default_factory=tuple)


class DomainModel(_Model):
    entities: tuple[Entity, ...] = Field(default_factory=tuple)


class Parameter(_Model):
    name: str
    location: str = "query"  # path, query, header, body
    data_type: DataType = "string"
    required: bool = False
    description: str = ""


class Endpoint(_Model):
    method: str
    path: str
    summary: str = ""
    auth_required: bool = False
    parameters: tuple[Parameter, ...] = Field(default_factory=tuple)


class APIModel(_Model):
    endpoints: tuple[Endpoint, ...] = Field(default_factory=tuple)


class Flow(_Model):
    name: str
    trigger: str = ""
    steps: tuple[str, ...] = Field(default_factory=tuple)


class BehaviorModel(_Model):
    flows: tuple[Flow, ...] = Field(default_factory=tuple)


class ValidationRule(_Model):
    entity: str
    attribute: str = ""
    type: str = "custom"
    condition: str = ""
    error_message: str = ""


class ValidationModel(_Model):
    rules: tuple[ValidationRule, ...] = Field(default_factory=tuple)


class DatabaseConfig(_Model):
    type: str = "postgresql"
    name: str = ""


class InfrastructureModel(_Model):
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)


class ApplicationIR(_Model):
    name: str
    description: str = ""
    version: str = "1.0.0"
    domain_model: DomainModel = Field(default_factory=DomainModel)
    api_model: APIModel = Field(default_factory=APIModel)
    behavior_model: BehaviorModel = Field(default_factory=BehaviorModel)
    validation_model: ValidationModel = Field(default_factory=ValidationModel)
    infrastructure_model: InfrastructureModel = Field(default_factory=InfrastructureModel)

    def summary(self) -> dict[str, int]:
        """Counts an operator wants at a glance."""
        return {
            "entities": len(self.domain_model.entities),
            "endpoints": len(self.api_model.endpoints),
            "flows": len(self.behavior_model.flows),
            "rules": len(self.validation_model.rules),
        }
