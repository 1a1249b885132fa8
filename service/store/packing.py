"""A window entry's packing and the append script's reply codes, defined once (docs/redis.md).

Python packs nothing itself but reads every entry through `unpack_events`; the Lua scripts get the same
constants from `lua_prelude()`, which the store prepends to each script beside the field names of
score_record.py, so Python and Lua cannot drift apart.

A window entry is one integer, `ts_ms * TS_SCALE + action * ACTION_SCALE + from_ad`: the list stays a compact
run of integers, below 2^53 and so exact in Lua's doubles up to the year 2200.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model.features import N_ACTIONS

FROM_AD_BITS = 1
ACTION_BITS = 4
ACTION_SHIFT = FROM_AD_BITS
TS_SHIFT = FROM_AD_BITS + ACTION_BITS
ACTION_SCALE = 1 << ACTION_SHIFT  # 2
TS_SCALE = 1 << TS_SHIFT  # 32
ACTION_MASK = (1 << ACTION_BITS) - 1
assert N_ACTIONS <= 1 << ACTION_BITS, f"a packed event keeps the action in {ACTION_BITS} bits"

# append_event.lua's `duplicate` reply: a new event, a retry of a known event_id with its body (or none to
# compare), or a conflict: the event_id was seen with another body, and nothing was written.
APPEND_NEW, APPEND_DUPLICATE, APPEND_CONFLICT = 0, 1, 2


def pack_event(ts_ms: int, action: int, from_ad: bool) -> int:
    """The list entry of one event, as append_event.lua writes it."""
    return ts_ms * TS_SCALE + action * ACTION_SCALE + int(from_ad)


def unpack_events(packed: Sequence[bytes | str | int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Packed list entries → actions (k,) int64, ts (k,) float64 seconds, from_ad (k,) bool."""
    values = np.array(list(map(int, packed)), dtype=np.int64)
    return (values >> ACTION_SHIFT) & ACTION_MASK, (values >> TS_SHIFT) / 1000.0, (values & 1).astype(bool)


def unpack_windows(windows: Sequence[Sequence[bytes | str | int]]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`unpack_events` of each of B windows, in one conversion for the whole batch (the engine thread's, not one per
    click on the event loop); each window's arrays are views of the batch's."""
    actions, ts, from_ad = unpack_events([entry for window in windows for entry in window])
    out = []
    start = 0
    for window in windows:
        stop = start + len(window)
        out.append((actions[start:stop], ts[start:stop], from_ad[start:stop]))
        start = stop
    return out


def packed_ts(entry: bytes | str | int) -> float:
    """The epoch seconds of one packed entry, as `unpack_events` gives them (the same float64 division)."""
    return (int(entry) >> TS_SHIFT) / 1000.0


def lua_prelude() -> str:
    """The packing scales and the reply codes as Lua locals, for the top of every script."""
    return (
        f"local TS_SCALE, ACTION_SCALE = {TS_SCALE}, {ACTION_SCALE}\n"
        f"local APPEND_NEW, APPEND_DUPLICATE, APPEND_CONFLICT = {APPEND_NEW}, {APPEND_DUPLICATE}, {APPEND_CONFLICT}\n"
    )
