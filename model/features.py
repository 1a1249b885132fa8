"""The one definition of the 16-dim action vector (docs/architecture.md §3), shared by training and serving.

numpy only: the serving image must not need torch to encode a window.

Layout of one vector (float32):
    0..11  seconds on the page, in the slot of the event's action; the other 11 slots are 0
    12     from_ad        sticky within a session: once true, true for the rest of it
    13     high_season    event month in `high_season_months`, in the shop's time zone
    14     weekend        Saturday or Sunday, in the shop's time zone
    15     working_hours  weekday and `working_hours[0] <= hour < working_hours[1]`
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

ACTIONS: tuple[str, ...] = (
    "category",
    "view_product",
    "home",
    "ask_question",
    "order",
    "contact",
    "add_cart",
    "view_cart",
    "search",
    "concerned",
    "account",
    "recommend",
)
FLAGS: tuple[str, ...] = ("from_ad", "high_season", "weekend", "working_hours")
SLOTS: tuple[str, ...] = ACTIONS + FLAGS
N_ACTIONS = len(ACTIONS)
VECTOR_DIM = len(SLOTS)
ACTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(ACTIONS)}
ADD_CART = ACTION_INDEX["add_cart"]
ORDER = ACTION_INDEX["order"]

MIN_DWELL_S = 1.0
MAX_DWELL_S = 600.0
# The newest event has no successor yet, so its dwell is unknown at serve time; training uses
# the same value for the last event of every prefix, so the model never sees what serving can't.
PROVISIONAL_DWELL_S = 1.0
# log1p(x) / log1p(600) on slots 0..11; applied inside the network (see model/training/nets.py), kept
# here so that the fingerprint and the network read one constant.
SCALE_DIVISOR = float(np.log1p(MAX_DWELL_S))
SCALING = "log1p(x)/log1p(600) on slots 0-11, inside the network"

# tzdb transitions fall on quarter hours in UTC, so one offset per 15-min bucket is exact.
_TZ_BUCKET_S = 900


@dataclass(frozen=True)
class FeatureConfig:
    """The shop-specific part of the encoding; stored in every model card."""

    timezone: str = "UTC"
    high_season_months: tuple[int, ...] = (11, 12)
    working_hours: tuple[int, int] = (9, 17)
    window: int = 10

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FeatureConfig:
        return cls(
            timezone=str(raw.get("timezone", "UTC")),
            high_season_months=tuple(int(m) for m in raw.get("high_season_months", (11, 12))),
            working_hours=(int(raw.get("working_hours", (9, 17))[0]), int(raw.get("working_hours", (9, 17))[1])),
            window=int(raw.get("window", 10)),
        )


@dataclass(frozen=True)
class EventLog:
    """Events of one or more sessions, grouped by session and in arrival order within each.

    actions  (E,) int   index into ACTIONS
    ts       (E,) float epoch seconds (UTC)
    from_ad  (E,) bool  as sent with the event (stickiness is applied by the encoder)
    starts   (S,) int   index of each session's first event; starts[0] == 0
    """

    actions: np.ndarray
    ts: np.ndarray
    from_ad: np.ndarray
    starts: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def session_of_event(self) -> np.ndarray:
        """(E,) session ordinal of each event."""
        lengths = np.diff(np.append(self.starts, len(self)))
        return np.repeat(np.arange(len(self.starts)), lengths)


def layout_fingerprint() -> str:
    """Hash of everything that fixes what a vector means; the model carries it, serving checks it."""
    layout = {
        "slots": SLOTS,
        "dwell_clip": [MIN_DWELL_S, MAX_DWELL_S],
        "provisional_dwell": PROVISIONAL_DWELL_S,
        "scaling": SCALING,
    }
    blob = json.dumps(layout, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def utc_offsets(ts: np.ndarray, tz_name: str) -> np.ndarray:
    """(E,) UTC offset in seconds of each instant in `tz_name`, one zoneinfo call per 15-min bucket."""
    if ts.size == 0:
        return np.zeros(0, dtype=np.int64)
    zone = _zone(tz_name)
    buckets = np.floor(ts / _TZ_BUCKET_S).astype(np.int64)
    unique, inverse = np.unique(buckets, return_inverse=True)
    offsets = np.array(
        [
            int(datetime.fromtimestamp(int(b) * _TZ_BUCKET_S, UTC).astimezone(zone).utcoffset().total_seconds())  # type: ignore[union-attr]
            for b in unique
        ],
        dtype=np.int64,
    )
    return offsets[inverse.reshape(-1)]


def time_flags(ts: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """(E, 3) float32 high_season, weekend, working_hours in the shop's local time."""
    local = np.floor(ts).astype(np.int64) + utc_offsets(ts, config.timezone)
    days = np.floor_divide(local, 86400)
    hour = np.floor_divide(local - days * 86400, 3600)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday == 0
    month = local.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64) % 12 + 1
    high_season = np.isin(month, np.asarray(config.high_season_months, dtype=np.int64))
    weekend = weekday >= 5
    start, end = config.working_hours
    working = (~weekend) & (hour >= start) & (hour < end)
    return np.stack([high_season, weekend, working], axis=1).astype(np.float32)


