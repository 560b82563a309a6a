"""Each planner test predicts afresh: predictions are kept across jobs (and so across
tests), and a test that counts simulations or checks repeatability needs its own."""

from __future__ import annotations

import pytest

import qorch.planner.prediction as prediction
from qorch.single_flight import SingleFlight


@pytest.fixture(autouse=True)
def fresh_predictions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        prediction, "_PREDICTIONS", SingleFlight(prediction.PREDICTIONS_KEPT, keep_none=False)
    )
