"""The bounded YAML loader: each limit holds at its boundary, and every reader of user YAML
(manifests, sanitizer policies, signed job files, agent node files) goes through it."""

import logging
import os
import subprocess
import sys
import time

import pytest
from pydantic import BaseModel, ValidationError

from qorch.api import QuantumNode
from qorch.api.yamlload import (
    DEFAULT_LIMITS,
    Limits,
    YamlLoadError,
    errors_in_a_line,
    load_file,
    loads,
    loads_all,
)
from qorch.qpu.agent import QpuAgent
from qorch.sanitizer import PolicyError, load_policy
from tests import hostile_yaml as hostile
from tests.support import REPO


def refused(text, limits=DEFAULT_LIMITS):
    with pytest.raises(YamlLoadError) as info:
        loads_all(text, "t.yaml", limits)
    return str(info.value)


def test_depth_limit_is_exact():
    limits = Limits(max_depth=5)
    assert loads("[[[[x]]]]", "t", limits) == [[[["x"]]]]  # a scalar in four lists: level 5
    assert "nested more than 5 levels deep" in refused("[[[[[x]]]]]", limits)


def test_depth_counts_what_aliases_bring_in():
    limits = Limits(max_depth=5)
    assert loads("a: &a [[x]]\nb: [*a]", "t", limits)["b"] == [[["x"]]]
    assert "alias *a nests more than 5 levels deep" in refused("a: &a [[x]]\nb: [[*a]]", limits)


def test_collection_alias_budget_is_exact():
    limits = Limits(max_collection_aliases=3)
    assert loads("a: &a [x]\nb: [*a, *a, *a]", "t", limits)["b"] == [["x"]] * 3
    problem = refused("a: &a [x]\nb: [*a, *a, *a, *a]", limits)
    assert "t.yaml (document 1): b[3]: line 2, column 17: more than 3 aliases" in problem


def test_scalar_aliases_do_not_use_the_collection_budget():
    limits = Limits(max_collection_aliases=0)
    assert loads("a: &a x\nb: [*a, *a]", "t", limits)["b"] == ["x", "x"]


def test_nodes_and_characters_are_counted_with_aliases_expanded():
    # a: 1 mapping + 1 key + 1 list + 3 scalars; b: 1 key + 1 list + 2 * 4 through the aliases
    text = "a: &a [x, y, z]\nb: [*a, *a]"
    assert loads(text, "t", Limits(max_nodes=16))["b"][1] == ["x", "y", "z"]
    assert "more than 15 nodes" in refused(text, Limits(max_nodes=15))
    text = "a: &a xxxxxxxxxx\nb: [*a, *a, *a]"  # "a", "b" and four copies of ten
    assert len(loads(text, "t", Limits(max_chars=42))["b"]) == 3
    assert "more than 41 characters" in refused(text, Limits(max_chars=41))


def test_an_anchor_named_inside_itself_is_refused():
    assert "alias *a refers to a node containing it" in refused("a: &a {b: [*a]}")


def test_duplicate_keys_are_refused_but_merge_keys_may_override():
    assert "duplicate key 'b' (first at line 1)" in refused("b: 1\nc: 2\nb: 3")
    assert loads("x: &x {b: 1}\ny: {<<: *x, b: 2}", "t")["y"] == {"b": 2}
    assert loads("{1: a, '1': b}", "t") == {1: "a", "1": "b"}  # different tags: both kept


def test_several_documents_count_together_and_name_their_index():
    limits = Limits(max_nodes=6)
    problem = refused("a: 1\n---\nb: 2\n---\nc: 3\n", limits)  # three nodes a document
    assert problem.startswith("t.yaml (document 3): line 5")
    assert loads_all("a: 1\n---\n---\nb: 2", "t") == [{"a": 1}, None, {"b": 2}]


def test_one_document_is_expected_where_one_is_read():
    with pytest.raises(YamlLoadError, match="expected one YAML document, found 2"):
        loads("a: 1\n---\nb: 2", "t")


def test_text_over_the_size_limit_is_refused():
    assert "the limit for a YAML file is 8 bytes" in refused("a: 123456", Limits(max_bytes=8))


def test_load_file_leaves_os_errors_to_the_caller(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_file(tmp_path / "absent.yaml")


@pytest.mark.parametrize("shape", hostile.BOMB_SHAPES)
def test_a_policy_file_is_read_within_the_limits(tmp_path, shape):
    path = tmp_path / "policy.yaml"
    path.write_text(hostile.alias_bomb(shape))
    start = time.perf_counter()
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert time.perf_counter() - start < 5
    assert str(info.value).startswith(f"policy {path} (document 1): ConfigMap/lol: data.")


def test_a_policy_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = hostile.oversize(tmp_path / "policy.yaml", 50 * 1024 * 1024)
    with pytest.raises(PolicyError, match="52428800 bytes; the limit for a YAML file is"):
        load_policy(path)


def test_without_libyaml_the_same_limits_hold():
    """PyYAML built without libyaml falls back on its pure-Python parser: slower, bounded alike."""
    script = """
import sys
sys.modules["yaml._yaml"] = None  # as if PyYAML had been built without libyaml
from qorch.api.yamlload import YamlLoadError, loads_all
from tests import hostile_yaml as hostile
cases = [hostile.alias_bomb(shape) for shape in hostile.BOMB_SHAPES]
cases += [hostile.deep_nesting(style, 100_000) for style in hostile.NESTING_STYLES]
cases += ["a: \\x00"]
for text in cases:
    try:
        loads_all(text, "t.yaml")
    except YamlLoadError as exc:
        print(exc)
    else:
        print("LOADED")
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(hostile.BOMB_SHAPES) + len(hostile.NESTING_STYLES) + 1
    assert all(line.startswith("t.yaml") for line in lines), lines
    assert "nested more than 64 levels deep" in lines[len(hostile.BOMB_SHAPES)]


@pytest.mark.parametrize("case", ["bomb", "deep", "utf8", "oversize"])
async def test_an_agent_ignores_a_hostile_node_file(tmp_path, case, caplog):
    path = tmp_path / "node.yaml"
    path.write_bytes(hostile.VALID)
    agent = QpuAgent(QuantumNode.model_validate(load_file(path)), node_file=path)
    await agent.handle("health", {})
    before = path.stat().st_mtime_ns
    if case == "bomb":
        path.write_text(hostile.alias_bomb("sequences", "metadata-extra"))
    elif case == "deep":
        path.write_text(hostile.deep_nesting("block-sequences", 100_000))
    elif case == "utf8":
        path.write_bytes(hostile.with_bad_utf8("in-value", b"\xff")[0])
    else:
        hostile.oversize(path, 50 * 1024 * 1024)
    os.utime(path, ns=(before + 10**9, before + 10**9))  # seen as changed even on coarse clocks
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="qorch.qpu.agent"):
        await agent.handle("health", {})
    assert time.perf_counter() - start < 5
    assert "ignored" in caplog.text and "YamlLoadError" in caplog.text, caplog.text
    assert agent.node.metadata.name == "qpu-a" and agent.node.spec.qubits == 4


def test_validation_errors_in_a_line_are_bounded():
    class Pair(BaseModel):
        a: int
        b: int

    try:
        Pair.model_validate({"a": "x", "b": "y", "c": 1})
    except ValidationError as exc:
        line = errors_in_a_line(exc, most=1)
    assert line == (
        "a: Input should be a valid integer, unable to parse string as an integer; and 1 more"
    )
