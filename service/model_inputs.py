"""What a batch hands the engine (docs/architecture.md §7, §3.1): windows, and the context when the model takes one.

A batch item is a raw window, or a `ContextWindow`: a click's window (raw, or packed as the store's list holds it)
with its raw context row in model/context.py's CONTEXT_NAMES order, as append_event.lua returned it. On the engine
thread, `run_model` unpacks the packed windows in one call, encodes the windows (B, N, 16) in one call and, for a
card with context, decodes the batch's rows in one call and picks the card's `context_names` columns into a (B, C)
float32 array: `engine.run(windows, contexts)`. A card without context (C = 0) gets `engine.run(windows)`, the
one-input contract of every model exported before context existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.context import CONTEXT_DIM, context_columns
from model.features import RawWindow, encode_windows
from service.served_model import ServedModel
from service.store.context_record import decode_contexts
from service.store.packing import unpack_windows


@dataclass(eq=False, slots=True)
class PackedWindow:
    """A click's window as the store's list holds it (service/store/packing.py), unpacked with its batch."""

    entries: Sequence[bytes | int]


@dataclass(eq=False, slots=True)  # one per click: slotted, not frozen, is the cheaper build
class ContextWindow:
    """One click's raw window and its raw context: a (CONTEXT_DIM,) float32 row in seconds (`context`), or
    append_event.lua's row of integers in ms (`row`), decoded with the rest of its batch; neither: all 0."""

    window: RawWindow | PackedWindow
    context: np.ndarray | None
    row: Sequence[Any] | None = None


def raw_windows(items: list[Any]) -> list[RawWindow]:
    """The batch's raw windows in order; its packed ones unpacked in one call (packing.unpack_windows)."""
    windows = [item.window if isinstance(item, ContextWindow) else item for item in items]
    packed = [i for i, window in enumerate(windows) if isinstance(window, PackedWindow)]
    if packed:
        unpacked = unpack_windows([windows[i].entries for i in packed])  # type: ignore[union-attr]
        for i, window in zip(packed, unpacked, strict=True):
            windows[i] = window
    return windows  # type: ignore[return-value]


def batch_contexts(items: list[Any], names: tuple[str, ...]) -> np.ndarray:
    """(B, C) float32 raw context of the batch's items in `names` order; a row is 0 where an item has none.
    The store's rows are decoded in one vectorised call for the whole batch (context_record.decode_contexts)."""
    full = np.zeros((len(items), CONTEXT_DIM), dtype=np.float32)
    at: list[int] = []
    rows: list[Sequence[Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, ContextWindow):
            continue
        if item.context is not None:
            full[i] = item.context
        elif item.row is not None:
            at.append(i)
            rows.append(item.row)
    if rows:
        full[at] = decode_contexts(rows)
    return full[:, context_columns(names)]


def run_model(served: ServedModel, items: list[Any]) -> np.ndarray:
    """(B, 2) scores of B items with one model: its window encoding, and its context when it takes one."""
    windows = encode_windows(raw_windows(items), served.card.features)  # (B, N, 16)
    names = served.card.context_names
    if not names:
        return served.engine.run(windows)
    return served.engine.run(windows, batch_contexts(items, names))  # type: ignore[call-arg]
