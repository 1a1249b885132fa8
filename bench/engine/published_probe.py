"""Where a published-size batch spends its CPU at the batch sizes 620 req/s produces (docs/engine.md).

`python -m bench.engine.published_probe [--model-dir DIR] [--options] [--work DIR] [--secs S]` takes an exported
model directory (default: builds or reuses the stand-in that `bench service` serves, bench/service/models.py),
quantizes the int8 recipes worth comparing beside the one export kept, and times, interleaved per batch size
on 1 intra-op thread:
- each graph (fp32, and every int8 recipe) under the service's own session options;
- with `--options`, the served int8 graph under session-option variants (spinning off, memory pattern off,
  arena off, lower graph optimisation).
Each run records its thread CPU time (what the shared box's load distorts least) and its wall time. It prints
a markdown table of medians; the figures are indicative on a shared machine, the ratios within one run are
what to read.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from model.artifacts import FP32_FILE, INT8_FILE, REPO_ROOT
from model.export.inputs import GraphInputs

logger = logging.getLogger(__name__)

BATCHES: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
COMPARED_RECIPES: tuple[str, ...] = ("dynamic_quint8", "hoisted_gru_quint8_all")
OPTION_VARIANTS: dict[str, dict[str, str]] = {
    "spin off": {"session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": "0"},
}


def _options(variant: str) -> Any:
    """The service's session options (service/engine/onnx_engine.py), changed by one probe variant."""
    import onnxruntime as ort

    from service.engine.onnx_engine import session_options

    options = session_options(1)
    for key, value in OPTION_VARIANTS.get(variant, {}).items():
        options.add_session_config_entry(key, value)
    if variant == "mem pattern off":
        options.enable_mem_pattern = False
    if variant == "arena off":
        options.enable_cpu_mem_arena = False
    if variant == "opt basic":
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return options


def _runner(path: Path, variant: str = "service") -> Callable[[GraphInputs], object]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), _options(variant), providers=["CPUExecutionProvider"])
    return lambda inputs: session.run(None, inputs.feeds())


def graphs(model_dir: Path) -> dict[str, Path]:
    """fp32, the int8 export kept, and COMPARED_RECIPES quantized beside it (reused when present)."""
    from model.card import ModelCard
    from model.export.exporter import synthetic_validation
    from model.export.int8 import int8_source
    from model.export.quantize import RECIPES, quantize_model
    from model.training.checkpoint import load_model

    card = ModelCard.load(model_dir)
    found = {"fp32": model_dir / FP32_FILE, "int8 (served)": model_dir / INT8_FILE}
    inputs = synthetic_validation(card, n_sessions=200).inputs
    for name in COMPARED_RECIPES:
        out = model_dir / f"probe.{name}.onnx"
        if not out.is_file():
            net, _ = load_model(model_dir)
            quantize_model(int8_source(RECIPES[name], net, card, model_dir / FP32_FILE, inputs), out, RECIPES[name])
        found[name] = out
    return found


def time_cells(runners: dict[str, Callable[[GraphInputs], object]], x: GraphInputs,
               secs: float) -> dict[str, tuple[float, float]]:  # fmt: skip
    """(median thread CPU ms, median wall ms) per runner, in interleaved rounds of 5 runs for about `secs`."""
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    wall: dict[str, list[float]] = {name: [] for name in runners}
    for fn in runners.values():
        for _ in range(3):
            fn(x)
    began = time.perf_counter()
    while time.perf_counter() - began < secs:
        for name, fn in runners.items():
            for _ in range(5):
                c0, w0 = time.thread_time(), time.perf_counter()
                fn(x)
                cpu[name].append(time.thread_time() - c0)
                wall[name].append(time.perf_counter() - w0)
    return {name: (1000 * float(np.median(cpu[name])), 1000 * float(np.median(wall[name]))) for name in runners}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/published-probe"))
    parser.add_argument("--model-dir", type=Path, help="an exported model directory (default: the stand-in)")
    parser.add_argument("--options", action="store_true", help="also time the session-option variants")
    parser.add_argument("--secs", type=float, default=2.0, help="seconds of interleaved runs per batch size")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from bench.service.models import published_model
    from model.card import ModelCard
    from model.export.exporter import synthetic_validation

    if args.model_dir is None:
        model_dir, source = published_model(REPO_ROOT / "models", args.work)
    else:
        model_dir, source = args.model_dir, "given"
    files = graphs(model_dir)
    runners = {name: _runner(path) for name, path in files.items()}
    if args.options:
        runners |= {f"int8 (served), {v}": _runner(files["int8 (served)"], v)
                    for v in ("spin off", "mem pattern off", "arena off", "opt basic")}  # fmt: skip
    inputs = synthetic_validation(ModelCard.load(model_dir), n_sessions=200).inputs
    cells = {batch: time_cells(runners, inputs.repeated_to(batch), args.secs) for batch in BATCHES}
    lines = [f"model: {model_dir} ({source}); thread CPU ms / wall ms per run, medians, 1 intra-op thread",
             "", "| graph, options | " + " | ".join(f"batch {b}" for b in BATCHES) + " |",
             "|---|" + "---|" * len(BATCHES)]  # fmt: skip
    for name in runners:
        lines.append(f"| {name} | " + " | ".join(f"{cells[b][name][0]:.2f} / {cells[b][name][1]:.2f}"
                                                 for b in BATCHES) + " |")  # fmt: skip
    logger.info("\n".join(lines))


if __name__ == "__main__":
    main()
