"""Loading manifests from YAML files and folders, with errors that name file, object and field."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from . import KIND_BY_NAME, DistributedJob, EntanglementLink, QuantumNode

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


class ManifestError(Exception):
    """One or more manifests are unusable; `problems` lists each as a line a user can act on."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Manifests:
    """The objects found in a set of manifests."""

    nodes: list[QuantumNode] = field(default_factory=list)
    links: list[EntanglementLink] = field(default_factory=list)
    jobs: list[DistributedJob] = field(default_factory=list)
    config_maps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)


def _files(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES))
        elif path.is_file():
            out.append(path)
        else:
            raise ManifestError([f"{path}: no such file or directory"])
    return out


def _loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _describe(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = _loc(tuple(p for p in err["loc"] if p not in ("function-after",)))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        out.append(f"{loc}: {msg}" if loc else msg)
    return out


def parse_documents(text: str, source: str) -> list[tuple[str, dict[str, Any]]]:
    """YAML documents of one file, each with a label for error messages."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ManifestError([f"{source}: not valid YAML: {exc}"]) from exc
    out = []
    for index, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        label = f"{source} (document {index})"
        if not isinstance(doc, dict):
            raise ManifestError(
                [f"{label}: a manifest must be a mapping, got {type(doc).__name__}"]
            )
        out.append((label, doc))
    return out


def load_manifests(paths: Iterable[str | Path]) -> Manifests:
    """Parse and validate every object; raise ManifestError listing all problems found."""
    found = Manifests()
    problems: list[str] = []
    for path in _files(paths):
        try:
            docs = parse_documents(path.read_text(), str(path))
        except ManifestError as exc:
            problems.extend(exc.problems)
            continue
        for label, doc in docs:
            kind = doc.get("kind")
            name = (doc.get("metadata") or {}).get("name", "<unnamed>")
            where = f"{label}: {kind}/{name}"
            if kind == "ConfigMap" and doc.get("apiVersion") == "v1":
                ns = doc.get("metadata", {}).get("namespace", "default")
                found.config_maps[(ns, name)] = {
                    str(k): str(v) for k, v in (doc.get("data") or {}).items()
                }
                continue
            model = KIND_BY_NAME.get(str(kind))
            if model is None:
                known = ", ".join([*KIND_BY_NAME, "ConfigMap"])
                problems.append(f"{where}: unknown kind {kind!r} (known kinds: {known})")
                continue
            try:
                obj = model.model_validate(doc)
            except ValidationError as exc:
                problems.extend(f"{where}: {line}" for line in _describe(exc))
                continue
            {QuantumNode: found.nodes, EntanglementLink: found.links, DistributedJob: found.jobs}[
                model
            ].append(obj)  # type: ignore[attr-defined]
    problems.extend(_dangling_references(found))
    if problems:
        raise ManifestError(problems)
    return found


def _dangling_references(found: Manifests) -> list[str]:
    problems = []
    nodes = {(n.metadata.namespace, n.metadata.name) for n in found.nodes}
    seen: set[tuple[str, str, str]] = set()
    objects: list[QuantumNode | EntanglementLink | DistributedJob] = [
        *found.nodes,
        *found.links,
        *found.jobs,
    ]
    for obj in objects:
        key = (obj.kind, obj.metadata.namespace, obj.metadata.name)
        if key in seen:
            problems.append(f"{obj.kind}/{obj.metadata.name}: defined twice in {key[1]}")
        seen.add(key)
    for link in found.links:
        for i, node in enumerate(link.spec.nodes):
            if (link.metadata.namespace, node) not in nodes:
                problems.append(
                    f"EntanglementLink/{link.metadata.name}: spec.nodes[{i}]: QuantumNode"
                    f" {node!r} is not defined in namespace {link.metadata.namespace}"
                )
    for job in found.jobs:
        ref = job.spec.circuit.config_map_ref
        if ref is None:
            continue
        data = found.config_maps.get((job.metadata.namespace, ref.name))
        if data is None or ref.key not in data:
            problems.append(
                f"DistributedJob/{job.metadata.name}: spec.circuit.configMapRef: ConfigMap"
                f" {ref.name!r} with key {ref.key!r} is not defined"
            )
    return problems
