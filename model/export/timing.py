"""Timing primitives of the engine benchmark: interleaved runs, latency percentiles, peak RSS in a fresh process.

Engines that are compared are timed in alternating rounds on the same input, so that a change in machine
load (this CPU is shared) lands on all of them alike and their ratios stay fair.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from model.export.inputs import GraphInputs

RunFn = Callable[[GraphInputs], object]  # one model run on a batch of graph inputs


@dataclass(frozen=True)
class TimingPlan:
    """How many timed runs a cell gets: `target_runs`, fewer only when that would exceed `cell_budget_s`."""

    target_runs: int = 200
    min_runs: int = 60
    cell_budget_s: float = 15.0
    warmup_s: float = 0.15
    rounds: int = 4  # interleaving rounds per cell

    def runs_for(self, seconds_per_run: float, n_engines: int) -> int:
        """target_runs if they fit the budget; else what fits, but min_runs unless that takes 3 × the budget."""
        per_round_trip = max(seconds_per_run * n_engines, 1e-9)
        runs = max(self.min_runs, min(self.target_runs, int(self.cell_budget_s / per_round_trip)))
        return min(runs, max(self.rounds, int(3 * self.cell_budget_s / per_round_trip)))


@dataclass(frozen=True)
class Timing:
    """Latency of one batch, over `runs` timed runs."""

    runs: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    batch: int

    @property
    def samples_per_s(self) -> float:
        """Per-sample throughput: samples over the summed time of all timed runs."""
        return self.batch * 1000.0 / self.mean_ms

    @classmethod
    def from_seconds(cls, seconds: list[float], batch: int) -> Timing:
        ms = np.asarray(seconds) * 1000.0
        return cls(runs=len(ms), p50_ms=float(np.percentile(ms, 50)), p99_ms=float(np.percentile(ms, 99)),
                   mean_ms=float(ms.mean()), batch=batch)  # fmt: skip


def batch_of(inputs: GraphInputs, size: int) -> GraphInputs:
    """The first `size` rows of `inputs` (repeated if there are fewer), C-contiguous float32."""
    return inputs.repeated_to(size)


def _warm(fn: RunFn, x: GraphInputs, seconds: float) -> float:
    """Run until `seconds` have passed (at least 3 runs); the mean seconds per run of the last ones."""
    began, runs, last = time.perf_counter(), 0, 0.0
    while runs < 3 or time.perf_counter() - began < seconds:
        start = time.perf_counter()
        fn(x)
        last = time.perf_counter() - start
        runs += 1
    return last


def time_interleaved(engines: Mapping[str, RunFn], x: GraphInputs, plan: TimingPlan) -> dict[str, Timing]:
    """Time every engine on batch `x`: warm each, then `plan.rounds` rounds of runs/rounds each, rotating order."""
    per_run = max(_warm(fn, x, plan.warmup_s) for fn in engines.values())
    runs = plan.runs_for(per_run, len(engines))
    per_round = max(1, -(-runs // plan.rounds))
    seconds: dict[str, list[float]] = {name: [] for name in engines}
    names = list(engines)
    for round_no in range(plan.rounds):
        for name in names[round_no % len(names):] + names[: round_no % len(names)]:
            fn = engines[name]
            for _ in range(per_round):
                start = time.perf_counter()
                fn(x)
                seconds[name].append(time.perf_counter() - start)
    return {name: Timing.from_seconds(values, len(x)) for name, values in seconds.items()}
