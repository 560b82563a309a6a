"""Calibration measures the noise the node actually has: change the noise, the figures follow."""

import pytest

from qorch.api import QuantumNode
from qorch.qpu.agent import QpuAgent


def agent(noise: dict) -> QpuAgent:
    return QpuAgent(
        QuantumNode.model_validate(
            {"metadata": {"name": "n"}, "spec": {"qubits": 4, "noise": noise}}
        )
    )


async def test_noiseless_node_calibrates_perfect():
    result = await agent({}).calibrate()
    assert result.readout_error == 0 and result.single_qubit_error == 0
    assert result.two_qubit_error == 0 and result.fidelity == 1


@pytest.mark.parametrize(
    "noise",
    [
        {"singleQubitError": 0.002, "twoQubitError": 0.02, "readoutError": 0.03},
        {"singleQubitError": 0.01, "twoQubitError": 0.05, "readoutError": 0.08},
    ],
)
async def test_measured_figures_recover_the_noise_spec(noise):
    result = await agent(noise).calibrate()
    # 2000 shots per circuit: a few standard errors of each estimate.
    assert result.readout_error == pytest.approx(noise["readoutError"], abs=0.01)
    assert result.single_qubit_error == pytest.approx(noise["singleQubitError"], rel=0.3)
    assert result.two_qubit_error == pytest.approx(noise["twoQubitError"], rel=0.3)
    assert result.error_rate == max(
        result.readout_error, result.single_qubit_error, result.two_qubit_error
    )
    assert result.fidelity < 1


async def test_relaxation_shows_in_the_single_qubit_error():
    base = {"singleQubitError": 0.001, "singleQubitGateNanoseconds": 50}
    short_t1 = await agent({**base, "t1Microseconds": 5, "t2Microseconds": 5}).calibrate()
    long_t1 = await agent({**base, "t1Microseconds": 5000, "t2Microseconds": 5000}).calibrate()
    assert short_t1.single_qubit_error > 2 * long_t1.single_qubit_error
