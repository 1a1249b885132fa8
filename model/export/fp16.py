"""`model.fp16.onnx`: fp16 weights and compute (fp32 inputs/outputs) for the CUDA provider (docs/architecture.md §7).

ONNX Runtime's converter does the work. One part of a context model's graph must stay fp32: the context's
scaling (log1p of raw counts and seconds, model/context.py), because raw values overflow fp16 at 65504
(18 hours in seconds). The converter's block list keeps those nodes in fp32 but still casts the graph input,
and every edge between two blocked nodes, through fp16; `_rewire_fp32_chain` takes those round trips out,
so the raw context reaches the scaling in fp32 and only its log1p output is cast to fp16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx

from model.artifacts import CONTEXT_INPUT_NAME, META_PRECISION
from model.card import ModelCard
from model.export.graphs import onnx_probs, parity_windows
from model.export.inputs import GraphInputs

FP16_TOLERANCE = 1e-2  # max |Δ| of probabilities, fp16 ONNX vs fp32 ONNX


def context_scaling_nodes(proto: onnx.ModelProto) -> list[str]:
    """Names of the nodes between the raw context input and its first MatMul/Gemm: the scaling."""
    frontier, kept = {CONTEXT_INPUT_NAME}, []
    for node in proto.graph.node:  # ONNX nodes are topologically sorted
        if node.op_type in ("MatMul", "Gemm") or not frontier.intersection(node.input):
            continue
        kept.append(node.name)
        frontier.update(node.output)
    return kept


def _rewire_fp32_chain(proto: onnx.ModelProto, blocked: list[str]) -> None:
    """Feed each blocked (fp32) node straight from the fp32 tensor behind its chain of Casts, when that tensor
    is the raw context input or another blocked node's output; then drop the Casts nobody reads."""
    nodes = proto.graph.node
    cast_source = {node.output[0]: node.input[0] for node in nodes if node.op_type == "Cast"}
    fp32 = {CONTEXT_INPUT_NAME} | {out for node in nodes if node.name in blocked for out in node.output}
    for node in nodes:
        if node.name not in blocked:
            continue
        for i, name in enumerate(node.input):
            origin = name
            while origin in cast_source and origin not in fp32:
                origin = cast_source[origin]
            if origin in fp32:
                node.input[i] = origin
    while True:  # prune Casts left without readers (chains of them, so repeat)
        read = {name for node in nodes for name in node.input} | {out.name for out in proto.graph.output}
        dead = [node for node in nodes if node.op_type == "Cast" and node.output[0] not in read]
        if not dead:
            return
        for node in dead:
            nodes.remove(node)


def to_fp16(fp32: onnx.ModelProto) -> onnx.ModelProto:
    """The fp16 graph of `fp32` (fp32 inputs and outputs; a context's scaling in fp32), with its metadata."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    blocked = context_scaling_nodes(fp32)
    proto = convert_float_to_float16(fp32, keep_io_types=True, node_block_list=blocked or None)
    if blocked:
        _rewire_fp32_chain(proto, blocked)
    props = {p.key: p.value for p in fp32.metadata_props} | {META_PRECISION: "fp16"}
    proto.metadata_props.clear()
    onnx.helper.set_model_props(proto, props)
    return proto


def export_fp16(fp32: Path, out: Path, inputs: GraphInputs, card: ModelCard) -> dict[str, Any]:
    """Write `out` unless it strays from the fp32 graph by more than FP16_TOLERANCE. On CPU ORT casts back for
    ops lacking fp16 kernels, so the check bounds the weight rounding; fp16 compute itself runs on a GPU only."""
    # convert_float_to_float16 edits the proto it is given, so it gets its own copy
    onnx.save(to_fp16(onnx.load(str(fp32))), str(out))
    windows = parity_windows(inputs, card.window, card.context_names, limit=512)
    max_abs = float(np.abs(onnx_probs(out, windows) - onnx_probs(fp32, windows)).max())
    if not max_abs <= FP16_TOLERANCE:  # `not <=` also catches NaN
        out.unlink(missing_ok=True)
        return {"written": False, "max_abs_vs_fp32_cpu": max_abs, "reason": f"max |Δ| > {FP16_TOLERANCE}"}
    return {"written": True, "max_abs_vs_fp32_cpu": max_abs, "tolerance": FP16_TOLERANCE}
