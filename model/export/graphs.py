"""One fp32 ONNX graph, written and checked: the torch modules model/export/exporter.py traces, and the parity gate.

Every graph maps raw windows (B, N, 16) → probabilities (B, 2); a model whose card names context features
takes a second input, the raw context (B, C) (model/artifacts.py names both; the graph scales the context
itself, as the network's ContextScaling does).

- `ProbabilityGraph`: the network as trained, plus the sigmoid. The legacy exporter emits whole LSTM/GRU
  ops: the fp32 file (`model.onnx`), the one TensorRT and CUDA run.
- `HoistedGRUGraph`: the same function with every GRU written out: its input projection for all N steps
  as one MatMul (B, N, I) × (I, 3H), then the recurrence unrolled over the N steps. ONNX Runtime has no
  quantized GRU kernel, so in the native graph the GRU stays fp32 and caps the int8 speed-up; here the
  projection (I / (I + H) of the GRU's multiply-adds: 62 % for LSTM(500)→GRU(300)) becomes a
  `MatMulInteger` with a large M. Used only as the source of an int8 recipe (model/export/quantize.py).

Both go through `export_fp32`: legacy exporter, metadata, and ORT vs torch within `PARITY_TOLERANCE`.
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from model.artifacts import (
    CONTEXT_INPUT_NAME,
    FP32_FILE,
    INPUT_NAME,
    META_ARCH,
    META_CARD,
    META_CONTEXT_FINGERPRINT,
    META_FINGERPRINT,
    META_LABELS,
    META_NAME,
    META_PRECISION,
    META_WINDOW,
    OUTPUT_NAME,
)
from model.card import ModelCard
from model.context import context_units
from model.export.inputs import GraphInputs
from model.features import VECTOR_DIM
from model.training.checkpoint import predict_proba
from model.training.nets import LABELS, IntentNet, RecurrentEncoder

logger = logging.getLogger(__name__)

OPSET = 17
PARITY_TOLERANCE = 1e-4  # max |Δ| of probabilities, fp32 ONNX vs torch
PARITY_WINDOWS = 2048


class ExportParityError(RuntimeError):
    """The exported graph does not compute what the torch model computes; nothing was written."""


class ProbabilityGraph(nn.Module):
    """What the ONNX file computes: raw windows (B, N, 16) [and raw context (B, C)] → probabilities (B, 2)."""

    def __init__(self, net: IntentNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, windows: Tensor, context: Tensor | None = None) -> Tensor:
        return torch.sigmoid(self.net(windows, context))


class HoistedGRU(nn.Module):
    """One nn.GRU layer (batch_first, single layer, unidirectional) as a hoisted projection + unrolled steps."""

    def __init__(self, gru: nn.GRU) -> None:
        super().__init__()
        if gru.num_layers != 1 or gru.bidirectional or not gru.batch_first:
            raise ValueError("HoistedGRU expects a single-layer, unidirectional, batch_first nn.GRU")
        weights = dict(gru.named_parameters())  # the trained tensors themselves, not copies
        self.w_ih, self.b_ih = weights["weight_ih_l0"], weights["bias_ih_l0"]  # (3H, I), (3H,)
        self.w_hh, self.b_hh = weights["weight_hh_l0"], weights["bias_hh_l0"]  # (3H, H), (3H,)
        self.hidden = gru.hidden_size

    def forward(self, x: Tensor, last_only: bool) -> Tensor:
        """(B, N, I) → (B, H) newest state if `last_only`, else (B, N, H) all states."""
        hidden = self.hidden
        gates_in = F.linear(x, self.w_ih, self.b_ih)  # (B, N, 3H): one MatMul over every step
        h = x.new_zeros(x.shape[0], hidden)
        states = []
        for step in range(x.shape[1]):  # N is fixed by the card, so tracing unrolls it
            gates_h = F.linear(h, self.w_hh, self.b_hh)  # (B, 3H), PyTorch's gate order r, z, n
            i_r, i_z, i_n = gates_in[:, step].split(hidden, dim=1)
            h_r, h_z, h_n = gates_h.split(hidden, dim=1)
            reset, update = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            h = (1 - update) * torch.tanh(i_n + reset * h_n) + update * h
            states.append(h)
        return h if last_only else torch.stack(states, dim=1)


class HoistedGRUGraph(nn.Module):
    """`ProbabilityGraph` of a recurrent IntentNet with every GRU layer hoisted; LSTM layers stay whole."""

    def __init__(self, net: IntentNet) -> None:
        super().__init__()
        if not isinstance(net.encoder, RecurrentEncoder) or not any(
            isinstance(layer, nn.GRU) for layer in net.encoder.layers
        ):
            raise ValueError(f"arch {net.config.arch!r} has no GRU layer to hoist")
        self.net = net
        self.hoisted = nn.ModuleList(HoistedGRU(layer) if isinstance(layer, nn.GRU) else nn.Identity()
                                     for layer in net.encoder.layers)  # fmt: skip

    def forward(self, windows: Tensor, context: Tensor | None = None) -> Tensor:
        x = self.net.scaling(windows)  # (B, N, 16)
        encoder = self.net.encoder
        assert isinstance(encoder, RecurrentEncoder)  # checked in __init__
        layers = list(zip(encoder.layers, self.hoisted, strict=True))
        for index, (layer, hoisted) in enumerate(layers):
            last = index == len(layers) - 1
            if isinstance(hoisted, HoistedGRU):
                x = hoisted(x, last_only=last)
            else:
                x, _ = layer(x)
                x = x[:, -1, :] if last else x
        # dropout is the identity in eval mode, as the trained network runs when served
        return torch.sigmoid(self.net.head_logits(x, context))  # (B, 2)


def has_gru(net: IntentNet) -> bool:
    return isinstance(net.encoder, RecurrentEncoder) and any(isinstance(m, nn.GRU) for m in net.encoder.layers)


def to_onnx_proto(net: IntentNet, window: int, graph_type: type[nn.Module] = ProbabilityGraph) -> onnx.ModelProto:
    """The fp32 graph of `net` (as `graph_type` writes it), exported with the legacy exporter: one input
    (windows), or two (windows, context) when the net takes context."""
    graph = graph_type(net.eval())
    examples: tuple[Tensor, ...] = (torch.zeros(2, window, VECTOR_DIM),)
    names = [INPUT_NAME]
    if net.config.context_dim:
        examples, names = (*examples, torch.zeros(2, net.config.context_dim)), [INPUT_NAME, CONTEXT_INPUT_NAME]
    axes = {name: {0: "batch"} for name in (*names, OUTPUT_NAME)}
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
        # The exporter warns about batch sizes with LSTM/GRU: our initial states are built from the
        # input's batch dimension, so any batch size works (the parity check runs several).
        warnings.simplefilter("ignore")
        path = Path(scratch) / FP32_FILE
        torch.onnx.export(graph, examples, str(path), dynamo=False, opset_version=OPSET,
                          input_names=names, output_names=[OUTPUT_NAME], dynamic_axes=axes)  # fmt: skip
        return onnx.load(str(path))


def stamp_metadata(proto: onnx.ModelProto, card: ModelCard, precision: str) -> None:
    """metadata_props: what serving checks (fingerprints, N) and what a human reads (the card)."""
    onnx.helper.set_model_props(proto, {
        META_FINGERPRINT: card.fingerprint,
        META_CONTEXT_FINGERPRINT: str(card.context.get("fingerprint", "")),
        META_WINDOW: str(card.window),
        META_PRECISION: precision,
        META_ARCH: card.arch,
        META_NAME: card.name,
        META_LABELS: ",".join(LABELS),
        META_CARD: json.dumps(card.to_dict(), sort_keys=True, default=str),
    })  # fmt: skip


def cpu_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """A CPU session with full graph optimisation (`threads` 0: ORT's default pool)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def session_runner(session: ort.InferenceSession) -> Callable[[GraphInputs], object]:
    """`run(inputs)` of one session, for the timing loops."""
    return lambda inputs: session.run(None, inputs.feeds())


def onnx_probs(path: Path, inputs: GraphInputs, batch: int = 1024) -> np.ndarray:
    """(n, 2) probabilities of the graph at `path` on CPU, in batches."""
    session = cpu_session(path)
    out = [session.run(None, inputs[i : i + batch].feeds())[0] for i in range(0, len(inputs), batch)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 2), np.float32)


