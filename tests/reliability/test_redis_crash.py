"""Redis SIGKILLed under Poisson load and restarted on its AOF: the short CI version of `bench chaos`."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.reliability.chaos import ChaosPlan, run_chaos
from bench.reliability.probe import fault_load

RSS_SLACK_MB = 50.0  # what the outage may add to the service's RSS: queues are bounded, nothing piles up


@pytest.mark.slow
def test_redis_sigkill_under_load_loses_no_acknowledged_click_with_appendfsync_always(model_dir: Path) -> None:
    load = fault_load(rate=100, sessions=100, duration_s=7, session_prefix="chaos", ids=True)  # context state too
    plan = ChaosPlan(appendfsync="always", load=load, kill_at_s=2, restart_at_s=4, model_dir=model_dir)
    result = run_chaos(plan)
    statuses = result.load.statuses()
    assert set(statuses) <= {200, 503}, statuses  # never a 500, and no click left without an answer
    assert statuses.get(503, 0) > 0 and result.unavailable_without_retry_after() == 0
    assert result.ready_red_during_outage()
    first_ok = result.first_ok_after_restart_s()
    assert first_ok is not None and first_ok < 2.0
    assert result.audit.acknowledged == statuses[200] and result.audit.lost == 0
    assert result.audit.context_lost == 0  # the context state, written by the same call, survives with the window
    assert result.rss_mb(*result.outage()) <= result.rss_mb(0, result.killed_at) + RSS_SLACK_MB
    assert result.tracebacks == 0
