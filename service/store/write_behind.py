"""Write-behind of answered scores (docs/architecture.md §7): one `write_scores` call per flush, off the
click's critical path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from service.metrics import ServiceMetrics
from service.store.score_record import ScoreRecord
from service.store.window_store import SessionWindowStore
from service.store.window_values import ScoreParts

log = logging.getLogger(__name__)


class ScoreWriter:
    """Write-behind of answered scores: one `write_scores` call once `max_records` wait or the oldest is
    `flush_s` old.

    The answer does not wait for its write (docs/architecture.md §7: response, then one write per batch), and
    coalescing over a short interval rather than per engine batch is what keeps Redis at about one
    round trip per click when batches are small. Reads on another replica trail a click by up to
    `flush_s` plus one write; on this replica a retry in that gap is answered from `unwritten` (the first
    answer) and a read of /risk from `latest` (read-your-writes, docs/service.md).
    One task owns the buffer; at most one write is in flight. `add` builds each record's part of the call
    (`SessionWindowStore.score_parts`, a few µs) as its click is answered: built at the flush, a batch of 64 held
    the event loop for about half a millisecond, and every click that arrived meanwhile waited behind it.
    """

    def __init__(self, store: SessionWindowStore, metrics: ServiceMetrics, flush_s: float = 0.1,
                 max_records: int = 64) -> None:
        self.store = store
        self.metrics = metrics
        self.flush_s = flush_s
        self.max_records = max_records
        self._pending: list[ScoreParts] = []  # each record with its write_scores arguments, built on add
        self._unwritten: dict[tuple[str, str], ScoreRecord] = {}  # (session_id, event_id) -> record
        self._latest: dict[str, ScoreRecord] = {}  # session_id -> its newest record not yet written
        self._has_records = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name="score-writer")

    async def stop(self) -> None:
        """Write what is buffered (never cutting a write short), then end the task."""
        self._stopping = True
        self._has_records.set()
        self._full.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()

    def add(self, record: ScoreRecord) -> None:
        self._pending.append(self.store.score_parts(record))
        if record.event_id:
            self._unwritten[(record.session_id, record.event_id)] = record
        newest = self._latest.get(record.session_id)
        if newest is None or record.event_index >= newest.event_index:
            self._latest[record.session_id] = record
        self._has_records.set()
        if len(self._pending) >= self.max_records:
            self._full.set()

    def unwritten(self, session_id: str, event_id: str) -> ScoreRecord | None:
        """The answer of an event still on its way to Redis (this replica's only)."""
        return self._unwritten.get((session_id, event_id))

    def latest(self, session_id: str) -> ScoreRecord | None:
        """The newest answer of a session still on its way to Redis (this replica's only)."""
        return self._latest.get(session_id)

    async def _serve(self) -> None:
        while not self._stopping:
            await self._has_records.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self.flush_s)
            await self.flush()

    async def flush(self) -> None:
        parts, self._pending = self._pending, []
        self._has_records.clear()
        self._full.clear()
        if not parts:
            return
        records = [part.record for part in parts]
        try:
            await self.store.write_prepared(parts)
        except Exception as exc:  # the clicks were answered already; their windows are safe in Redis
            self.metrics.errors.labels(cause="score_write").inc()
            log.warning("could not write back %d scores: %s", len(records), exc)
        finally:
            for record in records:
                if record.event_id and self._unwritten.get((record.session_id, record.event_id)) is record:
                    del self._unwritten[(record.session_id, record.event_id)]
                if self._latest.get(record.session_id) is record:
                    del self._latest[record.session_id]
