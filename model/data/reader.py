"""The common event form `session_id,ts,action,from_ad` (CSV, or Parquet with those columns) → Sessions, in Polars.

Sessions come in order of first appearance, events sorted by ts (stable: file order breaks ties).
Anything unusable raises BadEventFile naming the file, the line and the value.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import polars as pl

from model.data.raw_scan import is_parquet
from model.data.sessions import BadEventFile, Sessions
from model.features import ACTION_INDEX, EventLog, action_index

CSV_COLUMNS = ("session_id", "ts", "action", "from_ad")
_FALSE = ("", "0", "false", "no")
_TRUE = ("1", "true", "yes")


def _scan(path: Path) -> pl.LazyFrame:
    """The four columns as text (from_ad "" where the file has none), with the file's line number."""
    if is_parquet(path):
        frame = pl.scan_parquet(path)
        columns = frame.collect_schema().names()
        first_line = 1  # no header line: rows count from 1
    else:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
        if header is None:
            raise BadEventFile(f"{path}: empty file")
        columns = [c.strip() for c in header]
        frame = pl.scan_csv(path, infer_schema=False, truncate_ragged_lines=True, new_columns=columns)
        first_line = 2
    missing = [c for c in CSV_COLUMNS[:3] if c not in columns]
    if missing:
        raise BadEventFile(
            f"{path}: header {columns} lacks {missing}; expected {','.join(CSV_COLUMNS)} "
            "(convert raw logs with `session-intent prepare`)"
        )
    ad = pl.col("from_ad").cast(pl.String) if "from_ad" in columns else pl.lit(None, dtype=pl.String)
    return frame.select(
        pl.col("session_id").cast(pl.String).fill_null(""),
        pl.col("ts").cast(pl.String).alias("ts_text"),
        pl.col("action").cast(pl.String).fill_null(""),
        ad.fill_null("").str.strip_chars().str.to_lowercase().alias("from_ad"),
    ).with_row_index("line", offset=first_line)


def _first_bad(frame: pl.DataFrame, bad: pl.Series, column: str) -> tuple[int, str]:
    row = frame.filter(bad).row(0, named=True)
    return int(row["line"]), str(row[column])


def read_events(path: Path) -> Sessions:
    """Read the common form; a clear BadEventFile for anything it cannot use."""
    path = Path(path)
    if not path.is_file():
        raise BadEventFile(f"{path}: no such file")
    frame = _scan(path).filter(~pl.all_horizontal(pl.col("session_id", "action", "from_ad") == "")
                               | pl.col("ts_text").is_not_null()).collect()  # fmt: skip
    if frame.height == 0:
        raise BadEventFile(f"{path}: header only, no events")
    ts = frame["ts_text"].str.strip_chars().cast(pl.Float64, strict=False)
    if ts.null_count():
        line, value = _first_bad(frame, ts.is_null(), "ts_text")
        raise BadEventFile(f"{path}:{line}: ts must be epoch seconds, got {value!r}")
    action = frame["action"].replace_strict(ACTION_INDEX, default=-1, return_dtype=pl.Int8)
    if (action < 0).any():
        line, value = _first_bad(frame, action < 0, "action")
        try:
            action_index(value)
        except ValueError as exc:
            raise BadEventFile(f"{path}:{line}: {exc}") from None
    flags = frame["from_ad"]
    odd = ~flags.is_in(_FALSE + _TRUE)
    if odd.any():
        line, value = _first_bad(frame, odd, "from_ad")
        raise BadEventFile(f"{path}:{line}: from_ad must be 1/0/true/false or empty, got {value!r}")
    return _group(frame.select("session_id", ts=ts, action=action, from_ad=flags.is_in(_TRUE)))


def _group(frame: pl.DataFrame) -> Sessions:
    """Sort by (session's first row, ts, row) inside Polars; numpy arrays out."""
    ordered = (
        frame.with_row_index("row")
        .with_columns(first=pl.col("row").min().over("session_id"))
        .sort("first", "ts", "row")
    )
    first = ordered["first"].to_numpy()
    new = np.ones(len(first), dtype=bool)
    new[1:] = first[1:] != first[:-1]
    starts = np.flatnonzero(new).astype(np.int64)
    ids = ordered["session_id"].gather(starts).to_numpy().astype(object)
    events = EventLog(
        actions=ordered["action"].to_numpy(),
        ts=ordered["ts"].to_numpy(),
        from_ad=ordered["from_ad"].to_numpy(),
        starts=starts,
    )
    return Sessions(ids=ids, events=events)
