"""Replay's context feed for a model with context, until the click path carries ids (issue 20, phase 2).

The live click path does not yet compute the context (model/context.py) in Redis, so replay takes each
click's raw context from the command, which computes it over the whole log as training does
(`compute_context`, history from the shopper's earlier sessions included). Each click still goes through
append_event.lua, the MicroBatcher and the engine: `ContextTaggingStore` tags the window an append returns
with the click's context row (each session replays in order, so its rows are consumed in order), and
`context_runner` gives the engine each window's row in the served card's context order. Once the scorer
hands the engine the context itself, replay sends the ids with each click and this module goes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from model.context import context_columns
from model.features import RawWindow, encode_windows
from service.batcher import RunBatch
from service.served_model import ModelSlot, scored_by
from service.store.window_store import AppendResult, SessionWindowStore

# id(window ts array) → (the array, kept alive so its id stays unique, and its click's (CONTEXT_DIM,) row)
ContextTags = dict[int, tuple[np.ndarray, np.ndarray]]


def rows_by_session(session_ids: Sequence[str], contexts: np.ndarray) -> dict[str, deque[np.ndarray]]:
    """Each session's context rows in click order (`contexts` (E, CONTEXT_DIM) aligned with the clicks)."""
    rows: dict[str, deque[np.ndarray]] = {}
    for session_id, row in zip(session_ids, contexts, strict=True):
        rows.setdefault(session_id, deque()).append(row)
    return rows


class ContextTaggingStore(SessionWindowStore):
    """The window store, tagging each appended window with its click's context row for `context_runner`."""

    def __init__(self, *args: Any, rows: dict[str, deque[np.ndarray]], tags: ContextTags, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rows, self._tags = rows, tags

    async def append_event(self, session_id: str, *args: Any, **kwargs: Any) -> AppendResult:
        appended = await super().append_event(session_id, *args, **kwargs)
        self._tags[id(appended.ts)] = (appended.ts, self._rows[session_id].popleft())
        return appended


def context_runner(slot: ModelSlot, tags: ContextTags) -> RunBatch:
    """`engine_runner` (service/scorer.py) with each window's tagged context, in the served card's order."""

    def run(windows: list[RawWindow]) -> np.ndarray:
        served = slot.serving
        rows = np.stack([tags.pop(id(ts))[1] for _, ts, _ in windows])  # (B, CONTEXT_DIM); KeyError: untagged
        names = served.card.context_names
        context = rows[:, context_columns(names)] if names else None  # (B, C)
        return scored_by(served.engine.run(encode_windows(windows, served.card.features), context), served)

    return run
