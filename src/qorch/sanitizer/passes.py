"""The post-parse rules as a list of Qiskit analysis passes, and two ways to run them.

:func:`run_passes` runs the passes directly on one DAG with one shared property set,
honouring ``requires`` the way Qiskit's pass manager does (a pass equal to one already run
is skipped). It is what :func:`~qorch.sanitizer.sanitize` uses: Qiskit's ``PassManager``
books every pass and converts the DAG back to a circuit at the end, some 0.35 ms more on a
1k-gate circuit, as much as the rules themselves cost (benchmarks/results/sanitizer.md).
:func:`sanitizer_pass_manager` builds the same passes into a ``PassManager`` for anyone who
wants to compose them with other Qiskit passes; both give the same verdict.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from qiskit.dagcircuit import DAGCircuit
from qiskit.passmanager import PropertySet
from qiskit.transpiler import PassManager
from qiskit.transpiler.basepasses import BasePass
from qiskit.transpiler.passes import Depth, Size

from . import rules
from .analysis import CountMultiQubitGates, EstimateDuration, FindMidCircuitOperations
from .catalog import INTERNAL_ERROR
from .policy import SanitizerPolicy
from .report import finding
from .rules.base import VIOLATIONS
from .source.definitions import DefinitionTable
from .timing import TargetTiming
from .verdict import SanitizerVerdict


def build_passes(
    policy: SanitizerPolicy,
    *,
    shots: int | None = None,
    timing: TargetTiming | None = None,
    definitions: DefinitionTable | None = None,
) -> list[BasePass]:
    """The measurement passes, one pass per applicable rule, and the verdict last."""
    gates = definitions.gates if definitions else {}
    custom = {name: gate for name, gate in gates.items() if not gate.opaque}
    names = tuple(custom)
    sizes = {name: gate.expanded_size for name, gate in custom.items()}
    multi = {name: gate.expanded_multi_qubit for name, gate in custom.items()}
    timed = {name: (gate.expanded_size, gate.expanded_multi_qubit) for name, gate in custom.items()}
    durations_known = timing is not None and timing.gate_times_known

    passes: list[BasePass] = [
        Depth(recurse=True),
        Size(recurse=True),
        CountMultiQubitGates(expansions=multi),
        FindMidCircuitOperations(),
        rules.QubitLimit(max_qubits=policy.max_qubits),
        rules.ClbitLimit(max_clbits=policy.max_clbits),
        rules.ShotLimit(shots=shots, max_shots=policy.max_shots),
        rules.DepthLimit(max_depth=policy.max_depth),
        rules.GateLimit(max_gates=policy.max_gates, expansions=sizes),
        rules.TwoQubitGateLimit(max_two_qubit_gates=policy.max_two_qubit_gates, expansions=multi),
        rules.MidCircuitMeasurementLimit(max_measurements=policy.max_mid_circuit_measurements),
        rules.MidCircuitResetLimit(max_resets=policy.max_mid_circuit_resets),
        rules.GateAllowlist(allowed=policy.gate_allowlist, custom=names),
        rules.ParameterBounds(
            max_abs_angle=policy.max_abs_angle,
            custom=definitions.angles() if definitions else (),
        ),
        rules.WhileLoop(allowed=policy.allow_while_loops),
        rules.ForLoopBound(max_iterations=policy.max_for_loop_iterations),
        rules.Conditional(allowed=policy.allow_conditionals),
        rules.DelayLimit(
            max_seconds=policy.max_total_delay_seconds, dt_ns=timing.dt_ns if timing else None
        ),
    ]
    if timing is not None and durations_known:
        passes.append(EstimateDuration(timing=timing, expansions=timed))
        if timing.t2_known:
            passes.append(
                rules.CoherenceBudget(
                    timing=timing, max_fraction=policy.max_t2_fraction, expansions=timed
                )
            )
    if not policy.trusted:
        passes.append(
            rules.IdleProbe(
                max_idle_fraction=policy.max_idle_fraction, timing=timing, expansions=timed
            )
        )
        passes.append(rules.RepeatedTwoQubitGate(max_repeats=policy.max_repeated_two_qubit_gate))
    passes.append(SanitizerVerdict(severities=policy.rule_severity))
    return passes


class _Ordered(list[BasePass]):
    """Passes already in execution order (requirements first, no repeats)."""


_BUILT = threading.local()
_CACHED_POLICIES = 16


def cached_passes(
    policy: SanitizerPolicy,
    *,
    shots: int | None = None,
    timing: TargetTiming | None = None,
) -> list[BasePass]:
    """:func:`build_passes` for sources without custom gates, reused per policy and thread.

    Building some 30 passes costs half as much as running them; policies are immutable and
    passes keep nothing between runs but the property set they are handed, so a thread can
    reuse its own."""
    cache: OrderedDict[tuple[int, int | None, TargetTiming | None], Any]
    cache = getattr(_BUILT, "cache", None) or OrderedDict()
    _BUILT.cache = cache
    key = (id(policy), shots, timing)
    entry = cache.get(key)
    if entry is not None and entry[0] is policy:  # the entry keeps the policy, and so its id
        cache.move_to_end(key)
        return entry[1]
    passes = _Ordered(execution_order(build_passes(policy, shots=shots, timing=timing)))
    cache[key] = (policy, passes)
    while len(cache) > _CACHED_POLICIES:
        cache.popitem(last=False)
    return passes


def execution_order(passes: list[BasePass]) -> list[BasePass]:
    """The passes with their ``requires`` first, each distinct pass once: the order Qiskit's
    pass manager would run them in (equal passes, by their constructor arguments, run once)."""
    order: list[BasePass] = []
    done: set[BasePass] = set()

    def visit(task: BasePass) -> None:
        if task in done:
            return
        done.add(task)
        for required in task.requires:
            visit(required)
        order.append(task)

    for task in passes:
        visit(task)
    return order


def run_passes(dag: DAGCircuit, passes: list[BasePass]) -> PropertySet:
    """Run analysis passes on ``dag`` with one property set, in :func:`execution_order` unless
    given already ordered; a failing pass becomes a QS000 violation (the circuit is refused)
    instead of an exception."""
    property_set = PropertySet()
    ordered = passes if isinstance(passes, _Ordered) else execution_order(passes)
    for task in ordered:  # the verdict is last, so it sees every finding
        task.property_set = property_set
        try:
            task.run(dag)
        except Exception as exc:  # fail closed, with the reason
            found = property_set[VIOLATIONS]
            if found is None:
                found = property_set[VIOLATIONS] = []
            found.append(
                finding(
                    INTERNAL_ERROR,
                    f"the check {task.name()} failed ({type(exc).__name__}: {exc}); the "
                    "circuit is refused until the sanitizer can check it.",
                )
            )
    return property_set


def sanitizer_pass_manager(
    policy: SanitizerPolicy,
    *,
    shots: int | None = None,
    timing: TargetTiming | None = None,
    definitions: DefinitionTable | None = None,
) -> PassManager:
    """The same passes as a Qiskit ``PassManager``; read ``pm.property_set`` after ``run``."""
    return PassManager(build_passes(policy, shots=shots, timing=timing, definitions=definitions))
