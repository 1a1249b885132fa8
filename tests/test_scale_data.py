"""The large-log data path with context: the chunked synthetic log carries ids, the context fits in memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from bench.data.run import make_events_csv
from model.context import CONTEXT_DIM, CONTEXT_NAMES, ContextIds, compute_context
from model.data.dataset import keep_rows, load_dataset
from model.data.reader import read_events
from model.data.synth import generate_sessions
from model.features import EventLog, FeatureConfig


def test_the_chunked_synthetic_log_carries_shoppers_items_and_categories(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    written = make_events_csv(path, 6_000, seed=1, chunk_events=2_000)
    frame = pl.read_csv(path, schema_overrides={"item_id": pl.Int64, "category_id": pl.Int64})
    assert frame.columns == ["session_id", "ts", "action", "from_ad", "user_id", "item_id", "category_id"]
    assert frame.height == written
    assert frame["user_id"].null_count() == 0 and frame["user_id"].str.starts_with("u").all()
    with_item = frame.filter(pl.col("item_id").is_not_null())
    assert with_item.height > 0.2 * frame.height and with_item["category_id"].null_count() == 0
    # an item has one category; a shopper belongs to one chunk (the generator keeps their sessions apart there)
    assert with_item.group_by("item_id").agg(pl.col("category_id").n_unique())["category_id"].max() == 1
    chunk = frame["session_id"].str.extract(r"^syn(\d+)-")
    assert frame.with_columns(chunk=chunk).group_by("user_id").agg(pl.col("chunk").n_unique())["chunk"].max() == 1
    sessions = read_events(path)
    ids = sessions.context_ids
    assert ids.users is not None and ids.items is not None and ids.categories is not None
    assert ids.items.dtype == ids.categories.dtype == np.int32, "4 bytes per event and id, not 8"
    context = compute_context(sessions.events, ids)
    assert context[:, CONTEXT_NAMES.index("hist_sessions")].max() >= 2, "returning shoppers"
    assert context[:, CONTEXT_NAMES.index("item_seen_before")].any()


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
def test_keep_rows_equals_boolean_indexing(chunk: int) -> None:
    rng = np.random.default_rng(chunk)
    array = rng.random((50, 4)).astype(np.float32)
    keep = rng.random(50) < 0.6
    expected = array[keep].copy()
    np.testing.assert_array_equal(keep_rows(array, keep, chunk=chunk), expected)
    everything = rng.random((9, 2))
    assert keep_rows(everything, np.ones(9, dtype=bool)) is everything  # nothing dropped: no copy


def _synthetic_context_input(n_sessions: int) -> tuple[EventLog, ContextIds]:
    """A synthetic log with returning shoppers, a few of them unknown (-1), and its ids."""
    log = generate_sessions(n_sessions, seed=3)
    users = np.where(np.arange(len(log.users)) % 17 == 5, -1, log.users)
    return log.to_event_log(), ContextIds(log.items, log.categories, users)


@pytest.mark.parametrize("chunk_events", [997, 10_000])
def test_context_in_chunks_equals_the_context_in_one_piece(chunk_events: int) -> None:
    events, ids = _synthetic_context_input(3_000)
    whole = compute_context(events, ids, chunk_events=len(events))
    assert whole[:, CONTEXT_NAMES.index("hist_sessions")].max() >= 2 and whole[:, CONTEXT_NAMES.index("clicks")].any()
    assert compute_context(events, ids, chunk_events=chunk_events).tobytes() == whole.tobytes()


def test_compute_context_in_chunks_holds_little_beside_its_float32_result() -> None:
    # A 20M-event log must fit in 4 GB beside the rest of training: the result is 64 bytes per event, and the
    # vectors of one chunk stay small beside it (the whole log in one piece adds about 90 bytes per event).
    events, ids = _synthetic_context_input(20_000)
    n = len(events)
    tracemalloc.start()
    try:
        context = compute_context(events, ids, chunk_events=n // 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert context.shape == (n, CONTEXT_DIM) and context.dtype == np.float32
    assert (peak - context.nbytes) / n <= 32, f"{(peak - context.nbytes) / n:.0f} bytes per event beside the result"


def test_contexts_gathers_the_asked_block_in_one_piece(tmp_path: Path) -> None:
    make_events_csv(tmp_path / "events.csv", 20_000, seed=2)
    windows = load_dataset(tmp_path / "events.csv", FeatureConfig()).windows
    assert windows.context is not None
    names = ("hist_orders", "clicks", "item_seen_before")
    rows = np.arange(0, len(windows), 3)
    expected = windows.context[windows.rows[rows]][:, [CONTEXT_NAMES.index(n) for n in names]]
    np.testing.assert_array_equal(windows.contexts(rows, names), expected)
    # validation asks for every window: no (n, CONTEXT_DIM) copy on the way to the (n, k) result
    tracemalloc.start()
    try:
        block = windows.contexts(slice(None), CONTEXT_NAMES)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert block.shape == (len(windows), CONTEXT_DIM) and peak < 1.5 * block.nbytes
