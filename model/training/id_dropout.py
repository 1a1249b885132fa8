"""Context dropout (docs/training.md "Clicks without ids"): a seeded share of TRAINING sessions is trained with
the context serving computes for clicks sent without ids (model.context.context_without_ids), so the network
learns to score such clicks instead of reading "no history, no items" as a signal.

The replaced rows come from the one definition in model/context.py, computed on the chosen sessions' own
events: without ids no feature reaches across sessions, so a session's id-less context needs nothing else.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from model.context import context_without_ids
from model.data.dataset import Sessions, WindowSet


def drop_context_ids(part: WindowSet, sessions: Sessions, share: float, seed: int) -> tuple[WindowSet, int]:
    """`part` with the context of a random `share` of its sessions replaced by their id-less context.

    part: windows of `sessions` (its `context` holds every event of `sessions`). Returns the new set (a copy of
    the context; other sets sharing the old array are untouched) and how many sessions were chosen.
    """
    if part.context is None or share <= 0.0 or len(part) == 0:
        return part, 0
    members = np.unique(part.session)  # (S_part,) ordinals into `sessions`
    chosen = members[np.random.default_rng(seed).random(members.size) < share]
    if not chosen.size:
        return part, 0
    keep = np.zeros(len(sessions), dtype=bool)
    keep[chosen] = True
    event_mask = np.repeat(keep, sessions.lengths)  # (E,) events of the chosen sessions, in order
    context = np.array(part.context, dtype=np.float32, copy=True)
    context[event_mask] = context_without_ids(sessions.select(keep).events)
    return replace(part, context=context), int(chosen.size)
