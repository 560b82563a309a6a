"""LOCC wire cut vs. LO wire cut: subexperiments, and shots for the same standard error.

The same circuit is cut at the same wires in two ways:

- LOCC (qorch.planner.locc): the sender measures the wires in one of d + 1 mutually unbiased
  bases and sends the outcome, the receiver prepares the state it names (shifted by its own
  draw); gamma = 2^(n+1) - 1. Simulated here exactly as the agents do it (qorch.qpu.peer):
  per-shot outcomes in the sender's order, the receiver's draws and prepared variants.
- LO (qiskit-addon-cutting's wire cut, `CutWire` -> `cut_wires`, a Move per wire cut into
  local operations without communication); gamma = 4 per wire, 4^n for n wires.

Both spend the same total shots N per estimate, split evenly over their terms (the LO
terms all carry the same |coefficient|; the LOCC draw is proportional to |c| per shot), so
each estimator's variance is at most gamma^2 / N. The shots needed for the same standard
error scale with the variance, so their ratio is var(LOCC) / var(LO) at equal N, which the
theory puts at (gamma_LOCC / gamma_LO)^2 = (3/4)^2 for one wire and (7/16)^2 for two, less
where <O>^2 is not small against gamma^2 (per shot var = gamma^2 - <O>^2 for +/-gamma values).

The variances are measured over R seeded repetitions of each estimate, with noiseless Aer
(each circuit simulated once for all repetitions' shots, then split: shots are i.i.d.).

Run::

    PYTHONPATH=src python benchmarks/locc_vs_lo_cut.py --write
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import qiskit
import qiskit_addon_cutting
from qiskit import QuantumCircuit
from qiskit.quantum_info import PauliList
from qiskit_addon_cutting import (
    cut_wires,
    expand_observables,
    generate_cutting_experiments,
    partition_problem,
)
from qiskit_addon_cutting.instructions import CutWire
from qiskit_addon_cutting.utils.observable_grouping import ObservableCollection
from qiskit_aer import AerSimulator

from qorch.planner.cutting import CutPlan, _reduce, exact_expectation_values
from qorch.planner.locc import (
    LoccCutPlan,
    Shots,
    bases,
    find_wire_cuts,
    gamma,
    lo_gamma,
    plan_locc_cut,
    prepare,
    shift_probabilities,
)
from qorch.qpu.peer import cut_bits, expand_counts, stratified_shifts

RESULTS = Path(__file__).parent / "results" / "locc_vs_lo_cut.md"
SIM = AerSimulator(method="statevector")


def one_wire() -> QuantumCircuit:
    qc = QuantumCircuit(4)
    qc.h(0)
    qc.cx(0, 1)
    qc.ry(0.7, 1)
    qc.cx(1, 2)
    qc.cx(1, 3)
    qc.rx(0.4, 3)
    qc.cx(2, 3)
    return qc


def two_wires() -> QuantumCircuit:
    qc = QuantumCircuit(4)
    qc.h(0)
    qc.cx(0, 1)
    qc.ry(0.7, 1)
    qc.rx(0.3, 0)
    qc.cx(0, 2)
    qc.cx(1, 3)
    qc.rx(0.4, 3)
    qc.cx(2, 3)
    return qc


#: Aer seeds shot j of a run with seed + j: pools' seeds lie further apart than any pool
#: grows, so no two circuits share a random stream.
SEED_SPACING = 100_000_007


class Pool:
    """Shots of one circuit, simulated once in bulk and handed out in order."""

    def __init__(self, circuit: QuantumCircuit, seed: int) -> None:
        self.circuit, self.seed = circuit, seed
        self.memory: list[str] = []
        self.used = 0

    def take(self, shots: int) -> list[str]:
        while self.used + shots > len(self.memory):
            more = max(shots, 4 * len(self.memory), 4096)
            result = SIM.run(
                self.circuit, shots=more, memory=True, seed_simulator=self.seed + len(self.memory)
            ).result()
            self.memory.extend(result.get_memory())
        out = self.memory[self.used : self.used + shots]
        self.used += shots
        return out


def locc_estimates(plan: LoccCutPlan, total: int, reps: int, seed: int) -> np.ndarray:
    d = 2**plan.wires
    per_basis = total // bases(plan.wires)
    senders = [Pool(c, seed + SEED_SPACING * i) for i, c in enumerate(plan.sender_circuits)]
    receivers = [
        Pool(c, seed + SEED_SPACING * 1000 + SEED_SPACING * i)
        for i, c in enumerate(plan.receiver_circuits)
    ]
    rng = np.random.default_rng(seed)
    probabilities = shift_probabilities(plan.wires)
    out = []
    for _ in range(reps):
        subs = []
        for index, pool in enumerate(senders):
            shots = expand_counts(Counter(pool.take(per_basis)), rng)
            bits = np.array([cut_bits(s, plan.wires) for s in shots])
            drawn = stratified_shifts(len(bits), probabilities, rng)
            prepared = bits ^ drawn
            outcomes = [""] * len(bits)
            for variant in sorted(set(prepared.tolist())):
                places = np.flatnonzero(prepared == variant)
                got = receivers[index * d + variant].take(len(places))
                for place, outcome in zip(places, got, strict=True):
                    outcomes[place] = outcome
            subs.append(Shots(shots, [int(r) for r in drawn], outcomes))
        values, errors = plan.reconstruct(subs)
        out.append([values[0], errors[0]])
    return np.array(out)


def lo_plan(circuit: QuantumCircuit, plan: LoccCutPlan, observables: list[str]) -> CutPlan:
    """qiskit-addon-cutting's wire cut at the same wires, as a CutPlan (for `reconstruct`)."""
    prepared = prepare(circuit)
    marked = QuantumCircuit(prepared.num_qubits)
    for inst in prepared.data[: plan.cut.split]:
        marked.append(inst)
    for wire in plan.cut.wires:
        marked.append(CutWire(), [wire])
    for inst in prepared.data[plan.cut.split :]:
        marked.append(inst)
    moved = cut_wires(marked)
    original = {q: i for i, q in enumerate(marked.qubits)}
    receiver_only = set(plan.cut.receiver_qubits)
    labels = ["B" if q in original and original[q] in receiver_only else "A" for q in moved.qubits]
    expanded = expand_observables(PauliList(observables), marked, moved)
    problem = partition_problem(moved, partition_labels="".join(labels), observables=expanded)
    subexperiments, coefficients = generate_cutting_experiments(
        problem.subcircuits, problem.subobservables, num_samples=np.inf
    )
    return CutPlan(
        subexperiments={str(k): list(v) for k, v in subexperiments.items()},
        sampling_overhead=float(np.prod([b.overhead for b in problem.bases])),
        num_cuts=len(problem.bases),
        observables=tuple(observables),
        coefficients=list(coefficients),
        subobservables={str(k): v for k, v in problem.subobservables.items()},
    )


