"""Count acknowledged clicks that Redis no longer holds, after a fault.

A session's meta hash keeps its `count` of events the store appended (service/store/score_record.py). Every
acknowledged click (a 200 with its own event_id) was appended once, so a session that answered `a`
clicks with 200 must hold `c ≥ a`. Redis that forgot some of them shows either `c < a`, or event
indices handed out twice (it counted from a lost state again). Lost = Σ max(a − c, a − distinct indices).

The session's context state (service/store/context_record.py) is written by the same atomic call and counts the
session's clicks too (with or without ids), so it must hold `clicks ≥ a` as well: `context_lost` =
Σ max(a − clicks, 0). It assumes the service keeps context state (`SI_CONTEXT_STATE` session or full, the default
full); with `off` there is no context hash and every acknowledged click would count as lost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bench.load.clicks import Click
from service.store.context_record import CONTEXT_FIELDS
from service.store.keys import DEFAULT_PREFIX, KeyScheme
from service.store.score_record import META_FIELDS

# The reports' words for the audit's context column and the load's ids column (chaos and failover alike).
CONTEXT_TERMS = (
    "*Context lost*: the same count from the session's context state (bench/reliability/ack_audit.py). *ids*: the "
    "clicks carry user_id, item_id and category_id (bench/load/open_loop.py's pools), so they write the context "
    "state and the shoppers' histories too."
)


@dataclass(frozen=True)
class AckAudit:
    acknowledged: int
    sessions: int
    lost: int
    sessions_with_loss: int
    context_lost: int  # acknowledged clicks the session's context state no longer counts


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
        pipe.hget(keys.context(session), CONTEXT_FIELDS["clicks"])
    replies = [int(c) if c is not None else 0 for c in pipe.execute()]
    lost = with_loss = context_lost = 0
    for session, count, context_clicks in zip(sessions, replies[0::2], replies[1::2], strict=True):
        acked = len(indices[session])
        missing = max(acked - count, acked - len(set(indices[session])), 0)
        lost += missing
        with_loss += missing > 0
        context_lost += max(acked - context_clicks, 0)
    return AckAudit(acknowledged=sum(len(v) for v in indices.values()), sessions=len(sessions), lost=lost,
                    sessions_with_loss=with_loss, context_lost=context_lost)
