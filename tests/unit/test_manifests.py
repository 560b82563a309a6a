"""Manifests load from files and folders; every problem names file, object and field."""

from pathlib import Path

import pytest

from qorch.api.manifests import ManifestError, load_manifests

REPO = Path(__file__).resolve().parents[2]

NODE = """
apiVersion: qorch.dev/v1alpha1
kind: QuantumNode
metadata: {name: qpu-a}
spec: {qubits: 4}
"""


def write(tmp_path, text, name="m.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(*paths):
    with pytest.raises(ManifestError) as info:
        load_manifests(paths)
    return info.value.problems


def test_quickstart_loads():
    found = load_manifests([REPO / "examples" / "quickstart"])
    assert [n.metadata.name for n in found.nodes] == ["qpu-a", "qpu-b"]
    assert len(found.links) == 1 and len(found.jobs) >= 1


def test_multi_document_file_and_config_map_reference(tmp_path):
    path = write(
        tmp_path,
        NODE
        + """---
apiVersion: v1
kind: ConfigMap
metadata: {name: circuits}
data: {bell.qasm: "OPENQASM 2.0;"}
---
apiVersion: qorch.dev/v1alpha1
kind: DistributedJob
metadata: {name: j}
spec:
  circuit: {configMapRef: {name: circuits, key: bell.qasm}}
""",
    )
    found = load_manifests([path])
    assert found.config_maps[("default", "circuits")]["bell.qasm"] == "OPENQASM 2.0;"
    assert found.jobs[0].spec.circuit.config_map_ref.key == "bell.qasm"


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (NODE.replace("qubits: 4", "qubits: four"), "QuantumNode/qpu-a: spec.qubits"),
        (NODE.replace("qubits: 4", "qubits: 4, colour: red"), "spec.colour: unknown field"),
        (NODE.replace("spec: {qubits: 4}", "spec: {}"), "spec.qubits: Field required"),
        (NODE.replace("QuantumNode", "QuantumToaster"), "unknown kind 'QuantumToaster'"),
        (
            NODE
            + "---\napiVersion: qorch.dev/v1alpha1\nkind: EntanglementLink\nmetadata: {name: l}\n"
            "spec: {nodes: [qpu-a, qpu-z], fidelity: 0.9, generationRateHz: 10,"
            " successProbability: 0.5}\n",
            "EntanglementLink/l: spec.nodes[1]: QuantumNode 'qpu-z' is not defined",
        ),
        (NODE.replace("spec: {qubits: 4}", "spec: {qubits: 4"), "not valid YAML"),
    ],
)
def test_invalid_manifest_names_file_object_and_field(tmp_path, doc, expected):
    path = write(tmp_path, doc)
    found = problems(path)
    assert any(expected in p for p in found), found
    assert all(str(path) in p for p in found if "not defined" not in p)


def test_missing_path_is_reported(tmp_path):
    assert "no such file" in problems(tmp_path / "absent.yaml")[0]
