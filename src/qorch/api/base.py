"""Shared pieces of the API models: the camelCase base model, object metadata, conditions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP: Final = "qorch.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = "qorch.dev/v1alpha1"


class ApiModel(BaseModel):
    """Base of every spec and status model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=False,
    )

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase, unset optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ObjectMeta(BaseModel):
    """The subset of Kubernetes object metadata qorch reads; the rest is kept as given."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Object name, a DNS subdomain.",
    )
    namespace: str = Field("default", description="Namespace of the object.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")
    generation: int = Field(1, description="Generation of the spec, bumped on every spec change.")
    uid: str | None = Field(None, description="Unique id assigned by the API server.")
    creation_timestamp: str | None = Field(None, description="RFC 3339 creation time.")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One observation of the object's state, in the Kubernetes condition shape."""

    type: str = Field(description="Condition type in CamelCase, e.g. Sanitized.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="Machine-readable CamelCase reason for the last transition.")
    message: str = Field("", description="Human-readable explanation.")
    last_transition_time: str = Field(
        description="RFC 3339 time of the last change of status (not of reason or message)."
    )
    observed_generation: int = Field(
        0, description="The metadata.generation this condition was computed for."
    )


def now_rfc3339() -> str:
    """Current UTC time in the RFC 3339 form Kubernetes uses (second precision)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str = "",
    generation: int = 0,
) -> list[Condition]:
    """Return the list with `type_` set; lastTransitionTime moves only when status flips."""
    out: list[Condition] = []
    found = False
    for cond in conditions:
        if cond.type != type_:
            out.append(cond)
            continue
        found = True
        changed = cond.status != status
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now_rfc3339() if changed else cond.last_transition_time,
                observed_generation=generation,
            )
        )
    if not found:
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now_rfc3339(),
                observed_generation=generation,
            )
        )
    return out


def get_condition(conditions: list[Condition], type_: str) -> Condition | None:
    """The condition of that type, if present."""
    return next((c for c in conditions if c.type == type_), None)
