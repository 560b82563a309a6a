"""Priority classes: named priorities that the platform defines, and which of them may preempt.

As Kubernetes' PriorityClass: a job names a class (spec.priorityClassName), the class gives
its priority and its preemption policy. Only a class with `preemptionPolicy:
PreemptLowerPriority` preempts, so preemption is opt-in by whoever writes the table (the
operator's configuration), not by whoever submits a job. A job without a class has
spec.priority and never preempts. See docs/preemption.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qorch.api import DistributedJob
from qorch.api.distributed_job import INT32_MAX, INT32_MIN

PREEMPT_LOWER_PRIORITY = "PreemptLowerPriority"
NEVER = "Never"


class PriorityClass(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    value: int = Field(
        ge=INT32_MIN,
        le=INT32_MAX,
        description="The priority of the class's jobs; higher goes first.",
    )
    preemption_policy: Literal["PreemptLowerPriority", "Never"] = Field(
        "Never",
        alias="preemptionPolicy",
        description="PreemptLowerPriority: a job of the class that waits for capacity stops"
        " jobs of lower priority to get it.",
    )


@dataclass(frozen=True)
class Priority:
    """A job's priority as the book uses it."""

    value: int
    preempts: bool = False


@dataclass(frozen=True)
class PriorityClasses:
    classes: dict[str, PriorityClass] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> PriorityClasses:
        """From JSON `{"<name>": {"value": 1000, "preemptionPolicy": "..."}}`; empty: none."""
        if not text.strip():
            return cls()
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"QORCH_PRIORITY_CLASSES is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ValueError("QORCH_PRIORITY_CLASSES must map class names to {value, ...}")
        classes = {}
        for name, spec in raw.items():
            try:
                classes[str(name)] = PriorityClass.model_validate(spec)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "class"
                raise ValueError(
                    f"QORCH_PRIORITY_CLASSES class {name!r}: {where}: {first['msg']}"
                ) from None
        return cls(classes)

    def problem(self, job: DistributedJob) -> str | None:
        """Why the job's class cannot be used, or None."""
        name = job.spec.priority_class_name
        if name is None:
            return None
        known = self.classes.get(name)
        if known is None:
            names = ", ".join(sorted(self.classes)) or "none are defined"
            return f"spec.priorityClassName {name!r} is not a priority class (known: {names})"
        if job.spec.priority not in (0, known.value):
            return (
                f"spec.priority {job.spec.priority} contradicts priority class {name!r}"
                f" (value {known.value}): leave spec.priority out"
            )
        return None

    def of(self, job: DistributedJob) -> Priority:
        known = self.classes.get(job.spec.priority_class_name or "")
        if known is None:
            return Priority(job.spec.priority)
        return Priority(known.value, known.preemption_policy == PREEMPT_LOWER_PRIORITY)
