"""Grafana dashboards of qorch, generated from code with grafana-foundation-sdk.

Three views, written to charts/qorch/dashboards/ for the chart's ConfigMaps (label
`grafana_dashboard: "1"`):

  executive   the service levels over the selected range: job success and the error
              budget left, end-to-end fidelity, entanglement success, node availability
  oncall      what pages and what explains it: burn rates, unreachable nodes, links down,
              feedforward latency against the coherence budget, failures, auth failures
  debug       every signal by node, link, step and strategy

    python hack/gen_dashboards.py [--check]     (or make dashboards)

Every query names only metrics qorch exports (a test parses them all). grafana-foundation-sdk
is a development dependency, so this generator lives in hack/, outside the qorch package.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import dashboard as dm

JOB_SUCCESS_OBJECTIVE = 0.99
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
NS = 'namespace=~"$namespace"'
NODE = f'{NS}, node=~"$node"'
LINK = f'{NS}, link=~"$link"'
RI = "$__rate_interval"


@dataclass(frozen=True)
class Q:
    """One query of a panel: PromQL and its legend."""

    expr: str
    legend: str = ""


def _targets(queries: Sequence[Q], instant: bool = False) -> list[Builder[Dataquery]]:
    out: list[Builder[Dataquery]] = []
    for i, q in enumerate(queries):
        target = prometheus.Dataquery().expr(q.expr).ref_id(chr(ord("A") + i)).datasource(DS)
        if q.legend:
            target = target.legend_format(q.legend)
        out.append(target.instant() if instant else target.range())
    return out


def _thresholds(steps: Sequence[tuple[float | None, str]]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


class _Panels:
    """Numbers panels in order, so ids are stable."""

    def __init__(self) -> None:
        self.next_id = 1

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str) -> db.Row:
        return db.Row(title).id(self._id())

    def stat(
        self,
        title: str,
        query: Q,
        *,
        unit: str,
        description: str,
        thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),),
        decimals: int | None = None,
        width: int = 4,
    ) -> stat.Panel:
        panel = (
            stat.Panel()
            .id(self._id())
            .title(title)
            .description(description)
            .datasource(DS)
            .unit(unit)
            .height(5)
            .span(width)
            .thresholds(_thresholds(thresholds))
            .targets(_targets([query], instant=True))
        )
        return panel.decimals(decimals) if decimals is not None else panel

    def series(
        self,
        title: str,
        queries: Sequence[Q],
        *,
        unit: str,
        description: str,
        width: int = 12,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> timeseries.Panel:
        panel = (
            timeseries.Panel()
            .id(self._id())
            .title(title)
            .description(description)
            .datasource(DS)
            .unit(unit)
            .height(8)
            .span(width)
            .line_width(1)
            .fill_opacity(10)
            .targets(_targets(queries))
        )
        if minimum is not None:
            panel = panel.min(minimum)
        if maximum is not None:
            panel = panel.max(maximum)
        return panel


def _variables(*, node: bool, link: bool) -> list[Any]:
    out: list[Any] = [
        db.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        db.QueryVariable("namespace")
        .label("Namespace")
        .datasource(DS)
        .query("label_values(qorch_node_up, namespace)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .include_all(True)
        .all_value(".*")
        .multi(True)
        .sort(dm.VariableSort.ALPHABETICAL_ASC),
    ]
    if node:
        out.append(
            db.QueryVariable("node")
            .label("Node")
            .datasource(DS)
            .query('label_values(qorch_node_up{namespace=~"$namespace"}, node)')
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True)
            .all_value(".*")
            .multi(True)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
        )
    if link:
        out.append(
            db.QueryVariable("link")
            .label("Link")
            .datasource(DS)
            .query('label_values(qorch_link_up{namespace=~"$namespace"}, link)')
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True)
            .all_value(".*")
            .multi(True)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
        )
    return out


def _dashboard(uid: str, title: str, description: str, *, node: bool, link: bool) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["qorch", "quantum"])
        .editable()
        .refresh("1m")
        .time("now-24h", "now")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .variables(_variables(node=node, link=link))
        .link(
            db.DashboardLink("qorch dashboards")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["qorch"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


def _quantile(q: float, metric: str, selector: str, by: str) -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{selector}}}[{RI}])))"


def _rate(metric: str, selector: str, by: str, fn: str = "rate") -> str:
    return f"sum by ({by}) ({fn}({metric}{{{selector}}}[{RI}]))"


def _mean(metric: str, selector: str, window: str, by: str = "") -> str:
    group = f" by ({by})" if by else ""
    return (
        f"sum{group} (increase({metric}_sum{{{selector}}}[{window}]))"
        f" / sum{group} (increase({metric}_count{{{selector}}}[{window}]))"
    )


SUCCESS = 'qorch_jobs_finished_total{phase="Succeeded"}'
DECIDED = 'qorch_jobs_finished_total{phase=~"Succeeded|Failed"}'


def _success_ratio(window: str) -> str:
    return f"sum(increase({SUCCESS}[{window}])) / sum(increase({DECIDED}[{window}]))"


def _error_ratio(window: str) -> str:
    return f"1 - ({_success_ratio(window)})"


def executive() -> db.Dashboard:
    p = _Panels()
    budget = 1 - JOB_SUCCESS_OBJECTIVE
    d = _dashboard(
        "qorch-executive",
        "qorch / Executive",
        "Service levels of distributed quantum computing over the selected time range.",
        node=False,
        link=False,
    )
    d = d.with_row(p.row("Service levels over the selected range"))
    d = d.with_panel(
        p.stat(
            "Job success rate",
            Q(_success_ratio("$__range")),
            unit="percentunit",
            decimals=2,
            description="M5: Succeeded over Succeeded plus Failed jobs (Rejected jobs are the"
            f" admission's verdict, not failures). Objective {JOB_SUCCESS_OBJECTIVE:.0%}.",
            thresholds=((None, "red"), (0.95, "orange"), (JOB_SUCCESS_OBJECTIVE, "green")),
        )
    )
    d = d.with_panel(
        p.stat(
            "Error budget left",
            Q(f"1 - ({_error_ratio('$__range')}) / {budget:g}"),
            unit="percentunit",
            decimals=1,
            description="M8: share of the job-success error budget"
            f" ({budget:.0%} of decided jobs) not yet spent over the range.",
            thresholds=((None, "red"), (0.25, "orange"), (0.5, "green")),
        )
    )
    d = d.with_panel(
        p.stat(
            "End-to-end fidelity",
            Q(_mean("qorch_job_fidelity_ratio", "", "$__range")),
            unit="percentunit",
            decimals=2,
            description="M2: mean Hellinger fidelity of verified jobs to the exact distribution.",
            thresholds=((None, "red"), (0.8, "orange"), (0.9, "green")),
        )
    )
    d = d.with_panel(
        p.stat(
            "Entanglement success rate",
            Q(
                "sum(increase(qorch_entanglement_successes_total[$__range]))"
                " / sum(increase(qorch_entanglement_attempts_total[$__range]))"
            ),
            unit="percentunit",
            decimals=2,
            description="M1: heralded Bell pairs over generation attempts, all links.",
        )
    )
    d = d.with_panel(
        p.stat(
            "Node availability",
            Q("avg(avg_over_time(qorch_node_up[$__range]))"),
            unit="percentunit",
            decimals=2,
            description="M7: share of the time QuantumNodes were Ready, averaged over nodes.",
            thresholds=((None, "red"), (0.99, "orange"), (0.999, "green")),
        )
    )
    d = d.with_panel(
        p.stat(
            "Jobs finished",
            Q("sum(increase(qorch_jobs_finished_total[$__range]))"),
            unit="short",
            decimals=0,
            description="DistributedJobs that reached Succeeded, Failed or Rejected.",
        )
    )
    d = d.with_row(p.row("Trends"))
    d = d.with_panel(
        p.series(
            "Jobs finished by phase",
            [Q(f"sum by (phase) (increase(qorch_jobs_finished_total[{RI}]))", "{{phase}}")],
            unit="short",
            description="Terminal phases reached per interval.",
        )
    )
    d = d.with_panel(
        p.series(
            "Job success rate (1 h window)",
            [
                Q(_success_ratio("1h"), "success rate"),
                Q(f"vector({JOB_SUCCESS_OBJECTIVE})", "objective"),
            ],
            unit="percentunit",
            description="M5 over a sliding hour, with the objective.",
            maximum=1,
        )
    )
    d = d.with_panel(
        p.series(
            "Fidelity: measured and estimated",
            [
                Q(_mean("qorch_job_fidelity_ratio", "", "1h", "strategy"), "measured {{strategy}}"),
                Q(
                    _mean("qorch_job_estimated_fidelity_ratio", "", "1h", "strategy"),
                    "estimated {{strategy}}",
                ),
            ],
            unit="percentunit",
            description="M2 next to the planner's estimate, mean over a sliding hour.",
            maximum=1,
        )
    )
    d = d.with_panel(
        p.series(
            "Jobs by strategy",
            [Q(f"sum by (strategy) (increase(qorch_jobs_finished_total[{RI}]))", "{{strategy}}")],
            unit="short",
            description="Finished jobs per interval by the strategy of their plan.",
        )
    )
    return d


def oncall() -> db.Dashboard:
    p = _Panels()
    budget = 1 - JOB_SUCCESS_OBJECTIVE
    d = _dashboard(
        "qorch-oncall",
        "qorch / On-call",
        "What pages, and what explains it. Runbooks: src/qorch/telemetry/runbooks.md.",
        node=True,
        link=True,
    )
    d = d.with_row(p.row("Now"))
    d = d.with_panel(
        p.stat(
            "Operator running",
            Q("count(qorch_build_info) or vector(0)"),
            unit="short",
            decimals=0,
            description="Operator processes Prometheus scrapes (0 pages: QorchOperatorDown).",
            thresholds=((None, "red"), (1, "green")),
        )
    )
    d = d.with_panel(
        p.stat(
            "Burn rate (1 h)",
            Q(f"({_error_ratio('1h')}) / {budget:g}"),
            unit="short",
            decimals=1,
            description="M8: how fast the job-success error budget burns; 14.4 over 1 h pages.",
            thresholds=((None, "green"), (1, "orange"), (14.4, "red")),
        )
    )
    d = d.with_panel(
        p.stat(
            "Nodes unreachable",
            Q(f'sum(qorch_node_phase{{phase="Unreachable", {NS}}}) or vector(0)'),
            unit="short",
            decimals=0,
            description="QuantumNodes whose agent does not answer (F4).",
            thresholds=((None, "green"), (1, "red")),
        )
    )
    d = d.with_panel(
        p.stat(
            "Links down",
            Q(f'sum(qorch_link_phase{{phase="Down", {NS}}}) or vector(0)'),
            unit="short",
            decimals=0,
            description="EntanglementLinks in phase Down (F1).",
            thresholds=((None, "green"), (1, "red")),
        )
    )
    d = d.with_panel(
        p.stat(
            "Jobs in flight",
            Q("sum(qorch_jobs)"),
            unit="short",
            decimals=0,
            description="Jobs the operator is driving (Pending to Running).",
        )
    )
    d = d.with_panel(
        p.stat(
            "Auth failures (1 h)",
            Q(
                f"sum(increase(qorch_channel_auth_failures_total{{{NS}}}[1h]))"
                f" + sum(increase(qorch_agent_channel_auth_failures_total{{{NS}}}[1h]))"
                " or vector(0)"
            ),
            unit="short",
            decimals=0,
            description="Channel authentication failures seen by the operator and agents (F7).",
            thresholds=((None, "green"), (1, "orange")),
        )
    )
    d = d.with_row(p.row("Error budget"))
    d = d.with_panel(
        p.series(
            "Burn rate by window",
            [Q(f"({_error_ratio(w)}) / {budget:g}", w) for w in ("5m", "30m", "1h", "6h")]
            + [Q("vector(14.4)", "page (fast)"), Q("vector(1)", "sustainable")],
            unit="short",
            description="M8 multi-window burn: pages when 5 m and 1 h both exceed 14.4.",
        )
    )
    d = d.with_panel(
        p.series(
            "Failed jobs by strategy",
            [
                Q(
                    _rate("qorch_jobs_finished_total", 'phase="Failed"', "strategy", "increase"),
                    "{{strategy}}",
                )
            ],
            unit="short",
            description="Jobs that ended Failed per interval.",
        )
    )
    d = d.with_row(p.row("Nodes"))
    d = d.with_panel(
        p.series(
            "Node ready",
            [Q(f"qorch_node_up{{{NODE}}}", "{{namespace}}/{{node}}")],
            unit="short",
            description="M7 per node: 1 Ready, 0 otherwise.",
            minimum=0,
            maximum=1,
        )
    )
    d = d.with_panel(
        p.series(
            "Agent errors by code",
            [
                Q(
                    _rate("qorch_channel_calls_total", f'code!="ok", {NODE}', "node, code"),
                    "{{node}} {{code}}",
                )
            ],
            unit="reqps",
            description="Failed pipeline-to-agent calls per second by node and error code.",
        )
    )
    d = d.with_panel(
        p.series(
            "Agent stats age",
            [Q(f"qorch_agent_stats_age_seconds{{{NODE}}}", "{{node}}")],
            unit="s",
            description="Seconds since each agent last wrote its stats (sidecar view).",
        )
    )
    d = d.with_panel(
        p.series(
            "Gate errors",
            [Q(f"qorch_node_gate_error_ratio{{{NODE}}}", "{{node}} {{gate}}")],
            unit="percentunit",
            description="Per-gate error of each node: calibration drift shows here (F5).",
        )
    )
    d = d.with_row(p.row("Links"))
    d = d.with_panel(
        p.series(
            "Entanglement success rate",
            [
                Q(
                    _rate("qorch_entanglement_successes_total", LINK, "namespace, link")
                    + " / "
                    + _rate("qorch_entanglement_attempts_total", LINK, "namespace, link"),
                    "{{link}}",
                ),
                Q(f"qorch_link_declared_success_ratio{{{LINK}}}", "{{link}} target"),
            ],
            unit="percentunit",
            description="M1 per link, next to the success probability it declares.",
            maximum=1,
        )
    )
    d = d.with_panel(
        p.series(
            "Feedforward latency p99 and coherence budget",
            [
                Q(
                    _quantile(0.99, "qorch_feedforward_latency_seconds", LINK, "namespace, link"),
                    "{{link}} p99",
                ),
                Q(f"qorch_link_coherence_budget_seconds{{{LINK}}}", "{{link}} budget"),
            ],
            unit="s",
            description="M3 against the longest wait the link's nodes can afford (F3).",
        )
    )
    d = d.with_row(p.row("Admission"))
    d = d.with_panel(
        p.series(
            "Sanitizer rejections by rule",
            [Q(f"sum by (rule) (increase(qorch_sanitizer_rejections_total[{RI}]))", "{{rule}}")],
            unit="short",
            description="Jobs rejected by the circuit sanitizer per interval (F8).",
        )
    )
    d = d.with_panel(
        p.series(
            "Channel authentication failures",
            [
                Q(
                    _rate("qorch_channel_auth_failures_total", NODE, "node, reason"),
                    "operator→{{node}} {{reason}}",
                ),
                Q(
                    _rate("qorch_agent_channel_auth_failures_total", NODE, "node"),
                    "{{node}} refused",
                ),
            ],
            unit="short",
            description="Pinned-key mismatches and untrusted peers, per second (F7).",
        )
    )
    return d


def debug() -> db.Dashboard:
    p = _Panels()
    d = _dashboard(
        "qorch-debug",
        "qorch / Debug",
        "Every qorch signal by node, link, step and strategy.",
        node=True,
        link=True,
    )
    d = d.with_row(p.row("Pipeline"))
    d = d.with_panel(
        p.series(
            "Pipeline step duration",
            [
                Q(
                    _quantile(0.5, "qorch_pipeline_step_duration_seconds", "", "step"),
                    "{{step}} p50",
                ),
                Q(
                    _quantile(0.95, "qorch_pipeline_step_duration_seconds", "", "step"),
                    "{{step}} p95",
                ),
            ],
            unit="s",
            description="Duration of admit, plan, start-attempt and dispatch steps.",
        )
    )
    d = d.with_panel(
        p.series(
            "Orchestrator latency",
            [
                Q(
                    _quantile(0.5, "qorch_orchestrator_latency_seconds", "", "strategy"),
                    "{{strategy}} p50",
                ),
                Q(
                    _quantile(0.95, "qorch_orchestrator_latency_seconds", "", "strategy"),
                    "{{strategy}} p95",
                ),
            ],
            unit="s",
            description="M6: time a finished job spent in the orchestrator, agents excluded.",
        )
    )
    d = d.with_panel(
        p.series(
            "Reconcile duration p95",
            [
                Q(
                    _quantile(0.95, "qorch_reconcile_duration_seconds", "", "kind, handler"),
                    "{{kind}} {{handler}}",
                ),
                Q(
                    f"sum by (kind, handler) (rate(qorch_reconcile_errors_total[{RI}]))",
                    "errors {{kind}} {{handler}}",
                ),
            ],
            unit="s",
            description="Operator handler runs by kind (errors per second on the same axis).",
        )
    )
    d = d.with_panel(
        p.series(
            "Jobs in flight and job duration",
            [
                Q("sum by (phase) (qorch_jobs)", "in flight {{phase}}"),
                Q(
                    _quantile(0.95, "qorch_job_duration_seconds", "", "phase"),
                    "p95 duration {{phase}}",
                ),
            ],
            unit="short",
            description="Jobs by non-terminal phase, and the p95 seconds from admission to end.",
        )
    )
    d = d.with_row(p.row("Nodes"))
    d = d.with_panel(
        p.series(
            "Programs and shots",
            [
                Q(
                    f"sum by (node) (rate(qorch_agent_programs_total{{{NODE}}}[{RI}]))",
                    "{{node}} programs/s",
                ),
                Q(
                    f"sum by (node) (rate(qorch_agent_shots_total{{{NODE}}}[{RI}]))",
                    "{{node}} shots/s",
                ),
                Q(
                    f"sum by (node) (rate(qorch_agent_program_errors_total{{{NODE}}}[{RI}]))",
                    "{{node}} errors/s",
                ),
            ],
            unit="short",
            description="What each QPU agent ran, from its sidecar.",
        )
    )
    d = d.with_panel(
        p.series(
            "QPU utilisation",
            [
                Q(
                    f"sum by (node) (rate(qorch_agent_busy_seconds_total{{{NODE}}}[{RI}]))",
                    "{{node}}",
                )
            ],
            unit="percentunit",
            description="Share of time each processor spent transpiling and simulating.",
            maximum=1,
        )
    )
    d = d.with_panel(
        p.series(
            "Program duration",
            [
                Q(
                    _quantile(0.5, "qorch_agent_program_duration_seconds", NODE, "node"),
                    "{{node}} p50",
                ),
                Q(
                    _quantile(0.95, "qorch_agent_program_duration_seconds", NODE, "node"),
                    "{{node}} p95",
                ),
            ],
            unit="s",
            description="Transpile plus simulate time per program.",
        )
    )
    d = d.with_panel(
        p.series(
            "Agent call latency p95",
            [
                Q(
                    _quantile(0.95, "qorch_channel_call_duration_seconds", NODE, "node, op"),
                    "{{node}} {{op}}",
                )
            ],
            unit="s",
            description="Round trip of pipeline-to-agent calls over the channel.",
        )
    )
    d = d.with_panel(
        p.series(
            "Calibration",
            [
                Q(f"qorch_node_calibration_fidelity_ratio{{{NODE}}}", "{{node}} fidelity"),
                Q(f"qorch_agent_calibration_fidelity_ratio{{{NODE}}}", "{{node}} fidelity (agent)"),
                Q(f"qorch_agent_gate_error_ratio{{{NODE}}}", "{{node}} {{gate}} error (agent)"),
            ],
            unit="percentunit",
            description="Calibration fidelity and gate errors per node.",
        )
    )
    d = d.with_panel(
        p.series(
            "Qubits",
            [
                Q(f"qorch_node_qubits{{{NODE}}}", "{{node}} total"),
                Q(f"qorch_node_allocated_qubits{{{NODE}}}", "{{node}} allocated"),
            ],
            unit="short",
            description="Capacity and reservations per node.",
        )
    )
    d = d.with_panel(
        p.series(
            "Channel handshakes and refusals",
            [
                Q(
                    f"sum by (node) (rate(qorch_channel_handshakes_total{{{NODE}}}[{RI}]))",
                    "operator→{{node}}",
                ),
                Q(
                    f"sum by (node) (rate(qorch_agent_channel_handshakes_total{{{NODE}}}[{RI}]))",
                    "{{node}} accepted",
                ),
                Q(
                    f"sum by (node) (rate(qorch_agent_channel_refusals_total{{{NODE}}}[{RI}]))",
                    "{{node}} refused",
                ),
                Q(f"sum by (node) (qorch_agent_channel_sessions{{{NODE}}})", "{{node}} sessions"),
            ],
            unit="short",
            description="Post-quantum handshakes per second and live sessions.",
        )
    )
    d = d.with_panel(
        p.series(
            "Agent requests by operation",
            [
                Q(
                    f"sum by (node, op) (rate(qorch_agent_requests_total{{{NODE}}}[{RI}]))",
                    "{{node}} {{op}}",
                )
            ],
            unit="reqps",
            description="Channel calls the agents served, by operation.",
        )
    )
    d = d.with_row(p.row("Links and quantum signals"))
    d = d.with_panel(
        p.series(
            "Feedforward latency",
            [
                Q(
                    _quantile(0.5, "qorch_feedforward_latency_seconds", LINK, "link"),
                    "{{link}} p50",
                ),
                Q(f"qorch_link_feedforward_latency_seconds{{{LINK}}}", "{{link}} planner estimate"),
            ],
            unit="s",
            description="M3: measured RTT/2 plus declared latency; the planner's figure.",
        )
    )
    d = d.with_panel(
        p.series(
            "Entanglement latency",
            [
                Q(
                    _quantile(0.5, "qorch_entanglement_latency_seconds", LINK, "link"),
                    "{{link}} p50",
                ),
                Q(
                    _quantile(0.95, "qorch_entanglement_latency_seconds", LINK, "link"),
                    "{{link}} p95",
                ),
            ],
            unit="s",
            description="M9: time from requesting a Bell pair to its herald.",
        )
    )
    d = d.with_panel(
        p.series(
            "Bell pairs consumed",
            [
                Q(
                    f"sum by (link) (rate(qorch_bell_pairs_consumed_total{{{LINK}}}[{RI}]))",
                    "{{link}}",
                )
            ],
            unit="short",
            description="Bell pairs consumed by jobs per second, by link.",
        )
    )
    d = d.with_panel(
        p.series(
            "Link fidelity",
            [
                Q(f"qorch_link_measured_fidelity_ratio{{{LINK}}}", "{{link}} measured"),
                Q(f"qorch_link_declared_fidelity_ratio{{{LINK}}}", "{{link}} declared"),
            ],
            unit="percentunit",
            description="Bell-pair fidelity per link: measured by probes, and declared.",
            maximum=1,
        )
    )
    d = d.with_panel(
        p.series(
            "Coherence-window usage p95",
            [
                Q(
                    _quantile(0.95, "qorch_coherence_window_usage_ratio", "", "strategy"),
                    "{{strategy}}",
                )
            ],
            unit="percentunit",
            description="M4: circuit duration over the shortest T2 of the nodes used.",
        )
    )
    d = d.with_panel(
        p.series(
            "Measurement variance p95",
            [Q(_quantile(0.95, "qorch_measurement_variance", "", "strategy"), "{{strategy}}")],
            unit="short",
            description="M10: variance of the least certain estimate of each job.",
        )
    )
    d = d.with_panel(
        p.series(
            "Spans",
            [
                Q(
                    f"sum by (node) (rate(qorch_sidecar_spans_forwarded_total{{{NODE}}}[{RI}]))",
                    "{{node}} forwarded",
                ),
                Q(
                    f"sum by (node) (rate(qorch_sidecar_spans_discarded_total{{{NODE}}}[{RI}]))",
                    "{{node}} discarded",
                ),
                Q(
                    f"sum by (node) (rate(qorch_agent_spans_dropped_total{{{NODE}}}[{RI}]))",
                    "{{node}} dropped",
                ),
                Q(
                    f"sum by (node) (rate(qorch_sidecar_export_failures_total{{{NODE}}}[{RI}]))",
                    "{{node}} export failures",
                ),
            ],
            unit="short",
            description="Agent spans through the sidecars, per second.",
        )
    )
    return d


BUILDERS = {"executive": executive, "oncall": oncall, "debug": debug}


def render(name: str) -> str:
    """The dashboard's JSON text, stable across runs."""
    return json.dumps(BUILDERS[name]().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def render_all() -> dict[str, str]:
    return {f"{name}.json": render(name) for name in BUILDERS}
