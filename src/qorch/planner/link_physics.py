"""What a link's Bell pairs are when a program uses them: heralded, aged in memory, purified.

Pairs are Bell-diagonal states: the weights of |Φ+>, |Φ->, |Ψ+>, |Ψ-> (|Φ+> is the target).
As noise on one half of |Φ+>, they are the Pauli channel I, Z, X, Y with those weights, which
is how the composite noise model applies them. docs/heralding-and-purification.md derives
every formula here and names where each comes from.

Heralding. A pair takes N attempts at the link's rate R, N geometric with the success
probability p. The half loaded first waits N/R for its partner's herald in the communication
qubit of its node, relaxing with that node's T1 and T2. The waiting time is not sampled: the
pair is the average over its distribution, which is again a relaxation channel, with
population factor E[exp(-N/(R T1))] and coherence factor E[exp(-N/(R T2))] (both linear in
the channel), and E[x^N] = p x / (1 - (1-p) x) for the geometric N. Same inputs, same plan.

Purification. A round takes two pairs, applies bilateral CNOTs, measures the second pair on
both sides and keeps the first when the outcomes agree. BBPSSW (Bennett et al., PRL 76, 722)
twirls each pair into a Werner state first; DEJMPS (Deutsch et al., PRL 77, 2818) rotates
both halves instead and keeps the Bell-diagonal weights. A pair that relaxed in memory is not
Bell-diagonal; the protocols twirl it (random bilateral Paulis), which keeps its diagonal.
Both converge only from fidelity above 1/2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from qorch.api.quantum_node import NoiseSpec

Protocol = Literal["bbpssw", "dejmps"]
PROTOCOLS: tuple[Protocol, ...] = ("dejmps", "bbpssw")
#: Purification needs fidelity above this to converge (both protocols).
CONVERGENCE_FIDELITY = 0.5


class PurificationError(ValueError):
    """Purification was asked of pairs that it cannot improve (fidelity <= 1/2)."""


@dataclass(frozen=True)
class BellDiagonal:
    """Weights of the four Bell states; `phi_plus` is the fidelity to the target pair."""

    phi_plus: float
    phi_minus: float
    psi_plus: float
    psi_minus: float

    @classmethod
    def werner(cls, fidelity: float) -> BellDiagonal:
        q = (1.0 - fidelity) / 3.0
        return cls(fidelity, q, q, q)

    @property
    def fidelity(self) -> float:
        return self.phi_plus

    def twirled(self) -> BellDiagonal:
        """The Werner state of the same fidelity (what BBPSSW's random twirl leaves)."""
        return BellDiagonal.werner(self.phi_plus)

    def paulis(self) -> tuple[float, float, float]:
        """Probabilities of X, Y, Z on one half of |Φ+> that make this state."""
        return (self.psi_plus, self.psi_minus, self.phi_minus)

    def is_perfect(self) -> bool:
        return self.phi_plus >= 1.0 - 1e-15


@dataclass(frozen=True)
class MemoryDecay:
    """A relaxation channel as its two factors: |1> population and off-diagonal coherence
    are multiplied by these (1, 1: no decay). Physical when coherence^2 <= population."""

    population: float = 1.0
    coherence: float = 1.0

    def is_identity(self) -> bool:
        return self.population >= 1.0 and self.coherence >= 1.0


def geometric_mean_decay(time_constant_us: float, rate_hz: float, success: float) -> float:
    """E[exp(-N/(R T))] for N ~ Geometric(p) attempts on {1, 2, ...} at R attempts per second.

    The probability generating function of the geometric law at x = exp(-1/(R T)).
    """
    x = math.exp(-1.0 / (rate_hz * time_constant_us * 1e-6))
    return success * x / (1.0 - (1.0 - success) * x)


def heralding_wait(noise: NoiseSpec, rate_hz: float, success: float) -> MemoryDecay:
    """The expected relaxation of the half that waits for its partner's herald, in the
    communication qubit of a node with this noise. Without a T1 the node declares no
    relaxation (as its gates); without a T2, dephasing is relaxation-limited (T2 = 2 T1)."""
    if not noise.t1_microseconds:
        return MemoryDecay()
    t1 = noise.t1_microseconds
    t2 = min(noise.t2_microseconds or 2 * t1, 2 * t1)
    return MemoryDecay(
        population=geometric_mean_decay(t1, rate_hz, success),
        coherence=geometric_mean_decay(t2, rate_hz, success),
    )


def mean_wait_seconds(rate_hz: float, success: float) -> float:
    """E[N]/R: the expected time to herald one pair."""
    return 1.0 / (success * rate_hz)


def aged(state: BellDiagonal, decay: MemoryDecay) -> BellDiagonal:
    """The Bell-diagonal weights after one half relaxes by `decay` (its twirl).

    With E1 the population and E2 the coherence factor, g = 1 - E1: a |Φ±> keeps its sign
    with (1 + E1 + 2 E2)/4, flips it with (1 + E1 - 2 E2)/4, and becomes each |Ψ±> with g/4
    (the |11> -> |10> decay); likewise from |Ψ±>.
    """
    e1, e2 = decay.population, decay.coherence
    keep, flip, cross = (1 + e1 + 2 * e2) / 4, (1 + e1 - 2 * e2) / 4, (1 - e1) / 4
    phi = state.phi_plus + state.phi_minus
    psi = state.psi_plus + state.psi_minus
    return BellDiagonal(
        phi_plus=keep * state.phi_plus + flip * state.phi_minus + cross * psi,
        phi_minus=flip * state.phi_plus + keep * state.phi_minus + cross * psi,
        psi_plus=keep * state.psi_plus + flip * state.psi_minus + cross * phi,
        psi_minus=flip * state.psi_plus + keep * state.psi_minus + cross * phi,
    )


def bbpssw_round(fidelity: float) -> tuple[float, float]:
    """(output fidelity, success probability) of one BBPSSW round on two Werner pairs of
    `fidelity` (Bennett et al. 1996; Dür and Briegel, Rep. Prog. Phys. 70, 1381, eq. 18)."""
    q = (1.0 - fidelity) / 3.0
    success = fidelity**2 + 2 * fidelity * q + 5 * q**2
    return (fidelity**2 + q**2) / success, success


def dejmps_round(state: BellDiagonal) -> tuple[BellDiagonal, float]:
    """(output state, success probability) of one DEJMPS round on two copies of `state`.

    Alice rotates her halves by Rx(pi/2), Bob his by Rx(-pi/2), then the bilateral CNOTs. With
    A, B, C, D the weights of |Φ+>, |Ψ->, |Ψ+>, |Φ->: N = (A + B)^2 + (C + D)^2 and the output
    is (A^2 + B^2, 2CD, C^2 + D^2, 2AB) / N in the same order (Deutsch et al. 1996, eq. 7).
    """
    a, b, c, d = state.phi_plus, state.psi_minus, state.psi_plus, state.phi_minus
    success = (a + b) ** 2 + (c + d) ** 2
    return (
        BellDiagonal(
            phi_plus=(a * a + b * b) / success,
            psi_minus=2 * c * d / success,
            psi_plus=(c * c + d * d) / success,
            phi_minus=2 * a * b / success,
        ),
        success,
    )


@dataclass(frozen=True)
class Purified:
    """Nested purification of one link's pairs: round k takes two outputs of round k-1.

    `success_probabilities` per round; `raw_pairs` is the expected number of raw pairs one
    output pair consumes (2/p per round, compounded); `state` the output pair.
    """

    protocol: Protocol | None
    rounds: int
    raw: BellDiagonal
    state: BellDiagonal
    success_probabilities: tuple[float, ...] = ()

    @property
    def raw_pairs(self) -> float:
        pairs = 1.0
        for p in self.success_probabilities:
            pairs = 2.0 * pairs / p
        return pairs

    @property
    def success_probability(self) -> float:
        """Probability that every round of one output pair succeeds at the first try."""
        return math.prod(self.success_probabilities)


def purify(raw: BellDiagonal, protocol: Protocol | None, rounds: int) -> Purified:
    """`rounds` rounds of `protocol` on pairs like `raw` (already aged); ValueError when
    purification cannot converge (fidelity <= 1/2)."""
    if not rounds or protocol is None:
        return Purified(None, 0, raw, raw)
    if raw.fidelity <= CONVERGENCE_FIDELITY:
        raise PurificationError(
            f"fidelity {raw.fidelity:.4f} <= {CONVERGENCE_FIDELITY}: purification cannot converge"
        )
    state, successes = raw, []
    for _ in range(rounds):
        if protocol == "bbpssw":
            fidelity, p = bbpssw_round(state.fidelity)
            state = BellDiagonal.werner(fidelity)
        else:
            state, p = dejmps_round(state)
        successes.append(p)
    return Purified(protocol, rounds, raw, state, tuple(successes))


#: Most rounds a policy may ask for: each doubles the raw pairs at least.
MAX_ROUNDS = 4


@dataclass(frozen=True)
class PurificationPolicy:
    """A link's `spec.purification` as the planner sees it.

    `protocol` "auto" lets the planner pick the protocol; `rounds` fixes the number of rounds,
    None lets the planner choose up to `max_rounds` when the job's fidelity budget needs it.
    """

    protocol: Literal["auto", "bbpssw", "dejmps"] = "auto"
    rounds: int | None = None
    max_rounds: int = 2

    def options(self) -> list[tuple[Protocol | None, int]]:
        """(protocol, rounds) the planner may use on this link, fewest rounds first."""
        protocols: tuple[Protocol, ...] = PROTOCOLS if self.protocol == "auto" else (self.protocol,)
        counts = [self.rounds] if self.rounds is not None else range(self.max_rounds + 1)
        out: list[tuple[Protocol | None, int]] = []
        for r in counts:
            if r == 0:
                out.append((None, 0))
            else:
                out.extend((p, r) for p in protocols)
        return out
