"""Curated sessions of the common event form: the Sessions type shared by the reader, the cache and the dataset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.features import EventLog


class BadEventFile(ValueError):
    """The file cannot be used; the message says why and where."""


@dataclass(frozen=True)
class Sessions:
    """Sessions in CSV order of first appearance; events sorted by ts (stable) within each."""

    ids: np.ndarray  # (S,) str
    events: EventLog

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """(S,) events per session."""
        return np.diff(np.append(self.events.starts, len(self.events)))

    def select(self, keep: np.ndarray) -> Sessions:
        """Sessions where the (S,) bool mask `keep` is true."""
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
        return Sessions(ids=self.ids[keep], events=events)
