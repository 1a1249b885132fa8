"""How long a model run takes on the batcher's engine thread while the event loop keeps the GIL busy.

`python -m bench.engine.gil_probe MODEL_DIR [--batch 6] [--rounds 6]` (docs/engine.md, "Where the published
size's latency goes"). One thread stands in for the event loop at about 80 % load: pure-Python busy periods
(the loop's callbacks hold the GIL throughout) with short idle gaps. The engine thread runs what the
batcher runs per batch: `OnnxEngine.run` on a batch of windows and contexts (ONNX Runtime releases the GIL
while it runs; the thread takes it back to return the scores). Per GIL switch interval, interleaved in
rounds so that machine load lands on each alike, it logs the engine call's wall time, its thread CPU time,
their difference (the time spent waiting, for the GIL or for a core on a shared machine), and the wake: how
much longer than asked the 2 ms pause between two runs took (a woken thread waits for the GIL too, as the
batcher's thread does when it is handed the next batch). A control
without the loop thread shows the waiting that is the machine's, not the GIL's.

Indicative, not a benchmark table: it writes nothing under docs/benchmarks/.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model.artifacts import INT8_FILE
from model.card import ModelCard
from model.features import VECTOR_DIM
from service.engine.onnx_engine import OnnxEngine

logger = logging.getLogger(__name__)

SWITCH_INTERVALS_S: tuple[float, ...] = (0.005, 0.001, 0.0005)  # CPython's default first
PAUSE_S = 0.002  # between two runs, as between two batches


class BusyLoop:
    """A thread that holds the GIL in pure-Python busy periods of `busy_s`, idle (sleeping) `idle_s` between."""

    def __init__(self, busy_s: float, idle_s: float) -> None:
        self.busy_s, self.idle_s = busy_s, idle_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loop-stand-in", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.perf_counter()
            while time.perf_counter() - began < self.busy_s:
                sum(range(200))
            time.sleep(self.idle_s)

    def __enter__(self) -> BusyLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def time_runs(engine: OnnxEngine, batch: int, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(wall ms, thread CPU ms, wake ms) of engine runs for `seconds`, with a 2 ms sleep between runs as between
    batches; wake: how much longer than 2 ms the sleep took (the thread, woken, waits for the GIL as the
    batcher's thread does when handed a batch)."""
    rng = np.random.default_rng(0)
    windows = rng.random((batch, engine.window, VECTOR_DIM), dtype=np.float32)
    context = rng.random((batch, len(engine.context_names)), dtype=np.float32) if engine.context_names else None
    walls, cpus, wakes = [], [], []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        wall, cpu = time.perf_counter(), time.thread_time()
        engine.run(windows, context)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.thread_time() - cpu)
        slept = time.perf_counter()
        time.sleep(PAUSE_S)
        wakes.append(time.perf_counter() - slept - PAUSE_S)
    return np.asarray(walls) * 1000, np.asarray(cpus) * 1000, np.asarray(wakes) * 1000


def probe(model_dir: Path, batch: int, rounds: int, seconds: float, busy_s: float, idle_s: float) -> list[str]:
    """One line per (loop on/off, switch interval): wall p50/mean/p99, thread CPU and the wait, in ms."""
    path = model_dir / INT8_FILE
    engine = OnnxEngine(path if path.is_file() else model_dir / "model.onnx", ModelCard.load(model_dir),
                        ["CPUExecutionProvider"], 1)  # fmt: skip
    engine.warmup((batch,))
    before = sys.getswitchinterval()
    lines = []
    try:
        for loop_on in (True, False):
            walls: dict[float, list[np.ndarray]] = {s: [] for s in SWITCH_INTERVALS_S}
            cpus: dict[float, list[np.ndarray]] = {s: [] for s in SWITCH_INTERVALS_S}
            wakes: dict[float, list[np.ndarray]] = {s: [] for s in SWITCH_INTERVALS_S}
            loop = BusyLoop(busy_s, idle_s) if loop_on else None
            with loop if loop is not None else contextlib.nullcontext():
                for _ in range(rounds):
                    for interval in SWITCH_INTERVALS_S:
                        sys.setswitchinterval(interval)
                        wall, cpu, wake = time_runs(engine, batch, seconds)
                        walls[interval].append(wall)
                        cpus[interval].append(cpu)
                        wakes[interval].append(wake)
            for interval in SWITCH_INTERVALS_S:
                wall, cpu, wake = (np.concatenate(d[interval]) for d in (walls, cpus, wakes))
                lines.append(
                    f"{'busy loop' if loop_on else 'no loop  '} switch {interval * 1000:.1f} ms, batch {batch}: "
                    f"wall p50 {np.percentile(wall, 50):.2f} mean {wall.mean():.2f} p99 {np.percentile(wall, 99):.2f}"
                    f" | thread CPU mean {cpu.mean():.2f} | waiting mean {(wall - cpu).mean():.2f}"
                    f" | wake mean {wake.mean():.2f} (n={len(wall)})"
                )
    finally:
        sys.setswitchinterval(before)
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="an exported model directory (model.int8.onnx, else fp32)")
    parser.add_argument("--batch", type=int, default=6, help="windows per run (the service's batch at 620/s)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=1.0, help="per round and switch interval")
    parser.add_argument("--busy-ms", type=float, default=6.0, help="the loop stand-in's busy periods")
    parser.add_argument("--idle-ms", type=float, default=1.5, help="its idle gaps (6 / 7.5: 80 %% busy)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logger.info("load average before: %.2f %.2f %.2f", *os.getloadavg())
    for line in probe(args.model_dir, args.batch, args.rounds, args.seconds, args.busy_ms / 1000,
                      args.idle_ms / 1000):  # fmt: skip
        logger.info("%s", line)
    logger.info("load average after: %.2f %.2f %.2f", *os.getloadavg())


if __name__ == "__main__":
    main()
