"""Step 1 of `prepare` (model/data/prepare.py): raw CSV/Parquet pieces → coded events, in read order.

Rows become integer codes in Polars (docs/data.md "Engine"): the user or session id categorical, the event
type's action index, from_ad as 1/0/-1, the timestamp as int64 ticks of 1/scale s (scale 1 for integer
epoch seconds, 1000 for integer ms, 10**6 otherwise), so that gap and range comparisons downstream are
exact. Unmapped types are skipped and counted, rows outside the source's ts range dropped and counted,
malformed rows counted by reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from model.data.raw_scan import ID_COLUMNS, raw_frames
from model.data.sources import SourceSpec, flag_codes, iso_micros_lookup
from model.features import action_index

logger = logging.getLogger(__name__)

_MICROS = 1_000_000
_LATEST_PLAUSIBLE_S = 7_258_118_400  # 2200-01-01 UTC: later epoch seconds are a unit mix-up, not a clickstream


@dataclass
class RawEvents:
    """Kept events in read order.

    frame: row (u32), key (categorical), action (i8 index into ACTIONS), from_ad (i8: 1, 0, -1 unknown),
           ticks (i64, epoch time in 1/scale s), first_row (u32, the row of the key's first valid appearance),
           and user, item, cat (categorical) where the spec names those columns (model/data/raw_scan.py)
    """

    frame: pl.DataFrame
    scale: int
    rows_read: int
    raw_event_types: dict[str, int]
    skipped: dict[str, int]
    dropped_outside_ts_range: int
    malformed: dict[str, int]


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
        *(pl.col(name).cast(pl.Categorical) for name in ID_COLUMNS if name in piece.columns),
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
        "row", "key", "action", "from_ad", *(name for name in ID_COLUMNS if name in frame.columns),
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
    raise ValueError(
        f"ts column {spec.ts_col!r} read as --ts-unit {spec.ts_unit} reaches "
        f"{int(latest_ticks) // scale} epoch seconds, past the year 2200{hint}"
    )
