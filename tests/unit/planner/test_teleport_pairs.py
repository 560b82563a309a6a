"""Teleport programs with heralded pairs: memory while a half waits, purification, the
time they take, and what plans reserve and record."""

from __future__ import annotations

import dataclasses

import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import hellinger_fidelity

from qorch.api import EntanglementLink, NoiseSpec
from qorch.pipeline.planning import plan_status, reservation
from qorch.pipeline.reservations import link_resource
from qorch.pipeline.strategies import choose_candidate, strategy_named
from qorch.pipeline.strategies.teleport import TeleportWork, recorded_purification
from qorch.planner.link_physics import (
    BellDiagonal,
    PurificationError,
    PurificationPolicy,
    aged,
    heralding_wait,
    purify,
)
from qorch.planner.model import LinkSlot, NodeSlot
from qorch.planner.partition import Partition
from qorch.planner.strategies import PURIFICATION, Demand, estimate_teleport
from qorch.planner.teleport import TeleportProgram, compile_teleport
from qorch.planner.workload import workload
from qorch.qpu.composite_noise import simulate_composite

from .support import ideal_distribution, link, node

MEMORY = NoiseSpec(t1_microseconds=100, t2_microseconds=80)
SHOTS = 4000


def ghz_x(width: int = 4) -> QuantumCircuit:
    """GHZ measured in the X basis: even parity only, so dephasing and bit flips both show."""
    qc = QuantumCircuit(width, width)
    qc.h(0)
    for q in range(1, width):
        qc.cx(0, q)
    qc.h(range(width))
    qc.measure(range(width), range(width))
    return qc


def across(circuit: QuantumCircuit, noise: NoiseSpec) -> tuple[Partition, list[NodeSlot]]:
    half = circuit.num_qubits // 2
    owner = {q: "a" if q < half else "b" for q in range(circuit.num_qubits)}
    nonlocal_gates = circuit.num_qubits - half
    return Partition(owner, nonlocal_gates, {}, ("a", "b")), [
        node("a", circuit.num_qubits, noise),
        node("b", circuit.num_qubits, noise),
    ]


def measured(program: TeleportProgram, circuit: QuantumCircuit, seed: int = 11) -> float:
    counts = simulate_composite(program.circuit, program.noise, SHOTS, seed=seed)
    return hellinger_fidelity(ideal_distribution(circuit), program.original_counts(counts))


# -- heralding and memory ------------------------------------------------------------------


def test_a_slow_link_lowers_the_estimate_and_the_measured_fidelity() -> None:
    circuit = ghz_x()
    part, nodes = across(circuit, MEMORY)
    fast = compile_teleport(circuit, part, nodes, [link("a", "b", 0.99, rate_hz=1e9)])
    slow = compile_teleport(circuit, part, nodes, [link("a", "b", 0.99, rate_hz=4e4)])
    assert slow.estimated_fidelity < fast.estimated_fidelity - 0.1
    assert measured(slow, circuit) < measured(fast, circuit) - 0.05
    # The waiting half relaxes with node a's T1/T2 (the link's first node) for the wait.
    (marker,) = slow.noise["bellPairs"]
    decay = heralding_wait(MEMORY, 4e4, 0.5)
    assert marker["memory"] == {
        "populationDecay": pytest.approx(decay.population),
        "coherenceDecay": pytest.approx(decay.coherence),
    }
    assert all(slow.qubit_owner[q] == "a" for q in marker["qubits"])
    pairs = slow.link_pairs["a-b"]
    assert pairs.fidelity == pytest.approx(aged(BellDiagonal.werner(0.99), decay).fidelity)
    assert any("aged waiting for the herald on a" in k for k in slow.fidelity.factors)


def test_without_t1_nor_link_noise_there_is_no_pair_marker() -> None:
    circuit = ghz_x()
    part, nodes = across(circuit, NoiseSpec())
    program = compile_teleport(circuit, part, nodes, [link("a", "b", 1.0, rate_hz=10)])
    assert program.noise["bellPairs"] == []
    assert program.estimated_fidelity == 1.0


