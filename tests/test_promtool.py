"""The alert rules, the dashboards and the live /metrics, checked by Prometheus's own tools (Debian's
`prometheus` package: promtool and the server; .ci/run installs it).

- `promtool check rules` and `promtool test rules` on deploy/prometheus/, with a firing and a quiet test per alert;
- every Grafana panel's query parsed by Prometheus's PromQL parser (wrapped as recording rules for promtool);
- `promtool check metrics` on a running service's /metrics;
- a real Prometheus scraping a running service, read back through its HTTP API.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from service.app import create_app
from tests.deploy_support import DASHBOARD, dashboard_queries
from tests.redis_procs import RedisServer, free_port
from tests.service_support import service_settings, tiny_model_dir
from tests.uvicorn_proc import UvicornThread

PROMETHEUS_DIR = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
# Grafana's variables, as Grafana would expand them, so that the query Prometheus receives is what is parsed.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h", "${datasource}": "x",
                     "$instance": ".*", "$route": ".*"}

# CI installs the package (.ci/run): there a missing tool fails these tests instead of skipping them.
needs_promtool = pytest.mark.skipif(PROMTOOL is None and not os.environ.get("CI"),
                                    reason="promtool missing (apt-get install prometheus)")


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None, "promtool missing (apt-get install prometheus)"
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True, timeout=60)


@needs_promtool
def test_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    checked = promtool("check", "rules", str(PROMETHEUS_DIR / "rules.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(PROMETHEUS_DIR / "rules.test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    rules = yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text())
    alerts = {r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r}
    cases = [case for test in yaml.safe_load((PROMETHEUS_DIR / "rules.test.yml").read_text())["tests"]
             for case in test.get("alert_rule_test", [])]
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert alerts == firing, f"alerts without a firing test: {sorted(alerts - firing)}"
    assert alerts == quiet, f"alerts without a quiet test: {sorted(alerts - quiet)}"


def panel_rules(dashboard: dict[str, Any]) -> dict[str, Any]:
    """Every panel query as a recording rule, Grafana's variables expanded: promtool parses each `expr`."""
    rules = []
    for i, expr in enumerate(dashboard_queries(dashboard)):
        for name, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(name, value)
        assert "$" not in expr, f"a Grafana variable this test does not expand: {expr}"
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    return {"groups": [{"name": "dashboard", "rules": rules}]}


@needs_promtool
def test_every_dashboard_query_parses_as_promql(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    rules = panel_rules(dashboard)
    assert len(rules["groups"][0]["rules"]) >= 30
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = {"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum(rate(si_events_total[5m])"}]}]}
    path.write_text(yaml.safe_dump(broken))
    assert promtool("check", "rules", str(path)).returncode != 0, "the parser must refuse a broken query"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[UvicornThread]:
    model_dir = tiny_model_dir(tmp_path_factory.getbasetemp())
    with UvicornThread(create_app(service_settings(model_dir, redis_server.url))) as running:
        with httpx.Client(base_url=running.url) as http:
            for i in range(20):
                assert http.post(f"/v1/sessions/prom-{i % 4}/events", json={"action": "view_product"}).is_success
        yield running


@needs_promtool
def test_live_metrics_pass_promtool_check_metrics(service: UvicornThread) -> None:
    text = httpx.get(f"{service.url}/metrics").text
    assert "si_stage_seconds_bucket" in text and "process_cpu_seconds_total" in text
    checked = promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert promtool("check", "metrics", stdin=text + "si_bad counter\n").returncode != 0


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None and not os.environ.get("CI"), reason="prometheus missing")
def test_a_real_prometheus_scrapes_the_service_and_reads_a_stage_histogram(service: UvicornThread,
                                                                            tmp_path: Path) -> None:
    assert PROMETHEUS is not None, "prometheus missing (apt-get install prometheus)"
    port = free_port()
    config = {"global": {"scrape_interval": "1s"},
              "scrape_configs": [{"job_name": "session-intent", "metrics_path": "/metrics",
                                  "static_configs": [{"targets": [service.url.removeprefix("http://")]}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    argv = [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}"]
    with (tmp_path / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api/v1/query"
    query = 'histogram_quantile(0.99, sum by (le) (rate(si_stage_seconds_bucket{stage="redis"}[10s])))'
    try:
        deadline = time.monotonic() + 60
        result: list[Any] = []
        with httpx.Client(base_url=service.url) as http:
            while time.monotonic() < deadline and not result:
                http.post("/v1/sessions/prom-live/events", json={"action": "home"})
                time.sleep(0.5)
                try:
                    answer = httpx.get(api, params={"query": query}, timeout=5).json()
                except httpx.HTTPError:
                    continue
                result = [r for r in answer["data"]["result"] if r["value"][1] not in ("NaN", "+Inf")]
        assert result, (tmp_path / "prometheus.log").read_text()[-3000:]
        p99 = float(result[0]["value"][1])
        assert 0 < p99 < 2.5, p99  # a real latency from the histogram, inside its buckets
        counts = httpx.get(api, params={"query": 'si_stage_seconds_count{stage="redis"}'}).json()["data"]["result"]
        assert float(counts[0]["value"][1]) >= 20
        targets = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets").json()["data"]["activeTargets"]
        assert [t["health"] for t in targets] == ["up"]
    finally:
        server.terminate()
        server.wait(timeout=20)
