"""bench reload's attribution of clicks to swaps: a click in flight during a swap is the swap's (no servers)."""

from __future__ import annotations

from pathlib import Path

from bench.load.clicks import Click, LoadRecord
from bench.rollout.reload import ReloadPlan, ReloadResult, Swap


def _click(t: float, latency_s: float, status: int = 200) -> Click:
    return Click(t=t, latency_s=latency_s, status=status, retry_after=None, session="s", event_id=f"e{t}",
                 event_index=None)


def _result(clicks: list[Click]) -> ReloadResult:
    swap = Swap(version="1", start_s=15.0, end_s=15.3, status=200)
    return ReloadResult(ReloadPlan(model_dir=Path(".")), LoadRecord(clicks=clicks), [swap], 100.0, 100.0, {200: 1})


def test_a_click_sent_before_the_admin_call_and_answered_during_it_is_the_swaps() -> None:
    stalled = _click(14.8, 0.4)  # sent 0.2 s before the call, answered inside the swap's window
    assert _result([stalled]).in_swap(stalled) == 0


def test_clicks_answered_before_the_call_or_sent_after_the_margin_are_steady() -> None:
    before, after = _click(14.0, 0.01), _click(15.6, 0.01)  # the window ends at 15.3 + 0.25 s
    result = _result([before, after])
    assert result.in_swap(before) is None and result.in_swap(after) is None
    assert result.steady_ms().size == 2


def test_a_503_in_flight_during_the_swap_counts_against_it_not_against_steady() -> None:
    refused = _click(14.9, 0.2, status=503)
    result = _result([refused, _click(10.0, 0.01)])
    assert result.non_2xx(0) == 1 and result.non_2xx(None) == 0 and result.non_2xx() == 1
