"""Whose stall a non-2xx answer follows: the generator's, the service's, or neither seen (bench reload).

Evidence per episode (non-2xx answers no more than `EPISODE_GAP_S` apart), over the episode and the
`LOOKBACK_S` before it:
- the generator: the latest send of a click due then (`Click.late_s`) and its own GC collections. A late
  generator fires its backlog at once when it resumes, a burst the Poisson plan never drew;
- the service: the /metrics samples (bench/rollout/server_samples.py): the longest scrape (a scrape that
  overlaps a stall of the event loop waits it out), the loop lag, the most in flight, and the gen-2 GC pause
  time the service added meanwhile.
A side is named when its stall reaches `STALL_S`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.load.clicks import NOT_SENT, Click
from bench.rollout.reload import ReloadResult
from bench.rollout.server_samples import ServerSample

EPISODE_GAP_S = 0.5
LOOKBACK_S = 0.5
STALL_S = 0.05


@dataclass(frozen=True)
class Episode:
    start_s: float
    end_s: float
    non_2xx: int
    generator_late_ms: float  # the latest send of a click due in the episode or just before it
    generator_gc_ms: float  # the generator process's own collections overlapping it
    server_scrape_ms: float  # the longest /metrics round trip sampled around it
    server_lag_ms: float
    server_in_flight: float
    server_gc2_ms: float  # gen-2 GC pause time the service added around it
    shadow_per_s: float  # batches the shadow scored per second around it (a busy candidate takes CPU and GIL)
    swap: int | None

    def blame(self) -> str:
        sides = []
        if self.generator_late_ms >= STALL_S * 1000 or self.generator_gc_ms >= STALL_S * 1000:
            sides.append("generator")
        if self.server_gc2_ms >= STALL_S * 1000:
            sides.append("service GC")
        elif max(self.server_scrape_ms, self.server_lag_ms) >= STALL_S * 1000:
            sides.append("service")
        return " + ".join(sides) or "no stall seen"


def lateness_ms(clicks: list[Click]) -> np.ndarray:
    """(k,) send lateness in ms of every click the generator sent."""
    return np.array([c.late_s * 1000 for c in clicks if c.status != NOT_SENT])


def largest_burst(clicks: list[Click]) -> int:
    """The most clicks the generator reached in one instant (one timer callback): its catch-up after a stall."""
    instants: dict[int, int] = {}
    for c in clicks:
        if c.status != NOT_SENT:
            key = round((c.t + c.late_s) * 1e5)  # reached = due + lateness, to 10 µs
            instants[key] = instants.get(key, 0) + 1
    return max(instants.values(), default=0)


def episodes(r: ReloadResult) -> list[Episode]:
    bad = sorted(c.t for c in r.load.clicks if not 200 <= c.status < 300)
    groups: list[list[float]] = []
    for t in bad:
        if groups and t - groups[-1][-1] <= EPISODE_GAP_S:
            groups[-1].append(t)
        else:
            groups.append([t])
    return [_episode(r, g[0], g[-1], len(g)) for g in groups]


def _episode(r: ReloadResult, t0: float, t1: float, count: int) -> Episode:
    since, until = t0 - LOOKBACK_S, t1 + LOOKBACK_S
    late = [c.late_s for c in r.load.clicks if since <= c.t <= t1 and c.status != NOT_SENT]
    origin = r.load.started
    gen_gc = sum(s for at, _, s in r.generator.pauses if since <= at - origin <= t1)
    around = [s for s in r.server if since <= s.at - origin <= until]
    before = [s for s in r.server if s.at - origin < since]
    first = (before[-1] if before else around[0]) if around else None
    gc2 = around[-1].gc_pause_s[2] - first.gc_pause_s[2] if first is not None else 0.0
    shadow = (around[-1].shadow_batches - first.shadow_batches) / max(around[-1].at - first.at, 1e-3) \
        if first is not None else 0.0
    swap = next((i for i, w in enumerate(r.swaps) if t0 <= w.end_s + 0.25 and t1 >= w.start_s), None)
    return Episode(
        round(t0, 2), round(t1, 2), count, round(max(late, default=0.0) * 1000, 1), round(gen_gc * 1000, 1),
        round(max((s.scrape_s for s in around), default=0.0) * 1000, 1),
        round(max((s.loop_lag_s for s in around), default=0.0) * 1000, 1),
        max((s.in_flight for s in around), default=0.0), round(gc2 * 1000, 1), round(shadow, 1), swap,
    )


def server_stalls(samples: list[ServerSample], origin: float, top: int = 5) -> list[tuple[float, float, float]]:
    """The `top` longest scrapes as (s since the load started, scrape ms, loop lag ms), longest first."""
    ranked = sorted(samples, key=lambda s: s.scrape_s, reverse=True)[:top]
    return [(round(s.at - origin, 2), round(s.scrape_s * 1000, 1), round(s.loop_lag_s * 1000, 1)) for s in ranked]


def _by_generation(pauses: list[tuple[float, int, float]]) -> list[tuple[int, int]]:
    counts: dict[int, int] = {}
    for _, generation, _ in pauses:
        counts[generation] = counts.get(generation, 0) + 1
    return sorted(counts.items())


def diagnosis_lines(r: ReloadResult) -> list[str]:
    late = lateness_ms(r.load.clicks)
    where = ("its own process, its GC frozen and off" if r.generator.own_process
             else "a thread of the bench's process, GC on")
    q = (lambda p: round(float(np.percentile(late, p)), 1)) if late.size else (lambda p: float("nan"))
    gen_gc = r.generator.pauses
    lines = [
        "## Did the generator keep its schedule?", "",
        f"The generator ran in {where}. Send lateness (how long after a click's due time the generator reached "
        "it, to 1 ms: uvloop's clock): "
        f"p50 {q(50)} ms, p99 {q(99)} ms, p99.9 {q(99.9)} ms, max {q(100)} ms; "
        f"{int((late > 10).sum())} clicks reached more than 10 ms late, {int((late > 50).sum())} more than 50 ms; "
        f"at most {largest_burst(r.load.clicks)} clicks left in one instant. "
        f"Its process ran {len(gen_gc)} GC collections during the load"
        + (" (" + ", ".join(f"generation {g}: {n}, longest {r.generator.longest(g) * 1000:.1f} ms"
                            for g, n in _by_generation(gen_gc)) + ")." if gen_gc else "."), "",
    ]
    if r.server:
        origin = r.load.started
        span = max(r.server[-1].at - r.server[0].at, 1e-3)
        total_gc2 = (r.server[-1].gc_pause_s[2] - r.server[0].gc_pause_s[2]) * 1000
        count_gc2 = int(r.server[-1].gc_count[2] - r.server[0].gc_count[2])
        stalls = ", ".join(f"{ms} ms at {t} s (lag {lag} ms)" for t, ms, lag in server_stalls(r.server, origin))
        lines += [
            f"The service, scraped every {r.plan.sample_s * 1000:.0f} ms ({len(r.server)} samples, median "
            f"scrape {np.median([s.scrape_s for s in r.server]) * 1000:.1f} ms): "
            f"{count_gc2} gen-2 GC collections ({total_gc2:.1f} ms in all); longest scrapes {stalls}; "
            f"most in flight {max(s.in_flight for s in r.server):.0f}; the shadow scored "
            f"{(r.server[-1].shadow_batches - r.server[0].shadow_batches) / span:.1f} batches/s.", "",
        ]
    found = episodes(r)
    if not found:
        return [*lines, "No non-2xx answers, so no episode to attribute.", ""]
    lines += [
        f"Non-2xx episodes (answers ≤ {EPISODE_GAP_S} s apart), with the evidence from {LOOKBACK_S} s before "
        f"each; a side is named when its stall reaches {STALL_S * 1000:.0f} ms:", "",
        "| from s | to s | non-2xx | generator late ms | generator GC ms | service scrape ms | loop lag ms | "
        "in flight | service gen-2 GC ms | shadow batches/s | swap | whose stall |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        *(f"| {e.start_s} | {e.end_s} | {e.non_2xx} | {e.generator_late_ms} | {e.generator_gc_ms} | "
          f"{e.server_scrape_ms} | {e.server_lag_ms} | {e.server_in_flight:.0f} | {e.server_gc2_ms} | "
          f"{e.shadow_per_s} | "
          f"{'' if e.swap is None else e.swap + 1} | {e.blame()} |" for e in found), "",
    ]
    return lines