def test_pair_generation_time_enters_the_time_estimate() -> None:
    circuit = ghz_x()
    timed = MEMORY.model_copy(
        update={"two_qubit_gate_nanoseconds": 300, "measure_nanoseconds": 1000}
    )
    nodes = [node("a", 4, timed), node("b", 4, timed)]
    seconds = {}
    for rate in (1e6, 1e4):
        demand = Demand(circuit, None, nodes, [link("a", "b", 0.99, rate_hz=rate)], 100, 600, 100)
        candidate = estimate_teleport(demand)
        assert candidate.feasible, candidate.reason
        assert isinstance(candidate.plan, TeleportProgram)
        pairs = sum(candidate.plan.bell_pairs.values())
        per_pair = 1 / (0.5 * rate)
        assert candidate.plan.expected_generation_seconds["a-b"] == pytest.approx(pairs * per_pair)
        load = workload(candidate, demand).seconds
        assert load is not None
        seconds[rate] = load
    assert seconds[1e4] - seconds[1e6] == pytest.approx(100 * pairs * (1 / 5e3 - 1 / 5e5))


# -- purification --------------------------------------------------------------------------


def policy(protocol: str = "dejmps", rounds: int | None = None, max_rounds: int = 2):
    return PurificationPolicy(protocol, rounds, max_rounds)  # type: ignore[arg-type]


def purifying(fidelity: float, pol: PurificationPolicy, **kw: float) -> LinkSlot:
    return dataclasses.replace(link("a", "b", fidelity, **kw), purification=pol)


def test_purified_pairs_measure_better_and_cost_raw_pairs() -> None:
    circuit = ghz_x()
    part, nodes = across(circuit, NoiseSpec())
    raw = compile_teleport(circuit, part, nodes, [link("a", "b", 0.8)])
    pure = compile_teleport(circuit, part, nodes, [purifying(0.8, policy("dejmps", 2))])
    use = pure.link_pairs["a-b"]
    want = purify(BellDiagonal.werner(0.8), "dejmps", 2)
    assert use.purified == want
    (marker,) = pure.noise["bellPairs"]
    assert marker["paulis"] == pytest.approx(list(want.state.paulis()))
    assert "memory" not in marker  # folded into the pairs before purifying
    pairs = pure.bell_pairs["a-b"]
    p1, p2 = want.success_probabilities
    assert pure.raw_pairs() == {"a-b": pytest.approx(pairs * (2 / p1) * 2 / p2)}
    assert pure.expected_generation_seconds["a-b"] == pytest.approx(
        pairs * (2 / p1) * 2 / p2 * link("a", "b").seconds_per_pair
    )
    assert pure.estimated_fidelity > raw.estimated_fidelity
    # Measured in the X basis, which Z and Y errors flip: one DEJMPS round turns errors into
    # Z ones (its output is mostly |Φ->), the second removes them.
    assert measured(pure, circuit) > measured(raw, circuit) + 0.05
    assert measured(pure, circuit) == pytest.approx(pure.estimated_fidelity, abs=0.05)


def test_bbpssw_pairs_are_werner_and_dejmps_keep_their_weights() -> None:
    circuit = ghz_x()
    part, nodes = across(circuit, NoiseSpec())
    for protocol in ("bbpssw", "dejmps"):
        program = compile_teleport(circuit, part, nodes, [purifying(0.85, policy(protocol, 2))])
        px, py, pz = program.noise["bellPairs"][0]["paulis"]
        assert (px == pytest.approx(py) == pytest.approx(pz)) is (protocol == "bbpssw")


def _candidate(fidelity: float, pol: PurificationPolicy, budget: float | None, **kw: float):
    circuit = ghz_x()
    _, nodes = across(circuit, MEMORY)
    demand = Demand(
        circuit,
        None,
        nodes,
        [purifying(fidelity, pol, **kw)],
        shots=100,
        timeout_seconds=600,
        max_sampling_overhead=100,
        fidelity_budget=budget,
    )
    return estimate_teleport(demand)


def test_the_planner_purifies_only_as_much_as_the_budget_needs() -> None:
    pol = policy("auto", None, 3)
    raw = _candidate(0.85, pol, None, rate_hz=1e8)
    assert isinstance(raw.plan, TeleportProgram)
    assert raw.plan.purification() == {"a-b": (None, 0)}  # no budget: raw pairs
    # A budget above the raw estimate: the fewest raw pairs that meet it.
    budget = raw.estimated_fidelity + 0.05
    met = _candidate(0.85, pol, budget, rate_hz=1e8)
    assert isinstance(met.plan, TeleportProgram)
    assert met.feasible and met.estimated_fidelity >= budget
    _, rounds = met.plan.purification()["a-b"]
    assert rounds >= 1 and "purified (a-b:" in met.reason
    cheaper = [
        c
        for c in (
            _candidate(0.85, policy(p, r), budget, rate_hz=1e8)
            for p in ("dejmps", "bbpssw")
            for r in range(1, 4)
        )
        if c.estimated_fidelity >= budget
    ]
    assert isinstance(met.plan, TeleportProgram)
    assert sum(met.plan.raw_pairs().values()) == pytest.approx(
        min(sum(c.plan.raw_pairs().values()) for c in cheaper)  # type: ignore[union-attr]
    )
    # Out of reach: the best estimate there is, for the rejection to quote.
    best = _candidate(0.85, pol, 0.9999, rate_hz=1e8)
    assert best.estimated_fidelity == pytest.approx(
        max(
            _candidate(0.85, policy(p, 3), None, rate_hz=1e8).estimated_fidelity
            for p in ("dejmps", "bbpssw")
        )
    )


