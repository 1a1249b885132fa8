"""What a click load leaves behind: one `Click` per request and the `LoadRecord` the reports read.

The generator (bench/load/open_loop.py) sends each click once with a unique event_id (no retry), so an
acknowledged click (a 200) is exactly one event the service promised to keep.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NOT_SENT = -1  # the generator's bound on waiting clicks was reached
TRANSPORT_ERROR = 0  # no HTTP answer (connection refused or reset, client timeout)


@dataclass(frozen=True)
class Click:
    """One request: when it left (seconds since the load started), how it ended."""

    t: float
    latency_s: float
    status: int
    retry_after: str | None
    session: str
    event_id: str
    event_index: int | None
    # How long after its due time the generator reached it (its own stalls; a wait for a free connection
    # comes after). Part of `latency_s`, which runs from the due time; clicks reached in the same instant
    # left together: a late generator fires its backlog as one burst.
    late_s: float = 0.0


@dataclass
class LoadRecord:
    clicks: list[Click] = field(default_factory=list)
    started: float = 0.0  # time.monotonic() when the first arrival was due

    def acknowledged(self) -> list[Click]:
        return [c for c in self.clicks if c.status == 200]

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for click in self.clicks:
            counts[click.status] = counts.get(click.status, 0) + 1
        return dict(sorted(counts.items()))

    def latency_ms(self, status: int, since: float = 0.0, until: float = float("inf")) -> np.ndarray:
        """(k,) latencies in ms of the clicks with `status` sent in [since, until)."""
        return np.array([c.latency_s * 1000 for c in self.clicks if c.status == status and since <= c.t < until])
