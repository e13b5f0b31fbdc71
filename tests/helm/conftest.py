"""Fixtures for the chart and image tests: the chart loaded once, rendered with the default values
and with the production example, and parsed into Kubernetes objects.

Everything is offline: helm_python embeds the Helm SDK (no helm binary, no cluster) and
kubernetes_validate ships the Kubernetes JSON schemas.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

helm_python = pytest.importorskip("helm_python")

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "deploy" / "helm" / "qianmian"
PRODUCTION_VALUES = CHART_DIR / "values-production.yaml"
DOCKERFILE = REPO_ROOT / "deploy" / "docker" / "Dockerfile"
RELEASE = "qianmian"
NAMESPACE = "qianmian"

#: values key -> (component name, port, console script): the contract the chart encodes.
SERVICES: dict[str, tuple[str, int, str]] = {
    "recommender": ("recommender", 8000, "recommender"),
    "productHub": ("product-hub", 8001, "product-hub"),
    "contentHub": ("content-hub", 8002, "content-hub"),
    "rightsHub": ("rights-hub", 8003, "rights-hub"),
    "profile": ("profile", 8004, "profile-service"),
}
#: who calls whom over HTTP inside the release (caller -> callees)
CALL_GRAPH: dict[str, set[str]] = {
    "recommender": {"product-hub", "content-hub", "rights-hub", "profile"},
    "product-hub": {"profile"},
    "content-hub": {"profile"},
    "rights-hub": set(),
    "profile": set(),
}


@dataclass(frozen=True)
class Rendered:
    """One rendering of the chart: the template outputs and the objects parsed from them."""

    files: dict[str, str]
    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        matches = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
        return matches[0]

    def component(self, kind: str, component: str) -> dict[str, Any]:
        matches = [
            o
            for o in self.of_kind(kind)
            if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        ]
        assert len(matches) == 1, f"expected one {kind} of component {component}, found {len(matches)}"
        return matches[0]


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


@pytest.fixture(scope="session")
def chart() -> Iterator[Any]:
    with helm_python.Chart.load(str(CHART_DIR)) as loaded:
        yield loaded


def render(chart: Any, values: dict[str, Any] | None = None) -> Rendered:
    files = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[dict[str, Any]] = []
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(files=files, objects=objects)


@pytest.fixture(scope="session")
def default_render(chart: Any) -> Rendered:
    return render(chart)


@pytest.fixture(scope="session")
def production_values() -> dict[str, Any]:
    return load_values(PRODUCTION_VALUES)


@pytest.fixture(scope="session")
def production_render(chart: Any, production_values: dict[str, Any]) -> Rendered:
    return render(chart, production_values)


@pytest.fixture(scope="session", params=["default", "production"])
def rendered(request: pytest.FixtureRequest) -> Rendered:
    """Each policy test runs against both renderings."""
    name = "default_render" if request.param == "default" else "production_render"
    result: Rendered = request.getfixturevalue(name)
    return result


def pod_specs(rendered: Rendered) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload: Deployments, Jobs and CronJobs."""
    specs = []
    for obj in rendered.objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in {"Deployment", "Job"}:
            specs.append((name, obj["spec"]["template"]["spec"]))
        elif obj["kind"] == "CronJob":
            specs.append((name, obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return specs


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]