def torch_probs(net: IntentNet, inputs: GraphInputs) -> np.ndarray:
    """(n, 2) probabilities of the torch network on the same inputs."""
    return predict_proba(net, inputs.windows, inputs.context)


def parity_windows(inputs: GraphInputs, window: int, context_names: Sequence[str] = (),
                   limit: int = PARITY_WINDOWS) -> GraphInputs:  # fmt: skip
    """Up to `limit` real inputs plus the extremes: all padding, and every dwell at its clip bounds; with
    context, beside them: all zeros (a click without ids), all ones, and every count at a million."""
    n = len(inputs)
    real = inputs[np.linspace(0, n - 1, num=min(limit, n), dtype=np.int64)] if n else inputs
    extremes = np.zeros((3, window, VECTOR_DIM), dtype=np.float32)
    extremes[1, :, 1], extremes[2, :, 7] = 1.0, 600.0
    extremes[2, :, 12:] = 1.0
    windows = np.concatenate([real.windows.astype(np.float32), extremes])
    if real.context is None:
        return GraphInputs(windows)
    k = real.context.shape[1]
    is_flag = context_units(context_names) == 0 if len(context_names) == k else np.zeros(k, dtype=bool)
    # a flag stays 0/1; a count or a duration far beyond any real one (fp16 overflows at 65504)
    large = np.where(is_flag, 1.0, 1e6).astype(np.float32)
    context_extremes = np.stack([np.zeros(k, np.float32), np.ones(k, np.float32), large])
    return GraphInputs(windows, np.concatenate([real.context.astype(np.float32), context_extremes]))


def export_fp32(net: IntentNet, card: ModelCard, out: Path, inputs: GraphInputs,
                graph_type: type[nn.Module] = ProbabilityGraph) -> dict[str, Any]:  # fmt: skip
    """Write the fp32 graph to `out` and check it against torch; ExportParityError (and no file) if off."""
    proto = to_onnx_proto(net, card.window, graph_type)
    stamp_metadata(proto, card, "fp32")
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    windows = parity_windows(inputs, card.window, card.context_names)
    max_abs = float(np.abs(onnx_probs(out, windows) - torch_probs(net, windows)).max())
    odd_batch = windows[:3]  # a batch size the exporter never saw
    max_abs = max(max_abs, float(np.abs(onnx_probs(out, odd_batch) - torch_probs(net, odd_batch)).max()))
    if not max_abs <= PARITY_TOLERANCE:  # `not <=` also catches NaN
        out.unlink(missing_ok=True)
        raise ExportParityError(
            f"fp32 ONNX ({graph_type.__name__}) and torch disagree on {len(windows)} windows: max |Δ| = "
            f"{max_abs:.3g} > {PARITY_TOLERANCE:g}; refusing to write {out.name} (unsupported op or broken export)"
        )
    logger.info("%s parity vs torch: max |Δ| = %.2e on %d windows", graph_type.__name__, max_abs, len(windows))
    return {"parity_max_abs": max_abs, "parity_windows": len(windows), "tolerance": PARITY_TOLERANCE}
