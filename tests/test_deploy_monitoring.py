"""Prometheus's scrape config, its alert rules and the Grafana dashboard query only series the service defines.
"""

from __future__ import annotations

import json
import re

import yaml

from tests.deploy_support import (
    COMPOSE,
    DASHBOARD,
    ROOT,
    app_paths,
    check_promql,
    dashboard_queries,
    service_series,
)


def test_prometheus_scrapes_the_service_and_alerts_on_defined_series() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "session-intent")
    assert job["metrics_path"] in app_paths()
    assert job["static_configs"][0]["targets"] == ["service:8000"]
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yml").read_text())
    series = service_series()
    for rule in (r for group in rules["groups"] for r in group["rules"]):
        check_promql(rule["expr"], series)
    k8s = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus-k8s.yml").read_text())
    assert k8s["scrape_configs"][0]["kubernetes_sd_configs"][0]["role"] == "pod"



def test_dashboard_queries_only_series_the_service_defines() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    series = service_series()
    queries = dashboard_queries(dashboard)
    for expr in queries:
        check_promql(expr, series)
    variables = [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    for definition in variables:
        assert set(re.findall(r"\bsi_[a-z0-9_]+", definition)) <= set(series)
    text = " ".join(queries)
    assert 'stage="total"' not in text, "the whole click is si_click_seconds, not a stage"
    for needed in ("si_request_seconds_bucket", "si_stage_seconds_bucket", "si_batch_size_bucket",
                   "si_queue_depth", 'cause="overload"', 'cause="deadline"', "si_errors_total", "si_events_total",
                   "si_click_seconds_bucket", "si_in_flight", "si_admission_limit", "si_loop_lag_seconds",
                   "process_cpu_seconds_total",
                   "si_model_info", "histogram_quantile(0.5", "histogram_quantile(0.95", "histogram_quantile(0.99"):
        assert needed in text, f"no panel queries {needed}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in dashboard["panels"])


def test_grafana_provisioning_points_at_the_mounted_dashboards() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in compose["volumes"])
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/dashboards.yml").read_text())
    assert mounts["./deploy/grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    source = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
