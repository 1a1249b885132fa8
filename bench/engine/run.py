"""`session-intent bench engine`: torch eager fp32 vs ORT fp32 vs ORT int8 on this CPU (docs/architecture.md §10).

For each model (a trained model directory, or an arch with seeded random weights) it:
1. copies the model into a scratch directory and exports it with model/export/exporter.py (the int8 file is the
   recipe export would keep);
2. studies every int8 recipe of model/export/quantize.py: AUC per label and max |Δ| vs fp32 on validation windows,
   the ops it quantized, file size, and speed at batch 1 and 32 on 1 thread;
3. times the three engines at every batch size and thread count, interleaved (model/export/timing.py);
4. measures the RSS of a fresh process holding each engine.
bench/engine/report.py turns the result into docs/benchmarks/engine.{md,csv,png}.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.engine.rss import engine_rss
from bench.engine.torch_engine import TorchEngine
from model.artifacts import CARD_FILE, DEFAULT_MODEL_DIR, FP32_FILE, INT8_FILE, REPO_ROOT, WEIGHTS_FILE, is_model_dir
from model.card import ModelCard
from model.context import context_card
from model.data.dataset import file_sha256
from model.export.exporter import ValidationWindows, export_model, synthetic_validation, validation_from_csv
from model.export.graphs import cpu_session, onnx_probs
from model.export.inputs import GraphInputs
from model.export.int8 import int8_accuracy, int8_source
from model.export.machine import cpu_description
from model.export.quantize import RECIPES, op_census, quantize_model
from model.export.timing import RunFn, Timing, TimingPlan, batch_of, time_interleaved
from model.features import FeatureConfig
from model.training.checkpoint import load_model, save_model
from model.training.nets import NetConfig, build_net
from service.engine.onnx_engine import OnnxEngine

logger = logging.getLogger(__name__)

BATCH_SIZES: tuple[int, ...] = (1, 8, 32, 64, 128, 512)
THREADS: tuple[int, ...] = (1, 2)
RECIPE_BATCHES: tuple[int, ...] = (1, 32)
DEFAULT_MODELS: tuple[str, ...] = ("lstm_gru", "lstm_gru_small")
SERVICE_MAX_BATCH = 64  # the batcher's default max_batch_size: the RSS probe runs up to it
ENGINES: tuple[str, ...] = ("torch eager fp32", "ORT fp32", "ORT int8")

Progress = Callable[[str], None]


@dataclass
class ModelResult:
    label: str
    arch: str
    source: str
    n_parameters: int
    validation: dict[str, Any]
    export: dict[str, Any]
    file_bytes: dict[str, int] = field(default_factory=dict)
    recipes: list[dict[str, Any]] = field(default_factory=list)
    grid: list[dict[str, Any]] = field(default_factory=list)
    rss: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_mates: dict[str, dict[str, float]] = field(default_factory=dict)
    int8_recipe: str | None = None  # the recipe of the int8 graph the grid times
    int8_note: str = ""


@dataclass
class EngineBench:
    machine: dict[str, str]
    versions: dict[str, str]
    plan: TimingPlan
    models: list[ModelResult] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seconds: float = 0.0
    data: str = "synthetic"


def find_trained(arch: str, models_root: Path, data_sha: str | None = None) -> Path | None:
    """A model directory under `models_root` trained with `arch`: first one trained on the file with
    `data_sha` (the benchmark's validation data), then `default`, then by name."""
    if not models_root.is_dir():
        return None
    found: list[tuple[bool, bool, str, Path]] = []
    for candidate in models_root.iterdir():
        if not ((candidate / WEIGHTS_FILE).is_file() and (candidate / CARD_FILE).is_file()):
            continue
        card = ModelCard.load(candidate)
        if card.arch == arch:
            found.append((card.data.get("sha256") != data_sha, candidate.name != "default", candidate.name, candidate))
    return min(found)[-1] if found else None


def served_context() -> tuple[str, ...]:
    """The context of the committed default (models/default): what a random-weights stand-in takes beside its
    windows, so that a benchmark times the inputs the service feeds."""
    return ModelCard.load(DEFAULT_MODEL_DIR).context_names if is_model_dir(DEFAULT_MODEL_DIR) else ()


def materialise(spec: str, models_root: Path, work: Path, seed: int, data_sha: str | None,
                context: Sequence[str] = ()) -> tuple[Path, str]:  # fmt: skip
    """A scratch model directory for `spec` (a model directory, or an arch name) and where it came from; an
    arch with no trained model gets seeded random weights and takes `context` (model/context.py names)."""
    given = Path(spec)
    trained = given if (given / WEIGHTS_FILE).is_file() else find_trained(spec, models_root, data_sha)
    if trained is not None:
        target = work / trained.name
        target.mkdir(parents=True)
        for name in (WEIGHTS_FILE, CARD_FILE):
            shutil.copy2(trained / name, target / name)
        return target, f"trained: {trained}"
    cfg = NetConfig.for_arch(spec, context=tuple(context))  # ValueError names the valid archs
    torch.manual_seed(seed)
    net = build_net(cfg)
    card = ModelCard(name=f"{spec}-random", arch=spec, hparams={"net": cfg.to_dict()}, features=FeatureConfig(),
                     context=context_card(cfg.context))  # fmt: skip
    target = work / card.name
    save_model(target, net.eval(), card)
    with_context = f", context {len(cfg.context)} features as models/default" if cfg.context else ""
    return target, f"random weights (seed {seed}{with_context}): no trained {spec} under {models_root}"


def validation_for(card: ModelCard, data: Path | None, max_windows: int) -> ValidationWindows:
    if data is None:
        return synthetic_validation(card)
    return validation_from_csv(card, data, max_windows)


def ensure_int8(model_dir: Path, record: dict[str, Any], val: ValidationWindows) -> tuple[str | None, str]:
    """The int8 graph the grid times, and how it relates to what export decided.

    If export kept none (no recipe fast enough, or none within the AUC budget), the benchmark still times
    the recipe that came closest, so that the table shows why.
    """
    if record["written"]:
        return record["recipe"], f"{record['recipe']} (kept by export)"
    tried = [t for t in record["tried"] if "skipped" not in t]
    if not tried:
        return None, "none: no recipe applied"
    passed = [t for t in tried if t["passed"]] or tried
    best = max(passed, key=lambda t: (t.get("speedup") or {}).get("geomean", 0.0))
    net, card = load_model(model_dir)
    recipe = RECIPES[best["recipe"]]
    source = int8_source(recipe, net, card, model_dir / FP32_FILE, val.inputs)
    quantize_model(source, model_dir / INT8_FILE, recipe, calibration=val.inputs[:2048])
    return recipe.name, f"{recipe.name} (NOT kept by export: {record['reason']})"


def batch_mate_effect(
    path: Path, inputs: GraphInputs, n: int = 640, batch: int = SERVICE_MAX_BATCH
) -> dict[str, float]:
    """|Δ| of each window's probabilities scored alone vs inside a batch of `batch` others.

    Dynamic int8 quantizes activations with a scale per batch, so a window's int8 score depends on its
    batch-mates; fp32 should show 0.
    """
    session, windows = cpu_session(path, threads=1), inputs[:n]
    alone = np.concatenate([session.run(None, windows[i : i + 1].feeds())[0] for i in range(len(windows))])
    batched = np.concatenate([session.run(None, windows[i : i + batch].feeds())[0]
                              for i in range(0, len(windows), batch)])  # fmt: skip
    delta = np.abs(alone - batched)
    return {"max_abs": float(delta.max()), "mean_abs": float(delta.mean()), "windows": len(windows), "batch": batch}


def study_recipes(model_dir: Path, val: ValidationWindows, plan: TimingPlan) -> list[dict[str, Any]]:
    """Every int8 recipe: accuracy vs fp32, ops quantized, size, and speed vs fp32 at 1 thread."""
    net, card = load_model(model_dir)
    fp32 = model_dir / FP32_FILE
    p32 = onnx_probs(fp32, val.inputs)
    rows: list[dict[str, Any]] = []
    engines: dict[str, RunFn] = {"fp32": runner(OnnxEngine(fp32, card, ["CPUExecutionProvider"]))}
    for name, recipe in RECIPES.items():
        path = model_dir / "recipes" / f"{name}.onnx"
        path.parent.mkdir(exist_ok=True)
        try:
            source = int8_source(recipe, net, card, fp32, val.inputs)
            quantize_model(source, path, recipe, calibration=val.inputs[:2048])
        except Exception as exc:  # a recipe that cannot apply (ORT, or an arch without GRU) is a finding
            rows.append({"recipe": name, "summary": recipe.summary, "error": f"{type(exc).__name__}: {exc}"})
            continue
        accuracy = int8_accuracy(val.Y, p32, onnx_probs(path, val.inputs))
        rows.append({"recipe": name, "summary": recipe.summary, "ops": op_census(path),
                     "bytes": path.stat().st_size, **accuracy})  # fmt: skip
        engines[name] = runner(OnnxEngine(path, card, ["CPUExecutionProvider"]))
    for batch in RECIPE_BATCHES:
        timings = time_interleaved(engines, batch_of(val.inputs, batch), plan)
        for row in rows:
            if row["recipe"] in timings:
                row[f"samples_per_s_b{batch}"] = timings[row["recipe"]].samples_per_s
                row[f"speedup_b{batch}"] = timings[row["recipe"]].samples_per_s / timings["fp32"].samples_per_s
        rows.append({"recipe": f"fp32 reference b{batch}", "samples_per_s": timings["fp32"].samples_per_s,
                     "batch": batch, "runs": timings["fp32"].runs})  # fmt: skip
    return rows


def runner(engine: OnnxEngine | TorchEngine) -> RunFn:
    """An engine's `run` on a batch of graph inputs: windows and, for a model with context, their context."""
    return lambda inputs: engine.run(inputs.windows, inputs.context)


def time_grid(model_dir: Path, card: ModelCard, inputs: GraphInputs, plan: TimingPlan, batches: Sequence[int],
              threads: Sequence[int], progress: Progress) -> list[dict[str, Any]]:  # fmt: skip
    """Torch eager fp32, ORT fp32 and ORT int8 at every batch size and thread count (with the validation
    windows' real context where the model takes one)."""
    rows: list[dict[str, Any]] = []
    int8_path = model_dir / INT8_FILE
    for n_threads in threads:
        torch_engine = TorchEngine(model_dir, device="cpu", threads=n_threads)
        engines: dict[str, RunFn] = {
            "torch eager fp32": runner(torch_engine),
            "ORT fp32": runner(OnnxEngine(model_dir / FP32_FILE, card, ["CPUExecutionProvider"], n_threads)),
        }
        if int8_path.is_file():
            engines["ORT int8"] = runner(OnnxEngine(int8_path, card, ["CPUExecutionProvider"], n_threads))
        for batch in batches:
            progress(f"{card.arch}: {n_threads} thread(s), batch {batch}")
            timings = time_interleaved(engines, batch_of(inputs, batch), plan)
            rows.extend(_grid_row(card.arch, name, n_threads, t) for name, t in timings.items())
    return rows


def _grid_row(arch: str, engine: str, n_threads: int, timing: Timing) -> dict[str, Any]:
    return {"model": arch, "engine": engine, "threads": n_threads, "batch": timing.batch, "runs": timing.runs,
            "p50_ms": timing.p50_ms, "p99_ms": timing.p99_ms, "mean_ms": timing.mean_ms,
            "samples_per_s": timing.samples_per_s}  # fmt: skip


def bench_model(spec: str, models_root: Path, work: Path, data: Path | None, plan: TimingPlan,
                batches: Sequence[int], threads: Sequence[int], max_windows: int, progress: Progress,
                seed: int = 0) -> ModelResult:  # fmt: skip
    model_dir, source = materialise(spec, models_root, work, seed, file_sha256(data) if data else None,
                                    served_context())  # fmt: skip
    card = ModelCard.load(model_dir)
    val = validation_for(card, data, max_windows)
    progress(f"{card.arch}: exporting ({source})")
    export = export_model(model_dir, val).to_dict()
    int8_recipe, int8_note = ensure_int8(model_dir, export["int8"], val)
    card = ModelCard.load(model_dir)
    net, _ = load_model(model_dir)
    result = ModelResult(
        label=f"{card.arch} ({card.name})", arch=card.arch, source=source, n_parameters=net.n_parameters(),
        validation=export["validation"], export=export, int8_recipe=int8_recipe, int8_note=int8_note,
        file_bytes={p.name: p.stat().st_size for p in sorted(model_dir.glob("model*")) if p.is_file()},
    )  # fmt: skip
    result.batch_mates = {name: batch_mate_effect(model_dir / file, val.inputs)
                          for name, file in (("fp32", FP32_FILE), ("int8", INT8_FILE)) if (model_dir / file).is_file()}
    progress(f"{card.arch}: int8 recipes")
    result.recipes = study_recipes(model_dir, val, plan)
    result.grid = time_grid(model_dir, card, val.inputs, plan, batches, threads, progress)
    progress(f"{card.arch}: RSS of a fresh process per engine")
    repo = REPO_ROOT
    for precision in ("int8", "fp32", "torch"):
        result.rss[precision] = engine_rss(model_dir, precision, SERVICE_MAX_BATCH, repo)
    return result


def run_engine_bench(models: Sequence[str], models_root: Path, data: Path | None, work: Path,
                     plan: TimingPlan | None = None, batches: Sequence[int] = BATCH_SIZES,
                     threads: Sequence[int] = THREADS, max_windows: int = 20_000,
                     progress: Progress = logger.info) -> EngineBench:  # fmt: skip
    """The whole benchmark, in one process so that ratios are fair; `work` holds the scratch exports."""
    import onnx
    import onnxruntime as ort

    plan = plan or TimingPlan()
    began = time.perf_counter()
    bench = EngineBench(machine=cpu_description(), plan=plan, load_before=os.getloadavg(),
                        versions={"torch": torch.__version__, "onnxruntime": ort.__version__, "onnx": onnx.__version__,
                                  "numpy": np.__version__},
                        data=str(data) if data else "synthetic (model.data.synth)")  # fmt: skip
    for spec in models:
        bench.models.append(bench_model(spec, models_root, work, data, plan, batches, threads, max_windows, progress))
    bench.load_after = os.getloadavg()
    bench.seconds = time.perf_counter() - began
    return bench
