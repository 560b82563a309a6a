"""A strategy is one module and one registry entry: a toy strategy defined only here runs a
job through the embedded control plane, with nothing in the pipeline knowing its name."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from qiskit import QuantumCircuit

from qorch.api.distributed_job import Placement, Plan, Program
from qorch.api.manifests import load_manifests
from qorch.channel.identity import Identity
from qorch.local.runner import EmbeddedControlPlane, Progress
from qorch.local.world import LocalWorld
from qorch.pipeline import strategies
from qorch.pipeline.job import JobPipeline, PipelineSettings
from qorch.pipeline.reservations import Reservations
from qorch.pipeline.strategies import Context, Shape, Strategy
from qorch.pipeline.strategies.single import SingleWork
from qorch.planner.strategies import Candidate, Demand


class MostFreeQubits(Strategy):
    """The whole circuit on the node with the most free qubits, whatever its noise."""

    name = "most-free"
    preference = 3

    def estimate(self, demand: Demand) -> Candidate:
        roomiest = max(demand.nodes, key=lambda n: (n.free_qubits, n.name))
        if roomiest.free_qubits < demand.circuit.num_qubits:
            return Candidate(self.name, 0.0, False, "no node has room")
        return Candidate(self.name, 0.5, True, f"{roomiest.name} has the most room", roomiest.name)

    def shape(self, candidate: Candidate, circuit: QuantumCircuit, shots: int) -> Shape:
        node = str(candidate.plan)
        return Shape(
            placement=[Placement(node=node, qubits=list(range(circuit.num_qubits)))],
            programs=[Program(id="p0", node=node, shots=shots, note="the roomiest node")],
        )

    def work(self, candidate: Candidate, circuit: QuantumCircuit, context: Context) -> SingleWork:
        return SingleWork(circuit, str(candidate.plan))

    def rebuild(self, plan: Plan, circuit: QuantumCircuit, context: Context) -> SingleWork:
        return SingleWork(circuit, plan.programs[0].node)


@pytest.fixture
def most_free() -> Iterator[MostFreeQubits]:
    strategy = strategies.register(MostFreeQubits())
    yield strategy
    strategies.unregister(strategy.name)


def node(name: str, qubits: int, two_qubit_error: float) -> dict:
    return {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "QuantumNode",
        "metadata": {"name": name},
        "spec": {"qubits": qubits, "noise": {"twoQubitError": two_qubit_error}},
    }


GHZ3 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\ncreg c[3];\n'
GHZ3 += "h q[0];\ncx q[0], q[1];\ncx q[1], q[2];\nmeasure q -> c;\n"


@pytest.mark.usefixtures("most_free")
async def test_a_strategy_registered_outside_the_pipeline_runs_a_job(tmp_path: Path) -> None:
    job = {
        "apiVersion": "qorch.dev/v1alpha1",
        "kind": "DistributedJob",
        "metadata": {"name": "toy"},
        "spec": {"shots": 500, "strategy": "most-free", "circuit": {"qasm": GHZ3}},
    }
    # `single` would pick the quieter node; the toy strategy picks the roomier one.
    docs = [node("quiet", 4, 0.0), node("roomy", 8, 0.02), job]
    (tmp_path / "m.yaml").write_text(yaml.safe_dump_all(docs))
    world = LocalWorld(load_manifests([str(tmp_path / "m.yaml")]), Identity.generate())
    plane = EmbeddedControlPlane(world, tmp_path, Progress(io.StringIO()))
    try:
        assert await plane.start_agents() == []
        await plane.observe()
        pipeline = JobPipeline(plane.world, Reservations(), PipelineSettings())
        [toy] = list(plane.world.jobs.values())
        for _ in range(20):
            if toy.status.phase in ("Succeeded", "Failed", "Rejected"):
                break
            toy.status = (await pipeline.step(toy)).status
    finally:
        await plane.close()

    assert toy.status.phase == "Succeeded", toy.status.message
    assert toy.status.plan is not None
    assert (toy.status.plan.strategy, toy.status.plan.nodes) == ("most-free", "roomy")
    assert [c.strategy for c in toy.status.plan.candidates] == ["most-free"]
    assert toy.status.result is not None and toy.status.result.counts is not None
    assert sum(toy.status.result.counts.values()) == 500


def test_an_unregistered_strategy_is_refused_by_the_models(tmp_path: Path) -> None:
    from qorch.api import DistributedJob

    with pytest.raises(ValueError, match="unknown strategy 'most-free'"):
        DistributedJob.model_validate(
            {
                "apiVersion": "qorch.dev/v1alpha1",
                "kind": "DistributedJob",
                "metadata": {"name": "toy"},
                "spec": {"strategy": "most-free", "circuit": {"qasm": GHZ3}},
            }
        )
