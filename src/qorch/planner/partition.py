"""Place a circuit's qubits on linked nodes so that few two-qubit gates span two nodes.

Every nonlocal CX/CZ costs one Bell pair, so the objective is the weighted cut of the qubit
interaction graph (edge weight = CX/CZ count between two qubits after decomposition), each cut
edge priced by its link: 1 - ln(F) per Bell pair (`network.bell_pair_cost`), so plans use few
pairs and, among equal counts, the better links. A gate between two nodes without a link has no
implementation and is forbidden.

Method. Graph partitioning with capacities is NP-hard; for the sizes at hand (tens of qubits,
a handful of nodes) a multi-start heuristic built on networkx is fast and close to optimal:

1. Node sets: the fewest nodes whose free qubits hold the circuit and whose links connect them;
   a few such sets are tried, best capacity and link fidelity first.
2. Starting points are qubit orderings cut into contiguous chunks of node capacity, along a
   path of linked nodes: the circuit's own order (good for chains and nearest-neighbour
   circuits), the spectral ordering of the interaction graph (Fiedler vector of its
   networkx Laplacian: strongly interacting qubits end up close), and Louvain communities
   (dense clusters kept together).
3. Refinement: Kernighan-Lin bisection (networkx) between every linked pair of nodes, which
   swaps qubits and so never breaks a capacity, followed by single-qubit moves into spare
   capacity that lower the cost (KL cannot resize parts). Both are accepted only when the cost
   of the whole plan falls, so links to third nodes are accounted for.

The best plan over all starts wins; the circuit's own order is one of the starts, so the result
is never worse than a contiguous fill of the same nodes.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
from qiskit import QuantumCircuit

from .circuits import interaction_weights
from .model import LinkSlot, NodeSlot
from .network import LinkIndex, bell_pair_cost

#: Price of a gate between two nodes without a link: no plan should pay it.
FORBIDDEN = 1e6
#: Node sets of one size evaluated, best first; beyond this the gain is marginal.
MAX_NODE_SETS = 6
#: Improvement passes of the refinement, each over all node pairs and qubits.
MAX_PASSES = 4


@dataclass(frozen=True)
class Partition:
    """Which node holds each logical qubit, its nonlocal CX/CZ, and per link the Bell pairs
    at one per nonlocal gate: the objective's proxy. The teleport program shares pairs
    between gates, so `TeleportProgram.bell_pairs` is what a plan really consumes."""

    assignment: dict[int, str]
    nonlocal_gates: int
    bell_pairs: dict[str, int]
    nodes: tuple[str, ...]

    def qubits_on(self, node: str) -> list[int]:
        return sorted(q for q, n in self.assignment.items() if n == node)


class _Problem:
    """One placement problem: weights between qubits and prices between nodes."""

    def __init__(
        self,
        width: int,
        weights: Counter[tuple[int, int]],
        group: Sequence[NodeSlot],
        capacity: Sequence[int],
        index: LinkIndex,
        require_links: bool,
    ) -> None:
        self.width = width
        self.group = list(group)
        self.capacity = list(capacity)
        self.neighbours: list[dict[int, int]] = [{} for _ in range(width)]
        for (a, b), w in weights.items():
            self.neighbours[a][b] = w
            self.neighbours[b][a] = w
        k = len(group)
        self.price = [[0.0] * k for _ in range(k)]
        for i, j in itertools.permutations(range(k), 2):
            link = index.between(group[i].name, group[j].name)
            if link is not None:
                self.price[i][j] = bell_pair_cost(link)
            else:
                self.price[i][j] = FORBIDDEN if require_links else 1.0
        self.graph = nx.Graph()
        self.graph.add_nodes_from(range(width))
        self.graph.add_weighted_edges_from((a, b, w) for (a, b), w in weights.items())

    def cost(self, part: list[int]) -> float:
        return sum(
            w * self.price[part[a]][part[b]]
            for a in range(self.width)
            for b, w in self.neighbours[a].items()
            if a < b
        )

    def move_delta(self, part: list[int], qubit: int, to: int) -> float:
        here = part[qubit]
        return sum(
            w * (self.price[to][part[b]] - self.price[here][part[b]])
            for b, w in self.neighbours[qubit].items()
        )

    # -- starting points --------------------------------------------------------------------

    def node_path(self) -> list[int]:
        """Nodes in an order where neighbours are linked: contiguous chunks then share links."""
        k = len(self.group)
        left = set(range(k))
        here = max(left, key=lambda i: (self.capacity[i], -i))
        order = [here]
        left.discard(here)
        while left:
            here = min(left, key=lambda j: (self.price[order[-1]][j], -self.capacity[j]))
            order.append(here)
            left.discard(here)
        return order

    def fill(self, ordering: Sequence[int]) -> list[int]:
        """Contiguous chunks of `ordering`, each node filled before the next; every node gets
        at least one qubit, since the node set is the smallest that holds the circuit."""
        part = [0] * self.width
        path = self.node_path()
        start = 0
        for step, node in enumerate(path):
            later = len(path) - step - 1
            size = max(1, min(self.capacity[node], self.width - start - later))
            for qubit in ordering[start : start + size]:
                part[qubit] = node
            start += size
        return part

    def spectral_order(self) -> list[int]:
        """Qubits sorted by the Fiedler vector of the weighted Laplacian.

        A dense eigensolver on the dense Laplacian D - A: tens of qubits cost microseconds, and
        unlike the iterative `nx.spectral_ordering` it copes with the degenerate spectrum of
        all-to-all circuits such as the QFT (where that solver does not converge). Built
        with numpy, not `nx.laplacian_matrix`, which imports scipy.sparse (60 ms at a
        process's first plan) to build the same matrix.
        """
        nodelist = list(range(self.width))
        adjacency = nx.to_numpy_array(self.graph, nodelist=nodelist, weight="weight")
        laplacian = np.diag(adjacency.sum(axis=1)) - adjacency
        _, vectors = np.linalg.eigh(laplacian)
        fiedler = np.round(vectors[:, 1], 9)
        return [int(q) for q in np.lexsort((np.asarray(nodelist), fiedler))]

    def orderings(self) -> list[list[int]]:
        found = [list(range(self.width))]
        if self.graph.number_of_edges() == 0:
            return found
        spectral = self.spectral_order()
        found.append(spectral)
        rank = {q: i for i, q in enumerate(spectral)}
        communities = nx.community.louvain_communities(self.graph, weight="weight", seed=0)
        communities = sorted(communities, key=lambda c: (-len(c), min(rank[q] for q in c)))
        found.append([q for c in communities for q in sorted(c, key=rank.__getitem__)])
        return found

    # -- refinement -------------------------------------------------------------------------

    def kernighan_lin(self, part: list[int]) -> bool:
        improved = False
        for i, j in itertools.combinations(range(len(self.group)), 2):
            if self.price[i][j] >= FORBIDDEN:
                continue
            side_i = {q for q in range(self.width) if part[q] == i}
            side_j = {q for q in range(self.width) if part[q] == j}
            if not side_i or not side_j:
                continue
            sub = self.graph.subgraph(side_i | side_j)
            new_i, new_j = nx.community.kernighan_lin_bisection(
                sub, partition=(side_i, side_j), weight="weight", seed=0
            )
            trial = list(part)
            for q in new_i:
                trial[q] = i
            for q in new_j:
                trial[q] = j
            if self.cost(trial) < self.cost(part) - 1e-9:
                part[:] = trial
                improved = True
        return improved

    def moves(self, part: list[int]) -> bool:
        improved = False
        load = Counter(part)
        for qubit in range(self.width):
            if load[part[qubit]] <= 1:
                continue  # never empty a node: the node set was chosen as the smallest that fits
            best, best_to = -1e-9, None
            for to in range(len(self.group)):
                if to == part[qubit] or load[to] >= self.capacity[to]:
                    continue
                delta = self.move_delta(part, qubit, to)
                if delta < best:
                    best, best_to = delta, to
            if best_to is not None:
                load[part[qubit]] -= 1
                load[best_to] += 1
                part[qubit] = best_to
                improved = True
        return improved

    def solve(self) -> tuple[float, list[int]]:
        best: tuple[float, list[int]] | None = None
        for ordering in self.orderings():
            part = self.fill(ordering)
            for _ in range(MAX_PASSES):
                if not (self.kernighan_lin(part) | self.moves(part)):
                    break
            cost = self.cost(part)
            if best is None or cost < best[0] - 1e-9:
                best = (cost, part)
        assert best is not None
        return best


def _data_capacity(node: NodeSlot, group_size: int, communication_qubits: int) -> int:
    """Qubits left for the circuit once a shared plan keeps its communication qubits."""
    return node.free_qubits - (communication_qubits if group_size > 1 else 0)


def _node_sets(
    nodes: Sequence[NodeSlot],
    width: int,
    index: LinkIndex,
    require_links: bool,
    min_nodes: int,
    communication_qubits: int,
) -> list[list[NodeSlot]]:
    """Smallest groups of nodes that can hold `width` qubits, most promising first."""
    for size in range(max(1, min_nodes), len(nodes) + 1):
        usable = [n for n in nodes if _data_capacity(n, size, communication_qubits) > 0]
        groups = []
        for group in itertools.combinations(usable, size):
            if sum(_data_capacity(n, size, communication_qubits) for n in group) < width:
                continue
            if require_links and size > 1 and not index.connected(n.name for n in group):
                continue
            fidelities = [
                link.fidelity
                for x, y in itertools.combinations(group, 2)
                if (link := index.between(x.name, y.name)) is not None
            ]
            mean_f = sum(fidelities) / len(fidelities) if fidelities else 0.0
            free = sum(n.free_qubits for n in group)
            groups.append((-free, -mean_f, list(group)))
        if groups:
            groups.sort(key=lambda g: (g[0], g[1], [n.name for n in g[2]]))
            return [g[2] for g in groups[:MAX_NODE_SETS]]
    return []


def _summarise(
    weights: Counter[tuple[int, int]], assignment: dict[int, str], index: LinkIndex
) -> tuple[int, dict[str, int]] | None:
    """Nonlocal gate count and Bell pairs per link; None if a gate spans unlinked nodes."""
    nonlocal_gates = 0
    pairs: Counter[str] = Counter()
    for (a, b), w in weights.items():
        x, y = assignment[a], assignment[b]
        if x == y:
            continue
        nonlocal_gates += w
        link = index.between(x, y)
        if link is None:
            return None
        pairs[link.name] += w
    return nonlocal_gates, dict(sorted(pairs.items()))


def _result(
    weights: Counter[tuple[int, int]],
    assignment: dict[int, str],
    index: LinkIndex,
    order: Sequence[str],
    require_links: bool,
) -> Partition | None:
    summary = _summarise(weights, assignment, index)
    if summary is None:
        if require_links:
            return None
        nonlocal_gates = sum(w for (a, b), w in weights.items() if assignment[a] != assignment[b])
        summary = (nonlocal_gates, {})
    used = tuple(n for n in order if n in set(assignment.values()))
    return Partition(dict(sorted(assignment.items())), summary[0], summary[1], used)


def partition(
    circuit: QuantumCircuit,
    nodes: Sequence[NodeSlot],
    links: Sequence[LinkSlot],
    *,
    require_links: bool = True,
    min_nodes: int = 1,
    communication_qubits: int | None = None,
) -> Partition | None:
    """Place the circuit's qubits on as few nodes as hold it, with the cheapest Bell-pair cut.

    None when the nodes together lack the free qubits or no placement keeps every nonlocal
    gate on a linked pair. A plan over several nodes keeps `communication_qubits` free qubits
    on each for the Bell-pair halves (default: one when teleporting, none when cutting).
    `require_links=False` plans for circuit cutting, where nonlocal gates are cut rather than
    teleported and any two nodes may share the work; `bell_pairs` then lists only the pairs
    that happen to be linked. `min_nodes=2` forces a distributed plan even when one node
    would do.
    """
    width = circuit.num_qubits
    comm = (1 if require_links else 0) if communication_qubits is None else communication_qubits
    if width == 0 or sum(max(0, n.free_qubits) for n in nodes) < width:
        return None
    weights = interaction_weights(circuit)
    index = LinkIndex(links)
    order = [n.name for n in nodes]
    best: tuple[float, Partition] | None = None
    for group in _node_sets(nodes, width, index, require_links, min_nodes, comm):
        if len(group) == 1:
            return _result(weights, dict.fromkeys(range(width), group[0].name), index, order, True)
        capacity = [_data_capacity(n, len(group), comm) for n in group]
        problem = _Problem(width, weights, group, capacity, index, require_links)
        cost, part = problem.solve()
        if cost >= FORBIDDEN:
            continue
        assignment = {q: group[part[q]].name for q in range(width)}
        result = _result(weights, assignment, index, order, require_links)
        if result is not None and (best is None or cost < best[0] - 1e-9):
            best = (cost, result)
    return best[1] if best else None


def naive_partition(
    circuit: QuantumCircuit,
    nodes: Sequence[NodeSlot],
    links: Sequence[LinkSlot],
    *,
    communication_qubits: int = 1,
) -> Partition | None:
    """Baseline: qubits in circuit order fill the nodes in the order given.

    Communication qubits are kept as in `partition` so both plans run on the same hardware.
    """
    width = circuit.num_qubits
    assignment: dict[int, str] = {}
    shared = bool(nodes) and width > nodes[0].free_qubits
    reserve = communication_qubits if shared else 0
    free = iter([(n.name, n.free_qubits - reserve) for n in nodes if n.free_qubits > reserve])
    name, left = "", 0
    for qubit in range(width):
        while left == 0:
            step = next(free, None)
            if step is None:
                return None
            name, left = step
        assignment[qubit] = name
        left -= 1
    order = [n.name for n in nodes]
    return _result(interaction_weights(circuit), assignment, LinkIndex(links), order, True)
