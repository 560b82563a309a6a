"""The policy model: safe defaults, camelCase, validation, per-namespace overrides, YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from qorch.sanitizer import PolicyError, SanitizerPolicy, SanitizerPolicyFile, load_policy, sanitize

from .sources import BELL2, qasm2


def test_every_field_is_documented_and_has_a_camel_case_alias() -> None:
    for name, info in SanitizerPolicy.model_fields.items():
        assert info.description, name
        assert info.alias and "_" not in info.alias, name


def test_defaults_allow_the_standard_gates_and_nothing_risky() -> None:
    policy = SanitizerPolicy()

    assert {"h", "cx", "rz", "ccx", "measure", "reset", "barrier"} <= policy.gate_allowlist
    assert "unitary" not in policy.gate_allowlist
    assert policy.allowed_includes == ["qelib1.inc", "stdgates.inc"]
    assert not policy.allow_while_loops and not policy.trusted


def test_fields_are_accepted_by_alias_and_by_name() -> None:
    by_alias = SanitizerPolicy.model_validate({"maxQubits": 7, "allowWhileLoops": True})
    by_name = SanitizerPolicy(max_qubits=7, allow_while_loops=True)

    assert by_alias == by_name
    assert by_alias.model_dump(by_alias=True)["maxQubits"] == 7


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        SanitizerPolicy.model_validate({"maxQubit": 7})


def test_openqasm_gate_spellings_are_mapped_to_qiskit_names() -> None:
    policy = SanitizerPolicy(allowed_gates=["CX", "c3x", "phase"], extra_gates=["U"])

    assert policy.gate_allowlist == {"cx", "mcx", "p", "u"}


def test_includes_beyond_the_standard_libraries_cannot_be_allowed() -> None:
    with pytest.raises(ValidationError, match="never reads files"):
        SanitizerPolicy(allowed_includes=["qelib1.inc", "mylib.inc"])


@pytest.mark.parametrize("rule", ["QS002", "QS004", "QS202"])
def test_rules_guarding_the_parser_cannot_be_relaxed(rule: str) -> None:
    with pytest.raises(ValidationError, match="guards the parser"):
        SanitizerPolicy(rule_severity={rule: "warn"})


def test_unknown_rules_cannot_be_given_a_severity() -> None:
    with pytest.raises(ValidationError, match="unknown rule"):
        SanitizerPolicy(rule_severity={"QS999": "warn"})


def test_namespace_overrides_replace_fields_of_the_default() -> None:
    policy_file = SanitizerPolicyFile.model_validate(
        {
            "default": {"maxQubits": 64},
            "namespaces": {"calibration": {"trusted": True}, "teaching": {"maxShots": 100}},
        }
    )

    assert policy_file.for_namespace("calibration").trusted
    assert policy_file.for_namespace("calibration").max_qubits == 64
    assert policy_file.for_namespace("teaching").max_shots == 100
    assert policy_file.for_namespace("elsewhere") == policy_file.default


def test_invalid_namespace_overrides_are_refused_when_loaded() -> None:
    with pytest.raises(ValidationError, match="teaching"):
        SanitizerPolicyFile.model_validate({"namespaces": {"teaching": {"maxShotz": 1}}})
    with pytest.raises(ValidationError, match="teaching"):
        SanitizerPolicyFile.model_validate({"namespaces": {"teaching": {"maxShots": -1}}})


def test_load_policy_reads_a_yaml_file_with_namespaces(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "default:\n  maxQubits: 3\nnamespaces:\n  lab:\n    trusted: true\n"
        "    ruleSeverity: {QS305: warn}\n"
    )

    policy_file = load_policy(path)

    assert policy_file.default.max_qubits == 3
    assert policy_file.for_namespace("lab").rule_severity == {"QS305": "warn"}


def test_load_policy_reads_a_bare_policy_as_the_default(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("max_shots: 10\n")

    assert load_policy(path).default.max_shots == 10


@pytest.mark.parametrize(
    "text", ["maxQubits: [\n", "- a list\n", "maxQubits: lots\n", "default: {nope: 1}\n"]
)
def test_unusable_policy_files_raise_policy_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)

    with pytest.raises(PolicyError, match="policy"):
        load_policy(path)


def test_a_missing_policy_file_raises_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")


def test_sanitize_applies_a_policy_files_default() -> None:
    policy_file = SanitizerPolicyFile(default=SanitizerPolicy(max_qubits=1))

    assert not sanitize(BELL2, policy_file).report.accepted  # type: ignore[arg-type]


def test_extra_gates_extend_the_allowlist_for_a_namespace() -> None:
    source = qasm2("h q[0];\ncx q[0], q[1];\nmeasure q -> c;\n")
    no_h = [g for g in SanitizerPolicy().allowed_gates if g != "h"]
    policy_file = SanitizerPolicyFile.model_validate(
        {"default": {"allowedGates": no_h}, "namespaces": {"lab": {"extraGates": ["h"]}}}
    )

    assert not sanitize(source, policy_file.default).report.accepted
    assert sanitize(source, policy_file.for_namespace("lab")).report.accepted


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("default: {maxQubits: lots}\n", "default.maxQubits: Input should be a valid integer"),
        ("bogus: 1\n", "default.bogus: unknown field"),
        (
            "namespaces:\n  t: {max_qubits: -3}\n",
            "namespace 't': maxQubits: Input should be greater than or equal to 1",
        ),
    ],
)
def test_an_invalid_policy_names_each_field_as_the_file_spells_it(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert message.startswith(f"policy {path} is invalid: {problem}"), message
    assert "errors.pydantic.dev" not in message and "\n" not in message