def lo_estimates(plan: CutPlan, total: int, reps: int, seed: int) -> np.ndarray:
    terms = len(plan.coefficients)
    weights = {abs(round(c, 12)) for c, _ in plan.coefficients}
    assert len(weights) == 1, "equal shots per term are proportional to |c| only if equal"
    per_term = max(1, total // terms)
    pools = {
        node: [
            Pool(c, seed + SEED_SPACING * i + (0 if node == "A" else SEED_SPACING * 1000))
            for i, c in enumerate(subs)
        ]
        for node, subs in plan.subexperiments.items()
    }
    out = []
    for _ in range(reps):
        results = {
            node: [dict(Counter(p.take(per_term))) for p in node_pools]
            for node, node_pools in pools.items()
        }
        out.append(plan.reconstruct(results)[0])
    return np.array(out)


def locc_qpd_estimates(plan: LoccCutPlan, total: int, reps: int, seed: int) -> np.ndarray:
    """Each shot draws its basis (uniformly) and shift (by |c|): the plain QPD estimator,
    whose per-shot values are +/-gamma."""
    d, k = 2**plan.wires, bases(plan.wires)
    senders = [Pool(c, seed + SEED_SPACING * i) for i, c in enumerate(plan.sender_circuits)]
    receivers = [
        Pool(c, seed + SEED_SPACING * 1000 + SEED_SPACING * i)
        for i, c in enumerate(plan.receiver_circuits)
    ]
    rng = np.random.default_rng(seed)
    probabilities = shift_probabilities(plan.wires)
    out = []
    for _ in range(reps):
        values = []
        for index, count in enumerate(rng.multinomial(total, [1 / k] * k)):
            if count == 0:
                continue
            shots = senders[index].take(int(count))
            bits = np.array([cut_bits(s, plan.wires) for s in shots])
            drawn = rng.choice(d, size=len(bits), p=probabilities)
            outcomes = [
                receivers[index * d + int(b ^ r)].take(1)[0]
                for b, r in zip(bits, drawn, strict=True)
            ]
            values.append(plan.shot_values(0, Shots(shots, [int(r) for r in drawn], outcomes)))
        out.append(float(np.concatenate(values).mean()))
    return np.array(out)


def lo_qpd_estimates(plan: CutPlan, total: int, reps: int, seed: int) -> np.ndarray:
    """Each shot draws its term by |c|; its value is gamma sign(c) times both sides' +/-1."""
    coefficients = np.array([c for c, _ in plan.coefficients])
    g = float(np.abs(coefficients).sum())
    pools = {
        node: [
            Pool(c, seed + SEED_SPACING * i + (0 if node == "A" else SEED_SPACING * 1000))
            for i, c in enumerate(subs)
        ]
        for node, subs in plan.subexperiments.items()
    }
    masks = {}
    for node, observables in plan.subobservables.items():
        collection = ObservableCollection(observables)
        [(group, member)] = collection.lookup[observables[0]]
        masks[node] = (collection.groups[group].pauli_bitmasks, member)
    cache: dict[tuple[str, int, str], float] = {}

    def value(node: str, term: int, shot: str) -> float:
        key = (node, term, shot)
        if key not in cache:
            bitmasks, member = masks[node]
            circuit = plan.subexperiments[node][term]
            cache[key] = float(_reduce(circuit, {shot: 1}, bitmasks).means[member])
        return cache[key]

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(reps):
        total_value = 0.0
        for term, count in enumerate(rng.multinomial(total, np.abs(coefficients) / g)):
            if count == 0:
                continue
            a = pools["A"][term].take(int(count))
            b = pools["B"][term].take(int(count))
            sign = np.sign(coefficients[term])
            total_value += sum(
                g * sign * value("A", term, x) * value("B", term, y)
                for x, y in zip(a, b, strict=True)
            )
        out.append(total_value / total)
    return np.array(out)


def row(name: str, circuit: QuantumCircuit, observable: str, total: int, reps: int) -> dict:
    cut = next(c for c in find_wire_cuts(circuit) if c.split > 0)
    locc = plan_locc_cut(circuit, [observable], "A", "B", cut)
    lo = lo_plan(circuit, locc, [observable])
    exact = exact_expectation_values(circuit, [observable])[0]
    started = time.perf_counter()
    estimates = locc_estimates(locc, total, reps, seed=11)
    a, reported = estimates[:, 0], estimates[:, 1]
    b = lo_estimates(lo, total, reps, seed=13)[:, 0]
    qa = locc_qpd_estimates(locc, total, reps, seed=17)
    qb = lo_qpd_estimates(lo, total, reps, seed=19)
    n = locc.wires
    g_locc, g_lo = gamma(n), lo_gamma(n)
    theory = (g_locc**2 - exact**2) / (g_lo**2 - exact**2)
    return {
        "name": name,
        "wires": n,
        "observable": observable,
        "exact": exact,
        "locc_subs": len(locc.sender_circuits) + len(locc.receiver_circuits),
        "locc_programs": len(locc.sender_circuits),
        "lo_subs": sum(len(v) for v in lo.subexperiments.values()),
        "lo_terms": len(lo.coefficients),
        "gamma": (g_locc, g_lo),
        "lo_overhead": lo.sampling_overhead,
        "mean": (float(a.mean()), float(b.mean())),
        "var": (float(a.var(ddof=1)), float(b.var(ddof=1))),
        "qpd_mean": (float(qa.mean()), float(qb.mean())),
        "calibration": float(np.mean(reported**2) / a.var(ddof=1)),
        "qpd_var": (float(qa.var(ddof=1)), float(qb.var(ddof=1))),
        "theory_bound": (g_locc / g_lo) ** 2,
        "theory": theory,
        "seconds": time.perf_counter() - started,
    }


def _ratio(va: float, vb: float, reps: int) -> str:
    # Each sample variance has relative SE sqrt(2 / (R - 1)); the ratio's adds in quadrature.
    return f"{va / vb:.3f} ± {(va / vb) * math.sqrt(4 / (reps - 1)):.3f}"


def table(rows: list[dict], total: int, reps: int) -> str:
    lines = [
        "| circuit | wires | O | exact <O> | subexperiments LOCC (sender + receiver variants)"
        " | subexperiments LO (terms) | gamma LOCC / LO | theory (g_LOCC^2-<O>^2)/(g_LO^2-<O>^2)"
        " | QPD-sampled: N var LOCC / LO | QPD-sampled: shots ratio | as run: N var LOCC / LO"
        " | as run: shots ratio |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        va, vb = r["var"]
        qa, qb = r["qpd_var"]
        lines.append(
            f"| {r['name']} | {r['wires']} | {r['observable']} | {r['exact']:+.3f} |"
            f" {r['locc_subs']} ({r['locc_programs']} + {r['locc_subs'] - r['locc_programs']}) |"
            f" {r['lo_subs']} ({r['lo_terms']}) | {r['gamma'][0]} / {r['gamma'][1]} |"
            f" {r['theory']:.3f} (bound {r['theory_bound']:.3f}) |"
            f" {total * qa:.2f} / {total * qb:.2f} | {_ratio(qa, qb, reps)} |"
            f" {total * va:.2f} / {total * vb:.2f} | {_ratio(va, vb, reps)} |"
        )
    means = [
        f"- {r['name']} {r['observable']}: exact {r['exact']:+.4f}; mean of the estimates LOCC"
        f" {r['mean'][0]:+.4f} (QPD-sampled {r['qpd_mean'][0]:+.4f}), LO {r['mean'][1]:+.4f}"
        f" (QPD-sampled {r['qpd_mean'][1]:+.4f}); LOCC's reported SE^2 over the variance"
        f" of its estimates {r['calibration']:.2f}"
        for r in rows
    ]
    return (
        "\n".join(lines) + "\n\nMeans over the repetitions (all unbiased):\n\n" + "\n".join(means)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=2000, help="total shots per estimate")
    parser.add_argument("--reps", type=int, default=300, help="repetitions per estimator")
    parser.add_argument("--write", action="store_true", help=f"also write {RESULTS}")
    args = parser.parse_args()
    cases = [
        ("one wire", one_wire(), "ZIZZ"),
        ("one wire", one_wire(), "IXXX"),
        ("two wires", two_wires(), "XIXZ"),
        ("two wires", two_wires(), "YXIY"),
    ]
    rows = []
    for name, circuit, observable in cases:
        rows.append(row(name, circuit, observable, args.shots, args.reps))
        print(f"{name} {observable}: {rows[-1]['seconds']:.1f} s", file=sys.stderr)
    text = table(rows, args.shots, args.reps)
    print(text)
    if args.write:
        header = (
            "# LOCC wire cut vs. LO wire cut\n\n"
            f"Command: `PYTHONPATH=src python benchmarks/locc_vs_lo_cut.py --shots {args.shots}"
            f" --reps {args.reps} --write`\n\n"
            f"{args.shots} total shots per estimate, split evenly over each method's terms;"
            f" variances over {args.reps} seeded repetitions, noiseless Aer."
            f" Python {platform.python_version()}, qiskit {qiskit.__version__},"
            f" qiskit-addon-cutting {qiskit_addon_cutting.__version__}.\n\n"
            "`N var` is N times the variance of one estimate, the per-shot variance the"
            " estimator achieves (at most gamma^2). `shots ratio` is var(LOCC) /"
            " var(LO) at equal shots: the fraction of LO's shots LOCC needs for the same"
            " standard error (± its own standard error from the finite repetitions). QPD-sampled:"
            " each shot draws its term by |c| (the estimator gamma bounds); as run: the"
            " estimators qorch and qiskit-addon-cutting use (see below).\n\n"
        )
        RESULTS.write_text(header + text + "\n" + READING)
    return 0


READING = """
## Reading the numbers

- Subexperiments: LOCC runs d + 1 sender circuits (one per basis) and holds d prepared
  variants of each on the receiver (3 + 6 for one wire, 5 + 20 for two); the receiver runs
  only the variants its shots call for. The LO cut expands into its product of terms, each
  a pair of subcircuits (8 terms for one wire, 64 for two).
- QPD-sampled (each shot draws its term with probability |c| / gamma, its value +/-gamma):
  the per-shot variance is gamma^2 - <O>^2, and the measured shots ratio matches the theory
  column within its error: 0.58 and 0.58 against 0.55 for one wire, 0.19 and 0.21 against
  0.19 for two, i.e. (3/4)^2 and (7/16)^2 as the optimal LOCC cut promises.
- As run: both estimators do better than their worst case. The LO side is
  qiskit-addon-cutting's exact-weight expansion with equal shots per term and the product
  of the two nodes' means per term (as qorch's `cut` knits). The LOCC side is what the
  agents do: shots split evenly over the bases, shifts spread in proportion, and per wire
  outcome the product of both sides' means (every pairing of the shots with that outcome
  averaged). There LOCC needs 0.45 to 0.47 of LO's shots for one wire and 0.14 to 0.21 for
  two, at 9 against 16 and 25 against 128 subexperiments.
- The standard errors LOCC reports are calibrated: their square over the variance the
  repetitions show is 1.02 to 1.15 (slightly conservative).
"""


if __name__ == "__main__":
    raise SystemExit(main())
