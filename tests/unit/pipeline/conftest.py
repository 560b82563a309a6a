"""A job pipeline over a fake World, its own reservation book and fast timers."""

from __future__ import annotations

import pytest

from qorch.pipeline.job import JobPipeline, PipelineSettings
from qorch.pipeline.reservations import Reservations

from .fake_world import WATCH_SECONDS, FakeWorld


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


@pytest.fixture
def book() -> Reservations:
    return Reservations()


@pytest.fixture
def settings() -> PipelineSettings:
    return PipelineSettings(watch_seconds=WATCH_SECONDS, capacity_retry_seconds=0.01)


@pytest.fixture
def pipeline(world: FakeWorld, book: Reservations, settings: PipelineSettings) -> JobPipeline:
    return JobPipeline(world, book, settings)
