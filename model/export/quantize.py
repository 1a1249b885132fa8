"""INT8 recipes for the exported fp32 graph, all through ONNX Runtime's quantization tools.

What ORT can and cannot quantize in our graphs (legacy export: whole LSTM / GRU ops, a Gemm head):
- dynamic quantization turns `LSTM` into `DynamicQuantizeLSTM` (int8 weights, fp32 state) and the head's
  Gemm into `DynamicQuantizeLinear` + `MatMulInteger`; `GRU` has no quantized kernel and stays fp32;
- static QDQ has no LSTM/GRU support either: it can only wrap the head (and, with the default op set,
  the Slice/Concat of the raw input, which rounds dwell seconds to 1/255 of their range);
- the `hoisted_gru` graph (model/export/graphs.py) moves the GRU's input projection out of the recurrence
  into one MatMul, which dynamic quantization then turns into a `MatMulInteger`.

model/export/int8.py scores the recipes of `EXPORT_ORDER` and keeps the fastest within the AUC budget;
`session-intent bench engine` measures all of them (docs/engine.md has the findings).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

from model.artifacts import META_INT8_RECIPE, META_PRECISION
from model.export.inputs import GraphInputs

logger = logging.getLogger(__name__)

CALIBRATION_BATCH = 256
# Ops that show what a recipe touched: quantized kernels, and the fp32 recurrences left as they were.
_REPORTED_OPS = ("DynamicQuantizeLSTM", "MatMulInteger", "QuantizeLinear", "LSTM", "GRU", "Gemm", "MatMul")


@dataclass(frozen=True)
class QuantRecipe:
    name: str
    summary: str
    static: bool = False  # static QDQ with calibration, else dynamic (weights int8, activations at run time)
    weight_type: QuantType = QuantType.QUInt8
    per_channel: bool = False
    reduce_range: bool = False  # 7-bit weights: no int16 overflow in u8×s8 pairs on CPUs without VNNI
    op_types: tuple[str, ...] | None = None  # None: every op type the quantizer supports
    keep_fp32: tuple[str, ...] = ()  # op types left in fp32 node by node (op_types cannot: Gemm rides on MatMul)
    graph: str = "native"  # which fp32 graph is quantized: "native" (model.onnx) or "hoisted_gru"


RECIPES: dict[str, QuantRecipe] = {
    recipe.name: recipe
    for recipe in (
        QuantRecipe("hoisted_gru_quint8", "GRU input projection hoisted out of the recurrence, then quantize_dynamic "
                    "(QUInt8) of the LSTM and that MatMul; the GRU's recurrent Gemms (and the head) stay fp32",
                    keep_fp32=("Gemm",), graph="hoisted_gru"),
        QuantRecipe("hoisted_gru_quint8_all", "as hoisted_gru_quint8, and the GRU's recurrent Gemms in int8 too",
                    graph="hoisted_gru"),
        QuantRecipe("dynamic_quint8", "quantize_dynamic, QUInt8 weights, per tensor"),
        QuantRecipe("dynamic_qint8", "quantize_dynamic, QInt8 weights, per tensor", weight_type=QuantType.QInt8),
        QuantRecipe("dynamic_qint8_reduce_range", "quantize_dynamic, QInt8 weights in 7 bits (reduce_range)",
                    weight_type=QuantType.QInt8, reduce_range=True),
        QuantRecipe("dynamic_quint8_per_channel", "quantize_dynamic, QUInt8 weights, per output channel",
                    per_channel=True),
        QuantRecipe("dynamic_matmul_only", "quantize_dynamic of MatMul/Gemm only (LSTM stays fp32)",
                    op_types=("MatMul", "Gemm")),
        QuantRecipe("static_qdq_head", "static QDQ (MinMax calibration on real windows) of MatMul/Gemm",
                    static=True, weight_type=QuantType.QInt8, op_types=("MatMul", "Gemm")),
        QuantRecipe("static_qdq_all", "static QDQ of every op ORT supports (incl. input Slice/Concat)",
                    static=True, weight_type=QuantType.QInt8),
    )
}  # fmt: skip
# The recipes export scores, in order of preference (a later one must be clearly faster to win). First the hoisted
# GRU with its recurrent Gemms in int8: on the trained published-size model it costs 7–21 % less CPU per batch than
# hoisted_gru_quint8 at batch 1–32, and its AUC moves by under 2e-4 on Taobao's validation windows (docs/engine.md);
# the AUC gate still judges it per model. Left out: dynamic_qint8 (u8×s8 can saturate on CPUs without VNNI) and
# the static ones (the LSTM stays fp32: no gain).
EXPORT_ORDER: tuple[str, ...] = (
    "hoisted_gru_quint8_all",
    "hoisted_gru_quint8",
    "dynamic_quint8",
    "dynamic_qint8_reduce_range",
    "dynamic_quint8_per_channel",
    "dynamic_matmul_only",
)


class WindowCalibrationReader(CalibrationDataReader):
    """Feeds real windows (n, N, 16), and their context where the model takes one, to ORT's calibrator,
    CALIBRATION_BATCH at a time."""

    def __init__(self, inputs: GraphInputs) -> None:
        self._inputs = inputs
        self._batches: Iterator[dict[str, np.ndarray]] = self._iterate()

    def _iterate(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self._inputs), CALIBRATION_BATCH):
            yield self._inputs[start : start + CALIBRATION_BATCH].feeds()

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:
        self._batches = self._iterate()


class _QuieterQuantizer(logging.Filter):
    """Drops the quantizer's advice to pre-process, which it logs on the root logger for every model:
    `quant_pre_process` matters for dynamo graphs, and ours come from the legacy exporter."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname or record.levelno > logging.WARNING


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    root, quiet = logging.getLogger(), _QuieterQuantizer()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def quantize_model(
    fp32_path: Path, out_path: Path, recipe: QuantRecipe, calibration: GraphInputs | None = None
) -> Path:
    """Write `out_path`: the int8 graph of `fp32_path` by `recipe`, with the fp32 file's metadata_props."""
    ops = list(recipe.op_types) if recipe.op_types else None
    if recipe.static and (calibration is None or len(calibration) == 0):
        raise ValueError(f"recipe {recipe.name} calibrates on real windows; none were given")
    with _quiet_quantizer():
        _quantize(fp32_path, out_path, recipe, ops, calibration)
    _stamp_int8(fp32_path, out_path, recipe)
    return out_path


