"""The one CPU meter of the benchmarks: user + system seconds of a process, its descendants, or a finished child.

psutil is imported where a function needs it: `bench data` reads only its own process and runs without
the dev extra.
"""

from __future__ import annotations

import resource
import subprocess
import time
from dataclasses import dataclass


def cpu_seconds(pid: int | None = None, *, children: bool = False) -> float:
    """User + system CPU seconds of process `pid` (this process when None); `children`: plus its live descendants."""
    if pid is None and not children:
        return time.process_time()
    import psutil

    proc = psutil.Process(pid)
    total = float(sum(proc.cpu_times()[:2]))
    for child in proc.children(recursive=True) if children else ():
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            continue
    return total


def waited_children_cpu_seconds() -> float:
    """User + system CPU seconds of every child this process has waited for: exact for a run of `subprocess.run`."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_until_exit(proc: subprocess.Popen[bytes], deadline: float, every_s: float = 0.25) -> float:
    """CPU seconds of `proc` and every process it forks, each read until it ends; killed at `deadline`.

    Polled, because forked workers may never be waited for, so no rusage reaches us: the last
    `every_s` of each process can be missed.
    """
    import psutil

    last: dict[int, float] = {}
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            break
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for member in tree:
            try:
                last[member.pid] = sum(member.cpu_times()[:2])
            except psutil.NoSuchProcess:
                continue
        time.sleep(every_s)
    proc.wait()
    return sum(last.values())


@dataclass(frozen=True)
class CpuReading:
    wall: float  # time.monotonic()
    cpu: dict[str, float]  # name -> CPU seconds so far


class CpuMeter:
    """Several processes read at one moment, by name: `between(before, after)` gives each one's CPU seconds."""

    def __init__(self, **pids: int | None) -> None:
        self.pids = pids  # None: this process

    def read(self) -> CpuReading:
        return CpuReading(time.monotonic(), {name: cpu_seconds(pid) for name, pid in self.pids.items()})

    @staticmethod
    def between(before: CpuReading, after: CpuReading) -> tuple[float, dict[str, float]]:
        """(wall seconds, CPU seconds by name) from `before` to `after`."""
        return after.wall - before.wall, {name: after.cpu[name] - before.cpu[name] for name in after.cpu}
