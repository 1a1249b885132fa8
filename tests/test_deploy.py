"""Deployment files agree with the service they deploy, and the load test stays bounded and on loopback.

Parses every manifest, compose file, Prometheus/Grafana file and the Dockerfile, and checks them against
the real code: probe paths against the app's routes, SI_* keys against `Settings`, dashboard and alert
queries against the series `ServiceMetrics` registers. No Docker daemon or cluster is needed.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from service.auth import hash_key
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


# ---- Kubernetes ---------------------------------------------------------------------------------------------


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


# ---- Docker -------------------------------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = "(preamble)"
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
        stages.setdefault(current, []).append(line)
    return stages


def test_dockerfile_is_multistage_pinned_gpu_capable_and_runs_unprivileged() -> None:
    stages = dockerfile_stages()
    assert len([s for s in stages if s != "(preamble)"]) >= 2
    assert list(stages)[-1] == "runtime", "the default target (last stage) must be the serving image"
    build, runtime = " ".join(stages["build"]), stages["runtime"]
    assert "ARG GPU=0" in build and '".[gpu]"' in build and "pip install -c constraints.txt ." in build
    assert "torch" not in build and "[train" not in build, "the serving image must not install torch"
    assert f"USER {RUNTIME_UID}" in " ".join(runtime)
    assert any(line.startswith("HEALTHCHECK") and "/healthz" in line for line in runtime)
    assert 'ENTRYPOINT ["session-intent", "serve"]' in runtime
    assert any("models/default" in line for line in runtime if line.startswith("COPY"))
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'gpu = \[.*onnxruntime-gpu.*tensorrt', pyproject), "the gpu extra must hold ORT-GPU + TensorRT"


def test_dockerfile_copies_only_files_that_exist_and_are_in_the_context() -> None:
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    copies = [line.split()[1:] for lines in dockerfile_stages().values() for line in lines if line.startswith("COPY")]
    sources = [src for parts in copies if not any(p.startswith("--from") for p in parts) for src in parts[:-1]]
    assert {"constraints.txt", "pyproject.toml", "model/", "service/", "cli/", "models/default/"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert source.rstrip("/") not in ignored, f"COPY {source}: excluded by .dockerignore"


def test_compose_services_mounts_and_settings() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"redis", "service", "prometheus", "grafana", "locust"} <= set(services)
    assert services["locust"]["profiles"] == ["loadtest"]
    assert all("profiles" not in services[name] for name in ("redis", "service", "prometheus", "grafana"))
    stages = set(dockerfile_stages())
    assert services["service"]["build"]["target"] in stages and services["locust"]["build"]["target"] in stages
    for service in services.values():
        assert all(str(p).startswith("127.0.0.1:") for p in service.get("ports", [])), "publish on loopback only"
        for volume in service.get("volumes", []):
            assert (ROOT / volume.split(":")[0]).exists(), f"mounted file missing: {volume}"
    unknown = set(services["service"]["environment"]) - settings_env_names()
    assert not unknown, f"compose sets SI_* keys that Settings ignores: {sorted(unknown)}"
    assert services["service"]["environment"]["SI_REDIS_URL"].startswith("redis://redis:")


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_docker_compose_config_is_valid() -> None:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("docker CLI without the compose plugin")
    result = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---- Prometheus and Grafana ---------------------------------------------------------------------------------


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


def dashboard_queries(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [q for value in node.values() for q in dashboard_queries(value)]
    if isinstance(node, list):
        return [q for item in node for q in dashboard_queries(item)]
    return []


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


# ---- Load test bounds ---------------------------------------------------------------------------------------


def locust(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Locust in its own process: importing it here would gevent-patch the whole test session."""
    argv = [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"), "--headless",
            "--only-summary", "--si-sessions", "50", *args]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, env=clean_env())


