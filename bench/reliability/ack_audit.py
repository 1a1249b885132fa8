"""Count acknowledged clicks that Redis no longer holds, after a fault.

A session's meta hash keeps its `count` of events the store appended (service/store/score_record.py). Every
acknowledged click (a 200 with its own event_id) was appended once, so a session that answered `a`
clicks with 200 must hold `c ≥ a`. Redis that forgot some of them shows either `c < a`, or event
indices handed out twice (it counted from a lost state again). Lost = Σ max(a − c, a − distinct indices).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bench.load.clicks import Click
from service.store.keys import DEFAULT_PREFIX, KeyScheme
from service.store.score_record import META_FIELDS


@dataclass(frozen=True)
class AckAudit:
    acknowledged: int
    sessions: int
    lost: int
    sessions_with_loss: int


def audit_acknowledged(client: Any, clicks: Iterable[Click], prefix: str = DEFAULT_PREFIX) -> AckAudit:
    """`client` is a sync redis.Redis or redis.cluster.RedisCluster on the store the service wrote to."""
    indices: dict[str, list[int]] = defaultdict(list)
    for click in clicks:
        if click.status == 200 and click.event_index is not None:
            indices[click.session].append(click.event_index)
    sessions = sorted(indices)
    keys = KeyScheme(prefix)
    pipe = client.pipeline(transaction=False)
    for session in sessions:
        pipe.hget(keys.session(session).meta, META_FIELDS["count"])
    stored = [int(c) if c is not None else 0 for c in pipe.execute()]
    lost = 0
    with_loss = 0
    for session, count in zip(sessions, stored, strict=True):
        acked = len(indices[session])
        missing = max(acked - count, acked - len(set(indices[session])), 0)
        lost += missing
        with_loss += missing > 0
    return AckAudit(acknowledged=sum(len(v) for v in indices.values()), sessions=len(sessions), lost=lost,
                    sessions_with_loss=with_loss)
