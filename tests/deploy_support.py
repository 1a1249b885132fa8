"""Shared readers of the deployment files for tests/test_deploy_*.py: the k8s manifests, the app's routes and
settings, the series `ServiceMetrics` registers, and a PromQL check against them."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase

from service.metrics import ServiceMetrics
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "docker-compose.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "session-intent.json"
PROM_LABELS = {"le", "instance", "job", "quantile"}  # added by histograms or by the scrape
RUNTIME_UID = "10001"


@functools.cache
def k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":  # kustomize's own config, not a Kubernetes object
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in k8s_docs() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def app_paths() -> set[str]:
    from service.app import create_app

    return set(create_app(Settings()).openapi()["paths"])


def settings_env_names() -> set[str]:
    return {f"SI_{name.upper()}" for name in Settings.model_fields}


def service_series() -> dict[str, set[str]]:
    """Every series name ServiceMetrics exposes, with the label names it may carry."""
    from service.drift import DriftMonitor
    from tests.test_drift import reference_of_home_clicks

    series: dict[str, set[str]] = {}
    metrics = ServiceMetrics()
    drift = DriftMonitor(metrics, reference_of_home_clicks(), window_s=60)
    for attribute in [*vars(metrics).values(), *vars(drift).values()]:
        metric = getattr(attribute, "gauge", attribute)  # si_model_info: a gauge inside ModelInfo
        if not isinstance(metric, MetricWrapperBase):
            continue
        (family,) = metric.describe()
        labels = set(metric._labelnames)  # no public accessor for the declared label names
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                    "gauge": ("",), "info": ("_info",), "summary": ("_count", "_sum", "_created")}[family.type]
        for suffix in suffixes:
            series[family.name + suffix] = labels
    for family in ServiceMetrics().registry.collect():  # prometheus_client's process, GC and platform collectors
        for sample in family.samples:
            if not sample.name.startswith("si_"):
                series[sample.name] = set(sample.labels) | {"pid"}  # pid: one per worker with --workers
    return series


def check_promql(expr: str, series: dict[str, set[str]]) -> None:
    """Every si_* name in `expr` is a defined series, and every label it names exists on one of them."""
    names = set(re.findall(r"\b(?:si|process|python)_[a-z0-9_]+", expr))
    assert names, f"no series of the service in {expr!r}"
    unknown = names - set(series)
    assert not unknown, f"{expr!r} queries undefined series {sorted(unknown)}"
    known_labels = set().union(*(series[n] for n in names)) | PROM_LABELS
    used = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", expr))
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        used |= {label.strip() for label in group.split(",") if label.strip()}
    assert used <= known_labels, f"{expr!r} uses labels {sorted(used - known_labels)} that {sorted(names)} lack"


def dashboard_queries(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [q for value in node.values() for q in dashboard_queries(value)]
    if isinstance(node, list):
        return [q for item in node for q in dashboard_queries(item)]
    return []