def clean_env() -> dict[str, str]:
    """This environment without SI_* (no SI_LOADTEST_ALLOW_HOST sneaking in), with the repo importable."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SI_")}, "PYTHONPATH": str(ROOT)}


def test_locust_refuses_a_host_that_is_not_loopback() -> None:
    result = locust("--host", "http://192.0.2.10:8000", "-u", "1", "-r", "1", "--run-time", "5s")
    assert result.returncode != 0
    assert "only loopback hosts" in result.stdout + result.stderr


def _wait_for_port(port: int, server: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """Locust must not start before uvicorn listens: early requests would count as refused."""
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, "the bare app exited before it listened"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"the bare app did not listen on {port} within {timeout_s} s")


def test_locust_stops_at_the_request_bound_against_the_bare_app(tmp_path: Path) -> None:
    from bench.procs.redis_server import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "loadtest.bare_app:app", "--host", "127.0.0.1",
                               "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=clean_env())
    try:
        _wait_for_port(port, server)
        samples = tmp_path / "samples.csv"
        started = time.monotonic()
        result = locust("--host", f"http://127.0.0.1:{port}", "-u", "4", "-r", "4", "--run-time", "60s",
                        "--si-user-rate", "20", "--si-max-requests", "40", "--si-latency-file", str(samples))
        elapsed = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=10)
    rows = samples.read_text().splitlines()[1:]
    assert elapsed < 30, f"the request bound did not stop the 60 s run ({elapsed:.0f} s)"
    assert 40 <= len(rows) <= 48, f"{len(rows)} requests for a bound of 40 (4 users may each finish one)"
    assert all(row.split(",")[3] == "1" for row in rows), result.stdout + result.stderr
    assert any("/events" in row for row in rows)


def test_bench_summary_drops_the_warmup_and_reports_exact_percentiles(tmp_path: Path) -> None:
    from bench.load.locust import ALL_ROUTES, summarise

    samples = tmp_path / "samples.csv"
    ms = [float(i) for i in range(1, 101)]
    rows = ["ts,name,ms,ok", "100.0,POST e,999.0,1"]  # inside the warmup: must not count
    rows += [f"{102.0 + i * 0.1:.1f},POST e,{v},{int(i % 10 != 0)}" for i, v in enumerate(ms)]
    samples.write_text("\n".join(rows) + "\n")
    stats = {s.route: s for s in summarise(samples, "bare", 10, warmup_s=2.0)}
    post = stats["POST e"]
    assert post.requests == 100 and post.failures == 10 and stats[ALL_ROUTES].requests == 100
    assert post.max_ms == 100.0 and post.p50_ms == pytest.approx(50.5) and post.p99_ms == pytest.approx(99.01)
    assert post.achieved_qps == pytest.approx(100 / 9.9)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (.ci/run installs it)")
def test_bench_service_smoke_run_writes_the_report(tmp_path: Path) -> None:
    """The harness end to end in about 30 s: bare and service, every step at its shortest, the report written."""
    argv = [sys.executable, "-c", "from cli.main import app; app()", "bench", "service", "--configs", "bare,service",
            "--saturation-s", "2", "--rates", "20", "--sweep-s", "5", "--target-rate", "20", "--target-s", "5",
            "--locust-processes", "1", "--profile-s", "0", "--out-dir", str(tmp_path)]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=180, env=clean_env())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = (tmp_path / "service.md").read_text()
    assert "## Targets" in report and "## The harness" in report and "ISA:" in report
    rows = list(csv_rows(tmp_path / "service.csv"))
    saturation = {r["config"]: r for r in rows if r["step"] == "saturation"}
    assert set(saturation) == {"bare", "service"} and all(int(r["requests"]) > 0 for r in saturation.values())
    # One script call per click, plus the write-behind's score flushes, some on a timer: over a 2 s run on a busy
    # box (few clicks) those add up to ~0.1 per click. The 1.1 target is the full run's (docs/benchmarks/service.md);
    # tests/test_api.py holds <= 1.1 for concurrent clicks. Two calls per click would fail here.
    assert float(saturation["service"]["redis_round_trips_per_click"]) <= 1.25
    poisson = [r for r in rows if r["step"] == "poisson" and r["route"].startswith("POST")]
    assert {r["config"] for r in poisson} == {"bare", "service"}
    light = {r["config"]: r for r in rows if r["step"] == "poisson_light"}
    assert set(light) == {"bare", "service"} and all(int(r["requests"]) > 0 for r in light.values())
    assert all(r["failures"] == "0" for r in light.values()), light
    assert "light client (wrk)" in report
    assert (tmp_path / "service.png").stat().st_size > 10_000


def csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open() as fh:
        return list(csv.DictReader(fh))


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
