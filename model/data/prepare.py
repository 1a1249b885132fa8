"""Raw clickstream export → the common event CSV `session_id,ts,action,from_ad` (docs/architecture.md §5).

Pipeline, one public function per step (the CLI composes them to report progress), all in Polars
(docs/data.md "Engine"):

    read_raw     model/data/raw_events.py: scan CSV/Parquet (model/data/raw_scan.py); rows → integer
                 codes; unmapped types skipped and counted, events outside the ts range dropped
    sessionise   sort by (user's first row, ts, row), new session after a gap > `gap_minutes`
                 (or the source's own session column), ids `<user_id>_<n>` with n from 0
    summarise    the stats of the data README / stats.json
    write_common_csv

Timestamps are kept as int64 ticks of 1/scale s (scale 1 for integer epoch seconds, 1000 for
integer ms, 10**6 otherwise) so that gap and range comparisons are exact: a 30-min gap between
two ms timestamps is exactly 1_800_000 ticks, never 1800.0000000002 s.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from model.data.raw_events import RawEvents, read_raw
from model.data.raw_scan import ID_COLUMNS
from model.data.sources import SourceSpec
from model.features import ACTIONS, ADD_CART, ORDER

logger = logging.getLogger(__name__)

HEADER = ("session_id", "ts", "action", "from_ad")
ID_HEADER = ("user_id", "item_id", "category_id")  # optional, after HEADER: model/context.py needs them
MIN_EVENTS, MAX_EVENTS = 3, 250  # the curation of docs/architecture.md §4
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SERVICE_SESSION_ID = r"^[A-Za-z0-9_.:-]{1,128}$"


@dataclass
class Sessions:
    """Events grouped by session, ts ascending (stable) within one; sessions by first user appearance.

    frame: key (categorical user or session id), nth (i32 n of `<user_id>_<n>`, null with a session
           column), ticks (i64), action (i8), from_ad (i8), and user/item/cat where the source has them;
           the id text is built only when written
    """

    frame: pl.DataFrame
    starts: np.ndarray  # (S,) index of each session's first event
    scale: int

    @property
    def ticks(self) -> np.ndarray:
        return self.frame["ticks"].to_numpy()

    @property
    def actions(self) -> np.ndarray:
        return self.frame["action"].to_numpy()

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(np.append(self.starts, self.frame.height))


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


def _in_session_order(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` (rows in read order) sorted by (first_row, ticks, row).

    A log already in that order (grouped by user, in time order: the common form itself) is kept as
    it is after one vectorised check. (A stable sort on one u64 key packing first_row over ticks was
    tried: faster on a shuffled log, no faster on a time-ordered one, and it held ~30 more bytes per
    event at 10M events.)
    """
    first_row, ticks = pl.col("first_row"), pl.col("ticks")
    check = (first_row > first_row.shift(1)) | ((first_row == first_row.shift(1)) & (ticks >= ticks.shift(1)))
    if frame.height < 2 or frame.select(check.all()).item():
        return frame
    return frame.sort("first_row", "ticks", "row")  # row is unique: a stable sort on ties


