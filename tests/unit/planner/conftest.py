"""Each planner test predicts afresh: predictions are kept across jobs (and so across
tests), and a test that counts simulations or checks repeatability needs its own."""

from __future__ import annotations

import pytest

import qorch.planner.prediction as prediction


@pytest.fixture(autouse=True)
def fresh_predictions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        prediction, "_PREDICTIONS", prediction._Predictions(prediction.PREDICTIONS_KEPT)
    )
