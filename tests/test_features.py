"""Property tests of the one feature encoding (model/features.py)."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from model.features import (
    MAX_DWELL_S,
    N_ACTIONS,
    PROVISIONAL_DWELL_S,
    VECTOR_DIM,
    EventLog,
    FeatureConfig,
    encode_events,
    encode_window,
    encode_windows,
    layout_fingerprint,
    prefix_windows,
    time_flags,
)

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Shanghai", "Australia/Lord_Howe", "Asia/Kolkata"]
# 2016-01-01 .. 2030-01-01 in epoch seconds.
TS = st.floats(min_value=1_451_606_400, max_value=1_893_456_000, allow_nan=False)


@st.composite
def session_logs(draw: st.DrawFn, max_sessions: int = 4, max_len: int = 30) -> EventLog:
    lengths = draw(st.lists(st.integers(1, max_len), min_size=1, max_size=max_sessions))
    total = sum(lengths)
    actions = draw(st.lists(st.integers(0, N_ACTIONS - 1), min_size=total, max_size=total))
    start = draw(TS)
    # Gaps include out-of-order (negative) arrivals and long pauses past the 600 s cap.
    gaps = draw(st.lists(st.floats(-120, 4000, allow_nan=False), min_size=total, max_size=total))
    from_ad = draw(st.lists(st.booleans(), min_size=total, max_size=total))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return EventLog(
        actions=np.array(actions, dtype=np.int64),
        ts=start + np.cumsum(np.array(gaps)),
        from_ad=np.array(from_ad, dtype=bool),
        starts=starts,
    )


@settings(max_examples=200, deadline=None)
@given(session_logs())
def test_exactly_one_action_slot_per_event_with_clipped_dwell(log: EventLog) -> None:
    vectors = encode_events(log, FeatureConfig())
    action_part = vectors[:, :N_ACTIONS]
    assert vectors.shape == (len(log), VECTOR_DIM)
    assert ((action_part != 0).sum(axis=1) == 1).all()
    assert (action_part[np.arange(len(log)), log.actions] >= 1.0).all()
    assert action_part.max() <= MAX_DWELL_S
    ends = np.append(log.starts[1:], len(log)) - 1
    assert (action_part[ends, log.actions[ends]] == PROVISIONAL_DWELL_S).all()


@settings(max_examples=200, deadline=None)
@given(session_logs(), st.integers(1, 12))
def test_padding_rows_are_zero_and_real_rows_are_not(log: EventLog, window: int) -> None:
    windows = prefix_windows(log, FeatureConfig(window=window))
    position = np.arange(len(log)) - log.starts[log.session_of_event()]
    n_real = np.minimum(position + 1, window)
    for row, real in zip(windows, n_real, strict=True):
        assert not row[: window - real].any()
        assert (row[window - real :, :N_ACTIONS] != 0).sum(axis=1).tolist() == [1] * int(real)


def _reference_flags(ts: float, config: FeatureConfig) -> list[float]:
    # Whole seconds, as the encoder does: fromtimestamp would round 23:59:59.9999998 up to midnight.
    local = datetime.fromtimestamp(math.floor(ts), ZoneInfo(config.timezone))
    weekend = local.weekday() >= 5
    working = not weekend and config.working_hours[0] <= local.hour < config.working_hours[1]
    return [float(local.month in config.high_season_months), float(weekend), float(working)]


@settings(max_examples=300, deadline=None)
@given(st.lists(TS, min_size=1, max_size=40), st.sampled_from(ZONES))
def test_time_flags_match_zoneinfo_across_zones_and_dst(ts: list[float], zone: str) -> None:
    config = FeatureConfig(timezone=zone)
    got = time_flags(np.array(ts), config)
    expected = np.array([_reference_flags(t, config) for t in ts])
    np.testing.assert_array_equal(got, expected)


def test_dst_boundary_moves_working_hours() -> None:
    # Berlin leaves DST on 2025-10-26 at 01:00 UTC: 07:30 UTC is 09:30 local on the Monday before
    # (UTC+2) but 08:30 local on the Monday after (UTC+1).
    config = FeatureConfig(timezone="Europe/Berlin")
    before = datetime.fromisoformat("2025-10-20T07:30:00+00:00").timestamp()
    after = datetime.fromisoformat("2025-10-27T07:30:00+00:00").timestamp()
    flags = time_flags(np.array([before, after]), config)
    assert flags[:, 2].tolist() == [1.0, 0.0]


@settings(max_examples=150, deadline=None)
@given(session_logs(max_sessions=1, max_len=40), st.integers(1, 12), st.sampled_from(ZONES))
def test_serving_event_by_event_matches_training_at_once(log: EventLog, window: int, zone: str) -> None:
    """Serving keeps only the last N events, with from_ad made sticky as they arrive (the Lua script)."""
    config = FeatureConfig(timezone=zone, window=window)
    at_once = prefix_windows(log, config)
    sticky = np.logical_or.accumulate(log.from_ad)
    for t in range(len(log)):
        lo = max(0, t - window + 1)
        served = encode_window(log.actions[lo : t + 1], log.ts[lo : t + 1], sticky[lo : t + 1], config)
        np.testing.assert_array_equal(served, at_once[t])


def test_from_ad_is_sticky_within_a_session_only() -> None:
    log = EventLog(
        actions=np.zeros(5, dtype=np.int64),
        ts=np.arange(5, dtype=np.float64) * 10 + 1_700_000_000,
        from_ad=np.array([False, True, False, False, False]),
        starts=np.array([0, 3]),
    )
    assert encode_events(log, FeatureConfig())[:, N_ACTIONS].tolist() == [0, 1, 1, 0, 0]


def test_fingerprint_is_stable_and_encodes_the_layout() -> None:
    assert layout_fingerprint() == layout_fingerprint()
    assert len(layout_fingerprint()) == 16


def test_empty_session_window_is_all_zero() -> None:
    empty = np.zeros(0)
    window = encode_window(empty, empty, empty, FeatureConfig(window=7))
    assert window.shape == (7, VECTOR_DIM)
    assert not window.any()


@st.composite
def raw_windows(draw: st.DrawFn, max_windows: int = 12, max_len: int = 14) -> list[tuple[np.ndarray, ...]]:
    """Stored windows as serving reads them: unrelated sessions, some empty, some longer than N."""
    out = []
    for _ in range(draw(st.integers(0, max_windows))):
        n = draw(st.integers(0, max_len))
        actions = np.array(draw(st.lists(st.integers(0, N_ACTIONS - 1), min_size=n, max_size=n)), dtype=np.int64)
        gaps = draw(st.lists(st.floats(-120, 4000, allow_nan=False), min_size=n, max_size=n))
        ts = draw(TS) + np.cumsum(np.array(gaps, dtype=np.float64))
        from_ad = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
        out.append((actions, ts, from_ad))
    return out


@settings(max_examples=200, deadline=None)
@given(raw_windows(), st.integers(1, 12), st.sampled_from(ZONES))
def test_batch_encoding_equals_encode_window_exactly(windows: list[tuple[np.ndarray, ...]], window: int,
                                                     zone: str) -> None:
    """The engine thread encodes a whole batch at once; every row must be bit-identical to encode_window."""
    config = FeatureConfig(timezone=zone, window=window)
    batch = encode_windows(windows, config)  # type: ignore[arg-type]
    assert batch.shape == (len(windows), window, VECTOR_DIM) and batch.dtype == np.float32
    for row, (actions, ts, from_ad) in zip(batch, windows, strict=True):
        np.testing.assert_array_equal(row, encode_window(actions, ts, from_ad, config))
