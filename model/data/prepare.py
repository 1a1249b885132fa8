"""Raw clickstream export → the common event CSV `session_id,ts,action,from_ad` (docs/architecture.md §5).

Pipeline, one public function per step (the CLI composes them to report progress), all in Polars
(docs/data.md "Engine"):

    read_raw     scan CSV/Parquet (model/data/raw_scan.py); rows → integer codes; unmapped types
                 skipped and counted, events outside the source's ts range dropped and counted
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

from model.data.raw_scan import raw_frames
from model.data.sources import SourceSpec, flag_codes, iso_micros_lookup
from model.features import ACTIONS, ADD_CART, ORDER, action_index

logger = logging.getLogger(__name__)

HEADER = ("session_id", "ts", "action", "from_ad")
MIN_EVENTS, MAX_EVENTS = 3, 250  # the curation of docs/architecture.md §4
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SERVICE_SESSION_ID = r"^[A-Za-z0-9_.:-]{1,128}$"
_MICROS = 1_000_000
_LATEST_PLAUSIBLE_S = 7_258_118_400  # 2200-01-01 UTC: later epoch seconds are a unit mix-up, not a clickstream


@dataclass
class RawEvents:
    """Kept events in read order.

    frame: row (u32), key (categorical), action (i8 index into ACTIONS), from_ad (i8: 1, 0, -1 unknown),
           ticks (i64, epoch time in 1/scale s), first_row (u32, the row of the key's first valid appearance)
    """

    frame: pl.DataFrame
    scale: int
    rows_read: int
    raw_event_types: dict[str, int]
    skipped: dict[str, int]
    dropped_outside_ts_range: int
    malformed: dict[str, int]


@dataclass
class Sessions:
    """Events grouped by session, ts ascending (stable) within one; sessions by first user appearance.

    frame: key (categorical user or session id), nth (i32 n of `<user_id>_<n>`, null with a session
           column), ticks (i64), action (i8), from_ad (i8); the id text is built only when written
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


_VALID, _TOO_FEW_COLUMNS, _EMPTY_ID, _BLANK = range(4)  # row status codes


def _micros(ts: pl.Series, spec: SourceSpec) -> pl.Series:
    """(E,) int64 epoch microseconds of the `ts` texts of one piece, null where unparsable (units s, ms).

    For a piece where some texts are not integers: `_code_piece` codes integer texts in its one `select`.
    """
    per_unit = _MICROS if spec.ts_unit == "s" else 1000
    text = ts.str.strip_chars()
    whole = text.cast(pl.Int64, strict=False)
    fraction = (text.cast(pl.Float64, strict=False) * _MICROS / (_MICROS // per_unit)).round().cast(pl.Int64)
    return pl.select(pl.when(whole.is_not_null()).then(whole * per_unit).otherwise(fraction)).to_series()


def _iso_micros(ts: pl.Series, spec: SourceSpec) -> pl.Series:
    """ISO 8601 texts through Python's fromisoformat, once per distinct text."""
    text = ts.str.strip_chars()
    lookup = iso_micros_lookup(text.unique().drop_nulls().to_list(), spec.timezone)
    return text.replace_strict(lookup, default=None, return_dtype=pl.Int64)


def _distinct_codes(texts: pl.Series) -> tuple[list[str], pl.Series]:
    """A few-valued text column without nulls → its distinct texts (first appearance order) and each row's
    (E,) index into them: one lookup in a small Enum per row, where a dict `replace` costs a hash join."""
    distinct = texts.unique(maintain_order=True).to_list()
    return distinct, texts.cast(pl.Enum(distinct)).to_physical()


def _from_ad(ad: pl.Series, odd: set[str]) -> pl.Series:
    """(E,) int8 from_ad of one piece: 1, 0, or -1 for empty or unrecognised; unrecognised texts go to `odd`."""
    distinct, codes = _distinct_codes(ad.fill_null(""))
    lookup = flag_codes(distinct)
    odd.update(t for t, flag in lookup.items() if flag < 0 and t.strip())
    return pl.Series([lookup[t] for t in distinct], dtype=pl.Int8).gather(codes)


def _enum_codes(column: str, texts: Sequence[str]) -> pl.Expr:
    """Each row's index into `texts` (an Enum lookup), null where the text is null or not among them."""
    return pl.col(column).cast(pl.Enum(texts), strict=False).to_physical()


_FLAG_TEXTS = ("0", "1")  # from_ad as the common form writes it: looked up per row; other texts per piece


def _code_piece(
    piece: pl.DataFrame, spec: SourceSpec, to_action: dict[str, int], odd: set[str], types: dict[str, int]
) -> pl.DataFrame:
    """One piece of raw text columns → status, key (categorical), action, micros (or ts), from_ad.

    types: the count of each event type over valid rows, updated in order of first valid appearance.
    The columns are coded in one `select`, so Polars codes them in parallel; event types outside the
    action map, from_ad texts other than 0/1, and timestamps that are not integers take a slower path.
    """
    status = (
        pl.when(pl.col("blank")).then(_BLANK).when(pl.col("short")).then(_TOO_FEW_COLUMNS)
        .when(pl.col("key").is_null()).then(_EMPTY_ID).otherwise(_VALID).cast(pl.Int8)
    )  # fmt: skip
    if not (piece["blank"].any() or piece["short"].any()):
        status = (pl.col("key").is_null().cast(pl.Int8) * _EMPTY_ID).cast(pl.Int8)
    per_unit = _MICROS if spec.ts_unit == "s" else 1000
    micros = pl.col("ts").cast(pl.Int64, strict=False) * per_unit  # null: not an integer, see _micros
    coded = piece.select(
        status.alias("status"),
        # the log-wide dictionary of ids (millions) is the costly lookup: once per run of equal keys, since a
        # clickstream's rows come in runs of one user or session
        pl.col("key").rle().struct.field("value").cast(pl.Categorical).gather(pl.col("key").rle_id()).alias("key"),
        _enum_codes("etype", list(spec.action_map)).alias("etype"),
        pl.col("ts") if spec.ts_unit == "iso" else micros.alias("micros"),
        _enum_codes("ad", _FLAG_TEXTS).alias("ad"),
    )  # fmt: skip
    distinct, etype = list(spec.action_map), coded["etype"]
    if etype.null_count():  # a type the action map does not name
        distinct, etype = _distinct_codes(piece["etype"])
    valid_types = etype.filter(coded["status"] == _VALID)
    per_type = np.bincount(valid_types.to_numpy(), minlength=len(distinct))
    for code in valid_types.unique(maintain_order=True).to_list():
        types[distinct[code]] = types.get(distinct[code], 0) + int(per_type[code])
    action = pl.Series([to_action.get(t, -1) for t in distinct], dtype=pl.Int8).gather(etype)
    if spec.ts_unit != "iso" and coded["micros"].null_count() != piece["ts"].null_count():
        coded = coded.with_columns(_micros(piece["ts"], spec).alias("micros"))
    if spec.from_ad_col is None:
        from_ad = pl.repeat(-1, piece.height, dtype=pl.Int8, eager=True)
    elif coded["ad"].null_count() != piece["ad"].null_count():
        from_ad = _from_ad(piece["ad"], odd)
    else:  # null (empty): unknown
        from_ad = pl.Series(flag_codes(list(_FLAG_TEXTS)).values(), dtype=pl.Int8).gather(coded["ad"]).fill_null(-1)
    return coded.drop("etype", "ad").with_columns(action.alias("action"), from_ad.alias("from_ad"))


def _slim(spec: SourceSpec, paths: Sequence[Path]) -> tuple[pl.DataFrame, dict[str, int]]:
    """Every row read, as ~20 bytes: status, row, key (categorical), micros, action, from_ad; and the count
    of each event type over valid rows, in order of first appearance."""
    to_action = {raw: action_index(action) for raw, action in spec.action_map.items()}
    odd: set[str] = set()
    types: dict[str, int] = {}
    parts = [_code_piece(piece, spec, to_action, odd, types) for piece in raw_frames(spec, paths)]
    if odd:
        logger.warning("from_ad values read as unknown: %s", sorted(odd)[:10])
    if not parts:
        schema = {"key": pl.String, "etype": pl.String, "ts": pl.String, "ad": pl.String,
                  "short": pl.Boolean, "blank": pl.Boolean}  # fmt: skip
        parts = [_code_piece(pl.DataFrame(schema=schema), spec, to_action, odd, types)]
    frame = pl.concat(parts).with_row_index("row")
    if spec.ts_unit == "iso":
        frame = frame.with_columns(micros=_iso_micros(frame["ts"], spec)).drop("ts")
    return frame, types


def _first_rows(valid: pl.DataFrame) -> pl.Series:
    """(E,) the row of each row's key's first appearance in `valid` (rows in read order, keys not null).

    A min over the first row of each run of one key, spread back over the run's rows: a run-sized
    group-by where a row-sized `min().over(key)` hashes every row. Where runs are short (users
    interleaved), the row-sized one, which holds less than the run-sized one does then.
    """
    head = pl.col("key").ne_missing(pl.col("key").shift(1))  # row 0 is a head: its key is not null
    heads = valid.select("key", "row", head=head)
    if heads["head"].sum() > valid.height // 2:
        return valid.select(pl.col("row").min().over("key").alias("first_row")).to_series()
    per_run = heads.filter("head").select(pl.col("row").min().over("key"))["row"]
    return per_run.gather(heads["head"].cum_sum() - 1).alias("first_row")


def _coarsest_scale(micros: pl.Series) -> int:
    """Whole seconds (or ms) stay integers in the output: the coarsest exact ticks per second (nulls ignored)."""
    for coarse in (1, 1000):
        if not (micros % (_MICROS // coarse) != 0).any():
            return coarse
    return _MICROS


def read_raw(spec: SourceSpec, paths: Sequence[Path]) -> RawEvents:
    """Read every file with `spec` into coded events; counts what it skipped, dropped or refused."""
    frame, raw_event_types = _slim(spec, paths)
    rows_read = frame.height
    status = frame["status"].value_counts()
    by_status = dict(zip(status["status"].to_list(), status["count"].to_list(), strict=True))
    malformed = {"too_few_columns": by_status.get(_TOO_FEW_COLUMNS, 0), "empty_id": by_status.get(_EMPTY_ID, 0)}
    if by_status.get(_VALID, 0) < rows_read:  # a filter copies every column: only when a row goes
        frame = frame.filter(pl.col("status") == _VALID)
    frame = frame.drop("status")
    skipped = {t: n for t, n in raw_event_types.items() if t not in spec.action_map}
    if skipped:
        logger.warning("skipped %d rows of unmapped event types: %s", sum(skipped.values()), skipped)
    scale = _coarsest_scale(frame["micros"])
    frame = frame.select(
        "row", "key", "action", "from_ad",
        ticks=pl.col("micros") // (_MICROS // scale),
        first_row=_first_rows(frame),  # the user's first valid row: sessions are written in that order
    )  # fmt: skip
    mapped = pl.col("action") >= 0
    in_range = pl.lit(True)
    if spec.ts_range is not None:
        lo, hi = spec.ts_range
        in_range = (pl.col("ticks") >= lo * scale) & (pl.col("ticks") < hi * scale)
    keep = mapped & pl.col("ticks").is_not_null() & in_range
    outcome = frame.select(
        bad_timestamp=(mapped & pl.col("ticks").is_null()).sum(),
        dropped=(mapped & pl.col("ticks").is_not_null() & ~in_range).sum(),
        kept=keep.sum(),
    )
    malformed["bad_timestamp"] = int(outcome["bad_timestamp"][0])
    kept = frame.filter(keep) if outcome["kept"][0] < frame.height else frame
    _check_plausible_epoch(kept["ticks"].max(), scale, spec)
    return RawEvents(
        frame=kept,
        scale=scale,
        rows_read=rows_read,
        raw_event_types=raw_event_types,
        skipped=skipped,
        dropped_outside_ts_range=int(outcome["dropped"][0]),
        malformed={reason: n for reason, n in malformed.items() if n},
    )


def _check_plausible_epoch(latest_ticks: Any, scale: int, spec: SourceSpec) -> None:
    """A clear error for timestamps past 2200: milliseconds read as seconds (or microseconds as either)."""
    if latest_ticks is None or int(latest_ticks) < _LATEST_PLAUSIBLE_S * scale:
        return
    hint = " (milliseconds? pass --ts-unit ms)" if spec.ts_unit == "s" else ""
    raise ValueError(f"ts column {spec.ts_col!r} read as --ts-unit {spec.ts_unit} reaches "
                     f"{int(latest_ticks) // scale} epoch seconds, past the year 2200{hint}")


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
    if spec.session_col is not None:
        frame = ordered.select(new=new_user, key="key", nth=pl.lit(None, pl.Int32), ticks="ticks", action="action",
                               from_ad="from_ad")  # fmt: skip
    else:
        gap_ticks = round(spec.gap_minutes * 60 * events.scale)
        new = (new_user | (pl.col("ticks").diff() > gap_ticks)).fill_null(True)
        # n of `<user_id>_<n>`: sessions so far, less those before the user's first row (users are contiguous)
        count = pl.col("new").cast(pl.Int32).cum_sum()
        nth = count - pl.when(pl.col("new_user")).then(count).forward_fill()
        frame = ordered.with_columns(new=new, new_user=new_user).select(
            "new", "key", nth=nth, ticks="ticks", action="action", from_ad="from_ad"
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
    tmp = path.with_name(path.name + ".tmp")
    frame.lazy().select(**dict(zip(HEADER, columns, strict=True))).sink_csv(tmp, line_terminator="\n")
    os.replace(tmp, path)


def prepare(spec: SourceSpec, inputs: Sequence[Path], output: Path | None = None) -> PrepareStats:
    """Read, sessionise, and (if `output`) write the common CSV; return the stats."""
    events = read_raw(spec, inputs)
    sessions = sessionise(events, spec)
    if output is not None:
        write_common_csv(sessions, output)
    return summarise(sessions, events, spec, inputs)
