"""crds/ is generated from the API models; the committed files must match the generator."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qorch.api import KINDS
from qorch.api.crdgen import crd, render

CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.crd.kind)
def test_committed_crd_matches_generator(model):
    path = CRDS / f"qorch.dev_{model.crd.plural}.yaml"
    assert path.read_text() == render(model), "crds/ drifted: run `make crds` and commit"


def _walk(schema, path="$"):
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.crd.kind)
def test_schema_is_structural_and_documented(model):
    schema = crd(model)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "type" in node, f"{path} has no type"
        assert "$ref" not in node and "anyOf" not in node, path
        in_api = path.startswith(("$.spec", "$.status"))
        if in_api and not path.endswith(("[]", "{}")):
            assert node.get("description"), f"{path} has no description"


def test_short_names_and_status_subresource():
    docs = {d["spec"]["names"]["kind"]: d for d in map(crd, KINDS)}
    assert docs["QuantumNode"]["spec"]["names"]["shortNames"] == ["qn"]
    assert docs["EntanglementLink"]["spec"]["names"]["shortNames"] == ["qlink"]
    assert docs["DistributedJob"]["spec"]["names"]["shortNames"] == ["djob"]
    for doc in docs.values():
        version = doc["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert yaml.safe_load(yaml.safe_dump(doc)) == doc


def test_crds_out_naming_a_file_is_refused(tmp_path):
    taken = tmp_path / "crds"
    taken.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "qorch", "crds", "--out", str(taken)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"crds: --out {taken}: a file, not a folder"
