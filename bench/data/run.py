"""Data-pipeline benchmark: `prepare` and the compact training data, time and peak RSS, over log sizes.

Per size: synthetic events with shopper, item and category ids (model/data/synth.py, written in
1M-event chunks) → stage `prepare` (the generic source reading the file as a raw export, sessionising
by its session column, writing the common CSV with the ids) → stage `training data` (`load_dataset`
with a fresh cache: read, context (model/context.py), curate, encode, targets, classes, split, cache
write, then a timed gather of random training batches).
Each stage runs in a fresh subprocess, so its peak RSS is its own.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.procs.cpu import cpu_seconds
from bench.report.files import write_rows_csv
from bench.report.plots import save_figure, subplots
from model.export.machine import machine_line

# Goals from issue 13.
GOAL_PREPARE_EVENTS_PER_S = 1_000_000
GOAL_BYTES_PER_EVENT = 150
_CHUNK_EVENTS = 1_000_000
_MEAN_SESSION_EVENTS = 11.8  # the generator's mean events per session
_GATHER_BATCHES, _GATHER_BATCH = 200, 256


def make_events_csv(path: Path, n_events: int, seed: int = 1, chunk_events: int = _CHUNK_EVENTS) -> int:
    """About `n_events` synthetic events (whole sessions) in the common form with ids, one chunk at a time.

    Each chunk is its own generator run (model/data/synth.py) with its own shoppers, items and categories,
    numbered after the previous chunks' (an empty id: a page without an item or category). A chunk is a
    shop population of its own, so the generator's guarantee that no shopper's sessions overlap holds.
    """
    import numpy as np
    import polars as pl

    from model.data.synth import generate_sessions
    from model.features import ACTIONS

    written, next_user, next_item, next_category = 0, 0, 0, 0
    with path.open("wb") as out:
        for k, lo in enumerate(range(0, n_events, chunk_events)):
            size = min(chunk_events, n_events - lo)
            log = generate_sessions(max(1, round(size / _MEAN_SESSION_EVENTS)), seed=seed * 100_000 + k)
            frame = pl.DataFrame({
                "session_id": log.session_ids.repeat(log.lengths()),
                "ts": log.ts,
                "action": pl.Series(list(ACTIONS))[log.actions.astype("int64")],
                "from_ad": log.from_ad.astype("int8"),
                "user_id": (log.users + next_user).repeat(log.lengths()),
                "item_id": np.where(log.items >= 0, log.items + next_item, -1),
                "category_id": np.where(log.categories >= 0, log.categories + next_category, -1),
            }).with_columns(
                pl.format("u{}", "user_id").alias("user_id"),
                *(pl.when(pl.col(c) >= 0).then(pl.col(c)).alias(c) for c in ("item_id", "category_id")),
            )  # fmt: skip
            frame.write_csv(out, include_header=k == 0)
            written += frame.height
            next_user += int(log.users.max()) + 1
            next_item += int(log.items.max()) + 1
            next_category += int(log.categories.max()) + 1
    return written


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_prepare(raw: str, out: str) -> dict[str, float]:
    """Run `prepare` once in this process; seconds, CPU seconds (all threads: the work done, far less
    sensitive than the wall time to other jobs on the machine) and peak RSS."""
    from model.data.prepare import sessionise, write_common_csv
    from model.data.raw_events import read_raw
    from model.data.sources import SourceSpec
    from model.features import ACTIONS

    spec = SourceSpec(
        name="generic", user_col="user_id", session_col="session_id", ts_col="ts", event_col="action",
        from_ad_col="from_ad", action_map={a: a for a in ACTIONS}, item_col="item_id", category_col="category_id",
    )  # fmt: skip
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    events = read_raw(spec, [Path(raw)])
    t1 = time.perf_counter()
    sessions = sessionise(events, spec)
    t2 = time.perf_counter()
    write_common_csv(sessions, Path(out))
    t3, cpu3 = time.perf_counter(), cpu_seconds()
    return {"events": float(sessions.frame.height), "read_s": t1 - t0, "sessionise_s": t2 - t1,
            "write_s": t3 - t2, "total_s": t3 - t0, "cpu_s": cpu3 - cpu0, "peak_rss_mb": _peak_mb()}  # fmt: skip


def measure_training_data(common: str, cache_dir: str, window: int) -> dict[str, float]:
    """`load_dataset` with a fresh cache, then the gather rate of random training batches."""
    import numpy as np

    from model.data.dataset import Split, load_dataset
    from model.features import FeatureConfig

    t0 = time.perf_counter()
    dataset = load_dataset(Path(common), FeatureConfig(window=window), cache_dir=Path(cache_dir))
    t1 = time.perf_counter()
    train = dataset.part(Split.TRAIN)
    rng = np.random.default_rng(0)
    t2 = time.perf_counter()
    for _ in range(_GATHER_BATCHES):
        train.windows(rng.integers(0, len(train), _GATHER_BATCH))
    gather_s = time.perf_counter() - t2
    return {"windows": float(len(dataset.windows)), "load_s": t1 - t0,
            "gather_windows_per_s": _GATHER_BATCHES * _GATHER_BATCH / gather_s, "peak_rss_mb": _peak_mb()}  # fmt: skip


def _subprocess(call: str) -> dict[str, float]:
    code = f"import json, bench.data.run as b; print(json.dumps(b.{call}))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run_size(n_events: int, window: int, tmp: Path) -> dict[str, float]:
    """One row of the sweep: generate, prepare, build the training data; the files are removed after."""
    raw, common, cache = tmp / f"raw-{n_events}.csv", tmp / f"common-{n_events}.csv", tmp / f"cache-{n_events}"
    t0 = time.perf_counter()
    make_events_csv(raw, n_events)
    generate_s = time.perf_counter() - t0
    prep = _subprocess(f"measure_prepare({str(raw)!r}, {str(common)!r})")
    raw.unlink()
    data = _subprocess(f"measure_training_data({str(common)!r}, {str(cache)!r}, {window})")
    common.unlink()
    shutil.rmtree(cache)
    events = prep["events"]
    return {
        "events": events, "generate_s": generate_s,
        "prepare_s": prep["total_s"], "prepare_read_s": prep["read_s"], "prepare_sessionise_s": prep["sessionise_s"],
        "prepare_write_s": prep["write_s"], "prepare_cpu_s": prep["cpu_s"],
        "prepare_events_per_s": events / prep["total_s"],
        "prepare_peak_mb": prep["peak_rss_mb"], "prepare_bytes_per_event": prep["peak_rss_mb"] * 2**20 / events,
        "data_s": data["load_s"], "data_windows": data["windows"], "data_peak_mb": data["peak_rss_mb"],
        "data_bytes_per_event": data["peak_rss_mb"] * 2**20 / events,
        "gather_windows_per_s": data["gather_windows_per_s"],
    }  # fmt: skip


_COLUMNS = (
    ("events", "events", "{:,.0f}"), ("prepare_s", "prepare s", "{:.1f}"), ("prepare_cpu_s", "prepare CPU s", "{:.1f}"),
    ("prepare_events_per_s", "prepare events/s", "{:,.0f}"), ("prepare_peak_mb", "prepare peak MB", "{:,.0f}"),
    ("prepare_bytes_per_event", "prepare B/event", "{:.0f}"), ("data_s", "training data s", "{:.1f}"),
    ("data_peak_mb", "training data peak MB", "{:,.0f}"), ("data_bytes_per_event", "training data B/event", "{:.0f}"),
    ("gather_windows_per_s", "gathered windows/s", "{:,.0f}"),
)  # fmt: skip


def _load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def write_report(rows: list[dict[str, Any]], out_dir: Path, window: int, command: str, note: str = "") -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    header = "| " + " | ".join(label for _, label, _ in _COLUMNS) + " |\n"
    table = header + "|" + "---|" * len(_COLUMNS) + "\n"
    for row in rows:
        table += "| " + " | ".join(fmt.format(row[key]) for key, _, fmt in _COLUMNS) + " |\n"
    md = out_dir / "data.md"
    md.write_text(
        "# Data pipeline benchmark\n\n"
        f"Written by `{command}`; do not edit by hand.\n\n"
        f"Machine: {machine_line()}. Load average when the sweep ended (1/5/15 min): {_load_average()}; other "
        "jobs on the machine make absolute times noisy, CPU seconds less so.\n\n"
        f"Stages, each in a fresh subprocess (peak RSS is its own), window N={window}:\n\n"
        "- **prepare**: synthetic events read as a raw export by the generic source (session column), "
        "sessionised in Polars, written as the common CSV. *prepare CPU s* is its CPU time over all threads: "
        "the work done, far less sensitive than the wall time to other jobs on the machine.\n"
        "- **training data**: `load_dataset` with a fresh cache: read the common CSV, compute the context "
        "(model/context.py), curate, encode 6 bytes per event, targets, classes, split, write the memory-mapped "
        "cache; then "
        f"{_GATHER_BATCHES} random batches of {_GATHER_BATCH} windows gathered.\n\n"
        f"Goals (issue 13): prepare ≥ {GOAL_PREPARE_EVENTS_PER_S:,} events/s; peak RSS ≤ {GOAL_BYTES_PER_EVENT} "
        "bytes per event from 10M events on.\n\n" + table + (f"\n{note}\n" if note else "")
    )
    csv_path = write_rows_csv(out_dir / "data.csv", rows)
    png = out_dir / "data.png"
    _plot(rows, png)
    return [md, csv_path, png]


def _plot(rows: list[dict[str, Any]], png: Path) -> None:
    events = [r["events"] for r in rows]
    fig, (left, right) = subplots(1, 2, figsize=(10, 3.6))
    left.loglog(events, [r["prepare_s"] for r in rows], "o-", label="prepare")
    left.loglog(events, [r["data_s"] for r in rows], "s-", label="training data")
    left.set_xlabel("events")
    left.set_ylabel("seconds")
    left.legend()
    left.set_title("wall time")
    right.loglog(events, [r["prepare_peak_mb"] for r in rows], "o-", label="prepare")
    right.loglog(events, [r["data_peak_mb"] for r in rows], "s-", label="training data")
    right.loglog(events, [GOAL_BYTES_PER_EVENT * e / 2**20 for e in events], "k--", label="150 B/event")
    right.set_xlabel("events")
    right.set_ylabel("peak RSS, MB")
    right.legend()
    right.set_title("peak RSS")
    save_figure(fig, png)
