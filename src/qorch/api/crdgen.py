"""Generate CustomResourceDefinitions from the pydantic models, as controller-gen does for Go.

Pydantic emits JSON Schema 2020-12; Kubernetes wants a structural OpenAPI v3.0 schema: no
$ref, no `null` branches, boolean exclusive bounds, no additionalProperties=false (the API
server prunes unknown fields instead, and kubectl's strict validation refuses them).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from .base import GROUP, VERSION, ApiModel
from .crd_info import CrdInfo
from .distributed_job import immutable_spec_rule

# Rules the OpenAPI schema cannot say, checked by the API server in CEL.
CEL_RULES: dict[str, list[dict[str, str]]] = {
    "CircuitSource": [
        {
            "rule": "has(self.qasm) != has(self.configMapRef)",
            "message": "set exactly one of circuit.qasm and circuit.configMapRef",
        }
    ],
    "DistributedJobSpec": [
        {
            "rule": immutable_spec_rule(),
            "message": "a DistributedJob's spec is immutable but for spec.suspend; create a"
            " new job",
        }
    ],
    "EntanglementLinkSpec": [
        {"rule": "self.nodes[0] != self.nodes[1]", "message": "nodes must be two different nodes"}
    ],
    "BackendSpec": [
        {
            "rule": "self.type != 'external' || has(self.endpoint)",
            "message": "backend.endpoint is required when backend.type is external",
        }
    ],
}

_DROP = {"title", "additionalProperties", "$defs"}


def _convert(node: dict[str, Any], defs: dict[str, Any], *, keep_defaults: bool) -> dict[str, Any]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        resolved = _convert(defs[name], defs, keep_defaults=keep_defaults)
        if "description" in node:
            resolved["description"] = node["description"]
        if name in CEL_RULES:
            resolved["x-kubernetes-validations"] = CEL_RULES[name]
        return resolved
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {node}")
        merged = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
        return _convert({**branches[0], **merged}, defs, keep_defaults=keep_defaults)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or (key == "default" and not keep_defaults):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "properties":
            out["properties"] = {
                k: _convert(v, defs, keep_defaults=keep_defaults) for k, v in value.items()
            }
        elif key == "items":
            out["items"] = _convert(value, defs, keep_defaults=keep_defaults)
        elif key == "prefixItems":
            continue
        else:
            # A copy: a definition used twice must not become a YAML alias in the CRD.
            out[key] = copy.deepcopy(value)
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _convert(
            node["additionalProperties"], defs, keep_defaults=keep_defaults
        )
    if node.get("type") == "array" and "items" not in out:
        raise ValueError(f"array without items: {node}")
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _conditions_as_map(schema: dict[str, Any]) -> None:
    """Conditions are a list keyed by type, which server-side apply can merge."""
    conds = schema["properties"].get("conditions")
    if conds:
        conds["x-kubernetes-list-type"] = "map"
        conds["x-kubernetes-list-map-keys"] = ["type"]


def openapi_schema(model: type[ApiModel]) -> dict[str, Any]:
    """The structural openAPIV3Schema of one kind."""
    js = model.model_json_schema(by_alias=True, mode="validation")
    defs = js.get("$defs", {})
    props = js["properties"]
    spec = _convert(props["spec"], defs, keep_defaults=True)
    status = _convert(props["status"], defs, keep_defaults=False)
    _conditions_as_map(status)
    return {
        "type": "object",
        "description": model.__doc__.strip() if model.__doc__ else "",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of the object."},
            "kind": {"type": "string", "description": "Kind of the object."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def crd(model: type[ApiModel]) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    info: CrdInfo = model.crd  # type: ignore[attr-defined]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "qorch", "app.kubernetes.io/part-of": "qorch"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": info.short_names,
                "categories": info.categories,
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": c.name,
                            "type": c.type,
                            "jsonPath": c.json_path,
                            **({"priority": c.priority} if c.priority else {}),
                            **({"description": c.description} if c.description else {}),
                        }
                        for c in info.columns
                    ],
                    "schema": {"openAPIV3Schema": openapi_schema(model)},
                }
            ],
        },
    }


HEADER = "# Generated by `qorch crds` from src/qorch/api; do not edit.\n"


def render(model: type[ApiModel]) -> str:
    """The CRD as the YAML text committed under crds/."""
    return HEADER + yaml.safe_dump(crd(model), sort_keys=False, width=100)


def write_crds(out_dir: Path) -> list[Path]:
    """Write one file per kind into out_dir; return the paths."""
    from . import KINDS

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for model in KINDS:
        path = out_dir / f"{GROUP}_{model.crd.plural}.yaml"
        path.write_text(render(model))
        paths.append(path)
    return paths
