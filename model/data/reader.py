"""The common event form `session_id,ts,action,from_ad` (CSV, or Parquet with those columns) → Sessions, in Polars.

The optional `user_id,item_id,category_id` columns become the int codes of `Sessions.context_ids`
(model/context.py); a file without them reads as before, with those codes absent.

The file is read in bounded pieces (model/data/raw_scan.py) and coded piece by piece into ~15 bytes
per event; sessions come in order of first appearance, events sorted by ts (stable: file order
breaks ties). Anything unusable raises BadEventFile naming the file, the line and the value.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import polars as pl

from model.context import ContextIds
from model.data.raw_scan import ID_COLUMNS, is_parquet, raw_frames
from model.data.sessions import BadEventFile, Sessions
from model.data.sources import SourceSpec
from model.features import ACTION_INDEX, ACTIONS, EventLog, action_index

CSV_COLUMNS = ("session_id", "ts", "action", "from_ad")
_FLAGS = {"": False, "0": False, "false": False, "no": False, "1": True, "true": True, "yes": True}


def _columns(path: Path) -> list[str]:
    if is_parquet(path):
        return pl.scan_parquet(path).collect_schema().names()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None)
    if header is None:
        raise BadEventFile(f"{path}: empty file")
    return [c.strip() for c in header]


def _spec(path: Path) -> SourceSpec:
    """The common form as a raw source: its own session column, every action mapped to itself."""
    columns = _columns(path)
    missing = [c for c in CSV_COLUMNS[:3] if c not in columns]
    if missing:
        raise BadEventFile(
            f"{path}: header {columns} lacks {missing}; expected {','.join(CSV_COLUMNS)} "
            "(convert raw logs with `session-intent prepare`)"
        )
    position = {name: columns.index(name) for name in CSV_COLUMNS if name in columns}
    return SourceSpec(
        name="common", user_col=_position(columns, "user_id"), session_col=position["session_id"],
        ts_col=position["ts"], event_col=position["action"], from_ad_col=position.get("from_ad"),
        action_map={a: a for a in ACTIONS}, item_col=_position(columns, "item_id"),
        category_col=_position(columns, "category_id"),
    )  # fmt: skip


def _position(columns: list[str], name: str) -> int | None:
    return columns.index(name) if name in columns else None


def _first_bad(texts: pl.Series, bad: pl.Series, lines: pl.Series) -> tuple[int, str]:
    index = int(bad.arg_true()[0])
    return int(lines[index]), str(texts[index])


def _code_piece(piece: pl.DataFrame, path: Path, lines: pl.Series) -> pl.DataFrame:
    """session (categorical), ts float64, action int8, from_ad bool; BadEventFile at the first bad value."""
    ts = piece["ts"].cast(pl.Float64, strict=False)
    bad_ts = ts.is_null()
    if bad_ts.any():
        retry = piece["ts"].str.strip_chars().cast(pl.Float64, strict=False)  # " 12 " is a number to float()
        ts, bad_ts = retry, retry.is_null()
    if bad_ts.any():
        line, value = _first_bad(piece["ts"].fill_null(""), bad_ts, lines)
        raise BadEventFile(f"{path}:{line}: ts must be epoch seconds, got {value!r}")
    action = piece["etype"].replace_strict(ACTION_INDEX, default=-1, return_dtype=pl.Int8)
    if (action < 0).any():
        line, value = _first_bad(piece["etype"], action < 0, lines)
        try:
            action_index(value)
        except ValueError as exc:
            raise BadEventFile(f"{path}:{line}: {exc}") from None
    flags = piece["ad"].fill_null("").str.strip_chars().str.to_lowercase()
    from_ad = flags.replace_strict(_FLAGS, default=None, return_dtype=pl.Boolean)
    if from_ad.null_count():
        line, value = _first_bad(piece["ad"].fill_null(""), from_ad.is_null(), lines)
        raise BadEventFile(f"{path}:{line}: from_ad must be 1/0/true/false or empty, got {value!r}")
    ids = {name: piece[name].cast(pl.Categorical) for name in ID_COLUMNS if name in piece.columns}
    return pl.DataFrame({
        "session_id": piece["key"].fill_null("").cast(pl.Categorical), "ts": ts, "action": action, "from_ad": from_ad,
        **ids,
    })  # fmt: skip


def read_events(path: Path) -> Sessions:
    """Read the common form; a clear BadEventFile for anything it cannot use."""
    path = Path(path)
    if not path.is_file():
        raise BadEventFile(f"{path}: no such file")
    spec = _spec(path)
    parts, line = [], 1 if is_parquet(path) else 2
    for piece in raw_frames(spec, [path]):
        if piece["short"].any():
            raise BadEventFile(f"{path}:{line + int(piece['short'].arg_true()[0])}: row has too few columns")
        keep = ~piece["blank"]  # a blank line is no event and no error
        lines = pl.int_range(line, line + piece.height, eager=True).filter(keep)  # (n,) file line of each row
        parts.append(_code_piece(piece.filter(keep), path, lines))
        line += piece.height
    if not parts or sum(p.height for p in parts) == 0:
        raise BadEventFile(f"{path}: header only, no events")
    return _group(pl.concat(parts))


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
    ids = ordered["session_id"].gather(starts).cast(pl.String).to_numpy().astype(object)
    events = EventLog(
        actions=ordered["action"].to_numpy(),
        ts=ordered["ts"].to_numpy(),
        from_ad=ordered["from_ad"].to_numpy(),
        starts=starts,
    )
    return Sessions(ids=ids, events=events, context_ids=_context_ids(ordered, starts))


def _codes(ordered: pl.DataFrame, name: str) -> np.ndarray | None:
    """(E,) int32 code of each event's id in column `name` (-1 where empty); None without the column.

    int32: a 20M-event log's item and category codes take 160 MB, not 320 (the codes count distinct ids)."""
    if name not in ordered.columns:
        return None
    return ordered[name].to_physical().cast(pl.Int32).fill_null(-1).to_numpy()


def _context_ids(ordered: pl.DataFrame, starts: np.ndarray) -> ContextIds:
    """The ids model/context.py needs: item and category per event, the user of each session's first event."""
    users = _codes(ordered, "user")
    return ContextIds(_codes(ordered, "item"), _codes(ordered, "cat"), users[starts] if users is not None else None)
