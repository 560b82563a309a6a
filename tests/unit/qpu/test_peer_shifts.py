"""The receiver's shifts: each on its share of the shots, within one, unbiased on average."""

from __future__ import annotations

import numpy as np

from qorch.planner.locc import shift_probabilities
from qorch.qpu.peer import cut_bits, expand_counts, stratified_shifts


def test_each_shift_gets_its_share_within_one_shot() -> None:
    rng = np.random.default_rng(5)
    p = shift_probabilities(2)  # 4/7, 1/7, 1/7, 1/7
    totals = np.zeros(4)
    for shots in (1, 2, 7, 100, 1023):
        for _ in range(200):
            drawn = stratified_shifts(shots, p, rng)
            counts = np.bincount(drawn, minlength=4)
            assert counts.sum() == shots
            assert np.all(np.abs(counts - shots * p) < 1 + 1e-9)
            totals += counts / shots
    # On average exactly p: 1000 draws, each count off by less than one shot.
    np.testing.assert_allclose(totals / 1000, p, atol=0.02)


def test_shots_are_spread_in_a_random_order() -> None:
    rng = np.random.default_rng(1)
    drawn = stratified_shifts(300, shift_probabilities(1), rng)
    assert list(drawn[:200]) != sorted(drawn[:200])


def test_counts_expand_to_shots_and_cut_bits_are_the_low_clbits() -> None:
    rng = np.random.default_rng(2)
    shots = expand_counts({"1 01": 2, "0 10": 3}, rng)
    assert sorted(shots) == ["0 10"] * 3 + ["1 01"] * 2
    assert cut_bits("1 01", 2) == 1 and cut_bits("0 10", 2) == 2 and cut_bits("0 10", 1) == 0
