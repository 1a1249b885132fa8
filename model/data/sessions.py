"""Curated sessions of the common event form: the Sessions type shared by the reader, the cache and the dataset."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from model.context import ContextIds
from model.features import EventLog


class BadEventFile(ValueError):
    """The file cannot be used; the message says why and where."""


@dataclass(frozen=True)
class Sessions:
    """Sessions in CSV order of first appearance; events sorted by ts (stable) within each."""

    ids: np.ndarray  # (S,) str
    events: EventLog
    # user (S,), item and category (E,) int codes (-1: unknown) for model/context.py; None where the log has none
    context_ids: ContextIds = field(default_factory=ContextIds)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """(S,) events per session."""
        return np.diff(np.append(self.events.starts, len(self.events)))

    def select(self, keep: np.ndarray) -> Sessions:
        """Sessions where the (S,) bool mask `keep` is true; `self` when it keeps them all (the arrays are shared)."""
        if keep.all():
            return self
        lengths = self.lengths
        event_keep = np.repeat(keep, lengths)
        kept_lengths = lengths[keep]
        starts = np.concatenate([[0], np.cumsum(kept_lengths)[:-1]]).astype(np.int64)
        events = EventLog(
            actions=self.events.actions[event_keep],
            ts=self.events.ts[event_keep],
            from_ad=self.events.from_ad[event_keep],
            starts=starts if kept_lengths.size else np.zeros(0, dtype=np.int64),
        )
        ids = self.context_ids
        kept = ContextIds(
            items=ids.items[event_keep] if ids.items is not None else None,
            categories=ids.categories[event_keep] if ids.categories is not None else None,
            users=ids.users[keep] if ids.users is not None else None,
        )
        return Sessions(ids=self.ids[keep], events=events, context_ids=kept)
