"""The chart renders, lints clean and every manifest is valid Kubernetes 1.30."""

from __future__ import annotations

import re
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from .conftest import CHART_DIR, PRODUCTION_VALUES, SERVICES, Rendered, load_values

KUBERNETES_VERSION = "1.30"
#: Custom resources of the Prometheus Operator: kubernetes-validate has no schema for them, so
#: only their shape is checked (test_custom_resources_have_the_expected_shape).
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}


@pytest.mark.parametrize("values_file", [None, PRODUCTION_VALUES], ids=["default", "production"])
def test_helm_lint_reports_no_errors_or_warnings(values_file: Any) -> None:
    values = load_values(values_file) if values_file else None
    report = helm_python.lint(str(CHART_DIR), values, strict=True, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [], report["errors"]
    assert problems == [], problems


def test_every_manifest_is_valid_kubernetes_1_30(rendered: Rendered) -> None:
    failures = []
    for obj in rendered.objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}")
    assert failures == []


def test_validation_really_rejects_a_broken_manifest(default_render: Rendered) -> None:
    """Guards the test above: strict validation must catch an unknown field."""
    deployment = default_render.of_kind("Deployment")[0]
    broken = {**deployment, "spec": {**deployment["spec"], "replicaz": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_default_render_has_the_whole_platform(default_render: Rendered) -> None:
    kinds = {o["kind"] for o in default_render.objects}
    assert {
        "Deployment",
        "Service",
        "ServiceAccount",
        "ConfigMap",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Job",
        "CronJob",
    } <= kinds
    # Prometheus Operator resources are opt-in: a cluster without its CRDs must install the chart.
    assert not kinds & CUSTOM_KINDS
    # Secrets are referenced, never created (existing-secret pattern).
    assert "Secret" not in kinds
    for name, _, _ in SERVICES.values():
        for kind in ("Deployment", "Service", "ServiceAccount", "ConfigMap"):
            default_render.component(kind, name)


def test_every_object_is_namespaced_and_labelled(rendered: Rendered) -> None:
    for obj in rendered.objects:
        meta = obj["metadata"]
        assert meta.get("namespace") == "qianmian", f"{obj['kind']}/{meta['name']}"
        labels = meta.get("labels", {})
        assert labels.get("app.kubernetes.io/instance") == "qianmian", f"{obj['kind']}/{meta['name']}"
        assert labels.get("app.kubernetes.io/managed-by") == "Helm"
        assert "app.kubernetes.io/component" in labels


def test_names_are_unique_per_kind(rendered: Rendered) -> None:
    seen = [(o["kind"], o["metadata"]["name"]) for o in rendered.objects]
    assert len(seen) == len(set(seen))


def test_custom_resources_have_the_expected_shape(production_render: Rendered) -> None:
    monitor = production_render.named("ServiceMonitor", "qianmian")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selected = set(monitor["spec"]["selector"]["matchExpressions"][0]["values"])
    assert selected == {name for name, _, _ in SERVICES.values()}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http"
    assert endpoint["path"] == "/metrics"

    rule = production_render.named("PrometheusRule", "qianmian")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "QianmianDecisionLatencyHigh",
        "QianmianDecisionFallbackRateHigh",
        "QianmianSuitabilityBlocksSpike",
        "QianmianRightsBudgetNearlyExhausted",
        "QianmianAuditWriteFailures",
    }
    for alert in alerts.values():
        assert {"expr", "for", "labels", "annotations"} <= set(alert)
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["runbook_url"].startswith("https://runbooks.bank.internal/qianmian/")
        assert 'namespace="qianmian"' in alert["expr"]
    # The metric names are the contract the services emit (chart README, "Metrics contract").
    assert (
        'qianmian_http_request_duration_seconds_bucket{namespace="qianmian", route="/v1/decisions"}'
        in (alerts["QianmianDecisionLatencyHigh"]["expr"])
    )
    assert "qianmian_decision_fallback_total" in alerts["QianmianDecisionFallbackRateHigh"]["expr"]
    assert (
        'qianmian_policy_blocks_total{namespace="qianmian", rule="suitability"}'
        in (alerts["QianmianSuitabilityBlocksSpike"]["expr"])
    )
    assert "qianmian_rights_budget_remaining_ratio" in alerts["QianmianRightsBudgetNearlyExhausted"]["expr"]
    assert "qianmian_audit_write_failures_total" in alerts["QianmianAuditWriteFailures"]["expr"]
    assert alerts["QianmianAuditWriteFailures"]["labels"]["severity"] == "critical"


def test_grafana_dashboard_is_valid_json_over_the_contract_metrics(default_render: Rendered) -> None:
    import json

    config_map = default_render.named("ConfigMap", "qianmian-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["qianmian-overview.json"])
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in (
        "qianmian_http_requests_total",
        "qianmian_http_request_duration_seconds_bucket",
        "qianmian_decision_fallback_total",
        "qianmian_policy_blocks_total",
        "qianmian_rights_budget_remaining_ratio",
        "qianmian_audit_write_failures_total",
    ):
        assert metric in exprs, metric


def test_long_release_names_still_give_valid_names(chart: Any) -> None:
    files = chart.render({}, name="a-very-long-release-name-for-the-marketing-platform", namespace="ns")
    for path, text in files.items():
        if path.endswith("NOTES.txt"):
            continue
        for obj in filter(None, yaml.safe_load_all(text)):
            name = obj["metadata"]["name"]
            limit = 52 if obj["kind"] == "CronJob" else 63
            assert len(name) <= limit, f"{obj['kind']}/{name}"
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
