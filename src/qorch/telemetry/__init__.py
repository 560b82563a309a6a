"""Telemetry: Prometheus metrics and OpenTelemetry traces of the pipeline and agents."""
