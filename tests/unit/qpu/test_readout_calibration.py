"""Readout calibration measures p(1|0) and p(0|1) apart: relaxation while measuring empties
|1> only, and mitigation needs the asymmetry the single readout error averages away."""

from __future__ import annotations

from typing import Any

import pytest

from qorch.api import QuantumNode
from qorch.pipeline.resources import calibrate_node
from qorch.qpu.agent import QpuAgent
from qorch.qpu.calibration import READOUT_QUBITS, calibration_circuits, figures

from .support import RELAXING, InProcess


def node(noise: dict[str, Any], qubits: int = 4) -> QuantumNode:
    return QuantumNode.model_validate(
        {"metadata": {"name": "n"}, "spec": {"qubits": qubits, "noise": noise}}
    )


def test_figures_average_each_direction_over_the_qubits_read() -> None:
    # Prepared 0: qubit 0 reads 1 in 10% of shots; prepared 1: qubit 1 reads 0 in 30%.
    ones = "1" * READOUT_QUBITS
    counts = {name: {"0" * READOUT_QUBITS: 1000} for name in calibration_circuits(4, (0, 1))}
    counts["readout0"] = {"0000": 900, "0001": 100}
    counts["readout1"] = {ones: 700, "1101": 300}
    result = figures(counts, 4)
    assert result.readout_error_0to1 == pytest.approx(0.1 / READOUT_QUBITS)
    assert result.readout_error_1to0 == pytest.approx(0.3 / READOUT_QUBITS)
    assert result.readout_error == pytest.approx(0.2 / READOUT_QUBITS)


async def test_relaxation_while_measuring_makes_the_readout_asymmetric() -> None:
    result = await QpuAgent(node(RELAXING)).calibrate()
    # p(1|0) is the readout flip alone; p(0|1) = 0.095 * 0.9 + 0.905 * 0.1 = 0.176.
    # 8000 readings per direction: a standard error of about 0.004.
    assert result.readout_error_0to1 == pytest.approx(0.1, abs=0.015)
    assert result.readout_error_1to0 == pytest.approx(0.176, abs=0.015)
    assert result.readout_error == pytest.approx(
        (result.readout_error_0to1 + result.readout_error_1to0) / 2, abs=1e-5
    )


async def test_symmetric_readout_error_measures_symmetric() -> None:
    result = await QpuAgent(node({"readoutError": 0.08})).calibrate()
    assert result.readout_error_0to1 == pytest.approx(0.08, abs=0.015)
    assert result.readout_error_1to0 == pytest.approx(0.08, abs=0.015)


async def test_calibrate_node_records_both_directions_in_the_status() -> None:
    qn = node(RELAXING, qubits=2)
    status = await calibrate_node(qn, InProcess(QpuAgent(qn)))
    cal = status.calibration
    assert cal is not None and cal.readout_error_0to1 is not None
    assert cal.readout_error_1to0 is not None
    assert cal.readout_error_1to0 > cal.readout_error_0to1 + 0.03
    wire = status.wire()["calibration"]
    assert wire["readoutError0To1"] == cal.readout_error_0to1
    assert wire["readoutError1To0"] == cal.readout_error_1to0


async def test_a_calibration_without_the_asymmetric_figures_still_records() -> None:
    """Agents older than the asymmetric figures report only readoutError."""

    class Older(InProcess):
        async def call(
            self, op: str, payload: dict[str, Any], *, timeout: float | None = None
        ) -> dict[str, Any]:
            reply = await super().call(op, payload, timeout=timeout)
            return {k: v for k, v in reply.items() if not k.startswith("readoutError")} | {
                "readoutError": reply["readoutError"]
            }

    qn = node({"readoutError": 0.05}, qubits=1)
    status = await calibrate_node(qn, Older(QpuAgent(qn)))
    assert status.calibration is not None
    assert status.calibration.readout_error is not None
    assert status.calibration.readout_error_0to1 is None
