"""The parsed circuits a pipeline holds stay within their bound, the least recently used
going first, and a job whose circuit went is parsed again and still runs only the source
its admission passed."""

from __future__ import annotations

from qiskit import QuantumCircuit

from qorch.pipeline.job import JobPipeline
from qorch.pipeline.parsed_circuits import ParsedCircuits

from .fake_world import NAMESPACE
from .test_job_transitions import BELL, from_config_map, step, step_to


def line(operations: int) -> QuantumCircuit:
    circuit = QuantumCircuit(1)
    for _ in range(operations):
        circuit.x(0)
    return circuit


def test_the_least_recently_used_circuits_go_past_the_bound():
    held = ParsedCircuits(max_operations=10)
    a, b, c = line(4), line(4), line(4)
    held.put("a", 1, a)
    held.put("b", 1, b)
    assert held.get("a", 1) is a  # used: b is now the oldest
    held.put("c", 1, c)
    assert "b" not in held and held.get("a", 1) is a and held.get("c", 1) is c
    assert held.get("a", 2) is None  # another generation of the job
    held.put("huge", 1, line(50))  # the one used last stays, alone
    assert "huge" in held and "a" not in held and "c" not in held


async def test_a_job_whose_circuit_was_evicted_is_parsed_again_and_goes_on(world, book, settings):
    world.add_node("a", 4)
    world.config_maps[(NAMESPACE, "circuits")] = {"bell.qasm": BELL}
    pipeline = JobPipeline(world, book, settings)
    pipeline._circuits = ParsedCircuits(max_operations=0)  # none stays but the last one
    jobs = [from_config_map(name=f"j{i}") for i in range(2)]
    for job in jobs:
        await step_to(pipeline, job, "Admitted")
    for job in jobs:  # each evicts the other's circuit
        await step(pipeline, job)
        assert job.status.phase == "Planned", job.status.message
