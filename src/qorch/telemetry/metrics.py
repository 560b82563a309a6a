"""Prometheus metrics of the pipeline; labels stay bounded (never job names or user text)."""

from __future__ import annotations

from prometheus_client import Counter

SANITIZER_REJECTIONS = Counter(
    "qorch_sanitizer_rejections_total",
    "DistributedJobs rejected by the circuit sanitizer, by the first denying rule.",
    ["rule"],
)
JOBS_FINISHED = Counter(
    "qorch_jobs_finished_total",
    "DistributedJobs that reached a terminal phase, by phase and strategy.",
    ["phase", "strategy"],
)