def sessionise(events: RawEvents, spec: SourceSpec) -> Sessions:
    """Group into sessions: by the source's session column, or per user split on a gap > gap_minutes.

    Sessions come in order of their user's first row; ids are `<user_id>_<n>`, n = 0, 1, ...
    per user in time order. With a session column the source's id is used as it is.
    """
    ordered = _in_session_order(events.frame)
    new_user = (pl.col("first_row") != pl.col("first_row").shift(1)).fill_null(True)
    ids = [name for name in ID_COLUMNS if name in ordered.columns]
    if spec.session_col is not None:
        frame = ordered.select(pl.col(ids), new=new_user, key="key", nth=pl.lit(None, pl.Int32), ticks="ticks",
                               action="action", from_ad="from_ad")  # fmt: skip
    else:
        gap_ticks = round(spec.gap_minutes * 60 * events.scale)
        new = (new_user | (pl.col("ticks").diff() > gap_ticks)).fill_null(True)
        # n of `<user_id>_<n>`: sessions so far, less those before the user's first row (users are contiguous)
        count = pl.col("new").cast(pl.Int32).cum_sum()
        nth = count - pl.when(pl.col("new_user")).then(count).forward_fill()
        frame = ordered.with_columns(new=new, new_user=new_user).select(
            "new", "key", *ids, nth=nth, ticks="ticks", action="action", from_ad="from_ad"
        )
    starts = frame["new"].arg_true().to_numpy().astype(np.int64)
    keys = ordered.filter(new_user)["key"].cast(pl.String)  # each user's (or session's) id once
    unsafe = int((~keys.str.contains(_SERVICE_SESSION_ID)).sum())
    if unsafe:
        logger.warning("%d ids have characters the service refuses in a session_id", unsafe)
    return Sessions(frame.drop("new"), starts, events.scale)


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
    actions = sessions.actions
    any_cart = any_order = np.zeros(0, dtype=bool)
    if len(lengths):
        any_cart = np.add.reduceat((actions == ADD_CART).astype(np.int64), sessions.starts) > 0
        any_order = np.add.reduceat((actions == ORDER).astype(np.int64), sessions.starts) > 0
    curated = (lengths >= MIN_EVENTS) & (lengths <= MAX_EVENTS)
    action_counts = np.bincount(actions.astype(np.int64), minlength=len(ACTIONS))
    ranked = sorted((i for i in range(len(ACTIONS)) if action_counts[i]), key=lambda i: -action_counts[i])
    ticks = sessions.frame["ticks"]
    has_ts = sessions.frame.height > 0
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
        ts_min_utc=_utc_text(int(ticks.min()), sessions.scale) if has_ts else None,  # type: ignore[arg-type]
        ts_max_utc=_utc_text(int(ticks.max()), sessions.scale) if has_ts else None,  # type: ignore[arg-type]
        rows_read=events.rows_read,
        malformed=events.malformed,
        timezone=spec.timezone,
    )


def _ts_text(scale: int) -> pl.Expr:
    """Epoch seconds as written: the integer at scale 1, else text with exactly log10(scale) decimals (exact)."""
    ticks = pl.col("ticks")
    if scale == 1:
        return ticks
    digits = len(str(scale)) - 1
    size = ticks.abs()
    sign = pl.when(ticks < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return sign + (size // scale).cast(pl.String) + "." + (size % scale).cast(pl.String).str.zfill(digits)


def _id_columns(frame: pl.DataFrame) -> dict[str, pl.Expr]:
    """The optional id columns of the common form (ID_HEADER) that this log has, for the context features.

    The user is the sessionising key (with the gap rule) or the source's user column beside its session column.
    """
    out: dict[str, pl.Expr] = {}
    user_known = frame["nth"].null_count() < frame.height  # `<user_id>_<n>`: the key is the user
    if user_known or "user" in frame.columns:
        out["user_id"] = pl.col("key" if user_known else "user")
    for header, name in (("item_id", "item"), ("category_id", "cat")):
        if name in frame.columns:
            out[header] = pl.col(name)
    return out


def write_common_csv(sessions: Sessions, path: Path) -> None:
    """Write the common CSV, creating parent dirs; via a temp file so a crash leaves no half file.

    Streamed (`sink_csv`), so the id and ts texts exist a batch of rows at a time. Columns that print
    as their text are written as they are: the categorical id with a session column, integer ts at
    scale 1, the action through a 12-name Enum, from_ad as int8 with null for unknown ("").
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = sessions.frame
    session_id = pl.col("key")
    if frame["nth"].null_count() < frame.height:  # `<user_id>_<n>`
        session_id = pl.col("key").cast(pl.String) + "_" + pl.col("nth").cast(pl.String)
    names = pl.Series(ACTIONS, dtype=pl.Enum(ACTIONS))
    columns = (
        session_id,
        _ts_text(sessions.scale),
        pl.lit(names).gather(pl.col("action")),
        pl.when(pl.col("from_ad") >= 0).then(pl.col("from_ad")),
    )
    selected = dict(zip(HEADER, columns, strict=True))
    selected.update(_id_columns(frame))
    tmp = path.with_name(path.name + ".tmp")
    frame.lazy().select(**selected).sink_csv(tmp, line_terminator="\n")
    os.replace(tmp, path)


def prepare(spec: SourceSpec, inputs: Sequence[Path], output: Path | None = None) -> PrepareStats:
    """Read, sessionise, and (if `output`) write the common CSV; return the stats."""
    events = read_raw(spec, inputs)
    sessions = sessionise(events, spec)
    if output is not None:
        write_common_csv(sessions, output)
    return summarise(sessions, events, spec, inputs)
