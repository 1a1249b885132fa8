"""The Kubernetes manifests agree with the service they deploy: probe paths against the app's routes, SI_* keys
against `Settings`, the observability ConfigMaps against their sources. No cluster is needed.
"""

from __future__ import annotations

import json
import re

import yaml

from service.auth import hash_key
from service.settings import Settings
from tests.deploy_support import DASHBOARD, K8S, ROOT, RUNTIME_UID, app_paths, k8s_docs, one, settings_env_names


def test_manifests_have_the_required_kinds_and_the_kustomization_lists_them() -> None:
    docs = k8s_docs()
    kinds = {d["kind"] for d in docs}
    required = {"Namespace", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                "ConfigMap", "Secret", "StatefulSet", "Job"}
    assert required <= kinds, f"missing kinds: {sorted(required - kinds)}"
    assert all(d.get("apiVersion") and d.get("metadata", {}).get("name") for d in docs)
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk, "kustomization.yaml must list every manifest except the secret template"


def test_probes_and_scrape_path_are_routes_of_the_service() -> None:
    pod = one("Deployment")["spec"]["template"]
    container = pod["spec"]["containers"][0]
    paths = app_paths()
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] in paths, f"{probe} hits a path the app does not serve"
    assert pod["metadata"]["annotations"]["prometheus.io/path"] in paths
    config = one("ConfigMap", "session-intent-config")["data"]
    assert str(container["ports"][0]["containerPort"]) == config["SI_PORT"] == pod["metadata"]["annotations"][
        "prometheus.io/port"]


def test_deployment_is_bounded_and_unprivileged() -> None:
    spec = one("Deployment")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), f"resources.{kind} needs cpu and memory"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert str(spec["securityContext"]["runAsUser"]) == RUNTIME_UID, "must match the Dockerfile's USER"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_selectors_and_targets_line_up() -> None:
    pod_labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert one("Service", "session-intent")["spec"]["selector"].items() <= pod_labels.items()
    assert one("PodDisruptionBudget", "session-intent")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = one("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "session-intent"}
    assert hpa["minReplicas"] >= 2, "fewer than 2 replicas cannot survive a PDB-respecting drain"


def test_redis_cluster_has_six_nodes_formed_by_the_job() -> None:
    sts = one("StatefulSet", "redis-cluster")
    assert sts["spec"]["replicas"] == 6
    headless = one("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    conf = one("ConfigMap", "redis-cluster-config")["data"]["redis.conf"]
    assert "cluster-enabled yes" in conf
    script = one("Job", "redis-cluster-create")["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "--cluster create" in script and "--cluster-replicas 1" in script and "for i in 0 1 2 3 4 5" in script
    config = one("ConfigMap", "session-intent-config")["data"]
    assert config["SI_REDIS_CLUSTER"] == "true" and "redis-cluster" in config["SI_REDIS_URL"]


def test_config_and_secret_are_valid_settings() -> None:
    config = one("ConfigMap", "session-intent-config")["data"]
    secret = one("Secret")["stringData"]
    unknown = (set(config) | set(secret)) - settings_env_names()
    assert not unknown, f"keys that Settings ignores: {sorted(unknown)}"
    raw_keys = secret["SI_API_KEYS"]
    for i, placeholder in enumerate(re.findall(r"REPLACE_WITH_\w+", raw_keys)):
        raw_keys = raw_keys.replace(placeholder, hash_key(f"key-{i}"))
    fields = {name: config[f"SI_{name.upper()}"] for name in Settings.model_fields if f"SI_{name.upper()}" in config}
    settings = Settings(**fields, api_keys=json.loads(raw_keys))
    assert settings.auth_active and settings.redis_cluster and len(settings.api_keys) == 3


def test_k8s_observability_config_maps_match_the_dashboard_and_rules() -> None:
    """deploy/k8s/observability.yaml is rendered from deploy/grafana and deploy/prometheus, never edited by hand."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("render", ROOT / "scripts" / "render-k8s-observability.py")
    assert spec is not None and spec.loader is not None
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    assert (K8S / "observability.yaml").read_text() == render.render(), "run scripts/render-k8s-observability.py"
    dashboards = one("ConfigMap", "session-intent-grafana-dashboards")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboards["data"]["session-intent.json"]) == json.loads(DASHBOARD.read_text())
    rules = one("ConfigMap", "session-intent-prometheus-rules")["data"]["rules.yml"]
    k8s = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus-k8s.yml").read_text())
    assert yaml.safe_load(rules) and k8s["rule_files"] == ["/etc/prometheus/rules.yml"]
