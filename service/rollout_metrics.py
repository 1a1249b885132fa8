"""Series of model rollout (docs/service.md "Models"): reloads, and the shadow candidate against the serving model.

On the service's registry, beside service/metrics.py's. The correlation of the two models' risks is
exported as running moments (n, Σs, Σc, Σs², Σc², Σs·c), which add up across replicas and scrapes, and as
a gauge; `summarise` (for `session-intent shadow-report` and `bench reload`) reads the moments.

With `--workers N` (prometheus_client's multiprocess mode) each gauge merges by its meaning:
`si_model_serving` sums, so it counts the live workers serving each version; the correlation is not one
worker's but the replica's, computed at scrape time from the moments summed over the workers
(`pooled_correlation`, ServiceMetrics.derived), so no worker writes a gauge of it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from service.metrics import LATENCY_BUCKETS_S, multiprocess_dir

# Candidate risk − serving risk, in [-1, 1]: fine near 0, where two sound models mostly differ.
RISK_DIFF_BUCKETS = (-0.5, -0.2, -0.1, -0.05, -0.02, -0.01, 0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
MOMENTS = ("n", "s", "c", "ss", "cc", "sc")  # s: serving risk, c: candidate risk
CORRELATION = "si_shadow_risk_correlation"
CORRELATION_HELP = "Pearson correlation of the two models' risks."


class RolloutMetrics:
    """Reload outcomes and the shadow comparison series, all labelled by the candidate's version."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.reloads = Counter("si_model_reloads_total", "Model loads asked for (admin route, SIGHUP), by outcome.",
                               ["outcome"], registry=r)
        self.serving = Gauge("si_model_serving", "Live workers serving the version now (1 without --workers).",
                             ["version"], registry=r, multiprocess_mode="livesum")
        self.shadow_batches = Counter(
            "si_shadow_batches_total", "Batches offered to the shadow candidate: scored, dropped (queue busy), failed.",
            ["candidate", "outcome"], registry=r,
        )
        self.shadow_windows = Counter("si_shadow_windows_total", "Windows the shadow candidate scored.",
                                      ["candidate"], registry=r)
        self.shadow_latency = Histogram("si_shadow_latency_seconds", "The candidate's engine run per batch.",
                                        ["candidate"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.intent_agreement = Counter("si_shadow_intent_total", "Shadowed windows whose intents agree or not.",
                                        ["candidate", "agree"], registry=r)
        self.risk_diff = Histogram("si_shadow_risk_diff", "Candidate abandonment_risk minus the serving one.",
                                   ["candidate"], buckets=RISK_DIFF_BUCKETS, registry=r)
        self.moments = Counter("si_shadow_risk_moments_total",
                               "Running moments of (serving s, candidate c) risks: n, s, c, ss, cc, sc.",
                               ["candidate", "moment"], registry=r)
        # --workers: computed from the summed moments at scrape time instead (pooled_correlation).
        self.correlation = None if multiprocess_dir() is not None else Gauge(
            CORRELATION, CORRELATION_HELP, ["candidate"], registry=r)


def pearson(moments: dict[str, float]) -> float | None:
    """Correlation from the running moments; None with fewer than 2 windows or a constant score."""
    n = moments.get("n", 0.0)
    if n < 2:
        return None
    cov = moments["sc"] / n - (moments["s"] / n) * (moments["c"] / n)
    var_s = moments["ss"] / n - (moments["s"] / n) ** 2
    var_c = moments["cc"] / n - (moments["c"] / n) ** 2
    if var_s <= 0 or var_c <= 0:
        return None
    return cov / math.sqrt(var_s * var_c)


def pooled_correlation(families: list[Metric]) -> list[Metric]:
    """si_shadow_risk_correlation{candidate} from the moments of a merged (multiprocess) collection."""
    moments: dict[str, dict[str, float]] = defaultdict(dict)
    for family in families:
        for s in family.samples:
            if s.name == "si_shadow_risk_moments_total":
                moments[s.labels["candidate"]][s.labels["moment"]] = s.value
    gauge = GaugeMetricFamily(CORRELATION, CORRELATION_HELP, labels=["candidate"])
    for candidate, sums in sorted(moments.items()):
        value = pearson(sums)
        if value is not None:
            gauge.add_metric([candidate], value)
    return [gauge] if gauge.samples else []


def summarise(metrics_text: str) -> list[dict[str, Any]]:
    """One summary per candidate found in a Prometheus exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, dict[str, Any]] = defaultdict(lambda: {
        "batches": {}, "agree": {}, "moments": {}, "latency_buckets": [], "risk_diff_buckets": [],
    })
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            candidate = s.labels.get("candidate")
            if candidate is None:
                continue
            row = found[candidate]
            if s.name == "si_shadow_batches_total":
                row["batches"][s.labels["outcome"]] = int(s.value)
            elif s.name == "si_shadow_windows_total":
                row["windows"] = int(s.value)
            elif s.name == "si_shadow_intent_total":
                row["agree"][s.labels["agree"]] = int(s.value)
            elif s.name == "si_shadow_risk_moments_total":
                row["moments"][s.labels["moment"]] = s.value
            elif s.name == "si_shadow_latency_seconds_bucket":
                row["latency_buckets"].append((float(s.labels["le"]), s.value))
            elif s.name == "si_shadow_risk_diff_bucket":
                row["risk_diff_buckets"].append((float(s.labels["le"]), s.value))
    out = []
    for candidate, row in sorted(found.items()):
        agree, disagree = row["agree"].get("true", 0), row["agree"].get("false", 0)
        out.append({
            "candidate": candidate, "windows": row.get("windows", 0), "batches": row["batches"],
            "intent_agreement": agree / (agree + disagree) if agree + disagree else None,
            "risk_correlation": pearson(row["moments"]) if row["moments"] else None,
            "latency_p50_s": _quantile(row["latency_buckets"], 0.5),
            "latency_p99_s": _quantile(row["latency_buckets"], 0.99),
            "risk_diff_histogram": _per_bucket(row["risk_diff_buckets"]),
        })
    return out


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the bucket holding quantile q of a cumulative histogram."""
    ordered = sorted(buckets)
    total = ordered[-1][1] if ordered else 0
    if total == 0:
        return None
    return next(le for le, count in ordered if count >= q * total)


def _per_bucket(buckets: list[tuple[float, float]]) -> list[dict[str, float]]:
    """Cumulative counts → count per (lower, upper] bucket."""
    ordered, previous, out = sorted(buckets), 0.0, []
    for le, count in ordered:
        out.append({"le": le, "count": count - previous})
        previous = count
    return out
