"""si_gc_pause_seconds (service/metrics.py GcPauses): collections are timed, the startup freeze's is not."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from service.metrics import GcPauses, ServiceMetrics


def _gen2_count(metrics: ServiceMetrics) -> float:
    return metrics.registry.get_sample_value("si_gc_pause_seconds_count", {"generation": "2"}) or 0.0


@pytest.fixture
def timed() -> Iterator[tuple[ServiceMetrics, GcPauses]]:
    metrics = ServiceMetrics()
    pauses = GcPauses(metrics)
    pauses.install()
    try:
        yield metrics, pauses
    finally:
        pauses.remove()
        gc.unfreeze()  # the test process's objects back in reach, as before


def test_a_full_collection_is_timed(timed: tuple[ServiceMetrics, GcPauses]) -> None:
    metrics, _ = timed
    gc.collect()
    assert _gen2_count(metrics) == 1


def test_the_startup_freeze_is_not_a_pause_but_later_collections_are(timed: tuple[ServiceMetrics, GcPauses]) -> None:
    metrics, pauses = timed
    pauses.freeze_startup_objects()
    assert gc.get_freeze_count() > 0
    assert _gen2_count(metrics) == 0  # it ran before /readyz: no click waited on it
    gc.collect()
    assert _gen2_count(metrics) == 1  # the timer is back on
