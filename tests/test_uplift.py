"""`session-intent uplift` on rows with a known effect, from an exported file and from a real redis-server."""

from __future__ import annotations

import random
from pathlib import Path

import redis
from typer.testing import CliRunner

from cli.main import app
from model.evaluation.uplift import read_rows, uplift, write_rows
from service.store.keys import KeyScheme

T0 = 1_764_000_000.0


def rows_with(n: int, p_treat: float, p_hold: float, seed: int = 0) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for i in range(n):
        arm = "hold" if i % 2 else "treat"
        bought = rng.random() < (p_hold if arm == "hold" else p_treat)
        rows.append({"session": f"s{i}", "event_index": 2, "ts": T0 + 86400 * (i % 3), "risk": 0.9, "arm": arm,
                     "policy": "budget:0.1", "model": "m", "outcome": "order" if bought else "expired",
                     "order_ts": T0 + 5 if bought else None})
    rows.append({**rows[0], "session": "live", "outcome": "pending"})
    return rows


def test_a_known_effect_is_inside_the_ci_and_no_effect_covers_zero() -> None:
    found = uplift(rows_with(8000, 0.30, 0.20), n_boot=1000)
    assert found["n_pending"] == 1 and found["treat"]["n"] + found["hold"]["n"] == 8000
    assert found["ci_low"] < 0.10 < found["ci_high"] and found["ci_low"] > 0
    assert abs(found["nnt"] - 10) < 3 and len(found["per_day"]) == 3
    null = uplift(rows_with(8000, 0.20, 0.20, seed=1), n_boot=1000)
    assert null["ci_low"] < 0 < null["ci_high"] and null["nnt_range"] is None


def test_the_command_reads_an_exported_file_and_redis(tmp_path: Path, redis_url: str) -> None:
    exported = tmp_path / "alerts.csv"
    write_rows(rows_with(400, 0.5, 0.1), exported)
    done = CliRunner().invoke(app, ["uplift", "--input", str(exported), "-o", str(tmp_path / "file")])
    assert done.exit_code == 0, done.output
    assert {p.name for p in (tmp_path / "file").iterdir()} == {"uplift.md", "uplift.csv", "uplift.png"}
    assert "Difference (treat − hold)" in (tmp_path / "file" / "uplift.md").read_text()

    keys = KeyScheme()
    client = redis.Redis.from_url(redis_url)
    client.hset(keys.outcomes("r-1"), mapping={"2": f"{T0}|0.9|treat|budget:0.1|m", "o2": f"{int(T0 * 1000) + 9}|4"})
    client.hset(keys.outcomes("r-2"), mapping={"3": f"{T0}|0.8|hold|budget:0.1|m"})
    client.hset(keys.session("r-3").meta, "c", 4)  # live: its alert is pending
    client.hset(keys.outcomes("r-3"), mapping={"1": f"{T0}|0.8|hold|budget:0.1|m"})
    done = CliRunner().invoke(app, ["uplift", "--redis-url", redis_url, "-o", str(tmp_path / "redis"),
                                    "--export", str(tmp_path / "export.csv")])
    assert done.exit_code == 0, done.output
    by_session = {r["session"]: r["outcome"] for r in read_rows(tmp_path / "export.csv")}
    assert by_session == {"r-1": "order", "r-2": "expired", "r-3": "pending"}


def clustered_rows(sessions: int, alerts_per_session: int, seed: int = 0) -> list[dict[str, object]]:
    """Each session's alerts share one outcome (one shopper, one decision): the extreme of clustering."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for i in range(sessions):
        arm = "hold" if i % 2 else "treat"
        bought = rng.random() < (0.2 if arm == "hold" else 0.3)
        rows += [{"session": f"s{i}", "event_index": 2 + 3 * k, "ts": T0, "risk": 0.9, "arm": arm,
                  "policy": "budget:0.1", "model": "m", "outcome": "order" if bought else "expired",
                  "order_ts": T0 + 5 if bought else None} for k in range(alerts_per_session)]
    return rows


def test_the_bootstrap_resamples_sessions_so_clustered_alerts_widen_the_ci() -> None:
    clustered = clustered_rows(2000, alerts_per_session=4)
    by_session = uplift(clustered, n_boot=1000)
    # The same alerts, each counted as its own session: what resampling alerts would assume.
    as_alerts = uplift([{**r, "session": f"{r['session']}-{r['event_index']}"} for r in clustered], n_boot=1000)
    assert by_session["difference"] == as_alerts["difference"]
    assert by_session["treat"]["sessions"] == 1000 and by_session["treat"]["n"] == 4000
    width = by_session["ci_high"] - by_session["ci_low"]
    naive = as_alerts["ci_high"] - as_alerts["ci_low"]
    # 4 perfectly correlated alerts per session carry one session's information: the CI is ~√4 = 2× wider.
    assert 1.6 < width / naive < 2.5, (width, naive)


def test_one_alert_per_session_gives_the_alert_bootstrap() -> None:
    rows = rows_with(4000, 0.3, 0.2)
    found = uplift(rows, n_boot=1000)
    se = (0.3 * 0.7 / 2000 + 0.2 * 0.8 / 2000) ** 0.5
    assert abs((found["ci_high"] - found["ci_low"]) - 2 * 1.96 * se) < 0.3 * 2 * 1.96 * se
