"""si_clicks_without_ids_total fed in bulk (service/missing_ids.py): the same counts as one increment per id."""

from __future__ import annotations

import itertools
import random
from types import SimpleNamespace

from prometheus_client import generate_latest

from service.metrics import ServiceMetrics
from service.missing_ids import FLUSH_EVERY, MissingIdCounts
from service.schemas import ID_FIELDS
from tests.service_support import metric_sample


def click(rng: random.Random) -> SimpleNamespace:
    return SimpleNamespace(**{name: None if rng.random() < 0.5 else "x" for name in ID_FIELDS})


def series(metrics: ServiceMetrics, name: str) -> float:
    text = generate_latest(metrics.registry).decode()
    key = f'si_clicks_without_ids_total{{missing="{name}"}}'
    return metric_sample(text, key) if key in text else 0.0


def test_a_scrape_sees_every_missing_id_counted_by_name() -> None:
    rng = random.Random(3)
    metrics = ServiceMetrics()
    counts = MissingIdCounts(metrics)
    clicks = [click(rng) for _ in range(FLUSH_EVERY // 2 + 7)]
    for c in clicks:
        counts.count(c)
    expected = {name: sum(getattr(c, name) is None for c in clicks) for name in ID_FIELDS}
    metrics.exposition()  # what /metrics runs: the buffered counts go in first
    assert {name: series(metrics, name) for name in ID_FIELDS} == expected


def test_counts_reach_the_counter_every_flush_every_clicks_without_a_scrape() -> None:
    metrics = ServiceMetrics()
    counts = MissingIdCounts(metrics)
    idless = SimpleNamespace(**dict.fromkeys(ID_FIELDS))
    for _ in range(FLUSH_EVERY - 1):
        counts.count(idless)
    assert series(metrics, "user_id") == 0  # still buffered (a click with every id adds nothing either)
    counts.count(SimpleNamespace(**dict.fromkeys(ID_FIELDS, "x")))
    counts.count(idless)
    assert [series(metrics, name) for name in ID_FIELDS] == [FLUSH_EVERY] * 3


def test_every_pattern_of_missing_ids_counts_each_name_once() -> None:
    metrics = ServiceMetrics()
    counts = MissingIdCounts(metrics)
    for values in itertools.product((None, "x"), repeat=len(ID_FIELDS)):
        counts.count(SimpleNamespace(**dict(zip(ID_FIELDS, values, strict=True))))
    counts.flush()
    assert [series(metrics, name) for name in ID_FIELDS] == [4, 4, 4]  # each name is missing in half of 8
