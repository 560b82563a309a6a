"""Fixtures of the telemetry tests: private registries, in-memory spans, promtool."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from qorch.telemetry import tracing
from qorch.telemetry.metrics import QorchMetrics

PROMTOOL_MISSING = "promtool is not installed (Debian: apt-get install -y prometheus)"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> QorchMetrics:
    """A fresh set of qorch metrics on a private registry."""
    return QorchMetrics(registry)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing configured to keep every finished span in memory."""
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("qorch-test", exporter=exporter, environ={})
    yield exporter
    tracing.shutdown_tracing()


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(PROMTOOL_MISSING)
    return path
