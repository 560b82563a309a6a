"""Each rule accepts a benign circuit and refuses a hostile one, with its own id."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from qiskit import QuantumCircuit
from qiskit.converters import circuit_to_dag

from qorch.sanitizer import SanitizerPolicy, TargetTiming, run_passes, sanitize
from qorch.sanitizer.rules import ClbitLimit, QubitLimit
from qorch.sanitizer.verdict import VERDICT, SanitizerVerdict

from .sources import BELL2, BELL3, QASM2, QASM3, denied_by, doubling_chain, qasm2, qasm3

NODE = TargetTiming(
    single_qubit_gate_ns=35, two_qubit_gate_ns=300, measure_ns=1500, shortest_t2_us=120
)


@dataclass
class Case:
    """A source, and how to sanitize it."""

    source: str
    policy: dict[str, Any] = field(default_factory=dict)
    shots: int | None = None
    timing: TargetTiming | None = None

    def run(self) -> set[str]:
        result = sanitize(
            self.source, SanitizerPolicy(**self.policy), shots=self.shots, timing=self.timing
        )
        return denied_by(result)


MEASURED_IDLE = "x q[0];\nc = measure q;\n"

# rule -> (benign, hostile); the benign case is accepted outright, the hostile one is
# refused by that rule (possibly among others).
CASES: dict[str, tuple[Case, Case]] = {
    "QS001": (Case(BELL2), Case(qasm2("foo q[0];\n"))),
    "QS002": (
        Case(BELL2, {"max_source_bytes": 200}),
        Case(BELL2 + "// padding\n" * 20, {"max_source_bytes": 200}),
    ),
    "QS003": (
        Case(BELL2 + '// a "quote" and /* in a comment\n'),
        Case(BELL2 + "/* never closed\n"),
    ),
    "QS004": (
        Case(qasm2("rz(((pi / 2))) q[0];\n")),
        Case(qasm2("rz(" + "(" * 40 + "1" + ")" * 40 + ") q[0];\n")),
    ),
    "QS005": (
        Case(qasm2("rz(0.78539816339744830961566084581988) q[0];\n")),
        Case(qasm2("h q[18446744073709551616];\n")),
    ),
    "QS006": (
        Case(QASM2 + "qreg q[128];\ncreg c[1];\nh q[127];\nmeasure q[127] -> c[0];\n"),
        Case(QASM2 + "qreg q[100];\nqreg r[29];\nh q[0];\n"),
    ),
    "QS007": (
        Case(qasm2("h q;\n" * 4 + "measure q -> c;\n", 10, 10), {"max_gates": 50}),
        Case(qasm2("h q;\n" * 6 + "measure q -> c;\n", 10, 10), {"max_gates": 50}),
    ),
    "QS103": (Case(BELL2, shots=1000), Case(BELL2, shots=1_000_000)),
    "QS104": (
        Case(BELL2, {"max_depth": 3}),
        Case(qasm2("h q[0];\n" * 3 + "cx q[0], q[1];\nmeasure q -> c;\n"), {"max_depth": 3}),
    ),
    "QS105": (
        Case(qasm3("for int i in [0:9] { h q[0]; }\nc = measure q;\n"), {"max_gates": 20}),
        Case(qasm3("for int i in [0:99] { h q[0]; }\nc = measure q;\n"), {"max_gates": 20}),
    ),
    "QS106": (
        Case(
            qasm2("cx q[0], q[1];\ncx q[1], q[0];\nmeasure q -> c;\n"), {"max_two_qubit_gates": 2}
        ),
        Case(
            qasm2("gate ladder a, b { cx a, b; cx b, a; cx a, b; }\nladder q[0], q[1];\n"),
            {"max_two_qubit_gates": 2},
        ),
    ),
    "QS107": (
        Case(BELL2, {"max_mid_circuit_measurements": 0}),
        Case(
            qasm2("measure q[0] -> c[0];\nx q[0];\nmeasure q -> c;\n"),
            {"max_mid_circuit_measurements": 0},
        ),
    ),
    "QS108": (
        Case(qasm2("reset q;\nh q[0];\nmeasure q -> c;\n"), {"max_mid_circuit_resets": 0}),
        Case(qasm2("h q[0];\nreset q[0];\nmeasure q -> c;\n"), {"max_mid_circuit_resets": 0}),
    ),
    "QS201": (
        Case(qasm3("ctrl @ z q[0], q[1];\nc = measure q;\n")),
        # Gates made with modifiers are judged by what they are: a negctrl x is a cx.
        Case(
            qasm3("negctrl @ x q[0], q[1];\nc = measure q;\n"),
            {"allowed_gates": ["x", "h", "measure"]},
        ),
    ),
    "QS202": (
        Case(qasm2("gate bell a, b { h a; cx a, b; }\nbell q[0], q[1];\nmeasure q -> c;\n")),
        Case(doubling_chain(40)),
    ),
    "QS203": (Case(BELL3), Case('OPENQASM 2.0;\ninclude "../secrets.inc";\nqreg q[1];\n')),
    "QS204": (
        Case(qasm3("for int i in [0:3] { rz(i * 0.5) q[0]; }\nh q[1];\nc = measure q;\n")),
        Case(qasm3("for int i in [0:10] { rz(i * 200.0) q[0]; }\nc = measure q;\n")),
    ),
    "QS205": (
        Case(qasm3("inv @ s q[0];\nctrl @ x q[0], q[1];\nc = measure q;\n")),
        Case(qasm3("pow(0.5) @ x q[0];\n")),
    ),
    "QS301": (
        Case(
            qasm3(
                "h q[0];\nc[0] = measure q[0];\nwhile (c[0] == false) { h q[0]; "
                "c[0] = measure q[0]; }\n"
            ),
            {"allow_while_loops": True},
        ),
        Case(
            qasm3(
                "h q[0];\nc[0] = measure q[0];\nwhile (c[0] == false) { h q[0]; "
                "c[0] = measure q[0]; }\n"
            )
        ),
    ),
    "QS302": (
        Case(qasm3("for int i in [0:9] { h q[0]; x q[1]; }\nc = measure q;\n")),
        Case(
            qasm3(
                "for int i in [0:39] { for int j in [0:39] { h q[0]; x q[1]; } }\nc = measure q;\n"
            )
        ),
    ),
    "QS303": (
        Case(qasm3("h q[0];\nc[0] = measure q[0];\nif (c[0] == true) { x q[1]; }\n")),
        Case(
            qasm3("h q[0];\nc[0] = measure q[0];\nif (c[0] == true) { x q[1]; }\n"),
            {"allow_conditionals": False},
        ),
    ),
    "QS304": (
        Case(qasm3("h q[0];\ndelay[100ns] q[0];\ncx q[0], q[1];\nc = measure q;\n")),
        Case(qasm3("h q[0];\ndelay[2ms] q[0];\ncx q[0], q[1];\nc = measure q;\n")),
    ),
    "QS305": (
        Case(BELL2, timing=NODE),
        Case(
            BELL2,
            timing=TargetTiming(
                single_qubit_gate_ns=35, two_qubit_gate_ns=300, measure_ns=1500, shortest_t2_us=1
            ),
        ),
    ),
    "QS401": (
        Case(qasm3("h q[0];\ndelay[100ns] q[0];\n" + MEASURED_IDLE), timing=NODE),
        Case(qasm3("delay[50us] q;\nc = measure q;\n")),
    ),
    "QS402": (
        Case(qasm2("cx q[0], q[1];\nrz(0.1) q[1];\n" * 40 + "measure q -> c;\n")),
        Case(qasm2("cx q[0], q[1];\n" * 40 + "measure q -> c;\n")),
    ),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_accepts_the_benign_case(rule: str) -> None:
    benign, _ = CASES[rule]

    assert benign.run() == set()


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_refuses_the_hostile_case_with_its_id(rule: str) -> None:
    _, hostile = CASES[rule]

    assert rule in hostile.run()


def _verdict(circuit: QuantumCircuit, rule: Any) -> list[str]:
    properties = run_passes(circuit_to_dag(circuit), [rule, SanitizerVerdict()])
    return [v.rule for v in properties[VERDICT].violations]


def test_qubit_limit_pass_refuses_wide_circuits_that_got_past_the_declarations() -> None:
    assert _verdict(QuantumCircuit(128), QubitLimit(max_qubits=128)) == []
    assert _verdict(QuantumCircuit(129), QubitLimit(max_qubits=128)) == ["QS101"]


def test_clbit_limit_pass_refuses_wide_classical_registers() -> None:
    assert _verdict(QuantumCircuit(1, 8), ClbitLimit(max_clbits=8)) == []
    assert _verdict(QuantumCircuit(1, 9), ClbitLimit(max_clbits=8)) == ["QS102"]


def test_shots_below_one_are_refused() -> None:
    assert "QS103" in Case(BELL2, shots=0).run()


@pytest.mark.parametrize(
    "body",
    [
        "rz(1e400) q[0];\n",  # overflows to infinity while parsing
        "rz(1e308 * 10 - 1e308 * 10) q[0];\n",  # NaN
        "rz(2000) q[0];\n",  # beyond maxAbsAngle
    ],
)
def test_non_finite_or_out_of_range_angles_are_refused(body: str) -> None:
    assert "QS204" in Case(qasm3(body)).run()


def test_unbound_input_parameters_are_refused() -> None:
    source = QASM3 + "input float theta;\nqubit q;\nbit c;\nrz(theta) q;\nc = measure q;\n"

    assert "QS204" in Case(source).run()


def test_infinite_angles_inside_custom_gate_definitions_are_refused() -> None:
    source = qasm2("gate big(t) a { rz(t * 1e308 * 10) a; }\nbig(1) q[0];\n")

    assert "QS204" in Case(source).run()


def test_opaque_gates_are_refused_as_uncheckable() -> None:
    assert "QS202" in Case(qasm2("opaque mystery a;\nmystery q[0];\n")).run()


def test_custom_gates_nested_too_deep_are_refused() -> None:
    gates = "gate l0 a { x a; }\n" + "".join(
        f"gate l{i} a {{ l{i - 1} a; }}\n" for i in range(1, 10)
    )

    assert "QS202" in Case(qasm2(gates + "l9 q[0];\n")).run()


def test_custom_gates_built_from_disallowed_gates_are_refused() -> None:
    source = qasm2("gate sneaky a { h a; }\nsneaky q[0];\n")
    no_h = [g for g in SanitizerPolicy().allowed_gates if g != "h"]

    assert "QS202" in Case(source, {"allowed_gates": no_h}).run()


def test_control_modifiers_beyond_the_limit_and_on_custom_gates_are_refused() -> None:
    wide = qasm3("ctrl(3) @ x q[0], q[1], q[2], q[3];\n", 4, 4)
    custom = qasm3("gate flip a { x a; }\nctrl @ flip q[0], q[1];\n")

    assert "QS205" in Case(wide).run()
    assert "QS205" in Case(custom).run()


def test_a_loop_body_of_nothing_but_one_two_qubit_gate_counts_every_iteration() -> None:
    source = qasm3("for int i in [0:99] { cx q[0], q[1]; }\nc = measure q;\n")

    assert "QS402" in Case(source).run()


def test_circuits_that_only_measure_are_readout_probes() -> None:
    assert "QS401" in Case(qasm2("measure q -> c;\n")).run()


def test_idling_for_most_of_the_duration_is_a_decoherence_probe() -> None:
    t1_probe = qasm3("x q[0];\ndelay[40us] q[0];\nc = measure q;\n")

    assert "QS401" in Case(t1_probe, timing=NODE).run()


def test_trusted_tenants_may_run_probes() -> None:
    probe = qasm2("cx q[0], q[1];\n" * 40 + "measure q -> c;\n")
    readout = qasm2("measure q -> c;\n")

    assert Case(probe, {"trusted": True}).run() == set()
    assert Case(readout, {"trusted": True}).run() == set()


def test_stdgates_id_counts_as_idling() -> None:
    assert "QS401" in Case(qasm3("id q[0];\nc = measure q;\n")).run()


def test_delays_in_dt_count_one_nanosecond_each_when_the_target_does_not_say() -> None:
    # 'dt' delays count at 1 ns when the target's dt is unknown: 2e6 dt = 2 ms here.
    assert "QS304" in Case(qasm3("h q[0];\ndelay[2000000dt] q[0];\nc = measure q;\n")).run()


def test_a_warn_severity_keeps_the_circuit_accepted_but_reported() -> None:
    tight = TargetTiming(
        single_qubit_gate_ns=35, two_qubit_gate_ns=300, measure_ns=1500, shortest_t2_us=1
    )
    result = sanitize(BELL2, SanitizerPolicy(rule_severity={"QS305": "warn"}), timing=tight)

    assert result.report.accepted
    assert [(v.rule, v.severity) for v in result.report.violations] == [("QS305", "warn")]


def test_an_off_severity_drops_the_finding() -> None:
    result = sanitize(BELL2, SanitizerPolicy(max_depth=1, rule_severity={"QS104": "off"}))

    assert result.report.accepted and result.report.violations == []


def test_timing_rules_are_skipped_when_a_figure_is_missing() -> None:
    partial = TargetTiming(shortest_t2_us=0.001)  # no gate times: no duration estimate
    result = sanitize(BELL2, timing=partial)

    assert result.report.accepted
    assert result.report.stats.estimated_duration_seconds is None


def test_short_delays_on_many_qubits_at_once_are_not_a_probe() -> None:
    # 20 qubits idle 400 ns side by side: 8 µs of delay in total, but each qubit idles for
    # under half of the ~2.7 µs the circuit takes.
    body = "h q;\ndelay[400ns] q;\ncx q[0], q[1];\nc = measure q;\n"

    assert Case(qasm3(body, 20, 20), timing=NODE).run() == set()
