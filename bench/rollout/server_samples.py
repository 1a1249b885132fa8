"""The service's own view during a load: /metrics scraped on a timer (bench reload's stall attribution).

Each sample keeps the live gauges (service/live_gauges.py: `si_in_flight`, `si_loop_lag_seconds` of the last
50 ms tick), the cumulative GC pause time by generation (`si_gc_pause_seconds`), the shadow's scored batches,
and how long the scrape itself took: a scrape that overlaps a stall of the service's event loop waits it out,
so its round trip is a stall probe that the 50 ms lag tick cannot miss.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

SAMPLE_S = 0.1


@dataclass(frozen=True)
class ServerSample:
    at: float  # time.monotonic() when the scrape was sent
    scrape_s: float
    in_flight: float
    loop_lag_s: float
    gc_pause_s: tuple[float, float, float]  # cumulative, generations 0, 1, 2
    gc_count: tuple[float, float, float]
    shadow_batches: float


def parse_sample(at: float, scrape_s: float, text: str) -> ServerSample:
    values: dict[str, float] = {}
    gc_sum, gc_count = [0.0] * 3, [0.0] * 3
    shadow = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("si_in_flight", "si_loop_lag_seconds"):
                values[sample.name] = sample.value
            elif sample.name in ("si_gc_pause_seconds_sum", "si_gc_pause_seconds_count"):
                target = gc_sum if sample.name.endswith("_sum") else gc_count
                target[int(sample.labels.get("generation", "0"))] += sample.value
            elif sample.name == "si_shadow_batches_total" and sample.labels.get("outcome") == "scored":
                shadow += sample.value
    return ServerSample(at, scrape_s, values.get("si_in_flight", 0.0), values.get("si_loop_lag_seconds", 0.0),
                        (gc_sum[0], gc_sum[1], gc_sum[2]), (gc_count[0], gc_count[1], gc_count[2]), shadow)


class ServerSampler:
    """Scrapes `url`/metrics every `every_s` on a thread of its own until stopped."""

    def __init__(self, url: str, every_s: float = SAMPLE_S) -> None:
        self.url, self.every_s = url, every_s
        self.samples: list[ServerSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="server-samples", daemon=True)

    def __enter__(self) -> ServerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            due = time.monotonic()
            while not self._stop.is_set():
                at = time.monotonic()
                try:
                    text = client.get("/metrics").text
                except httpx.HTTPError:
                    text = None
                if text is not None:
                    self.samples.append(parse_sample(at, time.monotonic() - at, text))
                due += self.every_s
                self._stop.wait(max(0.0, due - time.monotonic()))
