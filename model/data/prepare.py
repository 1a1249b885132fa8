"""Raw clickstream export → the common event CSV `session_id,ts,action,from_ad` (docs/architecture.md §5).

Pipeline, one public function per step (the CLI composes them to report progress):

    read_raw     csv module, one pass, rows → integer codes; unmapped types skipped and counted,
                 events outside the source's ts range dropped and counted
    sessionise   numpy: stable sort by (user, ts), new session after a gap > `gap_minutes`
                 (or the source's own session column), ids `<user_id>_<n>` with n from 0
    summarise    the stats of the data README / stats.json
    write_common_csv

Timestamps are kept as int64 ticks of 1/scale s (scale 1 for integer epoch seconds, 1000 for
integer ms, 10**6 otherwise) so that gap and range comparisons are exact: a 30-min gap between
two ms timestamps is exactly 1_800_000 ticks, never 1800.0000000002 s.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from array import array
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from model.data.sources import Column, SourceSpec, parse_flags, parse_ticks
from model.features import ACTIONS, ADD_CART, ORDER, action_index

logger = logging.getLogger(__name__)

HEADER = ("session_id", "ts", "action", "from_ad")
MIN_EVENTS, MAX_EVENTS = 3, 250  # the curation of docs/architecture.md §4
_PROGRESS_EVERY = 1 << 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SERVICE_SESSION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


@dataclass
class RawEvents:
    """Kept events in read order. keys[key_code[i]] is the user id (or the source's session id)."""

    keys: list[str]
    key_code: np.ndarray  # (E,) int64
    ticks: np.ndarray  # (E,) int64, epoch time in 1/scale s
    scale: int
    actions: np.ndarray  # (E,) int64 index into ACTIONS
    from_ad: np.ndarray  # (E,) int8: 1, 0, or -1 for unknown
    rows_read: int
    raw_event_types: dict[str, int]
    skipped: dict[str, int]
    dropped_outside_ts_range: int
    malformed: dict[str, int]


@dataclass
class Sessions:
    """Events grouped by session, ts ascending (stable) within one; sessions by first user appearance."""

    ids: list[str]  # (S,)
    starts: np.ndarray  # (S,) index of each session's first event
    ticks: np.ndarray  # (E,)
    scale: int
    actions: np.ndarray  # (E,)
    from_ad: np.ndarray  # (E,) int8

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(np.append(self.starts, len(self.ticks)))


@dataclass(frozen=True)
class SessionGroupStats:
    sessions: int
    events: int
    mean_events_per_session: float
    median_events_per_session: float
    pct_sessions_with_add_cart: float
    pct_sessions_with_order: float
    pct_sessions_cart_abandoned: float


@dataclass(frozen=True)
class PrepareStats:
    """The shape of the data README's stats.json, plus `rows_read`, `malformed` and `timezone`."""

    format: str
    session_mode: str
    gap_minutes: float | None
    inputs: list[str]
    raw_event_types: dict[str, int]
    skipped: dict[str, int]
    dropped_outside_ts_range: int
    all_sessions: SessionGroupStats
    sessions_3_to_250_events: SessionGroupStats
    action_counts: dict[str, int]
    ts_min_utc: str | None
    ts_max_utc: str | None
    rows_read: int
    malformed: dict[str, int]
    timezone: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resolve(col: Column | None, header: list[str] | None, spec: SourceSpec) -> int:
    if col is None:
        return -1
    if isinstance(col, int):
        return col
    names = header if header is not None else list(spec.columns or ())
    if col not in names:
        where = "header" if header is not None else f"columns of source {spec.name!r}"
        raise ValueError(f"column {col!r} not in the {where}: {names}")
    return names.index(col)


def read_raw(spec: SourceSpec, paths: Sequence[Path], on_rows: Callable[[int], None] | None = None) -> RawEvents:
    """Read every file with `spec`; on_rows(rows read so far) is called every 65,536 rows and at the end."""
    key_codes: dict[str, int] = {}
    type_codes: dict[str, int] = {}
    key_code, type_code = array("q"), array("q")
    ts_text: list[str] = []
    ad_text: list[str] = []
    malformed = {"too_few_columns": 0, "empty_id": 0}
    rows = 0
    key_col = spec.session_col if spec.session_col is not None else spec.user_col
    for path in paths:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: a BOM is no part of a name
            reader = csv.reader(handle, delimiter=spec.delimiter)
            header = next(reader, None) if spec.has_header else None
            if spec.has_header and header is None:
                logger.warning("%s is empty", path)
                continue
            ki, ti, ei = (_resolve(c, header, spec) for c in (key_col, spec.ts_col, spec.event_col))
            ai = _resolve(spec.from_ad_col, header, spec)
            width = max(ki, ti, ei, ai) + 1
            for row in reader:
                rows += 1
                if not rows & (_PROGRESS_EVERY - 1) and on_rows is not None:
                    on_rows(rows)
                if len(row) < width:
                    if row:  # a blank line is no event and no error
                        malformed["too_few_columns"] += 1
                    continue
                key = row[ki]
                if not key:
                    malformed["empty_id"] += 1
                    continue
                key_code.append(key_codes.setdefault(key, len(key_codes)))
                type_code.append(type_codes.setdefault(row[ei], len(type_codes)))
                ts_text.append(row[ti])
                if ai >= 0:
                    ad_text.append(row[ai])
    if on_rows is not None:
        on_rows(rows)

    codes = np.frombuffer(type_code, dtype=np.int64) if type_code else np.zeros(0, np.int64)
    type_names = list(type_codes)
    type_counts = np.bincount(codes, minlength=len(type_names))
    raw_event_types = {name: int(type_counts[i]) for i, name in enumerate(type_names)}
    to_action = np.array(
        [action_index(spec.action_map[t]) if t in spec.action_map else -1 for t in type_names], dtype=np.int64
    )
    actions = to_action[codes] if codes.size else np.zeros(0, np.int64)
    skipped = {t: n for t, n in raw_event_types.items() if t not in spec.action_map}
    if skipped:
        logger.warning("skipped %d rows of unmapped event types: %s", sum(skipped.values()), skipped)

    ticks, scale, ts_ok = parse_ticks(ts_text, spec.ts_unit, spec.timezone)
    malformed["bad_timestamp"] = int((~ts_ok & (actions >= 0)).sum())
    keep = ts_ok & (actions >= 0)
    in_range = np.ones_like(keep)
    if spec.ts_range is not None:
        lo, hi = spec.ts_range
        in_range = (ticks >= lo * scale) & (ticks < hi * scale)
    dropped = int((keep & ~in_range).sum())
    keep &= in_range
    from_ad = parse_flags(ad_text) if spec.from_ad_col is not None else np.full(len(ts_text), -1, np.int8)
    keys_np = np.frombuffer(key_code, dtype=np.int64) if key_code else np.zeros(0, np.int64)
    return RawEvents(
        keys=list(key_codes),
        key_code=keys_np[keep],
        ticks=ticks[keep],
        scale=scale,
        actions=actions[keep],
        from_ad=from_ad[keep],
        rows_read=rows,
        raw_event_types=raw_event_types,
        skipped=skipped,
        dropped_outside_ts_range=dropped,
        malformed={reason: n for reason, n in malformed.items() if n},
    )


def sessionise(events: RawEvents, spec: SourceSpec) -> Sessions:
    """Group into sessions: by the source's session column, or per user split on a gap > gap_minutes.

    Sessions come in order of their user's first row; ids are `<user_id>_<n>`, n = 0, 1, ...
    per user in time order. With a session column the source's id is used as it is.
    """
    order = np.argsort(events.ticks, kind="stable")
    order = order[np.argsort(events.key_code[order], kind="stable")]
    code, ticks = events.key_code[order], events.ticks[order]
    new = np.ones(len(order), dtype=bool)
    if len(order):
        new[1:] = code[1:] != code[:-1]
    keys = events.keys
    starts = np.flatnonzero(new)
    if spec.session_col is not None:
        ids = [keys[c] for c in code[starts].tolist()]
    else:
        gap_ticks = round(spec.gap_minutes * 60 * events.scale)
        new[1:] |= np.diff(ticks) > gap_ticks
        starts = np.flatnonzero(new)
        user = code[starts]
        first_of_user = np.ones(len(starts), dtype=bool)
        first_of_user[1:] = user[1:] != user[:-1]
        ordinal = np.arange(len(starts))
        n = ordinal - np.maximum.accumulate(np.where(first_of_user, ordinal, 0))
        ids = [f"{keys[c]}_{k}" for c, k in zip(user.tolist(), n.tolist(), strict=True)]
    unsafe = sum(1 for key in keys if not _SERVICE_SESSION_ID.fullmatch(key))
    if unsafe:
        logger.warning("%d ids have characters the service refuses in a session_id", unsafe)
    return Sessions(ids, starts, ticks, events.scale, events.actions[order], events.from_ad[order])


def _group_stats(lengths: np.ndarray, any_cart: np.ndarray, any_order: np.ndarray) -> SessionGroupStats:
    count = len(lengths)

    def pct(mask: np.ndarray) -> float:
        return round(100.0 * float(mask.sum()) / count, 2) if count else 0.0

    return SessionGroupStats(
        sessions=count,
        events=int(lengths.sum()),
        mean_events_per_session=round(float(lengths.mean()), 2) if count else 0.0,
        median_events_per_session=round(float(np.median(lengths)), 2) if count else 0.0,
        pct_sessions_with_add_cart=pct(any_cart),
        pct_sessions_with_order=pct(any_order),
        pct_sessions_cart_abandoned=pct(any_cart & ~any_order),
    )


def _utc_text(tick: int, scale: int) -> str:
    return (_EPOCH + timedelta(microseconds=tick * 1_000_000 // scale)).isoformat()


def summarise(sessions: Sessions, events: RawEvents, spec: SourceSpec, inputs: Sequence[Path]) -> PrepareStats:
    """The stats of the data README, for all sessions and for those with 3–250 events."""
    lengths = sessions.lengths
    any_cart = any_order = np.zeros(0, dtype=bool)
    if len(lengths):
        any_cart = np.add.reduceat((sessions.actions == ADD_CART).astype(np.int64), sessions.starts) > 0
        any_order = np.add.reduceat((sessions.actions == ORDER).astype(np.int64), sessions.starts) > 0
    curated = (lengths >= MIN_EVENTS) & (lengths <= MAX_EVENTS)
    action_counts = np.bincount(sessions.actions, minlength=len(ACTIONS))
    ranked = sorted((i for i in range(len(ACTIONS)) if action_counts[i]), key=lambda i: -action_counts[i])
    has_ts = len(sessions.ticks) > 0
    return PrepareStats(
        format=spec.name,
        session_mode=spec.session_mode,
        gap_minutes=spec.gap_minutes if spec.session_col is None else None,
        inputs=[str(p) for p in inputs],
        raw_event_types=events.raw_event_types,
        skipped=events.skipped,
        dropped_outside_ts_range=events.dropped_outside_ts_range,
        all_sessions=_group_stats(lengths, any_cart, any_order),
        sessions_3_to_250_events=_group_stats(lengths[curated], any_cart[curated], any_order[curated]),
        action_counts={ACTIONS[i]: int(action_counts[i]) for i in ranked},
        ts_min_utc=_utc_text(int(sessions.ticks.min()), sessions.scale) if has_ts else None,
        ts_max_utc=_utc_text(int(sessions.ticks.max()), sessions.scale) if has_ts else None,
        rows_read=events.rows_read,
        malformed=events.malformed,
        timezone=spec.timezone,
    )


def write_common_csv(sessions: Sessions, path: Path) -> None:
    """Write the common CSV, creating parent dirs; via a temp file so a crash leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if sessions.scale == 1:
        ts_out: list[Any] = sessions.ticks.tolist()
    else:
        digits = len(str(sessions.scale)) - 1
        ts_out = [f"{t:.{digits}f}" for t in (sessions.ticks / sessions.scale).tolist()]
    sid = np.repeat(np.array(sessions.ids, dtype=object), sessions.lengths).tolist()
    names = np.array(ACTIONS, dtype=object)[sessions.actions].tolist()
    flags = np.array(["", "0", "1"], dtype=object)[sessions.from_ad.astype(np.int64) + 1].tolist()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(zip(sid, ts_out, names, flags, strict=True))
    os.replace(tmp, path)


def prepare(
    spec: SourceSpec,
    inputs: Sequence[Path],
    output: Path | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> PrepareStats:
    """Read, sessionise, and (if `output`) write the common CSV; return the stats."""
    events = read_raw(spec, inputs, on_rows)
    sessions = sessionise(events, spec)
    if output is not None:
        write_common_csv(sessions, output)
    return summarise(sessions, events, spec, inputs)
