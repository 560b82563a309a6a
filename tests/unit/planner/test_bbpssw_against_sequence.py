"""qorch's BBPSSW against SeQUeNCe's, the quantum network simulator, where it is installed.

SeQUeNCe computes the output fidelity in `BBPSSWCircuit.improved_fidelity` and the success
probability with the output state in `BBPSSW_BDS.purification_res`, on Bell-diagonal states
held by its quantum manager; both are called here on its own timeline, nodes and memories.
"""

from __future__ import annotations

import numpy as np
import pytest

from qorch.planner.link_physics import BellDiagonal, bbpssw_round, purify

sequence = pytest.importorskip("sequence")

from sequence.components.memory import Memory  # noqa: E402
from sequence.constants import BELL_DIAGONAL_STATE_FORMALISM  # noqa: E402
from sequence.entanglement_management.purification.bbpssw_bds import BBPSSW_BDS  # noqa: E402
from sequence.entanglement_management.purification.bbpssw_circuit import (  # noqa: E402
    BBPSSWCircuit,
)
from sequence.kernel.timeline import Timeline  # noqa: E402
from sequence.topology.node import Node  # noqa: E402

FIDELITIES = [0.501, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99, 0.999]


def sequence_round(fidelity: float) -> tuple[float, float, float]:
    """(fidelity from the circuit formalism, success probability and fidelity from the
    Bell-diagonal formalism) of one BBPSSW round on two Werner pairs, in SeQUeNCe."""
    timeline = Timeline(formalism=BELL_DIAGONAL_STATE_FORMALISM)
    alice, bob = Node("alice", timeline), Node("bob", timeline)

    def memory(name: str) -> Memory:
        return Memory(name, timeline, 1, 1e6, 1, -1, 1550)

    kept_a, meas_a, kept_b, meas_b = (memory(n) for n in ("ka", "ma", "kb", "mb"))
    q = (1 - fidelity) / 3
    werner = np.array([fidelity, q, q, q])
    timeline.quantum_manager.set([kept_a.qstate_key, kept_b.qstate_key], werner)
    timeline.quantum_manager.set([meas_a.qstate_key, meas_b.qstate_key], werner)
    protocol = BBPSSW_BDS(alice, "purify", kept_a, meas_a, is_twirled=True)
    protocol.remote_node_name = bob.name
    success, state = protocol.purification_res()
    return BBPSSWCircuit.improved_fidelity(fidelity), float(success), float(state[0])


@pytest.mark.parametrize("fidelity", FIDELITIES)
def test_bbpssw_equals_sequence(fidelity: float) -> None:
    ours, success = bbpssw_round(fidelity)
    circuit_fidelity, their_success, bds_fidelity = sequence_round(fidelity)
    assert ours == pytest.approx(circuit_fidelity, abs=1e-6)
    assert ours == pytest.approx(bds_fidelity, abs=1e-6)
    assert success == pytest.approx(their_success, abs=1e-6)


def test_nested_rounds_equal_sequence_round_after_round() -> None:
    fidelity = 0.7
    purified = purify(BellDiagonal.werner(fidelity), "bbpssw", 3)
    for want_success in purified.success_probabilities:
        circuit_fidelity, success, _ = sequence_round(fidelity)
        assert success == pytest.approx(want_success, abs=1e-6)
        fidelity = circuit_fidelity
    assert purified.state.fidelity == pytest.approx(fidelity, abs=1e-6)
