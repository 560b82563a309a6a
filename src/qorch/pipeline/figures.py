"""Where the planner's figures come from: declared in the spec, or measured.

The spec's figures are the prior. A measured figure replaces its declared one only when
the measurement contradicts the declaration beyond its own uncertainty; otherwise the
declaration stands. So a resource that behaves as declared plans on the same figures on
every run (a plan does not move with sampling noise), and one that has drifted plans on
what it does now. The plan records which it used (`status.plan.figures`).

- A link (its last probe, `status.probe`, made of the link's physical state): the pairs'
  fidelity when the declared one lies outside the probe's 99.73% Wilson interval; the
  success probability likewise, from the heralded successes per attempt; the attempt rate
  when the probe's timing differs from the declared rate. A probe the agent made from the
  declared figures (`source: request`) measured nothing and is not used.
- A node (its last calibration, `status.calibration`): calibration reads the readout,
  single- and two-qubit errors through identity sequences, which also see relaxation, so
  the calibration is compared with what it reads under the declared noise
  (`qorch.qpu.calibration.expected_figures`). Where the two differ by more than 4
  standard errors of their difference, the difference is added to the declared figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math

from qorch.api import EntanglementLink, QuantumNode
from qorch.api.quantum_node import NoiseSpec
from qorch.planner.model import LinkSlot, NodeSlot
from qorch.qpu.calibration import (
    READOUT_QUBITS,
    CalibrationFigures,
    expected_figures,
    standard_errors,
)
from qorch.qpu.link_probe import Z, wilson_interval

DECLARED, MEASURED, CALIBRATED = "declared", "measured", "calibrated"
#: Standard errors of the difference between a calibration and its expectation beyond
#: which the calibration wins.
NODE_SIGMAS = 4.0
# Relative difference of a probe's attempt rate from the declared one that counts.
RATE_TOLERANCE = 1e-6


def link_slot(link: EntanglementLink) -> LinkSlot:
    """The link as planned: its physical (declared) latency for the physics, the measured
    classical path for the time, and its pairs' figures from its last probe where that
    contradicts the declaration."""
    slot = dataclasses.replace(
        LinkSlot.of(link), measured_latency_us=link.status.feedforward_latency_microseconds
    )
    probe = link.status.probe
    if probe is None or probe.source != "linkState" or probe.pairs <= 0:
        return slot
    changes: dict[str, float] = {}
    if not probe.fidelity_lower <= link.spec.fidelity <= probe.fidelity_upper:
        changes["fidelity"] = min(1.0, max(0.2500001, probe.fidelity))
    low, high = wilson_interval(probe.pairs, probe.attempts, Z)
    if not low <= link.spec.success_probability <= high:
        changes["success_probability"] = max(1e-9, probe.success_rate)
    if probe.pair_rate_hz > 0:
        rate = probe.pair_rate_hz * probe.attempts / probe.pairs
        if abs(rate - link.spec.generation_rate_hz) > RATE_TOLERANCE * link.spec.generation_rate_hz:
            changes["generation_rate_hz"] = rate
    if not changes:
        return slot
    return dataclasses.replace(slot, figures=MEASURED, **changes)  # type: ignore[arg-type]


def node_slot(node: QuantumNode, free_qubits: int | None = None) -> NodeSlot:
    """The node as planned: its declared noise, moved by what calibration measured beyond
    what that noise explains."""
    slot = NodeSlot.of(node, free_qubits)
    calibration = node.status.calibration
    if calibration is None or calibration.single_qubit_error is None:
        return slot
    measured = CalibrationFigures(
        readout_error=calibration.readout_error or 0.0,
        readout_error_0to1=calibration.readout_error_0to1 or 0.0,
        readout_error_1to0=calibration.readout_error_1to0 or 0.0,
        single_qubit_error=calibration.single_qubit_error,
        two_qubit_error=calibration.two_qubit_error,
        fidelity=calibration.fidelity or 0.0,
    )
    try:
        expected = expected_figures(node.spec)
    except Exception:  # a spec the simulator cannot build: the declared figures stand
        return slot
    noise = _moved(node.spec.noise, measured, expected, min(node.spec.qubits, READOUT_QUBITS))
    if noise == node.spec.noise:
        return slot
    return dataclasses.replace(slot, noise=noise, figures=CALIBRATED)


_FIELDS = {
    "readoutError": ("readout_error", 0.5),
    "singleQubitError": ("single_qubit_error", 1.0),
    "twoQubitError": ("two_qubit_error", 1.0),
}


async def expect_figures(node: QuantumNode) -> None:
    """Simulate, in a worker thread, what calibration should read on the node (kept per
    noise), so that its first plan does not; a spec the simulator cannot build is left to
    `node_slot`, which plans on the declared figures."""
    with contextlib.suppress(Exception):
        await asyncio.to_thread(expected_figures, node.spec)


def _moved(
    declared: NoiseSpec, measured: CalibrationFigures, expected: CalibrationFigures, width: int
) -> NoiseSpec:
    se_measured = standard_errors(measured, width)
    se_expected = standard_errors(expected, 2)
    changes: dict[str, float] = {}
    for key, (name, top) in _FIELDS.items():
        m, e = getattr(measured, name), getattr(expected, name)
        if m is None or e is None or key not in se_measured or key not in se_expected:
            continue
        tolerance = NODE_SIGMAS * math.hypot(se_measured[key], se_expected[key])
        if abs(m - e) > tolerance:
            base = getattr(declared, name) or 0.0
            changes[name] = round(min(top, max(0.0, base + m - e)), 6)
    return declared.model_copy(update=changes) if changes else declared


def figures_of(nodes: list[NodeSlot], links: list[LinkSlot]) -> dict[str, str]:
    """Which figures each resource was planned with, for `status.plan.figures`."""
    return {
        **{f"qn/{n.name}": n.figures for n in nodes},
        **{f"qlink/{x.name}": x.figures for x in links},
    }
