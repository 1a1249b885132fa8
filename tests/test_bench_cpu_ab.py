"""`session-intent bench cpu-ab`: configs parse as documented, rounds interleave, and a short real run (tiny model,
real redis-server, real `serve`, real wrk) writes a report with every config and its ratio to the first."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.service.cpu_ab import IDS_SCRIPT, AbConfig, AbPlan, AbResult, AbRun, parse_config
from bench.service.cpu_ab_report import compare_cpu, markdown
from bench.service.profile import stage_of
from cli.main import app
from model.artifacts import REPO_ROOT
from tests.service_support import tiny_model_dir


def test_a_config_names_a_tree_and_environment_overrides(tmp_path: Path) -> None:
    tree = tmp_path / "base"
    (tree / "cli").mkdir(parents=True)
    (tree / "cli" / "serve_command.py").write_text("")
    assert parse_config("plain") == AbConfig("plain")
    assert parse_config(f"base=@{tree}") == AbConfig("base", tree.resolve())
    on = parse_config("on=SI_TRACING=otlp,OTEL_RESOURCE_ATTRIBUTES=a=1,b=2,SI_LOG_LEVEL=warning")
    assert on.root == REPO_ROOT and on.tree == "this tree"
    assert on.env == {"SI_TRACING": "otlp", "OTEL_RESOURCE_ATTRIBUTES": "a=1,b=2", "SI_LOG_LEVEL": "warning"}
    for bad in ("=SI_X=1", "a b=SI_X=1", f"x=@{tmp_path}", "x=nothing-here"):
        with pytest.raises(ValueError):
            parse_config(bad)


def test_rounds_rotate_the_order() -> None:
    plan = AbPlan(configs=(AbConfig("a"), AbConfig("b"), AbConfig("c")))
    assert [[c.name for c in plan.order(r)] for r in range(4)] == [list("abc"), list("bca"), list("cab"), list("abc")]


def _run(config: str, r: int, cpu_ms: float) -> AbRun:
    return AbRun(config=config, round=r, position=0, clicks=1000, non_2xx=0, clicks_per_s=500.0, server_cpu_ms=cpu_ms,
                 redis_cpu_ms=0.1, closed_p99_ms=10.0, redis_keys=10, redis_mb=1.0, shoppers=0)


def test_the_ratio_is_of_medians_and_its_interval_pairs_rounds() -> None:
    plan = AbPlan(configs=(AbConfig("a"), AbConfig("b")), rounds=3)
    result = AbResult(plan, "now", {"cpu": "x", "cores": "2", "isa": ""}, (0.0, 0.0, 0.0))
    result.runs = [_run("a", 0, 1.0), _run("a", 1, 2.0), _run("a", 2, 1.0),
                   _run("b", 0, 1.1), _run("b", 1, 2.2), _run("b", 2, 1.2)]
    a, b = compare_cpu(result)
    assert a.ratio == 1.0 and b.median == pytest.approx(1.2) and b.ratio == pytest.approx(1.2)
    assert min(b.paired) == pytest.approx(1.1) and max(b.paired) == pytest.approx(1.2)
    assert b.bootstrap is not None and 1.1 - 1e-9 <= b.bootstrap[0] <= b.bootstrap[1] <= 1.2 + 1e-9


def test_the_profile_table_gives_each_stage_its_share_and_its_part_of_the_cpu() -> None:
    plan = AbPlan(configs=(AbConfig("a"), AbConfig("b")), rounds=1, profile_s=5.0)
    result = AbResult(plan, "now", {"cpu": "x", "cores": "2", "isa": ""}, (0.0, 0.0, 0.0))
    result.runs = [replace(_run("a", 0, 1.0), profile={"request id": 0.01, "redis": 0.99}),
                   replace(_run("b", 0, 2.0), profile={"redis": 1.0})]
    md = markdown(result, "t", "cmd", "t.png")
    assert "| request id | 1.0 % (10 µs) | 0.0 % (0 µs) |" in md
    assert "| redis | 99.0 % (990 µs) | 100.0 % (2000 µs) |" in md
    result.plan = replace(plan, profile_s=0.0)
    assert "py-spy" not in markdown(result, "t", "cmd", "t.png")


def test_profile_stages_name_what_issue_23_added() -> None:
    def frame(path: str) -> str:
        return f"f ({path}:1)"

    assert stage_of([frame("uvicorn/x.py"), frame("/w/service/drift.py"), frame("prometheus_client/metrics.py")]) \
        == "metrics (prometheus_client)"  # the innermost frame of a stage wins
    assert stage_of([frame("uvicorn/x.py"), frame("/w/service/drift.py")]) == "drift histograms"
    assert stage_of([frame("/w/service/boundary.py"), frame("/w/service/request_id.py")]) == "request id"
    assert stage_of([frame("/w/service/store/window_store.py"), frame("/w/service/store/context_record.py")]) \
        == "context state (decode, batch)"


@pytest.mark.slow
def test_a_short_real_run_reports_both_configs_and_the_ratio(tmp_path_factory: pytest.TempPathFactory) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("needs wrk")
    model = tiny_model_dir(tmp_path_factory.getbasetemp())
    out = tmp_path_factory.mktemp("report")
    args = ["bench", "cpu-ab", "--config", "session=SI_CONTEXT_STATE=session", "--config", "full=SI_CONTEXT_STATE=full",
            "--ids", "--sessions", "200", "--rounds", "1", "--seconds", "2", "--warmup-s", "1", "--round-trip-s", "1",
            "--connections", "4", "--model-dir", str(model), "--name", "ab-test", "--out-dir", str(out)]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, (done.output, done.exception)
    md = (out / "ab-test.md").read_text()
    assert "| session |" in md and "| full |" in md and "vs session (medians)" in md
    written_by = next(line for line in md.splitlines() if line.startswith("Written by `session-intent bench cpu-ab "))
    assert "--config session=SI_CONTEXT_STATE=session --config full=SI_CONTEXT_STATE=full " in written_by
    assert " --ids " in written_by and " --rounds 1 " in written_by
    assert IDS_SCRIPT.name in md and (out / "ab-test.png").stat().st_size > 0
    rows = {row["config"]: row for row in csv.DictReader((out / "ab-test.csv").open())}
    assert set(rows) == {"session", "full"}
    for row in rows.values():
        # A 503 under a neighbour's load is possible on a shared machine: counted, and not a served click.
        assert float(row["server_cpu_ms"]) > 0 and int(row["clicks"]) > int(row["non_2xx"]), row
        assert float(row["round_trips_per_click"]) >= 0.9, row  # an evalsha per click, a write-behind per batch
        assert "evalsha" in json.loads(row["commands_per_click"])
    # The clicks carry user ids from a pool of 20 shoppers: the full context state keeps their histories.
    assert int(rows["session"]["shoppers"]) == 0 and 0 < int(rows["full"]["shoppers"]) <= 20, rows
