"""`model.int8.onnx`: which ONNX Runtime quantization recipe to keep, judged on accuracy and on this CPU.

1. Accuracy: every recipe of `quantize.EXPORT_ORDER` is quantized and scored on the validation windows. It
   is a candidate if its ROC-AUC drop vs the fp32 graph is within `AUC_DROP_BUDGET` on every label.
2. Speed: the candidates are timed against the fp32 graph at the batch sizes the service sees (1 and 64),
   on 1 intra-op thread, interleaved. The fastest (geometric mean of its speed-ups; a recipe later in
   `EXPORT_ORDER` must be 5 % faster, not faster by noise) is kept if it beats fp32 by `MIN_SPEEDUP`.
   Otherwise no int8 file is written, so `precision=int8` never serves something slower than fp32 (the
   service then falls back to fp32 and says so). Speed is a property of the CPU: export on the kind of
   machine that serves; the card records the CPU and the speed-ups.
   With `min_speedup=0` the timing is skipped and the first candidate in `EXPORT_ORDER` is kept.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from model.artifacts import FP32_FILE, INT8_FILE
from model.card import ModelCard
from model.export.gates import AUC_DROP_BUDGET, MIN_SPEEDUP, SPEED_BATCHES
from model.export.graphs import (
    ExportParityError,
    HoistedGRUGraph,
    cpu_session,
    export_fp32,
    has_gru,
    onnx_probs,
    session_runner,
)
from model.export.inputs import GraphInputs
from model.export.machine import machine_line
from model.export.quantize import EXPORT_ORDER, RECIPES, QuantRecipe, op_census, quantize_model
from model.export.timing import TimingPlan, batch_of, time_interleaved
from model.training.nets import LABELS, IntentNet

logger = logging.getLogger(__name__)

# Many short interleaved rounds and medians: a busy neighbour's spike lands on every recipe alike.
SPEED_PLAN = TimingPlan(target_runs=120, min_runs=24, cell_budget_s=2.0, warmup_s=0.1, rounds=8)
CLEAR_WIN = 1.05  # a recipe later in EXPORT_ORDER replaces an earlier one only if this much faster
CALIBRATION_WINDOWS = 2048  # static recipes only


def auc_per_label(Y: np.ndarray, P: np.ndarray) -> dict[str, float | None]:
    """ROC-AUC per label; None where the validation windows hold only one class of that label."""
    return {label: (float(roc_auc_score(Y[:, i], P[:, i])) if len(np.unique(Y[:, i])) == 2 else None)
            for i, label in enumerate(LABELS)}  # fmt: skip


def int8_accuracy(Y: np.ndarray, p32: np.ndarray, p8: np.ndarray) -> dict[str, Any]:
    """AUC of fp32 and int8 per label, the drop (positive = int8 worse) and max |Δ| of probabilities."""
    auc32, auc8 = auc_per_label(Y, p32), auc_per_label(Y, p8)
    drop = {k: (None if auc32[k] is None or auc8[k] is None else auc32[k] - auc8[k]) for k in LABELS}  # type: ignore[operator]
    return {"auc_fp32": auc32, "auc_int8": auc8, "auc_drop": drop,
            "max_abs_diff": float(np.abs(p32 - p8).max()) if len(p32) else 0.0}  # fmt: skip


def within_budget(accuracy: dict[str, Any]) -> bool:
    drops = [d for d in accuracy["auc_drop"].values() if d is not None]
    return bool(drops) and max(drops) <= AUC_DROP_BUDGET


def int8_source(recipe: QuantRecipe, net: IntentNet, card: ModelCard, fp32: Path, inputs: GraphInputs) -> Path:
    """The fp32 graph a recipe quantizes: `fp32` (model.onnx), or a parity-checked hoisted-GRU graph beside it."""
    if recipe.graph == "native":
        return fp32
    if recipe.graph != "hoisted_gru":
        raise ValueError(f"recipe {recipe.name}: unknown graph {recipe.graph!r}")
    path = fp32.parent / "hoisted_gru.fp32.onnx"
    if not path.is_file():
        if not has_gru(net):
            raise ValueError(f"arch {card.arch} has no GRU to hoist")
        export_fp32(net, card, path, inputs, HoistedGRUGraph)
    return path


def speedups_vs_fp32(fp32: Path, candidates: dict[str, Path], inputs: GraphInputs) -> dict[str, dict[str, float]]:
    """Per candidate: median batch latency of fp32 over its own at each SPEED_BATCHES size (1 thread), and the
    geometric mean of those speed-ups."""
    runs = {name: session_runner(cpu_session(path, threads=1)) for name, path in ({"fp32": fp32} | candidates).items()}
    ratios: dict[str, dict[str, float]] = {name: {} for name in candidates}
    for batch in SPEED_BATCHES:
        timings = time_interleaved(runs, batch_of(inputs, batch), SPEED_PLAN)
        for name in candidates:
            ratios[name][f"b{batch}"] = timings["fp32"].p50_ms / timings[name].p50_ms
    for values in ratios.values():
        values["geomean"] = math.exp(sum(math.log(v) for v in values.values()) / len(values))
    return ratios


def export_int8(net: IntentNet, card: ModelCard, work: Path, inputs: GraphInputs, Y: np.ndarray,
                min_speedup: float = MIN_SPEEDUP) -> dict[str, Any]:  # fmt: skip
    """Write `work`/model.int8.onnx by the rules above, or nothing; returns the record of every recipe tried.
    `inputs`: the validation windows (and their context, for a model with context), labelled by `Y`."""
    fp32 = work / FP32_FILE
    p32 = onnx_probs(fp32, inputs)
    tried: list[dict[str, Any]] = []
    candidates: dict[str, Path] = {}
    for name in EXPORT_ORDER:
        recipe = RECIPES[name]
        try:
            source = int8_source(recipe, net, card, fp32, inputs)
        except (ValueError, ExportParityError) as exc:  # this recipe does not apply; the others may
            tried.append({"recipe": name, "passed": False, "skipped": str(exc)})
            continue
        path = quantize_model(source, work / f"int8.{name}.onnx", recipe, calibration=inputs[:CALIBRATION_WINDOWS])
        accuracy = int8_accuracy(Y, p32, onnx_probs(path, inputs))
        passed = within_budget(accuracy)
        tried.append({"recipe": name, "ops": op_census(path), "passed": passed, **accuracy})
        logger.info("int8 recipe %s: AUC drop %s, max |Δ| %.4f: %s", name, accuracy["auc_drop"],
                    accuracy["max_abs_diff"], "candidate" if passed else "over budget")  # fmt: skip
        if passed:
            candidates[name] = path
    record: dict[str, Any] = {"budget": AUC_DROP_BUDGET, "min_speedup": min_speedup, "tried": tried}
    if not candidates:
        return record | {"written": False, "recipe": None,
                         "reason": f"no recipe kept the AUC drop per label within {AUC_DROP_BUDGET}"}  # fmt: skip
    best = next(iter(candidates))
    if min_speedup > 0:
        ratios = speedups_vs_fp32(fp32, candidates, inputs)
        for attempt in tried:
            attempt["speedup"] = ratios.get(attempt["recipe"])
        for name in ratios:  # in EXPORT_ORDER; a later recipe must win clearly, not by timing noise
            if ratios[name]["geomean"] > ratios[best]["geomean"] * CLEAR_WIN:
                best = name
        record["machine"] = machine_line()
        if ratios[best]["geomean"] < min_speedup:
            return record | {"written": False, "recipe": None, "reason": (
                f"no recipe within the AUC budget beat fp32 by {min_speedup} × (best: {best}, "
                f"{ratios[best]['geomean']:.2f} × at batch {' and '.join(map(str, SPEED_BATCHES))}, 1 thread)")}
    os.replace(candidates[best], work / INT8_FILE)
    kept = next(t for t in tried if t["recipe"] == best)
    return record | {"written": True, "recipe": best, **{k: v for k, v in kept.items() if k != "recipe"}}
