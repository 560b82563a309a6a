"""Telemetry: Prometheus metrics and OpenTelemetry traces of the pipeline and agents."""

#: The port of a QPU pod's /metrics (its telemetry sidecar's). Here, not in `metrics`: the
#: command line names it as a default, and must not import prometheus_client for that.
METRICS_PORT = 9090
