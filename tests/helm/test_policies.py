"""Policies a bank's platform team checks before accepting a chart, asserted on every rendering."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from .conftest import CALL_GRAPH, SERVICES, Rendered, containers, pod_specs, render

SECURE_CONTAINER = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "privileged": False,
}
DIGEST = re.compile(r"@sha256:[a-f0-9]{64}$")
TAG = re.compile(r":(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")


def test_every_container_has_requests_and_a_memory_limit(rendered: Rendered) -> None:
    for name, spec in pod_specs(rendered):
        for container in containers(spec):
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), f"{name}/{container['name']}"
            assert "memory" in resources.get("limits", {}), f"{name}/{container['name']}"


def test_every_container_runs_with_the_secure_security_context(rendered: Rendered) -> None:
    for name, spec in pod_specs(rendered):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for host_namespace in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(host_namespace), name
        for container in containers(spec):
            context = container["securityContext"]
            for key, expected in SECURE_CONTAINER.items():
                assert context.get(key) is expected, f"{name}/{container['name']}: {key}"
            assert context["capabilities"]["drop"] == ["ALL"], f"{name}/{container['name']}"
            assert not context["capabilities"].get("add"), f"{name}/{container['name']}"
            assert context["seccompProfile"]["type"] == "RuntimeDefault"


def test_read_only_root_gets_a_writable_tmp(rendered: Rendered) -> None:
    for name, spec in pod_specs(rendered):
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"], name
        for container in containers(spec):
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") == "tmp", f"{name}/{container['name']}"


def test_images_are_pinned_and_never_latest(rendered: Rendered) -> None:
    for name, spec in pod_specs(rendered):
        for container in containers(spec):
            image = container["image"]
            assert "latest" not in image.rsplit("/", 1)[-1], f"{name}: {image}"
            tag = TAG.search(image)
            assert DIGEST.search(image) or (tag and tag["tag"] != "latest"), f"{name}: {image} is not pinned"


def test_production_example_pins_every_image_by_digest(production_render: Rendered) -> None:
    for name, spec in pod_specs(production_render):
        for container in containers(spec):
            assert DIGEST.search(container["image"]), f"{name}: {container['image']}"
            assert container["image"].startswith("harbor.bank.internal/qianmian/")


def test_deployments_probe_healthz_and_readyz(rendered: Rendered) -> None:
    for deployment in rendered.of_kind("Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        name = deployment["metadata"]["name"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
        assert container["ports"] == [
            {"name": "http", "containerPort": container["ports"][0]["containerPort"], "protocol": "TCP"}
        ]


def test_each_service_runs_its_console_script_on_its_port(rendered: Rendered) -> None:
    for key, (name, port, cli) in SERVICES.items():
        deployment = rendered.component("Deployment", name)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["command"] == [cli], key
        assert container["args"] == ["serve"], key
        assert container["ports"][0]["containerPort"] == port, key
        service = rendered.component("Service", name)
        assert service["spec"]["ports"][0]["port"] == port
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_every_deployment_has_a_pdb_and_an_hpa(rendered: Rendered) -> None:
    deployments = rendered.of_kind("Deployment")
    assert len(deployments) == len(SERVICES)
    pdbs = rendered.of_kind("PodDisruptionBudget")
    hpas = rendered.of_kind("HorizontalPodAutoscaler")
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in pdbs if p["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(covering) == 1, f"{name}: {len(covering)} PDBs"
        scaling = [
            h
            for h in hpas
            if h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        ]
        assert len(scaling) == 1, f"{name}: {len(scaling)} HPAs"
        assert scaling[0]["apiVersion"] == "autoscaling/v2"
        # The HPA owns the replica count; a fixed one would fight it on every upgrade.
        assert "replicas" not in deployment["spec"]


def test_pods_spread_over_zones(rendered: Rendered) -> None:
    for deployment in rendered.of_kind("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        constraints = spec["topologySpreadConstraints"]
        assert "topology.kubernetes.io/zone" in {c["topologyKey"] for c in constraints}
        for constraint in constraints:
            assert constraint["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def _callers(policy: dict[str, Any]) -> tuple[set[str], list[dict[str, Any]]]:
    """Components allowed in by the first (API) ingress rule, and its namespace peers."""
    peers = policy["spec"]["ingress"][0]["from"]
    components = {
        p["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for p in peers
        if "namespaceSelector" not in p
    }
    namespaces = [p for p in peers if "namespaceSelector" in p]
    return components, namespaces


def test_network_policies_follow_the_call_graph(rendered: Rendered) -> None:
    for name, _, _ in SERVICES.values():
        policy = rendered.component("NetworkPolicy", name)
        spec = policy["spec"]
        assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
        assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == name
        components, namespaces = _callers(policy)
        assert components == {caller for caller, callees in CALL_GRAPH.items() if name in callees}, name
        (namespace_peer,) = namespaces
        expected = "api-gateway" if name == "recommender" else "marketing-console"
        assert namespace_peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": expected}
        for rule in spec["ingress"]:
            assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
        # egress: DNS, PostgreSQL, (Redis), the callees, and nothing open to the world
        callees = set()
        for rule in spec["egress"]:
            assert rule.get("to"), f"{name}: an egress rule without peers allows everything"
            for peer in rule["to"]:
                if "ipBlock" in peer:
                    assert peer["ipBlock"]["cidr"] != "0.0.0.0/0", name
                elif "podSelector" in peer and "namespaceSelector" not in peer:
                    callees.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"])
        assert callees == CALL_GRAPH[name], name


def test_only_the_gateway_reaches_the_decision_api(production_render: Rendered) -> None:
    policy = production_render.component("NetworkPolicy", "recommender")
    components, (gateway,) = _callers(policy)
    assert components == set()
    assert gateway == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "api-gateway"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "api-gateway"}},
    }


def test_job_pods_are_isolated_too(rendered: Rendered) -> None:
    policy = rendered.component("NetworkPolicy", "jobs")
    assert policy["spec"]["ingress"] == []
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for name, spec in pod_specs(rendered):
        if not name.startswith(("Job/", "CronJob/")):
            continue
        obj = next(o for o in rendered.objects if f"{o['kind']}/{o['metadata']['name']}" == name)
        template = (
            obj["spec"]["template"]
            if obj["kind"] == "Job"
            else obj["spec"]["jobTemplate"]["spec"]["template"]
        )
        assert selector.items() <= template["metadata"]["labels"].items(), name
        assert spec["restartPolicy"] == "Never"


def test_migrations_and_feast_apply_run_as_pre_install_and_pre_upgrade_hooks(rendered: Rendered) -> None:
    hooks = {
        o["metadata"]["labels"]["app.kubernetes.io/component"]: o
        for o in rendered.of_kind("Job")
        if "helm.sh/hook" in o["metadata"].get("annotations", {})
    }
    expected = {f"{name}-migrate" for name, _, _ in SERVICES.values()} | {"feast-apply"}
    assert set(hooks) == expected
    for component, job in hooks.items():
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        spec = job["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        if component == "feast-apply":
            assert container["command"] + container["args"] == ["qianmian-features", "apply"]
        else:
            name = component.removesuffix("-migrate")
            cli = next(c for n, _, c in SERVICES.values() if n == name)
            assert container["command"] + container["args"] == [cli, "migrate"]
            # Hooks run before the release's ConfigMaps exist: settings are inline, not envFrom.
            assert "envFrom" not in container
            env = {e["name"] for e in container["env"]}
            prefix = next(c for c in env if c.endswith("_DATABASE_URL")).removesuffix("DATABASE_URL")
            assert {f"{prefix}ENVIRONMENT", f"{prefix}AUTH_TOKENS_FILE"} <= env
        # ...and before the release's ServiceAccounts: they use the hooks' own, also a hook.
        account = rendered.named("ServiceAccount", spec["serviceAccountName"])
        assert int(account["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
            annotations["helm.sh/hook-weight"]
        )


def test_scheduled_jobs(rendered: Rendered) -> None:
    commands = {}
    for cron in rendered.of_kind("CronJob"):
        spec = cron["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        (container,) = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        commands[cron["metadata"]["labels"]["app.kubernetes.io/component"]] = (
            container["command"] + container["args"]
        )
    assert commands == {
        "feast-materialize": ["qianmian-features", "materialize"],
        "recommender-train": ["recommender", "train"],
        "recommender-eval": ["recommender", "eval", "--out", "/var/lib/qianmian/models/reports"],
        "rights-hub-expire": ["rights-hub", "expire"],
    }


def test_training_can_ask_for_a_gpu(default_render: Rendered, production_render: Rendered) -> None:
    def train_spec(rendered: Rendered) -> dict[str, Any]:
        cron = rendered.component("CronJob", "recommender-train")
        return cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]

    cpu_only = train_spec(default_render)
    assert "nvidia.com/gpu" not in cpu_only["containers"][0]["resources"]["limits"]
    gpu = train_spec(production_render)
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["nodeSelector"] == {"node-pool": "gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["tolerations"]


def test_no_secret_values_are_rendered(rendered: Rendered) -> None:
    """Passwords and tokens only ever come from secretKeyRef."""
    for name, spec in pod_specs(rendered):
        for container in containers(spec):
            for env in container.get("env", []):
                if re.search(r"PASSWORD|TOKEN(?!S_FILE)", env["name"]):
                    assert "secretKeyRef" in env.get("valueFrom", {}), f"{name}: {env['name']}"
                if "value" in env and "://" in env["value"] and "@" in env["value"]:
                    assert "$(QIANMIAN_DATABASE_PASSWORD)@" in env["value"], f"{name}: {env['name']}"
    for config_map in rendered.of_kind("ConfigMap"):
        text = yaml.safe_dump(config_map.get("data", {}))
        assert not re.search(r"(?i)password:\s*\S", text.replace("${POSTGRES_PASSWORD}", "")), config_map[
            "metadata"
        ]["name"]


def test_production_settings_and_in_cluster_urls(default_render: Rendered) -> None:
    data = default_render.component("ConfigMap", "product-hub")["data"]
    assert data["PRODUCT_HUB_ENVIRONMENT"] == "production"
    assert data["PRODUCT_HUB_HOST"] == "0.0.0.0"
    assert data["PRODUCT_HUB_PORT"] == "8001"
    assert data["PRODUCT_HUB_PROFILE_URL"] == "http://qianmian-profile:8004"
    # production refuses a token file named dev-*: the chart mounts it as tokens.yaml
    assert data["PRODUCT_HUB_AUTH_TOKENS_FILE"] == "/etc/qianmian/auth/tokens.yaml"
    recommender = default_render.component("ConfigMap", "recommender")["data"]
    assert {k for k in recommender if k.endswith("_URL")} == {
        "RECOMMENDER_PRODUCT_HUB_URL",
        "RECOMMENDER_CONTENT_HUB_URL",
        "RECOMMENDER_RIGHTS_HUB_URL",
        "RECOMMENDER_PROFILE_URL",
    }
    assert "RECOMMENDER_RANKER_STORE" not in recommender  # the ranker is off unless asked for


def test_the_ranker_store_is_a_path_on_the_model_volume(chart: Any) -> None:
    rendered = render(chart, {"recommender": {"modelStorage": {"rankerStore": "ranker/repo"}}})
    data = rendered.component("ConfigMap", "recommender")["data"]
    assert data["RECOMMENDER_RANKER_STORE"] == "/var/lib/qianmian/models/ranker/repo"
    with pytest.raises(Exception, match="rankerStore"):
        render(chart, {"recommender": {"modelStorage": {"rankerStore": "/etc/passwd"}}})


def test_feature_store_yaml_is_rendered_from_values(production_render: Rendered) -> None:
    config_map = production_render.component("ConfigMap", "feature-store")
    hook_copy = production_render.component("ConfigMap", "feature-store-hook")
    assert hook_copy["data"] == config_map["data"]
    store = yaml.safe_load(config_map["data"]["feature_store.yaml"])
    assert store["project"] == "qianmian"
    assert store["online_store"] == {"type": "redis", "connection_string": "${REDIS_CONNECTION_STRING}"}
    assert store["registry"]["registry_type"] == "sql"
    assert store["registry"]["path"] == (
        "postgresql+psycopg://${POSTGRES_USER}:${POSTGRES_PASSWORD}@qianmian-pg.rds.bank.internal:5432/"
        "feast_registry?sslmode=verify-full"
    )
    recommender = production_render.component("Deployment", "recommender")
    (container,) = recommender["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["QIANMIAN_FEAST_ENV"]["value"] == "production"
    assert env["REDIS_CONNECTION_STRING"]["value"] == (
        "qianmian-redis.cache.bank.internal:6380,db=0,password=$(REDIS_PASSWORD),ssl=true"
    )
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["feature-store"] == "/app/feature_repo/environments/production"


def _checksums(rendered: Rendered, component: str) -> dict[str, str]:
    deployment = rendered.component("Deployment", component)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    return {k: v for k, v in annotations.items() if k.startswith("checksum/")}


def test_pods_roll_when_their_config_changes(chart: Any, default_render: Rendered) -> None:
    before = {name: _checksums(default_render, name) for name, _, _ in SERVICES.values()}
    changed = render(chart, {"productHub": {"config": {"PROFILE_TIMEOUT_S": "2.5"}}})
    after = {name: _checksums(changed, name) for name, _, _ in SERVICES.values()}
    assert after["product-hub"]["checksum/config"] != before["product-hub"]["checksum/config"]
    assert {k: v for k, v in after.items() if k != "product-hub"} == {
        k: v for k, v in before.items() if k != "product-hub"
    }
    feast_changed = render(chart, {"feast": {"registry": {"cacheTtlSeconds": 5}}})
    for name in ("recommender", "profile"):
        assert (
            _checksums(feast_changed, name)["checksum/feature-store"]
            != before[name]["checksum/feature-store"]
        )
    assert "checksum/feature-store" not in before["product-hub"]


def test_values_do_not_leak_between_renders(chart: Any) -> None:
    values = {"productHub": {"config": {"A": "1"}}}
    snapshot = copy.deepcopy(values)
    render(chart, values)
    assert values == snapshot
