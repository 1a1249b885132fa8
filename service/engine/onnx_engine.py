"""The inference engine (docs/architecture.md §7): raw windows (B, N, 16) float32 in, probabilities (B, 2) out.

A model whose card names context features (model/context.py, docs/architecture.md §3.1) takes beside the
windows their raw context (B, C) float32 in the card's `context_names` order; without it the engine feeds
zeros, the context of a click that carried no ids and opened no cart. A model without context ignores it.

`OnnxEngine` is the serving path (ONNX Runtime, provider chosen from settings). Serving never imports
torch: the PyTorch engine the benchmarks compare against is `bench/engine/torch_engine.py`.

`load_engine` picks the file for a precision and a provider:

    precision  CPU provider                          GPU provider (TensorRT / CUDA)
    int8       model.int8.onnx (fp32 if missing)     fp16, as below: int8 is a CPU affair
    fp32       model.onnx                            model.onnx
    fp16       model.onnx (fp16 on CPU is slower)    TensorRT: model.onnx + trt_fp16_enable;
                                                     CUDA: model.fp16.onnx (model.onnx if missing)
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from model.artifacts import (
    CARD_FILE,
    CONTEXT_INPUT_NAME,
    FP16_FILE,
    FP32_FILE,
    INPUT_NAME,
    INT8_FILE,
    META_CONTEXT_FINGERPRINT,
    META_FINGERPRINT,
    META_PRECISION,
    META_WINDOW,
)
from model.card import FingerprintMismatch, ModelCard, check_fingerprint
from model.context import ContextMismatch, check_context
from model.features import VECTOR_DIM
from service.engine.providers import (
    CPU,
    CUDA,
    DEFAULT_PROVIDERS,
    TENSORRT,
    ProviderPlan,
    is_gpu,
    plan_for,
    plan_providers,
    select_providers,
)

logger = logging.getLogger(__name__)

PRECISIONS: tuple[str, ...] = ("int8", "fp32", "fp16")


class Engine(Protocol):
    """What the batcher calls: one model run per batch, thread-safe, warmed up before /readyz."""

    provider: str  # e.g. "CPUExecutionProvider", "torch:cuda:fp16"
    model_id: str  # e.g. "lstm_gru_small-int8@3f2a9c"
    window: int  # N
    card: ModelCard

    def run(self, windows: np.ndarray, context: np.ndarray | None = None) -> np.ndarray:
        """(B, N, 16) float32 raw windows [+ (B, C) raw context] → (B, 2) float32 [p_add_cart, p_make_order]."""
        ...

    def warmup(self, batch_sizes: Sequence[int] = (1, 8, 64)) -> None: ...


def file_tag(path: Path) -> str:
    """First 6 hex digits of the file's sha256: the `@3f2a9c` of a model id."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:6]


def check_windows(windows: np.ndarray, window: int) -> np.ndarray:
    """The batch as a C-contiguous float32 (B, N, 16) array; ValueError on any other shape."""
    if windows.ndim != 3 or windows.shape[1:] != (window, VECTOR_DIM):
        raise ValueError(f"expected windows of shape (B, {window}, {VECTOR_DIM}), got {windows.shape}")
    return np.ascontiguousarray(windows, dtype=np.float32)


def check_context_batch(context: np.ndarray | None, batch: int, names: Sequence[str]) -> np.ndarray | None:
    """The (B, C) float32 context to feed: zeros for None (a click without ids), None for a model without
    context (whatever was given); ValueError on any other shape."""
    if not names:
        return None
    if context is None:
        return np.zeros((batch, len(names)), dtype=np.float32)
    if context.shape != (batch, len(names)):
        raise ValueError(f"expected context of shape ({batch}, {len(names)}) for {list(names)}, got {context.shape}")
    return np.ascontiguousarray(context, dtype=np.float32)


def warm(engine: Engine, batch_sizes: Sequence[int]) -> None:
    """Run an all-padding batch of each size, with an all-zero context where the model takes one (allocates
    arenas, builds TensorRT engines per profile)."""
    width = len(engine.card.context_names)
    for size in batch_sizes:
        context = np.zeros((size, width), dtype=np.float32) if width else None
        engine.run(np.zeros((size, engine.window, VECTOR_DIM), dtype=np.float32), context)
    logger.info("engine %s warmed up on %s at batch sizes %s", engine.model_id, engine.provider, list(batch_sizes))


