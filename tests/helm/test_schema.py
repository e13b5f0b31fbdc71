"""values.schema.json rejects unknown keys and wrong types; values.yaml documents every key."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python
import pytest

from .conftest import CHART_DIR, load_values, render

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
#: Maps with free keys (labels, annotations, settings, selectors) and Kubernetes objects passed
#: through for Kubernetes to validate: the only places where the schema is open.
OPEN_OBJECTS = {"global", "stringMap", "labelMap", "selector", "k8sObject", "config", "secretEnv"}


def _reject(chart: Any, values: dict[str, Any]) -> str:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        chart.validate_schema(values)
    # the render an install would do refuses them as well
    with pytest.raises(helm_python.HelmValuesError):
        render(chart, values)
    return str(caught.value)


@pytest.mark.parametrize(
    "values",
    [
        {"replicas": 3},
        {"image": {"tag": "0.1.0", "repository": "x"}},
        {"productHub": {"replicas": 3}},
        {"recommender": {"training": {"gpus": 1}}},
        {"recommender": {"autoscaling": {"targetCPUUtilizationPercentage": 80}}},
        {"defaults": {"livenessProbe": {"path": "/other"}}},
        {"networkPolicy": {"postgresql": {"cidr": "10.0.0.0/8"}}},
        {"metrics": {"prometheusRule": {"decisionLatency": {"p95Seconds": 1}}}},
        {"profile": {"resources": {"requests": {"cpu": "1", "memory": "1Gi", "gpu": 1}}}},
        {"jobs": {"tolerations": [{"key": "a", "operator": "Exists", "colour": "x"}]}},
    ],
    ids=lambda v: json.dumps(v)[:60],
)
def test_unknown_keys_are_rejected(chart: Any, values: dict[str, Any]) -> None:
    assert "not allowed" in _reject(chart, values)


@pytest.mark.parametrize(
    "values",
    [
        {"productHub": {"replicaCount": "two"}},
        {"networkPolicy": {"enabled": "yes"}},
        {"externalDatabase": {"port": "5432"}},
        {"externalDatabase": {"sslMode": "sometimes"}},
        {"logLevel": "TRACE"},
        {"recommender": {"training": {"schedule": "nightly"}}},
        {"profile": {"autoscaling": {"targetCPU": 150}}},
        {"networkPolicy": {"postgresql": {"cidrs": ["everything"]}}},
        {"contentHub": {"extraEnv": [{"name": "X"}]}},
        {"rightsHub": {"secretEnv": {"lower_case": "key"}}},
        {"metrics": {"prometheusRule": {"fallbackRate": {"ratio": 5}}}},
    ],
    ids=lambda v: json.dumps(v)[:60],
)
def test_wrong_types_and_values_are_rejected(chart: Any, values: dict[str, Any]) -> None:
    _reject(chart, values)


@pytest.mark.parametrize(
    "values",
    [
        {"image": {"tag": "latest"}},
        {"image": {"tag": ""}},
        {"recommender": {"image": {"tag": "latest"}}},
        {"profile": {"image": {"digest": "sha256:abc"}}},
    ],
    ids=lambda v: json.dumps(v),
)
def test_unpinned_images_are_rejected(chart: Any, values: dict[str, Any]) -> None:
    _reject(chart, values)


@pytest.mark.parametrize(
    "values",
    [
        {"defaults": {"containerSecurityContext": {"readOnlyRootFilesystem": False}}},
        {"defaults": {"containerSecurityContext": {"allowPrivilegeEscalation": True}}},
        {"defaults": {"containerSecurityContext": {"privileged": True}}},
        {"defaults": {"containerSecurityContext": {"capabilities": {"drop": ["NET_RAW"]}}}},
        {"defaults": {"containerSecurityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}}},
        {"defaults": {"podSecurityContext": {"runAsNonRoot": False}}},
        {"defaults": {"podSecurityContext": {"runAsUser": 0}}},
        {"defaults": {"podSecurityContext": {"seccompProfile": {"type": "Unconfined"}}}},
    ],
    ids=lambda v: json.dumps(v)[:70],
)
def test_insecure_security_contexts_are_rejected(chart: Any, values: dict[str, Any]) -> None:
    _reject(chart, values)


def test_the_production_example_and_platform_choices_are_accepted(chart: Any) -> None:
    chart.validate_schema(load_values(CHART_DIR / "values-production.yaml"))
    # OpenShift assigns the UID itself: leaving it to the platform is allowed, root is not.
    chart.validate_schema({"defaults": {"podSecurityContext": {"runAsUser": None, "fsGroup": None}}})


def _walk(node: Any, path: str) -> list[str]:
    problems = []
    if isinstance(node, dict):
        is_object = node.get("type") == "object" or (
            isinstance(node.get("type"), list) and "object" in node["type"]
        )
        name = path.rsplit("/", 1)[-1]
        if is_object and name not in OPEN_OBJECTS and node.get("additionalProperties") is not False:
            problems.append(path)
        for key, child in node.items():
            problems += _walk(child, f"{path}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            problems += _walk(child, f"{path}/{index}")
    return problems


def test_every_object_in_the_schema_is_closed() -> None:
    assert _walk(SCHEMA, "") == []


def _leaf_paths(node: Any, prefix: str = "") -> set[str]:
    if isinstance(node, dict) and node:
        paths: set[str] = set()
        for key, child in node.items():
            paths |= _leaf_paths(child, f"{prefix}.{key}" if prefix else key)
        return paths
    return {prefix}


def test_values_yaml_documents_every_key() -> None:
    text = (CHART_DIR / "values.yaml").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\s*## @param (\S+) ", text, flags=re.MULTILINE))
    leaves = _leaf_paths(load_values(CHART_DIR / "values.yaml"))
    undocumented = {
        leaf for leaf in leaves if not any(leaf == d or leaf.startswith(d + ".") for d in documented)
    }
    assert undocumented == set()
    stale = {d for d in documented if not any(leaf == d or leaf.startswith(d + ".") for leaf in leaves)}
    assert stale == set()


def test_chart_readme_lists_every_parameter_and_the_metrics_contract() -> None:
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")
    text = (CHART_DIR / "values.yaml").read_text(encoding="utf-8")
    documented = re.findall(r"^\s*## @param (\S+) ", text, flags=re.MULTILINE)
    missing = [path for path in documented if f"| `{path}` |" not in readme]
    assert missing == []
    for metric in (
        "qianmian_http_requests_total",
        "qianmian_http_request_duration_seconds",
        "qianmian_decision_fallback_total",
        "qianmian_policy_blocks_total",
        "qianmian_rights_budget_remaining_ratio",
        "qianmian_audit_write_failures_total",
    ):
        assert f"| `{metric}` |" in readme, metric
