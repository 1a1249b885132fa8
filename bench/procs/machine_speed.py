"""How fast this machine's CPU is right now, for benchmarks that compare CPU seconds taken minutes apart.

A CPU second is not a fixed amount of work on a shared virtual machine: a neighbour on the host's other
hyper-thread, or on the same caches, makes every instruction slower while the guest still counts full
seconds, and only part of that shows as steal. Inside the guest, a process that other work preempts often
comes back to cold caches and spends more CPU on the same click. `probe_ms` times one fixed piece of
interpreter work in CPU milliseconds (more ms: a slower CPU at that moment); `Ticks` reads /proc/stat's steal
share of a window; `preemptions` counts how often the kernel took a process off its core.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

PROBE_ITEMS = 60_000
PROC_STAT = Path("/proc/stat")


def probe_ms(repeats: int = 3) -> float:
    """CPU ms of a fixed mix of the work a click does in Python (dicts, strings, small objects); best of `repeats`,
    so a preemption inside one repeat does not count."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        table: dict[str, int] = {}
        for i in range(PROBE_ITEMS):
            key = f"s-{i % 977}:{i}"
            table[key] = table.get(key[:6], 0) + len(key)
        sorted(table.values())
        best = min(best, time.process_time() - start)
    return 1000 * best


@dataclass(frozen=True)
class Ticks:
    """The machine-wide CPU tick counters of /proc/stat (all zero where there is none)."""

    total: int
    steal: int

    @classmethod
    def read(cls) -> Ticks:
        try:
            fields = PROC_STAT.read_text().split("\n", 1)[0].split()[1:]
        except OSError:
            return cls(0, 0)
        values = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
        return cls(sum(values), values[7] if len(values) > 7 else 0)

    def steal_share(self, later: Ticks) -> float:
        """Share of the machine's CPU time between the two readings that the hypervisor gave to someone else."""
        total = later.total - self.total
        return (later.steal - self.steal) / total if total > 0 else 0.0


def preemptions(pid: int) -> int:
    """Involuntary context switches of process `pid` and its threads so far (0 when it is gone)."""
    import psutil

    try:
        return int(psutil.Process(pid).num_ctx_switches().involuntary)
    except psutil.Error:
        return 0
