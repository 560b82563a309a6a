"""Dashboards and alert rules: generated = committed, and every query names a real metric."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry

from qorch.telemetry.metrics import QorchMetrics
from tests.support import REPO

from .samples import sidecar_registry, write_full_stats

sys.path.insert(0, str(REPO / "hack"))
import dashboards  # the generator is a development script, outside the package

DASHBOARDS = REPO / "charts/qorch/dashboards"
RULES = REPO / "charts/qorch/rules/qorch-alerts.yaml"
RULE_TESTS = Path(__file__).with_name("alerts_test.yaml")
RUNBOOKS = REPO / "src/qorch/telemetry/runbooks.md"
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__range": "1h",
    "$namespace": ".*",
    "$node": ".*",
    "$link": ".*",
}
PAGES = {
    "QorchOperatorDown",
    "QorchNodeUnreachable",
    "QorchLinkSuccessRateFarBelowTarget",
    "QorchJobErrorBudgetFastBurn",
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name qorch exposes: the operator's metrics and a sidecar's."""
    names: set[str] = set()
    folder = tmp_path_factory.mktemp("stats")
    write_full_stats(folder)
    registries = [QorchMetrics(CollectorRegistry()).registry, sidecar_registry(folder)]
    for family in (f for r in registries for f in r.collect()):
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{s}" for s in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def recorded() -> set[str]:
    return {r["record"] for r in rules() if "record" in r}


def metric_names(expr: str) -> set[str]:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    found: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name or next(
                (m.value for m in node.matchers.matchers if m.name == "__name__"), None
            )
            assert name, f"a selector without a metric name in {expr!r}"
            found.add(name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def dashboard_queries() -> Iterator[tuple[str, str, str]]:
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                yield path.stem, panel["title"], target["expr"]
        for variable in board["templating"]["list"]:
            query = variable.get("query")
            if isinstance(query, str) and query.startswith("label_values("):
                inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
                assert inner, query
                yield path.stem, f"variable {variable['name']}", inner.group(1)


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    generated = dashboards.render_all()
    assert sorted(generated) == sorted(p.name for p in DASHBOARDS.glob("*.json"))
    for name, text in generated.items():
        assert (DASHBOARDS / name).read_text() == text, (
            f"{name} is stale: run python hack/gen_dashboards.py"
        )


def test_every_dashboard_query_parses_and_names_an_exported_metric(exported: set[str]) -> None:
    queries = list(dashboard_queries())
    assert len(queries) > 60
    for board, title, expr in queries:
        unknown = metric_names(expr) - exported - recorded()
        assert not unknown, f"{board} / {title}: {sorted(unknown)} is not a qorch metric"


def test_every_metric_of_the_alert_rules_exists(exported: set[str]) -> None:
    names = recorded()
    for rule in rules():
        unknown = metric_names(rule["expr"]) - exported - names
        assert not unknown, f"{rule.get('alert') or rule['record']}: {sorted(unknown)}"


def test_the_names_checked_are_really_checked(exported: set[str]) -> None:
    assert metric_names('sum(rate(qorch_nope_total{node=~"$node"}[$__rate_interval]))') == {
        "qorch_nope_total"
    }
    assert "qorch_nope_total" not in exported
    assert {"qorch_jobs_finished_total", "qorch_feedforward_latency_seconds_bucket"} <= exported


def test_each_view_has_its_panels() -> None:
    titles = {
        name: {p["title"] for p in json.loads((DASHBOARDS / f"{name}.json").read_text())["panels"]}
        for name in ("executive", "oncall", "debug")
    }
    assert {
        "Job success rate",
        "Error budget left",
        "End-to-end fidelity",
        "Entanglement success rate",
        "Node availability",
    } <= titles["executive"]
    assert {
        "Burn rate by window",
        "Nodes unreachable",
        "Links down",
        "Feedforward latency p99 and coherence budget",
        "Channel authentication failures",
    } <= titles["oncall"]
    assert {
        "Pipeline step duration",
        "Orchestrator latency",
        "Reconcile duration p95",
        "Coherence-window usage p95",
        "Measurement variance p95",
        "Entanglement latency",
        "Bell pairs consumed",
        "Calibration",
    } <= titles["debug"]


def test_alerts_page_or_ticket_with_a_summary_and_a_runbook_that_exists() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }
    assert {a.split("-")[0] for a in anchors} == {f"f{i}" for i in range(1, 9)}
    alerts = [r for r in rules() if "alert" in r]
    for alert in alerts:
        assert alert["labels"]["severity"] in ("page", "ticket"), alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        url = alert["annotations"]["runbook_url"]
        assert url.split("#")[1] in anchors, f"{alert['alert']}: no runbook section {url}"
    assert {a["alert"] for a in alerts if a["labels"]["severity"] == "page"} == PAGES
    covered = {a["annotations"]["runbook_url"].split("#")[1].split("-")[0] for a in alerts}
    assert covered == {f"f{i}" for i in range(1, 9)}


def test_promtool_accepts_the_rules(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_alerts_pass(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_paging_alert_is_unit_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in tests:
        for case in test.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    assert firing >= PAGES and quiet >= PAGES


def test_every_metric_is_documented_in_the_telemetry_readme(exported: set[str]) -> None:
    readme = (REPO / "src/qorch/telemetry/README.md").read_text()
    sidecar_doc = (REPO / "src/qorch/telemetry/sidecar.py").read_text()
    for name in exported:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if base.startswith(("qorch_agent_", "qorch_sidecar_")):
            assert base in sidecar_doc, f"{base} is not listed in sidecar.py's docstring"
        else:
            assert base in readme, f"{base} is not in src/qorch/telemetry/README.md"
