"""`locc-cut`: wires cut with one-way classical communication (qorch.planner.locc).

Two programs: the sender's agent runs its part of the circuit, measures the cut wires in
each basis and sends every shot's outcome straight to the receiver's agent over their own
authenticated channel (qorch.qpu.peer); the receiver prepares the state those bits (and its
draw) name and runs its part. Both reply with per-shot outcomes in the sender's order, and
the expectation values are knitted from them. The operator tells each agent its peer
(endpoint and pinned key) in the run request and carries none of the messages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from qiskit import QuantumCircuit

from qorch.agent_protocol import LoccReceive, LoccSend, RunRequest
from qorch.api.distributed_job import (
    JobResult,
    LinkUse,
    MitigatedResult,
    Placement,
    Plan,
    Program,
    Verification,
)
from qorch.channel.identity import encode_public_key
from qorch.planner.locc import (
    SHOTS_PER_MESSAGE,
    LoccCutPlan,
    Shots,
    bases,
    find_wire_cuts,
    plan_locc_cut,
    shift_probabilities,
)
from qorch.planner.strategies import LOCC_CUT, Candidate, estimate_locc_cut
from qorch.qpu.circuits import encode_circuit
from qorch.telemetry import metrics as m

from ..verification import verify_expectations
from .base import Context, Reply, Returned, Shape, Strategy, Work

SEND = "locc-send"
RECEIVE = "locc-receive"
#: How long a side waits for the other's next message (the receiver) or for it to take
#: one (the sender) before the program fails and the job re-routes.
PEER_WAIT_SECONDS = 30.0
#: Shots' outcomes per message.
CHUNK_SHOTS = SHOTS_PER_MESSAGE

#: Where a node's agent is reached, and the keys pinned for it now (none: not pinned; two
#: while its key rotates).
Address = tuple[str, tuple[bytes, ...]]


def _seed(key: str) -> int:
    """Each attempt's programs draw from their own, reproducible generator."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")


