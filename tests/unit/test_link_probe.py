"""Link probes: heralded generation and two-basis fidelity estimates of Werner pairs."""

import pytest

from qorch.qpu.link_probe import expected_fidelity, probe


@pytest.mark.parametrize("fidelity", [0.99, 0.9, 0.7])
def test_measured_fidelity_matches_the_link_within_its_standard_error(fidelity):
    readout = (0.01, 0.02)
    result = probe(fidelity, 0.3, 10_000, 4000, readout, seed=7)
    expected = expected_fidelity(fidelity, readout)
    assert abs(result.measured_fidelity - expected) < 4 * result.fidelity_std_error


def test_success_rate_and_generation_latency_follow_the_heralding_model():
    result = probe(0.95, 0.25, 1000, 4000, seed=3)
    assert result.success_rate == pytest.approx(0.25, rel=0.05)
    assert result.mean_generation_seconds == pytest.approx(4 / 1000, rel=0.05)


def test_readout_errors_lower_what_a_healthy_link_shows():
    assert expected_fidelity(0.95, (0.05, 0.05)) < expected_fidelity(0.95, (0.0, 0.0)) == 0.95


async def test_an_agent_reporting_more_successes_than_attempts_records_nothing():
    from qorch.api.manifests import load_manifests
    from qorch.pipeline.resources import _probe_pairs
    from qorch.telemetry.metrics import METRICS
    from tests.support import REPO

    class Boasting:
        async def call(self, op, payload, *, timeout=None):
            return {
                "measuredFidelity": 0.99,
                "fidelityStdError": 0.01,
                "attempts": 3,
                "successes": 4,
                "meanGenerationSeconds": 1e-3,
            }

    manifests = load_manifests([str(REPO / "examples/quickstart/nodes.yaml")])
    link = manifests.links[0]
    link.metadata.name = "boasting"
    a, b = manifests.nodes
    before = link.status.model_copy(deep=True)
    # A reply that does not add up is a BadReply: the link keeps its last figures.
    await _probe_pairs(link, link.status, a, b, Boasting())
    assert link.status == before
    labels = {"namespace": link.metadata.namespace, "link": "boasting"}
    assert METRICS.registry.get_sample_value("qorch_entanglement_attempts_total", labels) is None


@pytest.mark.parametrize("fidelity", [0.98, 0.9, 0.7])
def test_the_stated_interval_covers_the_links_own_fidelity(fidelity):
    from qorch.qpu.link_probe import fidelity_interval

    readout = (0.01, 0.02)
    covered = 0
    for seed in range(30):
        result = probe(fidelity, 0.5, 1e6, 1000, readout, seed=seed)
        estimate, low, high = fidelity_interval(result.agreements, result.successes, readout)
        assert low <= estimate <= high
        assert high - low < 0.2
        covered += low <= fidelity <= high
    assert covered >= 28  # a 99.73% interval: at most a miss or two in 30


def test_a_drifted_link_is_told_apart_from_its_declaration():
    from qorch.qpu.link_probe import fidelity_interval

    result = probe(0.75, 0.5, 1e6, 1000, (0.01, 0.01), seed=1)
    _, low, high = fidelity_interval(result.agreements, result.successes, (0.01, 0.01))
    assert high < 0.9 and low <= 0.75 <= high


def test_the_wilson_interval_stays_within_zero_and_one():
    from qorch.qpu.link_probe import wilson_interval

    assert wilson_interval(0, 10)[0] == pytest.approx(0.0) and wilson_interval(10, 10)[1] == 1.0
    low, high = wilson_interval(50, 100, 1.96)
    assert low == pytest.approx(0.404, abs=1e-3) and high == pytest.approx(0.596, abs=1e-3)


def test_a_measured_readout_error_widens_the_interval():
    from qorch.qpu.link_probe import fidelity_interval

    plain = fidelity_interval(950, 1000, (0.01, 0.01))
    wider = fidelity_interval(950, 1000, (0.01, 0.01), readout_std_error=0.002)
    assert wider[0] == plain[0] and wider[1] < plain[1] and wider[2] > plain[2]
