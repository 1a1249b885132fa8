"""Raw exports (CSV or Parquet) read in bounded chunks, each as Polars columns of text.

Why Polars (docs/data.md "Engine"): its multi-threaded CSV and Parquet readers yield Arrow columns,
and its group-by, window and sort kernels let `prepare` sessionise inside the engine. A CSV is fed
to it in ~8 MB pieces cut at line ends, so that the raw text never sits in memory whole (Polars'
own lazy CSV scan held about 100 bytes per event more at 10M events). Each piece becomes, per row:

    key    str | null   the user id (or the source's own session id); null when empty
    etype  str          the raw event type ("" when empty)
    ts     str | null   the raw timestamp text
    ad     str | null   the raw from_ad text (null without a from_ad column)
    user, item, cat  str | null   the ids the context needs (model/context.py), only where the spec names
                                  them (`user`: a user column beside a session column)
    short  bool         the row has fewer fields than the columns the spec names (malformed)
    blank  bool         an empty line: no event and no error

Limit: a quoted CSV field may hold the delimiter but not a line break.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl

from model.data.sources import Column, SourceSpec

PARQUET_SUFFIXES = (".parquet", ".pq")
CHUNK_BYTES = 8 << 20
_LINE_SEPARATOR = "\x1f"  # ASCII unit separator: never in a clickstream, so one line is one field
_BOM = b"\xef\xbb\xbf"


def is_parquet(path: Path) -> bool:
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


def resolve_column(col: Column | None, names: Sequence[str] | None, spec: SourceSpec, path: Path) -> int:
    """0-based position of a column reference; -1 for None. A ValueError names the bad column."""
    if col is None:
        return -1
    if isinstance(col, int):
        return col
    known = list(names) if names is not None else list(spec.columns or ())
    if col not in known:
        where = f"header of {path}" if names is not None else f"columns of source {spec.name!r}"
        raise ValueError(f"column {col!r} not in the {where}: {known}")
    return known.index(col)


ID_COLUMNS = ("user", "item", "cat")  # optional id columns of a piece, present where the spec names them


def _indices(spec: SourceSpec, names: Sequence[str] | None, path: Path) -> list[int]:
    """Positions of key, ts, event type, from_ad, then user, item and category (-1: none)."""
    key_col = spec.session_col if spec.session_col is not None else spec.user_col
    user_col = spec.user_col if spec.session_col is not None else None  # without a session column it is the key
    cols = (key_col, spec.ts_col, spec.event_col, spec.from_ad_col, user_col, spec.item_col, spec.category_col)
    return [resolve_column(c, names, spec, path) for c in cols]


def _text(frame: pl.DataFrame, index: int) -> pl.Series:
    """Column `index` as text, or all null where the file has no such column."""
    if 0 <= index < frame.width:
        return frame.to_series(index).cast(pl.String)
    return pl.repeat(None, frame.height, dtype=pl.String, eager=True)


def _columns(frame: pl.DataFrame, indices: list[int], short: pl.Series, blank: pl.Series) -> pl.DataFrame:
    ki, ti, ei, ai = indices[:4]
    ids = {name: _text(frame, i) for name, i in zip(ID_COLUMNS, indices[4:], strict=True) if i >= 0}
    return pl.DataFrame({
        "key": _text(frame, ki), "etype": _text(frame, ei).fill_null(""), "ts": _text(frame, ti),
        "ad": _text(frame, ai), "short": short, "blank": blank, **ids,
    })  # fmt: skip


def _pieces(handle: io.BufferedReader, size: int) -> Iterator[bytes]:
    """Whole lines, about `size` bytes at a time: a block is cut after its last line end and the file read
    on from there (a seek, so that no block is copied to join it to the rest of the one before)."""
    while block := handle.read(size):
        cut = block.rfind(b"\n") + 1
        while cut == 0 and (more := handle.read(size)):  # one line longer than a piece: read on
            block += more
            cut = block.rfind(b"\n") + 1
        if cut == 0:  # the last line, without a line end
            yield block + b"\n"
        elif cut == len(block):
            yield block
        else:
            handle.seek(cut - len(block), io.SEEK_CUR)
            yield block[:cut]


def _csv_frames(spec: SourceSpec, path: Path, size: int) -> Iterator[pl.DataFrame]:
    with open(path, "rb") as handle:
        names: list[str] | None = None
        if spec.has_header:
            first = handle.readline()
            if not first:
                return
            names = next(csv.reader([first.decode("utf-8-sig")], delimiter=spec.delimiter), [])
        elif handle.peek(3)[:3] == _BOM:
            handle.read(3)
        indices = _indices(spec, names, path)
        width = max(indices) + 1
        schema: dict[str, pl.DataType] | None = None
        for piece in _pieces(handle, size):
            if schema is None:  # the widest of the header, the first line and the columns the spec names
                first_line = piece[: piece.find(b"\n")].decode("utf-8", errors="replace")
                first_width = len(next(csv.reader([first_line], delimiter=spec.delimiter), []))
                schema = {f"c{i}": pl.String() for i in range(max(len(names or ()), first_width, width))}
            values = pl.read_csv(
                piece, has_header=False, separator=spec.delimiter, schema=schema, truncate_ragged_lines=True,
                missing_columns="insert",
            )  # fmt: skip
            if not values.to_series(width - 1).null_count():  # no row is short or blank: skip the line count
                no = pl.repeat(False, values.height, eager=True)
                yield _columns(values, indices, no, no)
                continue
            lines = pl.read_csv(
                piece, has_header=False, separator=_LINE_SEPARATOR, quote_char=None, new_columns=["line"],
                schema_overrides={"line": pl.String}, empty_string_is_null=False, infer_schema=False,
            )["line"].fill_null("")  # fmt: skip
            blank = lines == ""
            fields = lines.str.count_matches(spec.delimiter, literal=True) + 1
            yield _columns(values, indices, ~blank & (fields < width), blank)


def _parquet_frames(spec: SourceSpec, path: Path) -> Iterator[pl.DataFrame]:
    scan = pl.scan_parquet(path)
    names = scan.collect_schema().names()
    indices = _indices(spec, names, path)
    for batch in scan.collect_batches(chunk_size=1 << 20):
        no = pl.repeat(False, batch.height, eager=True)
        yield _columns(batch, indices, no, no)


def raw_frames(spec: SourceSpec, paths: Sequence[Path], size: int | None = None) -> Iterator[pl.DataFrame]:
    """Every file as one log, in read order, one bounded piece (`size` bytes, default CHUNK_BYTES) at a time."""
    size = size or CHUNK_BYTES
    for path in paths:
        yield from _parquet_frames(spec, Path(path)) if is_parquet(path) else _csv_frames(spec, Path(path), size)
