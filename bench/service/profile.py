"""Where a click's CPU goes: py-spy samples of the running service, grouped into the stages of the click path.

    py-spy record --pid PID --duration S --rate R --format raw --threads --nonblocking

Each sample is one stack of one thread (on CPU; idle stacks are not sampled). A sample counts toward
the innermost frame that belongs to a stage, so "redis client" is time inside redis-py wherever it
was called from, and "HTTP server" is uvicorn's own parsing and socket writes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

# (stage, substrings of a frame "function (file:line)"), checked innermost frame first, first match wins.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # The engine thread blocked in its queue's get (waking, or waiting for the GIL): py-spy samples it as
    # active, but it is not work; shown on its own so that it does not count toward a stage.
    ("engine thread waiting for a batch or the GIL", ("_worker (concurrent/futures/thread.py:81)",)),
    ("feature encoding (engine thread)", ("model/features.py",)),
    ("model run, ONNX Runtime (engine thread)", ("onnx_engine.py", "onnxruntime")),
    # Before the layers that call them: what issue 23 added to a click, each on its own line.
    ("drift histograms", ("service/drift.py",)),
    ("tracing", ("service/tracing.py", "opentelemetry/sdk", "opentelemetry/trace")),
    ("logging", ("logging/__init__.py", "pythonjsonlogger", "service/logging_setup.py")),
    ("request id", ("service/request_id.py",)),
    ("metrics (prometheus_client)", ("prometheus_client/", "service/metrics.py", "service/missing_ids.py")),
    ("context state (decode, batch)", ("service/store/context_record.py", "service/model_inputs.py")),
    ("write-behind of scores", ("write_behind.py",)),
    ("redis client (redis-py) and window store", ("redis/", "window_store.py", "score_record.py")),
    ("micro-batcher", ("service/batcher.py", "concurrent/futures")),
    ("click path: validation, scoring, answer", ("service/click_path.py", "service/scorer.py", "model/risk.py",
                                                 "pydantic", "service/boundary.py",
                                                 "service/admission.py")),
    ("FastAPI / Starlette layers", ("fastapi/", "starlette/")),
    ("HTTP server (uvicorn, httptools)", ("uvicorn/", "httptools")),
    ("event loop, sockets (asyncio / uvloop)", ("asyncio/", "uvloop", "runners.py")),
)
OTHER = "other"
WAITING = STAGES[0][1][0]


def py_spy_binary() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path, rate: int = 200) -> Path:
    """Sample every thread of `pid` for `seconds`; the raw (collapsed) stacks go to `out`."""
    binary = py_spy_binary()
    if binary is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    argv = [binary, "record", "--pid", str(pid), "--duration", f"{seconds:.0f}", "--rate", str(rate),
            "--format", "raw", "--threads", "--nonblocking", "--output", str(out)]
    subprocess.run(argv, capture_output=True, timeout=seconds + 30, check=True)
    return out


def stage_of(frames: list[str]) -> str:
    if frames and WAITING in frames[-1]:
        return STAGES[0][0]
    for frame in reversed(frames):
        for stage, needles in STAGES:
            if any(needle in frame for needle in needles):
                return stage
    return OTHER


def stage_shares(raw: Path) -> dict[str, float]:
    """Share of all samples per stage, largest first."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        counts[stage_of(stack.split(";")[1:])] += int(n)  # the first field names the thread
    total = sum(counts.values()) or 1
    return {stage: count / total for stage, count in counts.most_common()}
