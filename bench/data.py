"""Data-pipeline benchmark: events/s and peak memory from the common CSV to windows, targets and splits.

Each stage is timed in a fresh subprocess so that its peak RSS is its own.
"""

from __future__ import annotations

import csv
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from model.export.machine import machine_line

# Goals from issue 4: ≥ 200k events/s and < 2 GB peak on 1M events.
GOAL_EVENTS_PER_S = 200_000
GOAL_PEAK_MB = 2048


def _measure(csv_path: str, window: int) -> dict[str, float]:
    """Run the whole pipeline once in this process; returns seconds per stage and peak RSS."""
    from model.data.dataset import build_windows, curate, read_events_csv, session_classes, split_by_session
    from model.features import FeatureConfig

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    sessions = read_events_csv(Path(csv_path))
    timings["read_csv_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    curated = curate(sessions)
    windows = build_windows(curated, FeatureConfig(window=window))
    timings["encode_windows_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    session_classes(curated)
    split_by_session(curated)
    timings["classes_split_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    timings["events"] = float(len(sessions.events))
    timings["windows"] = float(len(windows))
    timings["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return timings


def run_pipeline_subprocess(csv_path: Path, window: int) -> dict[str, float]:
    code = (
        "import json; from bench.data import _measure; "
        f"print(json.dumps(_measure({str(csv_path)!r}, {window})))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def make_events_csv(path: Path, n_events: int, seed: int = 1) -> int:
    """Synthetic events, about `n_events` of them (whole sessions)."""
    from model.data.synth import generate_sessions, write_csv

    sessions = max(1, int(n_events / 11.8))  # the generator's mean is ~11.8 events per session
    log = generate_sessions(sessions, seed=seed)
    write_csv(log, path)
    with path.open() as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


def write_report(result: dict[str, float], out_dir: Path, window: int) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rate = result["events"] / result["total_s"]
    rows = [
        ("events", f"{result['events']:.0f}", ""),
        ("windows (curated prefixes)", f"{result['windows']:.0f}", ""),
        ("read CSV", f"{result['read_csv_s']:.2f} s", ""),
        (f"curate + encode windows (N={window})", f"{result['encode_windows_s']:.2f} s", ""),
        ("classes + split", f"{result['classes_split_s']:.2f} s", ""),
        ("total", f"{result['total_s']:.2f} s", ""),
        ("throughput", f"{rate:,.0f} events/s", f"goal ≥ {GOAL_EVENTS_PER_S:,}"),
        ("peak RSS", f"{result['peak_rss_mb']:.0f} MB", f"goal < {GOAL_PEAK_MB} MB"),
    ]
    md = out_dir / "data.md"
    md.write_text(
        "# Data pipeline benchmark\n\n"
        "Written by `session-intent bench data`; do not edit by hand.\n\n"
        f"Machine: {machine_line()}\n\n"
        "Stages: common CSV → sessions (`read_events_csv`) → curation, windows and targets → classes and split.\n"
        "Run in a fresh subprocess, so peak RSS is the pipeline's own.\n\n"
        "| measure | value | goal |\n|---|---|---|\n"
        + "".join(f"| {a} | {b} | {c} |\n" for a, b, c in rows)
    )
    csv_path = out_dir / "data.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["measure", "value"])
        writer.writerows(sorted(result.items()))
        writer.writerow(["events_per_s", f"{rate:.1f}"])
    png = out_dir / "data.png"
    _plot(result, png)
    return [md, csv_path, png]


def _plot(result: dict[str, float], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = ["read_csv_s", "encode_windows_s", "classes_split_s"]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh([s.removesuffix("_s") for s in stages], [result[s] for s in stages], color="#4c72b0")
    ax.set_xlabel("seconds")
    ax.set_title(f"{result['events']:.0f} events: {result['events'] / result['total_s']:,.0f} events/s")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
