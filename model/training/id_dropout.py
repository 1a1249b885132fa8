"""Context dropout (docs/training.md "Clicks without ids"): a seeded share of TRAINING sessions is trained with
the context serving computes for clicks sent without ids (model.context.context_without_ids), so the network
learns to score such clicks instead of reading "no history, no items" as a signal.

The replaced rows come from the one definition in model/context.py, computed on the chosen sessions' own
events: without ids no feature reaches across sessions, so a session's id-less context needs nothing else.
They replace the shared context's rows when a batch is gathered (`model.data.dataset.ContextRows`): the
context array, shared with validation and test, is neither written nor copied, and only the chosen
sessions' rows are held (72 bytes per event of a chosen session instead of a 64-byte copy of every event).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from model.context import context_without_ids
from model.data.dataset import ContextRows, Sessions, WindowSet


def drop_context_ids(part: WindowSet, sessions: Sessions, share: float, seed: int) -> tuple[WindowSet, int]:
    """`part` with the context of a random `share` of its sessions replaced by their id-less context.

    part: windows of `sessions` (its `context` holds every event of `sessions`). Returns the new set (the same
    context array, with the chosen sessions' rows replaced at gather time; other sets sharing the array are
    untouched) and how many sessions were chosen.
    """
    if part.context is None or share <= 0.0 or len(part) == 0:
        return part, 0
    members = np.unique(part.session)  # (S_part,) ordinals into `sessions`
    chosen = members[np.random.default_rng(seed).random(members.size) < share]
    if not chosen.size:
        return part, 0
    keep = np.zeros(len(sessions), dtype=bool)
    keep[chosen] = True
    events = np.flatnonzero(np.repeat(keep, sessions.lengths))  # (m,) events of the chosen sessions, in order
    rows = ContextRows(events, context_without_ids(sessions.select(keep).events))
    return replace(part, context_rows=rows), int(chosen.size)
