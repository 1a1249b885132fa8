"""What the window store's calls take and return (service/store/window_store.py): the stored window, one append's
result, a record's share of the write-back, a click's ids, the event-id digest and the 409 conflict."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.features import RawWindow
from service.messages import event_id_reused
from service.store import context_record
from service.store.packing import packed_ts, unpack_events
from service.store.score_record import ScoreRecord


class EventIdConflict(Exception):
    """An event_id was seen before with another body; nothing was appended (answered as 409)."""

    def __init__(self, event_id: str, parts: list[str]) -> None:
        self.event_id = event_id
        self.parts = parts
        differs = ", ".join(parts) or "body"
        super().__init__(f"{event_id_reused(event_id)}: {differs} differ(s)")


# The click path builds one AppendResult and one ScoreParts per click: plain slotted dataclasses build about three
# times faster than frozen ones (each field of a frozen one is set through object.__setattr__). Nothing mutates them.
@dataclass(eq=False, slots=True)
class SessionWindow:
    """A session's stored window, oldest first; k ≤ N events, as the list holds them (`packed`, packing.py).

    The click path hands `packed` to the batch, which unpacks all its windows at once on the engine thread
    (service/model_inputs.py); the arrays below are unpacked on demand:
    actions  (k,) int64   index into model.features.ACTIONS
    ts       (k,) float64 epoch seconds, millisecond resolution
    from_ad  (k,) bool    sticky: true from the session's first from_ad event on
    """

    packed: Sequence[bytes | int]
    cart_has_items: bool

    def __len__(self) -> int:
        return len(self.packed)

    def unpacked(self) -> RawWindow:
        """(actions, ts, from_ad), the arrays above."""
        return unpack_events(self.packed)

    @property
    def actions(self) -> np.ndarray:
        return self.unpacked()[0]

    @property
    def ts(self) -> np.ndarray:
        return self.unpacked()[1]

    @property
    def from_ad(self) -> np.ndarray:
        return self.unpacked()[2]

    def newest_ts(self, n: int) -> list[float]:
        """The epoch seconds of the newest n events (fewer in a shorter window), oldest first, as `ts` holds them."""
        return [packed_ts(entry) for entry in self.packed[-n:]]


@dataclass(eq=False, slots=True)
class AppendResult(SessionWindow):
    """The window after one append, and what the append found out about the event."""

    event_index: int = 0  # 0-based position in the session; for a duplicate, the first call's
    cart_state: int = 0  # model.risk CART_NONE / CART_OPEN / CART_CLOSED after this event
    duplicate: bool = False
    out_of_order: bool = False  # ts older than the previous event's; kept in arrival order
    stored_answer: dict[str, Any] | None = None  # duplicate already scored: the first answer
    # The click's context as append_event.lua returned it (CONTEXT_DIM integers, durations in ms, in model/context.py's
    # CONTEXT_NAMES order), decoded a batch at a time on the engine thread (service/model_inputs.py); None when the
    # store keeps no context state (SI_CONTEXT_STATE=off). A retry gets the session's context now.
    context_row: Sequence[Any] | None = None
    # A (CONTEXT_DIM,) float32 row given in seconds already, served instead of `context_row` (replay's).
    given_context: np.ndarray | None = None

    @property
    def context(self) -> np.ndarray | None:
        """(CONTEXT_DIM,) float32 raw context of the click, durations in seconds; None without context state."""
        if self.given_context is not None:
            return self.given_context
        return None if self.context_row is None else context_record.decode_context(self.context_row)


@dataclass(eq=False, slots=True)
class ScoreParts:
    """One record's share of a write_scores.lua call: KEYS (its meta and event-id keys) and ARGV."""

    record: ScoreRecord
    keys: tuple[str, str]
    args: tuple[str | bytes | int, ...]


@dataclass(frozen=True)
class ClickIds:
    """A click's optional ids (docs/architecture.md §3.1); the user only as its keyed hash (docs/privacy.md)."""

    item: str | None = None
    category: str | None = None
    user_hash: str | None = None


NO_IDS = ClickIds()  # shared by every click without ids, so that none builds its own


def event_id_digest(event_id: str | None) -> bytes:
    """8-byte digest that stands for an event_id in Redis: bounded memory for ids up to 128 chars."""
    if not event_id:
        return b""
    return hashlib.blake2b(event_id.encode(), digest_size=8).digest()
