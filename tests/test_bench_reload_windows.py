"""bench reload: a click in flight during a swap is the swap's; a 503 episode is put down to a stall (no servers)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.load.clicks import Click, LoadRecord
from bench.rollout.reload import ReloadPlan, ReloadResult, Swap
from bench.rollout.reload_diagnosis import diagnosis_lines, episodes
from bench.rollout.server_samples import ServerSample


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


def _sample(at: float, scrape_s: float = 0.002, gc2_s: float = 0.0) -> ServerSample:
    return ServerSample(at=at, scrape_s=scrape_s, in_flight=3, loop_lag_s=0.001, gc_pause_s=(0.0, 0.0, gc2_s),
                        gc_count=(0.0, 0.0, 0.0), shadow_batches=0.0)


def test_503s_after_a_late_generator_are_the_generators_and_after_a_slow_scrape_the_services() -> None:
    burst = [_click(5.0 + i * 0.001, 0.25) for i in range(5)]
    burst = [dataclasses.replace(c, late_s=0.2) for c in burst] + [dataclasses.replace(_click(5.1, 0.2, 503),
                                                                                       late_s=0.19)]
    stalled = [_click(20.0, 0.3, 503)]
    result = _result([*burst, *stalled, _click(10.0, 0.01)])
    result.load.started = 100.0
    result.server = [_sample(100.0 + t / 10) for t in range(250)]
    result.server[199] = _sample(119.9, scrape_s=0.3, gc2_s=0.12)  # the service's own stall, a gen-2 collection
    result.server[200:] = [dataclasses.replace(s, gc_pause_s=(0.0, 0.0, 0.12)) for s in result.server[200:]]
    first, second = episodes(result)
    assert (first.start_s, first.non_2xx, first.blame()) == (5.1, 1, "generator")
    assert second.blame() == "service GC" and second.server_gc2_ms == 120.0 and second.server_scrape_ms == 300.0
    assert "whose stall" in "\n".join(diagnosis_lines(result))
