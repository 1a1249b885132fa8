"""Series of model rollout (docs/service.md "Models"): reloads, and the shadow candidate against the serving model.

On the service's registry, beside service/metrics.py's. The correlation of the two models' risks is
exported as running moments (n, Σs, Σc, Σs², Σc², Σs·c), which add up across replicas and scrapes, and as
a per-replica gauge; `session-intent shadow-report` reads either.
"""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.metrics import LATENCY_BUCKETS_S

# Candidate risk − serving risk, in [-1, 1]: fine near 0, where two sound models mostly differ.
RISK_DIFF_BUCKETS = (-0.5, -0.2, -0.1, -0.05, -0.02, -0.01, 0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
MOMENTS = ("n", "s", "c", "ss", "cc", "sc")  # s: serving risk, c: candidate risk


class RolloutMetrics:
    """Reload outcomes and the shadow comparison series, all labelled by the candidate's version."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.reloads = Counter("si_model_reloads_total", "Model loads asked for (admin route, SIGHUP), by outcome.",
                               ["outcome"], registry=r)
        self.serving = Gauge("si_model_serving", "1 for the version this replica serves now.", ["version"],
                             registry=r)
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
        self.correlation = Gauge("si_shadow_risk_correlation", "Pearson correlation of the two models' risks.",
                                 ["candidate"], registry=r)


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