def test_purification_on_a_link_at_or_below_one_half_is_refused_naming_the_link() -> None:
    fixed = _candidate(0.45, policy("dejmps", 1), None)
    assert not fixed.feasible and fixed.limited_by == PURIFICATION
    assert "link a-b" in fixed.reason and "cannot converge" in fixed.reason
    # A policy that may leave pairs raw runs raw without a budget ...
    assert _candidate(0.45, policy("auto"), None).feasible
    # ... and is refused, naming the link, when the budget needs better pairs.
    refused = _candidate(0.45, policy("auto"), 0.9)
    assert not refused.feasible and refused.limited_by == PURIFICATION
    assert "link a-b" in refused.reason


def test_pairs_aged_below_one_half_by_a_slow_link_cannot_be_purified() -> None:
    slow = _candidate(0.9, policy("dejmps", 1), None, rate_hz=2e3)
    assert not slow.feasible and slow.limited_by == PURIFICATION
    assert "waiting" in slow.reason and "memory of a" in slow.reason
    with pytest.raises(PurificationError):
        purify(BellDiagonal.werner(0.5), "bbpssw", 1)


def test_plans_reserve_raw_pairs_and_record_the_purification() -> None:
    circuit = ghz_x()
    _, nodes = across(circuit, NoiseSpec())
    links = [purifying(0.8, policy("dejmps", 2))]
    demand = Demand(circuit, None, nodes, links, 1000, 10, 100)
    candidate = estimate_teleport(demand)
    choice = choose_candidate([candidate], None, "teleport")
    assert not isinstance(choice, str) and isinstance(choice.plan, TeleportProgram)
    program = choice.plan
    plan = plan_status(choice, [candidate], strategy_named("teleport").shape(choice, circuit, 1000))
    (use,) = plan.bell_pairs
    raw = program.raw_pairs()["a-b"]
    assert use.bell_pairs == program.bell_pairs["a-b"]
    assert use.raw_bell_pairs == pytest.approx(raw, abs=1e-6)
    assert use.purification is not None and use.purification.rounds == 2
    assert use.purification.protocol == "dejmps"
    purified = program.link_pairs["a-b"].purified
    assert use.purification.success_probabilities == pytest.approx(
        list(purified.success_probabilities), abs=1e-6
    )
    assert use.purification.output_fidelity == pytest.approx(purified.state.fidelity, abs=1e-6)
    assert use.pair_fidelity == pytest.approx(purified.state.fidelity, abs=1e-6)
    assert use.generation_seconds == pytest.approx(raw * links[0].seconds_per_pair, abs=1e-9)
    work = TeleportWork(circuit, program)
    assert work.bell_pairs_per_shot() == {"a-b": pytest.approx(raw)}
    want = reservation("ns", plan, work, 1000, 10)
    assert want[link_resource("ns", "a-b")] == pytest.approx(raw * 1000 / 10)
    # The recorded plan compiles again to the same program noise.
    assert recorded_purification(plan) == program.purification()
    part = choice.partition
    assert part is not None
    again = compile_teleport(circuit, part, nodes, links, purification=recorded_purification(plan))
    assert again.noise == program.noise


def test_a_links_purification_policy_reaches_the_planner() -> None:
    spec = {
        "nodes": ["a", "b"],
        "fidelity": 0.9,
        "generationRateHz": 1e5,
        "successProbability": 0.5,
        "purification": {"protocol": "bbpssw", "maxRounds": 3},
    }
    x = EntanglementLink.model_validate({"metadata": {"name": "a-b"}, "spec": spec})
    assert LinkSlot.of(x).purification == PurificationPolicy("bbpssw", None, 3)
    spec["purification"] = {"protocol": "dejmps", "rounds": 9}
    with pytest.raises(ValueError, match="rounds"):
        EntanglementLink.model_validate({"metadata": {"name": "a-b"}, "spec": spec})
    del spec["purification"]
    assert (
        LinkSlot.of(
            EntanglementLink.model_validate({"metadata": {"name": "a-b"}, "spec": spec})
        ).purification
        is None
    )
