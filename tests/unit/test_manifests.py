"""Manifests load from files and folders; every problem names file, object and field."""

import re
import time
from pathlib import Path

import pytest

from qorch.api.manifests import ManifestError, load_manifests
from tests import hostile_yaml as hostile

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


# --- hostile input: every class ends in a ManifestError naming file, object and field, fast ---

TIME_BOUND = 5.0  # seconds; each case takes milliseconds, the bound only catches a blow-up


def timed_problems(path):
    start = time.perf_counter()
    found = problems(path)
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_BOUND, f"{path.name} took {elapsed:.1f} s"
    assert found and all(str(path) in p for p in found), found
    return found


@pytest.mark.parametrize("place", sorted(hostile.PLACES))
@pytest.mark.parametrize("shape", hostile.BOMB_SHAPES)
def test_alias_bombs_are_refused_while_composing(tmp_path, shape, place):
    path = write(tmp_path, hostile.alias_bomb(shape, place))
    (problem,) = timed_problems(path)
    _, _, obj, field = hostile.PLACES[place]
    assert f"{path} (document 1): {obj}: {field}" in problem, problem
    assert re.search(r"aliases|alias \*a refers to a node containing it", problem), problem


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
@pytest.mark.parametrize("style", hostile.NESTING_STYLES)
def test_deep_nesting_is_refused_before_the_recursion_limit(tmp_path, style, depth):
    path = write(tmp_path, hostile.deep_nesting(style, depth))
    (problem,) = timed_problems(path)
    assert f"{path} (document 1): ConfigMap/deep: data.x" in problem, problem
    assert "nest" in problem, problem  # ours, or libyaml's own "maximum nesting depth"


@pytest.mark.parametrize("depth", [65, 1_000])
def test_deep_block_mappings_are_refused(tmp_path, depth):
    path = write(tmp_path, hostile.deep_nesting("block-mappings", depth))
    (problem,) = timed_problems(path)
    assert "ConfigMap/deep: data.x.k0.k1" in problem and "nested more than 64" in problem


def test_nesting_within_the_limit_loads(tmp_path):
    value = "[" * 60 + "]" * 60
    path = write(
        tmp_path, NODE.replace("metadata: {name: qpu-a}", f"metadata: {{name: qpu-a, x: {value}}}")
    )
    assert load_manifests([path]).nodes[0].metadata.name == "qpu-a"


@pytest.mark.parametrize("position", hostile.UTF8_POSITIONS)
@pytest.mark.parametrize("kind", sorted(hostile.BAD_UTF8))
def test_invalid_utf8_is_refused_naming_line_and_column(tmp_path, kind, position):
    data, line = hostile.with_bad_utf8(position, hostile.BAD_UTF8[kind])
    path = tmp_path / "m.yaml"
    path.write_bytes(data)
    (problem,) = timed_problems(path)
    assert f"line {line}, column " in problem and "not UTF-8" in problem, problem
    if position == "in-value":  # inside a scalar: the object and the field are named too
        assert "QuantumNode/<unnamed>: metadata.name: line 4" in problem, problem


def test_utf8_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + NODE.encode())
    assert load_manifests([path]).nodes[0].metadata.name == "qpu-a"


@pytest.mark.parametrize("size", [hostile.MAX_BYTES + 1, 50 * 1024 * 1024])
def test_oversize_files_are_refused_before_reading(tmp_path, size):
    path = hostile.oversize(tmp_path / "big.yaml", size)
    (problem,) = timed_problems(path)
    assert (
        problem == f"{path}: {size} bytes; the limit for a YAML file is {hostile.MAX_BYTES} bytes"
    )


def test_a_device_is_read_no_further_than_the_limit(tmp_path):
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    (problem,) = timed_problems(link)
    assert "goes on past the limit; the limit for a YAML file is" in problem


def test_a_file_at_the_size_limit_loads(tmp_path):
    padding = "#" * (hostile.MAX_BYTES - len(NODE) - 1) + "\n"
    path = write(tmp_path, NODE + padding)
    assert path.stat().st_size == hostile.MAX_BYTES
    assert load_manifests([path]).nodes[0].spec.qubits == 4


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            "kind: ConfigMap\napiVersion: v1\nmetadata: [x]\n",
            "ConfigMap/<unnamed>: metadata: must be a mapping",
        ),
        ("kind: QuantumNode\nmetadata: {name: 7}\n", "metadata.name: must be a non-empty string"),
        (
            "kind: ConfigMap\napiVersion: v1\nmetadata: {name: c, namespace: [a]}\n",
            "metadata.namespace",
        ),
        (
            "kind: ConfigMap\napiVersion: v1\nmetadata: {name: c}\ndata: [a]\n",
            "ConfigMap/c: data: must be",
        ),
        (
            "kind: ConfigMap\napiVersion: v1\nmetadata: {name: c}\ndata: {q: [a]}\n",
            "ConfigMap/c: data.q: must be a string",
        ),
        (
            NODE.replace("qubits: 4", "qubits: " + "9" * 5000),
            "QuantumNode/qpu-a: line 5, column 16: not valid YAML: cannot read this value",
        ),
        (
            NODE.replace("qubits: 4", "qubits: 4, shots: 2024-13-45"),
            "cannot read this value: month must be in 1..12",
        ),
        (
            NODE.replace("spec: {qubits: 4}", "spec: {qubits: 4, qubits: 5}"),
            "QuantumNode/qpu-a: spec.qubits: line 5, column 19: duplicate key 'qubits'",
        ),
        (NODE + "extra: &x 1\nmore: &x 2\n", "anchor &x defined twice"),
        (NODE.replace("qubits: 4", "qubits: *nowhere"), "found undefined alias 'nowhere'"),
        (
            NODE.replace("qubits: 4", "qubits: !!python/object/apply:os.system [true]"),
            "could not determine a constructor",
        ),
        (
            NODE.replace("qubits: 4", "qubits: \x07"),
            "line 5, column 16: not valid YAML: character U+0007 is not allowed",
        ),
        ("- a\n- b\n", "a manifest must be a mapping, got list"),
        ("default: {maxQubits: 64}\n", "<no kind>/<unnamed>: not a manifest: no kind (known"),
        ("kind: 7\nmetadata: {name: a}\n", "not a manifest: no kind"),
    ],
)
def test_malformed_shapes_are_problems_not_crashes(tmp_path, doc, expected):
    path = write(tmp_path, doc)
    found = timed_problems(path)
    assert any(expected in p for p in found), found


