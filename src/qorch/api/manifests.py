"""Loading manifests from YAML files and folders, with errors that name file, object and field.

Files are read through `qorch.api.yamlload`, within its size, nesting and alias limits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import KIND_BY_NAME, DistributedJob, EntanglementLink, QuantumNode, yamlload
from .yamlload import describe_errors

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


def _files(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    out: list[Path] = []
    missing: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(
                p for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES and p.is_file()
            )
            if not inside:
                patterns = ", ".join(f"*{suffix}" for suffix in MANIFEST_SUFFIXES)
                missing.append(f"{path}: a folder without manifests (no {patterns} in it)")
            out.extend(inside)
        elif path.exists():
            out.append(path)
        else:
            missing.append(f"{path}: no such file or directory")
    return out, missing


def _documents(docs: list[Any], source: str) -> list[tuple[str, dict[str, Any]]]:
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


def read_documents(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """YAML documents of one file, read within the loader's limits."""
    try:
        return _documents(yamlload.load_file_all(path), str(path))
    except yamlload.YamlLoadError as exc:
        raise ManifestError([str(exc)]) from None
    except OSError as exc:
        raise ManifestError([f"{path}: cannot read: {exc.strerror or exc}"]) from None


_KNOWN = ", ".join([*KIND_BY_NAME, "ConfigMap"])


def _identity(doc: dict[str, Any]) -> tuple[str, str, str | None]:
    """Kind and name as far as the document gives them, and what is wrong with the shape of
    its metadata, if anything (checked here: a ConfigMap has no model to check it)."""
    kind = doc.get("kind")
    if not isinstance(kind, str) or not kind:  # a policy or values file, say
        return "<no kind>", "<unnamed>", f"not a manifest: no kind (known kinds: {_KNOWN})"
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        return str(kind), "<unnamed>", "metadata: must be a mapping"
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        return str(kind), "<unnamed>", "metadata.name: must be a non-empty string"
    if not isinstance(metadata.get("namespace", "default"), str):
        return str(kind), name, "metadata.namespace: must be a string"
    return str(kind), name, None


def _config_map_data(doc: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    data = doc.get("data") or {}
    if not isinstance(data, dict):
        return {}, ["data: must be a mapping of strings"]
    out, problems = {}, []
    for key, value in data.items():
        if isinstance(value, (dict, list, set)):
            problems.append(f"data.{key}: must be a string, got {type(value).__name__}")
        else:
            out[str(key)] = str(value)
    return out, problems


def load_manifests(paths: Iterable[str | Path]) -> Manifests:
    """Parse and validate every object; raise ManifestError listing all problems found."""
    found = Manifests()
    paths = list(paths)
    files, problems = _files(paths)
    origins: dict[int, str] = {}  # id of each object -> where it was defined
    config_map_origins: dict[tuple[str, str], str] = {}
    for path in files:
        try:
            docs = read_documents(path)
        except ManifestError as exc:
            problems.extend(exc.problems)
            continue
        for label, doc in docs:
            kind, name, shape_problem = _identity(doc)
            where = f"{label}: {kind}/{name}"
            if shape_problem:
                problems.append(f"{where}: {shape_problem}")
                continue
            if kind == "ConfigMap" and doc.get("apiVersion") == "v1":
                key = (doc["metadata"].get("namespace", "default"), name)
                data, bad = _config_map_data(doc)
                problems.extend(f"{where}: {line}" for line in bad)
                if key in config_map_origins:
                    problems.append(
                        f"{where}: defined twice in namespace {key[0]}"
                        f" (first in {config_map_origins[key]})"
                    )
                config_map_origins.setdefault(key, label)
                found.config_maps.setdefault(key, data)
                continue
            model = KIND_BY_NAME.get(kind)
            if model is None:
                problems.append(f"{where}: unknown kind {kind!r} (known kinds: {_KNOWN})")
                continue
            try:
                obj = model.model_validate(doc)
            except ValidationError as exc:
                problems.extend(f"{where}: {line}" for line in describe_errors(exc))
                continue
            origins[id(obj)] = label
            {QuantumNode: found.nodes, EntanglementLink: found.links, DistributedJob: found.jobs}[
                model
            ].append(obj)  # type: ignore[attr-defined]
    problems.extend(_dangling_references(found, origins, config_map_origins))
    if not problems and not (found.nodes or found.links or found.jobs):
        # As `kubectl apply` refuses to apply nothing: a wrong path, not a run without jobs.
        given = ", ".join(str(p) for p in paths)
        problems.append(f"{given}: no QuantumNode, EntanglementLink or DistributedJob in it")
    if problems:
        raise ManifestError(problems)
    return found


def check_jobs(path: str | Path, signing: bool = False) -> list[str]:
    """What is wrong with a manifest given to `qorch sign` or `qorch verify`: its YAML, and
    each DistributedJob in it, worded as `load_manifests` words it (`signing`: and a
    circuit its signature would not cover); empty when usable."""
    try:
        docs = read_documents(Path(path))
    except ManifestError as exc:
        return exc.problems
    problems: list[str] = []
    for label, doc in docs:
        if doc.get("kind") != DistributedJob.crd.kind:
            continue
        kind, name, shape_problem = _identity(doc)
        where = f"{label}: {kind}/{name}"
        if shape_problem:
            problems.append(f"{where}: {shape_problem}")
            continue
        try:
            job = DistributedJob.model_validate(doc)
        except ValidationError as exc:
            problems.extend(f"{where}: {line}" for line in describe_errors(exc))
            continue
        ref = job.spec.circuit.config_map_ref
        if signing and ref is not None and (gap := ref.unsigned_source()) is not None:
            problems.append(f"{where}: {gap}")
    return problems


def _dangling_references(
    found: Manifests, origins: dict[int, str], config_map_origins: dict[tuple[str, str], str]
) -> list[str]:
    problems = []
    nodes = {(n.metadata.namespace, n.metadata.name) for n in found.nodes}
    seen: dict[tuple[str, str, str], str] = {}
    objects: list[QuantumNode | EntanglementLink | DistributedJob] = [
        *found.nodes,
        *found.links,
        *found.jobs,
    ]
    for obj in objects:
        where = f"{origins[id(obj)]}: {obj.kind}/{obj.metadata.name}"
        key = (obj.kind, obj.metadata.namespace, obj.metadata.name)
        if key in seen:
            problems.append(f"{where}: defined twice in namespace {key[1]} (first in {seen[key]})")
        seen.setdefault(key, origins[id(obj)])
    for link in found.links:
        for i, node in enumerate(link.spec.nodes):
            if (link.metadata.namespace, node) not in nodes:
                problems.append(
                    f"{origins[id(link)]}: EntanglementLink/{link.metadata.name}:"
                    f" spec.nodes[{i}]: QuantumNode {node!r} is not defined in namespace"
                    f" {link.metadata.namespace}"
                )
    for job in found.jobs:
        ref = job.spec.circuit.config_map_ref
        if ref is None:
            continue
        where = f"{origins[id(job)]}: DistributedJob/{job.metadata.name}: spec.circuit.configMapRef"
        cm = (job.metadata.namespace, ref.name)
        data = found.config_maps.get(cm)
        if data is None:
            problems.append(f"{where}: ConfigMap {ref.name!r} is not defined in namespace {cm[0]}")
        elif ref.key not in data:
            problems.append(
                f"{where}: ConfigMap {ref.name!r} ({config_map_origins[cm]}) has no key {ref.key!r}"
            )
    return problems
