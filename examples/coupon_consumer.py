"""A coupon engine's consumer of session-intent's alert stream (docs/service.md "Coupon alerts").

    python examples/coupon_consumer.py --redis-url redis://localhost:6379/0 --consumer engine-1

Reads `<prefix>:{alerts}` with a consumer group (XREADGROUP), acts on each `treat` alert, then XACKs it:
at-least-once delivery, so the action is idempotent (HSETNX: a redelivered alert issues no second coupon).
Alerts with `arm=hold` are the randomized holdout: they are acknowledged and NEVER acted on, or the
measured uplift (`session-intent uplift`) would be wrong. Before each read it reclaims, with XAUTOCLAIM,
the alerts another consumer read but did not acknowledge for `--claim-idle-ms` (a consumer that died
mid-stream), so no alert is lost.

The action here records the coupon in the hash `<prefix>:{alerts}:coupons` (session -> alert id); a real
engine would call its coupon service instead.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from typing import Any

import redis

log = logging.getLogger("coupon_consumer")

GROUP = "coupon-engine"
Alert = dict[str, str]


class CouponConsumer:
    """One member of the consumer group: claim the dead's pending alerts, read new ones, act, acknowledge."""

    def __init__(self, client: redis.Redis, prefix: str, consumer: str, claim_idle_ms: int = 30_000,
                 act: Callable[[str, Alert], None] | None = None, batch: int = 32) -> None:
        self.client = client
        self.stream = f"{prefix}:{{alerts}}"
        self.coupons = f"{self.stream}:coupons"
        self.consumer = consumer
        self.claim_idle_ms = claim_idle_ms
        self.batch = batch
        self.act = act or self.issue_coupon
        self.handled = 0

    def ensure_group(self) -> None:
        """Create the group at the stream's start (id 0: alerts written before any consumer ran count too)."""
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def issue_coupon(self, entry_id: str, alert: Alert) -> None:
        self.client.hsetnx(self.coupons, alert["session"], entry_id)

    def step(self, block_ms: int) -> int:
        """Reclaim, read and handle one round of alerts; how many were handled."""
        reclaimed: Any = self.client.xautoclaim(self.stream, GROUP, self.consumer, self.claim_idle_ms, "0-0",
                                                count=self.batch)  # [next start, entries, deleted ids]
        entries = list(reclaimed[1])
        if not entries:
            read: Any = self.client.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=self.batch,
                                               block=block_ms)
            entries = [entry for _, stream_entries in read for entry in stream_entries]
        for entry_id, fields in entries:
            self.handle(_text(entry_id), {_text(k): _text(v) for k, v in fields.items()})
        return len(entries)

    def handle(self, entry_id: str, alert: Alert) -> None:
        if alert.get("arm") != "hold":  # the holdout: counted by uplift, never couponed
            self.act(entry_id, alert)
        self.client.xack(self.stream, GROUP, entry_id)  # after the action: a crash before it redelivers
        self.handled += 1

    def run(self, idle_exit_s: float | None = None, block_ms: int = 500) -> None:
        """Consume until stopped, or until no alert came for `idle_exit_s`."""
        self.ensure_group()
        last = time.monotonic()
        while idle_exit_s is None or time.monotonic() - last < idle_exit_s:
            if self.step(block_ms):
                last = time.monotonic()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://localhost:6379/0")
    parser.add_argument("--prefix", default="si:v1", help="SI_REDIS_PREFIX of the service.")
    parser.add_argument("--consumer", default="engine-1", help="This consumer's name in the group.")
    parser.add_argument("--claim-idle-ms", type=int, default=30_000, help="Reclaim alerts pending this long.")
    parser.add_argument("--idle-exit-s", type=float, default=None, help="Exit after this long without alerts.")
    parser.add_argument("--act-delay-s", type=float, default=0.0, help="Time one coupon takes (tests, demos).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    client = redis.Redis.from_url(args.redis_url)
    consumer = CouponConsumer(client, args.prefix, args.consumer, args.claim_idle_ms)
    if args.act_delay_s:
        issue = consumer.issue_coupon

        def slow_issue(entry_id: str, alert: Alert) -> None:
            time.sleep(args.act_delay_s)
            issue(entry_id, alert)

        consumer.act = slow_issue
    consumer.run(args.idle_exit_s)
    log.info("%s handled %d alerts", args.consumer, consumer.handled)


if __name__ == "__main__":
    main()
