"""Replay's context feed for a model with context: the context training computed, not the store's.

The click path computes each click's context in Redis (append_event.lua, docs/architecture.md §3.1), from
the clicks the store has seen. A replay of one split of a log has not seen the shopper's earlier sessions
in the other splits, so its history would be short. Replay therefore takes each click's raw context from
the command, computed over the whole log as training does (`compute_context`), and `ContextTaggingStore`
puts it in place of the store's on the append's result; the scorer, the MicroBatcher and `run_model`
(service/model_inputs.py) then hand it to the engine exactly as they hand a live click's.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from service.store.window_store import SessionWindowStore
from service.store.window_values import AppendResult


def rows_by_session(session_ids: Sequence[str], contexts: np.ndarray) -> dict[str, deque[np.ndarray]]:
    """Each session's context rows in click order (`contexts` (E, CONTEXT_DIM) aligned with the clicks)."""
    rows: dict[str, deque[np.ndarray]] = {}
    for session_id, row in zip(session_ids, contexts, strict=True):
        rows.setdefault(session_id, deque()).append(row)
    return rows


class ContextTaggingStore(SessionWindowStore):
    """The window store, with each append's context replaced by its click's row (sessions replay in order)."""

    def __init__(self, *args: Any, rows: dict[str, deque[np.ndarray]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rows = rows

    async def append_event(self, session_id: str, *args: Any, **kwargs: Any) -> AppendResult:
        appended = await super().append_event(session_id, *args, **kwargs)
        row = np.asarray(self._rows[session_id].popleft(), dtype=np.float32)
        return dataclasses.replace(appended, given_context=row)