def _quantize(fp32_path: Path, out_path: Path, recipe: QuantRecipe, ops: list[str] | None,
              calibration: GraphInputs | None) -> None:  # fmt: skip
    kept = [node.name for node in onnx.load(str(fp32_path)).graph.node if node.op_type in recipe.keep_fp32]
    excluded = kept + [f"{name}_MatMul" for name in kept]  # dynamic mode first rewrites Gemm X as MatMul X_MatMul
    if not recipe.static:
        quantize_dynamic(fp32_path, out_path, op_types_to_quantize=ops, per_channel=recipe.per_channel,
                         reduce_range=recipe.reduce_range, weight_type=recipe.weight_type,
                         nodes_to_exclude=excluded)  # fmt: skip
        return
    assert calibration is not None  # checked by quantize_model
    quantize_static(fp32_path, out_path, WindowCalibrationReader(calibration), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=ops, per_channel=recipe.per_channel, reduce_range=recipe.reduce_range,
                    activation_type=QuantType.QUInt8, weight_type=recipe.weight_type,
                    calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=excluded)  # fmt: skip


def _stamp_int8(src: Path, dst: Path, recipe: QuantRecipe) -> None:
    """The fp32 file's metadata_props on the int8 file, with its own precision and recipe."""
    target = onnx.load(str(dst))
    props = {p.key: p.value for p in onnx.load(str(src)).metadata_props}
    target.metadata_props.clear()
    onnx.helper.set_model_props(target, {**props, META_PRECISION: "int8", META_INT8_RECIPE: recipe.name})
    onnx.save(target, str(dst))


def op_census(path: Path) -> dict[str, int]:
    """How many of each telling op type the graph holds: did the LSTM/GRU get quantized?"""
    counts = Counter(node.op_type for node in onnx.load(str(path)).graph.node)
    return {op: counts[op] for op in _REPORTED_OPS if counts[op]}
