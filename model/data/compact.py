"""Compact per-event encoding and per-batch window gathering (docs/architecture.md §3).

A window is (N, 16) float32, so holding every prefix's window costs E × N × 64 bytes (640 B per
event at N = 10). Instead each event keeps 6 bytes and windows are gathered when a batch needs them:

    action  (E,) int8     index into ACTIONS: the slot that holds the dwell
    dwell   (E,) float32  seconds in that slot, exactly as `encode_events` wrote it
    flags   (E,) uint8    bit k = slot N_ACTIONS + k (from_ad, high_season, weekend, working_hours)

`model/features.py` stays the one definition: the per-event values come from `encode_events`, and
`gather_windows` rebuilds `prefix_windows` bit for bit (tests/test_compact.py proves it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.features import N_ACTIONS, PROVISIONAL_DWELL_S, VECTOR_DIM, EventLog, FeatureConfig, encode_events

N_FLAGS = VECTOR_DIM - N_ACTIONS
_BITS = (1 << np.arange(N_FLAGS)).astype(np.uint8)  # (4,)
CHUNK_EVENTS = 1 << 20  # events encoded at once: bounds the (chunk, 16) float32 scratch to 64 MB


@dataclass(frozen=True)
class EncodedEvents:
    """Per-event compact encoding of an EventLog; see the module docstring for the layout."""

    action: np.ndarray
    dwell: np.ndarray
    flags: np.ndarray

    def __len__(self) -> int:
        return int(self.action.shape[0])


def _chunk_bounds(starts: np.ndarray, n_events: int, chunk: int) -> list[tuple[int, int, int, int]]:
    """(first event, end event, first session, end session) of session-aligned chunks of ~`chunk` events."""
    bounds = []
    s0 = 0
    while s0 < len(starts):
        e0 = int(starts[s0])
        s1 = int(np.searchsorted(starts, e0 + chunk, side="right"))
        s1 = max(s1, s0 + 1)  # a session longer than a chunk is one chunk
        e1 = int(starts[s1]) if s1 < len(starts) else n_events
        bounds.append((e0, e1, s0, s1))
        s0 = s1
    return bounds


def encode_compact(log: EventLog, config: FeatureConfig, chunk: int = CHUNK_EVENTS) -> EncodedEvents:
    """Encode `log` through `encode_events`, one session-aligned chunk at a time, into 6 bytes per event."""
    n = len(log)
    action = np.asarray(log.actions, dtype=np.int8).copy()
    dwell = np.empty(n, dtype=np.float32)
    flags = np.empty(n, dtype=np.uint8)
    for e0, e1, s0, s1 in _chunk_bounds(np.asarray(log.starts), n, chunk):
        part = EventLog(
            actions=log.actions[e0:e1], ts=log.ts[e0:e1], from_ad=log.from_ad[e0:e1],
            starts=np.asarray(log.starts[s0:s1], dtype=np.int64) - e0,
        )  # fmt: skip
        vectors = encode_events(part, config)  # (e1 - e0, 16)
        dwell[e0:e1] = vectors[np.arange(e1 - e0), action[e0:e1]]
        flags[e0:e1] = (vectors[:, N_ACTIONS:] > 0).astype(np.uint8) @ _BITS
    return EncodedEvents(action=action, dwell=dwell, flags=flags)


def gather_windows(events: EncodedEvents, ends: np.ndarray, position: np.ndarray, window: int) -> np.ndarray:
    """(B, N, 16) float32 windows of the prefixes ending at events `ends` (B,), `position` (B,) events
    after their session's start: oldest first, zero-padded at the front, the newest event provisional.
    """
    ends = np.asarray(ends, dtype=np.int64)
    offsets = np.arange(-window + 1, 1)  # (N,)
    valid = offsets[None, :] >= -np.asarray(position, dtype=np.int64)[:, None]  # (B, N): inside the session
    b, k = np.nonzero(valid)
    e = ends[b] + offsets[k]  # (V,) event of each valid cell
    dwell = events.dwell[e]
    dwell[k == window - 1] = PROVISIONAL_DWELL_S  # the newest event's successor is unknown at serve time
    out = np.zeros((len(ends), window, VECTOR_DIM), dtype=np.float32)
    out[b, k, events.action[e].astype(np.int64)] = dwell
    out[b, k, N_ACTIONS:] = (events.flags[e][:, None] & _BITS) > 0
    return out


@dataclass(frozen=True)
class WindowView:
    """Windows of some prefixes, gathered on slicing: `len()` and `view[a:b]` like an (n, N, 16) array."""

    events: EncodedEvents
    ends: np.ndarray  # (n,) int64
    position: np.ndarray  # (n,)
    window: int

    def __len__(self) -> int:
        return int(self.ends.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self), self.window, VECTOR_DIM)

    def __getitem__(self, index: slice | np.ndarray) -> np.ndarray:
        return gather_windows(self.events, self.ends[index], self.position[index], self.window)