@dataclass
class LoccCutWork(Work):
    circuit: QuantumCircuit
    knitting: LoccCutPlan
    link: str
    namespace: str = "default"
    peers: dict[str, Address] = field(default_factory=dict)
    wait_seconds: float | None = None  # PEER_WAIT_SECONDS

    def locate(self, where: Callable[[str], Address]) -> None:
        for node in (self.knitting.sender, self.knitting.receiver):
            self.peers[node] = where(node)

    def _peer(self, node: str) -> tuple[str, list[str]]:
        """Endpoint and base64 keys of a node's agent. A node without a pinned key gets a
        key no agent can read: its peer's program is refused with BadRequest naming the
        field, as the node's own is with IdentityNotPinned."""
        if node not in self.peers:
            raise ValueError(f"the pipeline did not say where {node}'s agent is")
        endpoint, keys = self.peers[node]
        return endpoint, [encode_public_key(k) for k in keys] or ["unpinned"]

    def shots_per_subexperiment(self, shots: int) -> int:
        return max(1, shots // bases(self.knitting.wires))

    def payloads(self, shots: int, key: str) -> dict[str, RunRequest]:
        plan = self.knitting
        receiver_endpoint, receiver_keys = self._peer(plan.receiver)
        _, sender_keys = self._peer(plan.sender)
        exchange = f"{key}/locc"
        per_sub = self.shots_per_subexperiment(shots)
        seed = _seed(exchange)
        wait = self.wait_seconds if self.wait_seconds is not None else PEER_WAIT_SECONDS
        send = RunRequest(
            program_id=f"{key}/{SEND}-{plan.sender}",
            shots=per_sub,
            circuits=[encode_circuit(c) for c in plan.sender_circuits],
            seed=seed,
            locc=LoccSend(
                exchange=exchange,
                peer_endpoint=receiver_endpoint,
                peer_public_keys=receiver_keys,
                wires=plan.wires,
                chunk_shots=CHUNK_SHOTS,
                wait_seconds=wait,
            ),
        )
        receive = RunRequest(
            program_id=f"{key}/{RECEIVE}-{plan.receiver}",
            shots=per_sub,
            circuits=[encode_circuit(c) for c in plan.receiver_circuits],
            seed=seed + 1,
            locc=LoccReceive(
                exchange=exchange,
                peer_public_keys=sender_keys,
                wires=plan.wires,
                shift_probabilities=[float(p) for p in shift_probabilities(plan.wires)],
                wait_seconds=wait,
            ),
        )
        return {f"{SEND}-{plan.sender}": send, f"{RECEIVE}-{plan.receiver}": receive}

    def _shots(self, replies: Mapping[str, Reply]) -> list[Shots]:
        plan = self.knitting
        sent = replies[f"{SEND}-{plan.sender}"].locc
        received = replies[f"{RECEIVE}-{plan.receiver}"].locc
        if sent is None or received is None or received.shifts is None:
            raise ValueError("an LOCC program replied without its per-shot receipt")
        if len(sent.outcomes) != len(received.outcomes):
            raise ValueError(
                f"the sender returned {len(sent.outcomes)} subexperiments, the receiver"
                f" {len(received.outcomes)}"
            )
        return [
            Shots(s, r, q)
            for s, r, q in zip(sent.outcomes, received.shifts, received.outcomes, strict=True)
        ]

    def aggregate(self, returned: Returned) -> JobResult:
        values, errors = self.knitting.reconstruct(self._shots(returned.replies))
        sent = returned.replies[f"{SEND}-{self.knitting.sender}"].locc
        if sent is not None:
            for seconds in sent.message_seconds:
                m.METRICS.record(
                    "qorch_feedforward_latency_seconds",
                    seconds,
                    namespace=self.namespace,
                    link=self.link,
                )
        return JobResult(
            expectation_values=[round(v, 6) for v in values],
            standard_errors=[round(e, 6) for e in errors],
            verification=self.verify(values, errors, returned.plan.estimated_fidelity),
        )

    def verify(
        self, values: list[float], errors: list[float], estimated_fidelity: float | None
    ) -> Verification:
        return verify_expectations(
            self.circuit, self.knitting.observables, values, errors, estimated_fidelity
        )

    def mitigate(self, returned: Returned, result: JobResult) -> MitigatedResult:
        return MitigatedResult(
            method="none: readout correction of LOCC cuts is not implemented",
            expectation_values=result.expectation_values,
            standard_errors=result.standard_errors,
            verification=result.verification,
        )


class LoccCut(Strategy):
    name = LOCC_CUT
    preference = 3
    estimator = estimate_locc_cut

    def shape(self, candidate: Candidate, circuit: QuantumCircuit, shots: int) -> Shape:
        plan = candidate.plan
        assert isinstance(plan, LoccCutPlan)
        per_sub = max(1, shots // bases(plan.wires))
        subs = plan.num_subexperiments
        return Shape(
            # The link carries no Bell pair, but its classical path: its failure re-routes.
            bell_pairs=[LinkUse(link=plan.link, bell_pairs=0)] if plan.link else [],
            placement=[
                Placement(node=plan.sender, qubits=list(plan.cut.sender_qubits)),
                Placement(node=plan.receiver, qubits=list(plan.cut.receiver_qubits)),
            ],
            programs=[
                Program(
                    id=f"{SEND}-{plan.sender}",
                    node=plan.sender,
                    shots=per_sub,
                    note=f"{subs} subexperiment(s) up to the cut of {plan.wires} wire(s),"
                    f" {per_sub} shots each, outcomes sent to {plan.receiver}",
                ),
                Program(
                    id=f"{RECEIVE}-{plan.receiver}",
                    node=plan.receiver,
                    shots=per_sub,
                    note=f"each shot prepared from {plan.sender}'s message, then the rest",
                ),
            ],
        )

    def work(self, candidate: Candidate, circuit: QuantumCircuit, context: Context) -> LoccCutWork:
        plan = candidate.plan
        assert isinstance(plan, LoccCutPlan)
        return LoccCutWork(circuit, plan, plan.link, _ns(context))

    def rebuild(self, plan: Plan, circuit: QuantumCircuit, context: Context) -> LoccCutWork:
        sender, receiver = (p.node for p in plan.placement)
        qubits = tuple(tuple(p.qubits) for p in plan.placement)
        cut = next(
            (c for c in find_wire_cuts(circuit) if (c.sender_qubits, c.receiver_qubits) == qubits),
            None,
        )
        if cut is None:
            raise ValueError("the recorded LOCC cut is no split of this circuit")
        link = _link(context, sender, receiver)
        knitting = plan_locc_cut(circuit, context.observables or [], sender, receiver, cut, link)
        return LoccCutWork(circuit, knitting, link, _ns(context))


def _link(context: Context, a: str, b: str) -> str:
    for link in context.links:
        if set(link.spec.nodes) == {a, b}:
            return link.metadata.name
    return f"{a}-{b}"


def _ns(context: Context) -> str:
    return next((n.metadata.namespace for n in context.nodes), "default")