def test_merge_keys_and_a_few_aliases_still_load(tmp_path):
    path = write(
        tmp_path,
        """
apiVersion: qorch.dev/v1alpha1
kind: QuantumNode
metadata:
  name: qpu-a
  labels: &labels {site: a}
  extra: {copy: {<<: *labels, rack: "2"}, again: *labels}
spec: {qubits: 4, noise: &noise {singleQubitError: 0.001}}
""",
    )
    (node,) = load_manifests([path]).nodes
    assert node.metadata.model_extra["extra"]["copy"] == {"site": "a", "rack": "2"}


def test_a_folder_named_like_a_manifest_is_skipped(tmp_path):
    (tmp_path / "folder.yaml").mkdir()
    write(tmp_path, NODE)
    assert [n.metadata.name for n in load_manifests([tmp_path]).nodes] == ["qpu-a"]


def test_a_folder_without_manifests_is_a_problem_even_beside_others(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a manifest")
    write(tmp_path, NODE)
    assert problems(tmp_path / "m.yaml", tmp_path / "empty") == [
        f"{tmp_path / 'empty'}: a folder without manifests (no *.yaml, *.yml, *.json in it)"
    ]


def test_paths_with_nothing_to_run_are_a_problem(tmp_path):
    """As `kubectl apply` refuses to apply nothing: a wrong path, not a run without jobs."""
    comments = write(tmp_path, "# nothing here yet\n")
    only_data = write(tmp_path, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", "c.yaml")
    assert problems(comments, only_data) == [
        f"{comments}, {only_data}: no QuantumNode, EntanglementLink or DistributedJob in it"
    ]


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_a_file_that_fails_to_read_is_a_problem():
    (problem,) = problems("/proc/self/mem")  # opens, but reading at offset 0 fails
    assert problem.startswith("/proc/self/mem: cannot read: ")


# --- references and duplicates name the file they come from -----------------------------------

JOB = """
apiVersion: qorch.dev/v1alpha1
kind: DistributedJob
metadata: {name: j}
spec:
  circuit: {configMapRef: {name: circuits, key: bell.qasm}}
"""

CONFIG_MAP = """
apiVersion: v1
kind: ConfigMap
metadata: {name: circuits}
data: {other.qasm: "OPENQASM 2.0;"}
"""


def test_missing_config_map_names_the_job_file(tmp_path):
    job = write(tmp_path, JOB, "job.yaml")
    (problem,) = problems(job)
    assert problem == (
        f"{job} (document 1): DistributedJob/j: spec.circuit.configMapRef: ConfigMap"
        " 'circuits' is not defined in namespace default"
    )


def test_missing_config_map_key_names_both_files(tmp_path):
    job = write(tmp_path, JOB, "job.yaml")
    cm = write(tmp_path, CONFIG_MAP, "cm.yaml")
    (problem,) = problems(job, cm)
    assert problem.startswith(f"{job} (document 1): DistributedJob/j: spec.circuit.configMapRef")
    assert f"ConfigMap 'circuits' ({cm} (document 1)) has no key 'bell.qasm'" in problem


def test_link_to_a_missing_node_names_its_file(tmp_path):
    link = write(
        tmp_path,
        "apiVersion: qorch.dev/v1alpha1\nkind: EntanglementLink\nmetadata: {name: l}\n"
        "spec: {nodes: [qpu-a, qpu-z], fidelity: 0.9, generationRateHz: 10,"
        " successProbability: 0.5}\n",
        "link.yaml",
    )
    nodes = write(tmp_path, NODE, "nodes.yaml")
    (problem,) = problems(nodes, link)
    assert problem == (
        f"{link} (document 1): EntanglementLink/l: spec.nodes[1]: QuantumNode 'qpu-z' is not"
        " defined in namespace default"
    )


@pytest.mark.parametrize("text", [NODE, CONFIG_MAP], ids=["QuantumNode", "ConfigMap"])
def test_duplicates_name_both_files(tmp_path, text):
    first = write(tmp_path, text, "a.yaml")
    second = write(tmp_path, JOB + "---" + text, "b.yaml")
    (problem,) = [p for p in problems(first, second) if "defined twice" in p]
    assert problem.startswith(f"{second} (document 2): ")
    assert f"defined twice in namespace default (first in {first} (document 1))" in problem
