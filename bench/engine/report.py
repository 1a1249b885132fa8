"""docs/benchmarks/engine.{md,csv,png} from an EngineBench (bench/engine/run.py). Never edited by hand."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.engine.run import ENGINES, EngineBench, ModelResult
from model.training.nets import LABELS

# docs/architecture.md §10 / issue 6: the published system's figures (its hardware is not named in our sources).
PUBLISHED = {"unoptimised CPU inference": 262.0, "optimised CPU inference": 189.0, "GPU inference": 73.0}
PUBLISHED_MACHINE = "the published system (hardware not named in the paper)"
TARGET_RATIO, TARGET_BATCH, TARGET_THREADS, AUC_BUDGET = 1.5, 32, 1, 0.002
RATIO_BATCHES = (8, 32, 128)
CSV_COLUMNS = ("model", "source", "engine", "threads", "batch", "runs", "p50_ms", "p99_ms", "mean_ms",
               "samples_per_s", "cpu", "isa")  # fmt: skip


def machine_line(bench: EngineBench) -> str:
    m = bench.machine
    return f"*Machine: {m['cpu']}, {m['cores']} logical cores, ISA flags: {m['isa']}.*"


def _cell(grid: list[dict[str, Any]], engine: str, threads: int, batch: int) -> dict[str, Any] | None:
    return next((r for r in grid if r["engine"] == engine and r["threads"] == threads and r["batch"] == batch), None)


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    return f"{a['samples_per_s'] / b['samples_per_s']:.2f} ×" if a and b else "–"


def write_csv(bench: EngineBench, path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        machine = {"cpu": bench.machine["cpu"], "isa": bench.machine["isa"]}
        for model in bench.models:
            for row in model.grid:
                rounded = {k: f"{row[k]:.4g}" for k in ("p50_ms", "p99_ms", "mean_ms", "samples_per_s")}
                writer.writerow({**row, **rounded, **machine, "source": model.source})


def write_png(bench: EngineBench, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(bench.models), figsize=(6 * len(bench.models), 4.5), squeeze=False)
    colours = dict(zip(ENGINES, ("tab:blue", "tab:green", "tab:purple"), strict=True))
    for ax, model in zip(axes[0], bench.models, strict=True):
        for engine in ENGINES:
            for threads in sorted({r["threads"] for r in model.grid}):
                rows = sorted((r for r in model.grid if r["engine"] == engine and r["threads"] == threads),
                              key=lambda r: r["batch"])  # fmt: skip
                if rows:
                    ax.plot([r["batch"] for r in rows], [r["samples_per_s"] for r in rows], marker="o",
                            color=colours[engine], linestyle="-" if threads == 1 else "--",
                            label=f"{engine}, {threads} thr")  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="samples / s", title=model.label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"per-sample throughput — {bench.machine['cpu']} ({bench.machine['isa']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _anchor_lines(bench: EngineBench) -> list[str]:
    lines = ["## Published anchors beside ours", "",
             f"| | {PUBLISHED_MACHINE} | ours, batch 1, 1 thread, p50 |", "|---|---|---|"]  # fmt: skip
    ours = {"unoptimised CPU inference": "torch eager fp32", "optimised CPU inference": "ORT int8"}
    for what, ms in PUBLISHED.items():
        engine = ours.get(what)
        if engine is None:
            mine = "not measured: no GPU on this machine (TensorRT / CUDA / torch CUDA)"
        else:
            cells = [(m.arch, _cell(m.grid, engine, 1, 1)) for m in bench.models]
            mine = "; ".join(f"{arch} {engine}: {c['p50_ms']:.2f} ms" for arch, c in cells if c) or "–"
        lines.append(f"| {what} | {ms:g} ms | {mine} |")
    lines += ["", machine_line(bench) + " The published figures are per request; ours are one batch of 1.", ""]
    return lines


def _target_lines(bench: EngineBench) -> list[str]:
    model = next((m for m in bench.models if m.arch == "lstm_gru"), None)
    lines = ["## Target: int8 ≥ 1.5 × fp32 at batch 32, 1 thread, published-size model, AUC drop ≤ 0.002", ""]
    if model is None:
        return [*lines, "Not run: the published-size lstm_gru was not among --models.", ""]
    int8, fp32 = _cell(model.grid, "ORT int8", TARGET_THREADS, TARGET_BATCH), _cell(model.grid, "ORT fp32", 1, 32)
    timed = next((r for r in model.recipes if r["recipe"] == model.int8_recipe and "auc_drop" in r), None)
    if int8 is None or fp32 is None:
        return [*lines, f"Not measured: batch {TARGET_BATCH} on {TARGET_THREADS} thread was not in this run.", ""]
    if timed is None:
        return [*lines, f"Not measured: {model.int8_note}.", ""]
    drops = timed["auc_drop"]
    ratio = int8["samples_per_s"] / fp32["samples_per_s"]
    worst = max((d for d in drops.values() if d is not None), default=float("nan"))
    met = ratio >= TARGET_RATIO and worst <= AUC_BUDGET
    lines += [f"- speed: ORT int8 {int8['samples_per_s']:,.0f} vs ORT fp32 {fp32['samples_per_s']:,.0f} samples/s "
              f"= **{ratio:.2f} ×** (target {TARGET_RATIO} ×)",
              f"- accuracy: AUC drop per label {_fmt_drops(drops)} on {model.validation['n_windows']:,} "
              f"{model.validation['source']} windows (budget {AUC_BUDGET})",
              f"- int8 graph: {model.int8_note}",
              f"- weights: {model.source}",
              f"- **{'met' if met else 'not met'}**", "", machine_line(bench), ""]  # fmt: skip
    return lines


def _fmt_drops(drops: dict[str, float | None]) -> str:
    return ", ".join(f"{k} {v:+.4f}" if v is not None else f"{k} n/a" for k, v in drops.items())


def _model_lines(bench: EngineBench, model: ModelResult) -> list[str]:
    val, export = model.validation, model.export
    lines = [f"## {model.label}", "",
             f"- weights: {model.source}; {model.n_parameters:,} parameters",
             f"- validation windows: {val['n_windows']:,} ({val['source']}: {val['name']}); positives "
             + ", ".join(f"{k} {v:,}" for k, v in val["positives"].items()),
             f"- fp32 ONNX vs torch: max |Δ| {export['fp32']['parity_max_abs']:.2e}",
             f"- int8 timed below: {model.int8_note}",
             "- files: " + ", ".join(f"{name} {size / 1024:,.0f} KiB" for name, size in model.file_bytes.items()),
             "- batch-mate effect, |Δ| of a window's probabilities alone vs in a batch of 64 (max / mean): "
             + "; ".join(f"{k} {v['max_abs']:.2e} / {v['mean_abs']:.2e}" for k, v in model.batch_mates.items()),
             "- RSS of a fresh process holding one engine, after warmup up to batch 64 (MiB, current / peak): "
             + "; ".join(f"{k} {v['rss_mib']:.0f} / {v['peak_rss_mib']:.0f}" if "rss_mib" in v else f"{k} {v}"
                         for k, v in model.rss.items()),
             "", *_recipe_lines(bench, model), *_grid_lines(bench, model), *_ratio_lines(bench, model)]  # fmt: skip
    return lines


def _recipe_lines(bench: EngineBench, model: ModelResult) -> list[str]:
    head = " | ".join(f"AUC {k} fp32 → int8" for k in LABELS)
    lines = ["### int8 recipes (ORT quantization; speed vs the fp32 ONNX graph, 1 thread)", "",
             f"| recipe | ops in the int8 graph | size KiB | {head} | max |Δ| | × fp32 b1 | × fp32 b32 |",
             "|---|---|---|" + "---|" * len(LABELS) + "---|---|---|"]  # fmt: skip
    for row in model.recipes:
        if "error" in row:
            lines.append(f"| {row['recipe']} | failed: {row['error']} |" + " |" * (5 + len(LABELS)))
        if "auc_fp32" not in row:
            continue
        aucs = " | ".join(_auc_pair(row, k) for k in LABELS)
        ops = ", ".join(f"{op} {n}" for op, n in row["ops"].items())
        lines.append(f"| {row['recipe']} | {ops} | {row['bytes'] / 1024:,.0f} | {aucs} | {row['max_abs_diff']:.4f} "
                     f"| {row.get('speedup_b1', float('nan')):.2f} | {row.get('speedup_b32', float('nan')):.2f} |")
    refs = [r for r in model.recipes if r["recipe"].startswith("fp32 reference")]
    lines += ["", "fp32 reference: " + ", ".join(f"batch {r['batch']} {r['samples_per_s']:,.0f} samples/s "
                                                f"({r['runs']} runs)" for r in refs), "", machine_line(bench), ""]
    return lines


def _auc_pair(row: dict[str, Any], label: str) -> str:
    a, b, d = row["auc_fp32"][label], row["auc_int8"][label], row["auc_drop"][label]
    return "n/a" if d is None else f"{a:.4f} → {b:.4f} ({-d:+.4f})"


def _grid_lines(bench: EngineBench, model: ModelResult) -> list[str]:
    engines = [e for e in ENGINES if any(r["engine"] == e for r in model.grid)]
    lines = ["### Per-sample throughput (samples/s) and batch latency p50 / p99 (ms)", "",
             "| threads | batch | " + " | ".join(engines) + " | runs |",
             "|---|---|" + "---|" * len(engines) + "---|"]  # fmt: skip
    for threads in sorted({r["threads"] for r in model.grid}):
        for batch in sorted({r["batch"] for r in model.grid}):
            cells = [_cell(model.grid, e, threads, batch) for e in engines]
            shown = [f"{c['samples_per_s']:,.0f} ({c['p50_ms']:.2f} / {c['p99_ms']:.2f})" if c else "–" for c in cells]
            runs = min((c["runs"] for c in cells if c), default=0)
            flag = "" if runs >= bench.plan.target_runs else " *"
            lines.append(f"| {threads} | {batch} | " + " | ".join(shown) + f" | {runs}{flag} |")
    lines += ["", f"\\* fewer than {bench.plan.target_runs} timed runs: the cell's time budget "
              f"({bench.plan.cell_budget_s:g} s) ran out first; at least {bench.plan.min_runs} unless those would "
              f"take 3 × the budget. p99 of fewer than 100 runs is close to the maximum.", "",
              machine_line(bench), ""]  # fmt: skip
    return lines


def _ratio_lines(bench: EngineBench, model: ModelResult) -> list[str]:
    grid = model.grid
    batches = sorted({r["batch"] for r in grid})
    lines = ["### Ratios of per-sample throughput", "",
             "| threads | batch | int8 / ORT fp32 | ORT fp32 / torch | int8 / torch |", "|---|---|---|---|---|"]
    for threads in sorted({r["threads"] for r in grid}):
        for batch in batches:
            i8, f32, pt = (_cell(grid, e, threads, batch) for e in ("ORT int8", "ORT fp32", "torch eager fp32"))
            lines.append(f"| {threads} | {batch} | {_ratio(i8, f32)} | {_ratio(f32, pt)} | {_ratio(i8, pt)} |")
    lines += ["", "Micro-batching: per-sample throughput at batch B over batch 1.", "",
              "| engine | threads | " + " | ".join(f"b{b} / b1" for b in RATIO_BATCHES) + " |",
              "|---|---|" + "---|" * len(RATIO_BATCHES)]  # fmt: skip
    for engine in ("ORT fp32", "ORT int8", "torch eager fp32"):
        for threads in sorted({r["threads"] for r in grid}):
            base = _cell(grid, engine, threads, 1)
            if base is None:
                continue
            ratios = [_ratio(_cell(grid, engine, threads, b), base) for b in RATIO_BATCHES]
            lines.append(f"| {engine} | {threads} | " + " | ".join(ratios) + " |")
    return [*lines, "", machine_line(bench), ""]


def _contention_lines(bench: EngineBench) -> list[str]:
    """A warning when the host was busier than its core count: multi-thread rows then measure contention."""
    cores = int(bench.machine.get("cores") or 1)
    if max(bench.load_before[0], bench.load_after[0]) < cores:
        return []
    return [f"**The load average exceeded the {cores} cores during this run**: a multi-threaded pool then waits on "
            "descheduled workers, so read the rows with more than 1 thread as this host's contention, not as how "
            "the engines scale."]  # fmt: skip


def write_markdown(bench: EngineBench, path: Path, command: str) -> None:
    load_b, load_a = bench.load_before, bench.load_after
    lines = ["# Engine benchmark: torch eager fp32 vs ONNX Runtime fp32 vs ONNX Runtime int8 (CPU)", "",
             f"Written by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {bench.seconds:.0f} s. "
             "Regenerate with the same command; do not edit by hand. Findings: [docs/engine.md](../engine.md).", "",
             machine_line(bench),
             f"Load average (1/5/15 min) before {load_b[0]:.2f}/{load_b[1]:.2f}/{load_b[2]:.2f}, after "
             f"{load_a[0]:.2f}/{load_a[1]:.2f}/{load_a[2]:.2f}: the 2 cores are shared, so absolute figures move "
             "between runs; engines are timed interleaved on the same batch, so their ratios are fair.",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in bench.versions.items()) + f". Data: {bench.data}.",
             *_contention_lines(bench),
             f"Timing: {bench.plan.target_runs} timed runs per cell after {bench.plan.warmup_s:g} s of warmup, in "
             f"{bench.plan.rounds} interleaved rounds; throughput = samples / summed run time.", "",
             "GPU: TensorRT fp16, CUDA fp16 and torch CUDA fp16 are **not measured** (no GPU on this machine; "
             "the CPU onnxruntime wheel has neither provider).", "",
             *_anchor_lines(bench), *_target_lines(bench)]  # fmt: skip
    for model in bench.models:
        lines += _model_lines(bench, model)
    path.write_text("\n".join(lines).rstrip() + "\n")


def write_report(bench: EngineBench, out: Path, command: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "engine.md", out / "engine.csv", out / "engine.png"]
    write_markdown(bench, paths[0], command)
    write_csv(bench, paths[1])
    write_png(bench, paths[2])
    return paths