def dwell_seconds(log: EventLog) -> np.ndarray:
    """(E,) seconds to the session's next event, clipped to [1, 600]; provisional for each last event.

    A successor with an older ts (out-of-order arrival) gives a gap of 0, clipped like any other.
    """
    n = len(log)
    gaps = np.full(n, PROVISIONAL_DWELL_S, dtype=np.float64)
    if n > 1:
        gaps[:-1] = np.maximum(np.diff(log.ts.astype(np.float64)), 0.0)
    ends = np.append(log.starts[1:], n) - 1
    gaps[ends] = PROVISIONAL_DWELL_S
    return np.clip(gaps, MIN_DWELL_S, MAX_DWELL_S)


def sticky_from_ad(log: EventLog) -> np.ndarray:
    """(E,) bool: true from the first from_ad event of a session to its end."""
    session = log.session_of_event()
    flagged = np.where(log.from_ad.astype(bool), np.arange(len(log)), len(log))
    first_flag = np.full(len(log.starts), len(log), dtype=np.int64)
    np.minimum.at(first_flag, session, flagged)
    return np.arange(len(log)) >= first_flag[session]


def encode_events(log: EventLog, config: FeatureConfig) -> np.ndarray:
    """(E, 16) float32 vectors with real dwell times (provisional only for each session's last)."""
    n = len(log)
    vectors = np.zeros((n, VECTOR_DIM), dtype=np.float32)
    actions = log.actions.astype(np.int64)
    if n and (actions.min() < 0 or actions.max() >= N_ACTIONS):
        raise ValueError(f"action index out of range 0..{N_ACTIONS - 1}")
    vectors[np.arange(n), actions] = dwell_seconds(log)
    vectors[:, N_ACTIONS] = sticky_from_ad(log)
    vectors[:, N_ACTIONS + 1 :] = time_flags(log.ts.astype(np.float64), config)
    return vectors


def provisional(vectors: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Copy of `vectors` (E, 16) with each action slot set to the provisional dwell."""
    out = vectors.copy()
    out[:, :N_ACTIONS] = 0.0
    out[np.arange(len(out)), actions.astype(np.int64)] = PROVISIONAL_DWELL_S
    return out


def prefix_windows(log: EventLog, config: FeatureConfig, rows: np.ndarray | None = None) -> np.ndarray:
    """(P, N, 16) float32: the window of each prefix that ends at event `rows` (default: every event).

    Oldest first, zero-padded at the front; the prefix's newest event carries the provisional
    dwell exactly as it would at serve time.
    """
    n_window = config.window
    vectors = encode_events(log, config)
    ends = np.arange(len(log)) if rows is None else np.asarray(rows, dtype=np.int64)
    session_start = log.starts[log.session_of_event()][ends]
    offsets = np.arange(-n_window + 1, 1)
    idx = ends[:, None] + offsets[None, :]  # (P, N)
    windows = vectors[np.clip(idx, 0, None)]  # (P, N, 16), one allocation
    windows[idx < session_start[:, None]] = 0.0  # front padding, in place
    windows[:, -1, :] = provisional(vectors[ends], log.actions[ends])
    return windows


def encode_window(
    actions: np.ndarray, ts: np.ndarray, from_ad: np.ndarray, config: FeatureConfig
) -> np.ndarray:
    """(N, 16) window of one live session from its stored events (oldest first), as serving needs."""
    log = EventLog(
        actions=np.asarray(actions, dtype=np.int64),
        ts=np.asarray(ts, dtype=np.float64),
        from_ad=np.asarray(from_ad, dtype=bool),
    )
    if len(log) == 0:
        return np.zeros((config.window, VECTOR_DIM), dtype=np.float32)
    return prefix_windows(log, config, rows=np.array([len(log) - 1]))[0]


# One live session's stored events, oldest first: actions (k,) int, ts (k,) float epoch s, from_ad (k,) bool.
RawWindow = tuple[np.ndarray, np.ndarray, np.ndarray]


def encode_windows(windows: Sequence[RawWindow], config: FeatureConfig) -> np.ndarray:
    """(B, N, 16): `encode_window` of each raw window, in one vectorised pass over all their events.

    The windows become the sessions of one EventLog and each is cut at its newest event, so dwell,
    stickiness, padding and time zones follow exactly the code path of `encode_window`; serving calls
    this once per engine batch, off the event loop. Empty windows are all zero, as in `encode_window`.
    """
    out = np.zeros((len(windows), config.window, VECTOR_DIM), dtype=np.float32)
    filled = [i for i, (actions, _, _) in enumerate(windows) if len(actions)]
    if not filled:
        return out
    lengths = np.array([len(windows[i][0]) for i in filled], dtype=np.int64)
    ends = np.cumsum(lengths)
    log = EventLog(
        actions=np.concatenate([np.asarray(windows[i][0], dtype=np.int64) for i in filled]),
        ts=np.concatenate([np.asarray(windows[i][1], dtype=np.float64) for i in filled]),
        from_ad=np.concatenate([np.asarray(windows[i][2], dtype=bool) for i in filled]),
        starts=ends - lengths,
    )
    out[filled] = prefix_windows(log, config, rows=ends - 1)
    return out


def action_index(name: str) -> int:
    """Slot of an action name; ValueError that lists the valid names otherwise."""
    try:
        return ACTION_INDEX[name]
    except KeyError:
        raise ValueError(f"unknown action {name!r}; expected one of: {', '.join(ACTIONS)}") from None
