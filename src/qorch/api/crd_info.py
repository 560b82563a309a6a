"""What a CustomResourceDefinition needs beyond the schema: names and printer columns."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PrinterColumn:
    """One column of `kubectl get`."""

    name: str
    type: str
    json_path: str
    priority: int = 0
    description: str = ""


@dataclass(frozen=True)
class CrdInfo:
    """Names of a kind as the API server registers them."""

    kind: str
    plural: str
    short_names: list[str] = field(default_factory=list)
    columns: list[PrinterColumn] = field(default_factory=list)
    categories: list[str] = field(default_factory=lambda: ["qorch"])

    @property
    def singular(self) -> str:
        return self.kind.lower()
