"""Jobs planned in parallel threads ask for the same expected figures and noise model at
once: each is computed once, not once per thread that missed the cache."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

import qorch.planner.prediction as prediction
import qorch.qpu.calibration as calibration
import qorch.qpu.executor as executor
from qorch.api import NoiseSpec
from qorch.single_flight import SingleFlight
from tests.support import make_node

NOISE = {"singleQubitError": 0.001, "twoQubitError": 0.01, "readoutError": 0.02}


def test_expected_figures_are_simulated_once_for_parallel_planners(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(calibration, "_EXPECTED", SingleFlight(256))
    built: list[object] = []
    real = executor.NodeExecutor.__init__

    def counted(self, spec):  # type: ignore[no-untyped-def]
        built.append(spec)
        real(self, spec)

    monkeypatch.setattr(executor.NodeExecutor, "__init__", counted)
    spec = make_node("n", 4, noise=NOISE).spec
    with ThreadPoolExecutor(8) as pool:
        figures = list(pool.map(lambda _: calibration.expected_figures(spec), range(8)))
    assert len(built) == 1
    assert all(f == figures[0] for f in figures)


def test_a_nodes_noise_model_is_built_once_for_parallel_planners(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prediction, "_MODELS", SingleFlight(64))
    built: list[object] = []
    real = prediction.build_noise_model

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        built.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(prediction, "build_noise_model", counted)
    noise = NoiseSpec.model_validate(NOISE).model_dump_json()
    gates = ("rz", "sx", "x", "cx")
    with ThreadPoolExecutor(8) as pool:
        models = list(pool.map(lambda _: prediction._node_model(noise, gates), range(8)))
    assert len(built) == 1
    assert all(m is models[0] for m in models)