def session_options(intra_op_threads: int) -> Any:
    """The service's ORT session options (bench/engine/published_probe.py times variants of them)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1  # one model run at a time per batch; no parallel branches to feed
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


class OnnxEngine:
    """An ONNX Runtime session over one exported file; the provider actually used is `provider`."""

    def __init__(
        self,
        model_path: Path,
        card: ModelCard,
        providers: Sequence[str] | ProviderPlan = DEFAULT_PROVIDERS,
        intra_op_threads: int = 1,
    ) -> None:
        """`providers`: names to select from (default options), or a plan load_engine already chose."""
        import onnxruntime as ort

        self.model_path = Path(model_path)
        self.card = card
        self.window = card.window
        self.context_names = check_context(card.context, f"card of {self.model_path}")
        if isinstance(providers, ProviderPlan):
            plan, asked = providers, providers.providers
        else:
            plan, asked = plan_providers(providers, card.window, len(self.context_names)), list(providers)
        self.session = ort.InferenceSession(str(self.model_path), session_options(intra_op_threads),
                                            providers=plan.providers, provider_options=plan.options)  # fmt: skip
        meta = self.session.get_modelmeta().custom_metadata_map
        self._check_metadata(meta)
        self.provider = self.session.get_providers()[0]
        trt_fp16 = self.provider == TENSORRT and bool(plan.options[0].get("trt_fp16_enable"))
        self.precision = "fp16" if trt_fp16 else meta.get(META_PRECISION, "fp32")
        self.model_id = f"{card.arch}-{self.precision}@{file_tag(self.model_path)}"
        logger.info("engine %s runs on %s (asked for %s; this onnxruntime offers %s; %d intra-op threads)",
                    self.model_id, self.provider, asked, ort.get_available_providers(), intra_op_threads)

    def _check_metadata(self, meta: dict[str, str]) -> None:
        if META_FINGERPRINT not in meta:
            raise FingerprintMismatch(
                f"{self.model_path} carries no feature-layout fingerprint in its metadata; it was not written "
                "by `session-intent export` and cannot be trusted to read our 16-dim vectors"
            )
        check_fingerprint(meta[META_FINGERPRINT], f"model file {self.model_path}")
        window = meta.get(META_WINDOW)
        if window is not None and int(window) != self.card.window:
            raise ValueError(f"{self.model_path} was exported for N={window}, but its card says N={self.card.window}")
        self._check_context_input(meta)

    def _check_context_input(self, meta: dict[str, str]) -> None:
        """The graph's inputs and context fingerprint agree with the card (a file written before context
        existed has neither: no context)."""
        inputs = [i.name for i in self.session.get_inputs()]
        expected = [INPUT_NAME, CONTEXT_INPUT_NAME] if self.context_names else [INPUT_NAME]
        if inputs != expected:
            raise ContextMismatch(f"{self.model_path} takes inputs {inputs}, but its card's context "
                                  f"{list(self.context_names)} needs {expected}: re-export the model")  # fmt: skip
        found, carded = meta.get(META_CONTEXT_FINGERPRINT, ""), str(self.card.context.get("fingerprint", ""))
        if found != carded:
            raise ContextMismatch(f"{self.model_path} was exported for context fingerprint {found!r}, but its card "
                                  f"says {carded!r}: the graph and the card come from different models")  # fmt: skip

    def run(self, windows: np.ndarray, context: np.ndarray | None = None) -> np.ndarray:
        batch = check_windows(windows, self.window)
        if batch.shape[0] == 0:
            return np.zeros((0, 2), dtype=np.float32)
        feed = {INPUT_NAME: batch}
        fed_context = check_context_batch(context, batch.shape[0], self.context_names)
        if fed_context is not None:
            feed[CONTEXT_INPUT_NAME] = fed_context
        (probs,) = self.session.run(None, feed)
        return np.asarray(probs, dtype=np.float32)

    def warmup(self, batch_sizes: Sequence[int] = (1, 8, 64)) -> None:
        warm(self, batch_sizes)


def onnx_file_for(model_dir: Path, precision: str, provider: str) -> tuple[Path, bool]:
    """(file to load, TensorRT fp16 on?) for a precision on the chosen first provider; warns on a fallback."""
    fp32 = model_dir / FP32_FILE
    if is_gpu(provider):
        if precision == "int8":
            logger.warning("precision int8 runs on CPU only (TensorRT cannot run ORT's int8 ops, "
                           "DynamicQuantizeLSTM has no CUDA kernel); %s runs fp16 instead", provider)
            precision = "fp16"
        if provider == CUDA and precision == "fp16":
            fp16 = model_dir / FP16_FILE
            if fp16.is_file():
                return fp16, False
            logger.warning("%s missing: CUDA runs the fp32 graph (re-run `session-intent export`)", fp16)
        return fp32, precision == "fp16"
    if precision == "fp16":
        logger.warning("fp16 is a GPU precision; %s runs the fp32 graph", provider)
    if precision == "int8":
        int8 = model_dir / INT8_FILE
        if int8.is_file():
            return int8, False
        logger.warning("%s missing (export wrote none, or it failed the AUC check): running fp32", int8)
    return fp32, False


def load_engine(
    model_dir: Path,
    precision: str = "int8",
    providers: Sequence[str] = DEFAULT_PROVIDERS,
    intra_op_threads: int = 1,
    trt_cache_dir: Path | None = None,
) -> Engine:
    """The engine for a model directory; refuses a model built for another feature layout or context."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    model_dir = Path(model_dir)
    card = ModelCard.load(model_dir)
    check_fingerprint(card.fingerprint, f"{model_dir / CARD_FILE}")
    context_names = check_context(card.context, f"{model_dir / CARD_FILE}")
    chosen = select_providers(providers)
    if precision == "int8" and not is_gpu(chosen[0]):
        chosen = [CPU]  # the int8 graph runs on CPU; never hand its nodes to a GPU provider
    path, trt_fp16 = onnx_file_for(model_dir, precision, chosen[0])
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run `session-intent export {model_dir}` first")
    plan = plan_for(chosen, card.window, len(context_names), fp16=trt_fp16, trt_cache_dir=trt_cache_dir)
    return OnnxEngine(path, card, plan, intra_op_threads)
