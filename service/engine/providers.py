"""ONNX Runtime execution providers: which one runs the model, and with which options (docs/architecture.md §7).

The order comes from settings (default TensorRT → CUDA → CPU) and is filtered by what the installed
onnxruntime build offers (`onnxruntime.get_available_providers()`): the CPU wheel offers only CPU, the
`onnxruntime-gpu` wheel adds CUDA and, with TensorRT libraries present, TensorRT.

Precision per provider:
- CPU runs `model.int8.onnx` (dynamic quantization) or `model.onnx` (fp32).
- TensorRT and CUDA never run the int8 graph: TensorRT cannot parse `DynamicQuantizeLinear` /
  `MatMulInteger`, and `DynamicQuantizeLSTM` has no CUDA kernel. On a GPU, reduced precision is fp16:
  TensorRT builds an fp16 engine from the fp32 graph (`trt_fp16_enable`); CUDA runs `model.fp16.onnx`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.artifacts import CONTEXT_INPUT_NAME, INPUT_NAME

logger = logging.getLogger(__name__)

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
GPU_PROVIDERS: tuple[str, ...] = (TENSORRT, CUDA)
DEFAULT_PROVIDERS: tuple[str, ...] = (TENSORRT, CUDA, CPU)

# TensorRT batch profile: an engine covers [min, max] and is tuned for `opt`, the batcher's usual size.
TRT_MIN_BATCH, TRT_OPT_BATCH, TRT_MAX_BATCH = 1, 64, 512
TRT_WORKSPACE_BYTES = 1 << 30


class NoUsableProvider(RuntimeError):
    """None of the requested execution providers exists in this onnxruntime build."""


def available_providers() -> list[str]:
    """The providers this onnxruntime build offers, in its own order."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def select_providers(requested: Sequence[str], available: Sequence[str] | None = None) -> list[str]:
    """`requested` in its order, keeping only what `available` offers; refuses an empty result."""
    offered = set(available_providers() if available is None else available)
    chosen = [name for name in dict.fromkeys(requested) if name in offered]
    skipped = [name for name in requested if name not in offered]
    if skipped:
        logger.debug("execution providers not in this onnxruntime build, skipped: %s", ", ".join(skipped))
    if not chosen:
        raise NoUsableProvider(
            f"none of the requested execution providers {list(requested)} is available; "
            f"this onnxruntime build offers {sorted(offered)} (set SI_PROVIDERS, or install onnxruntime-gpu)"
        )
    return chosen


def is_gpu(provider: str) -> bool:
    return provider in GPU_PROVIDERS


def batch_shape(batch: int, window: int, dim: int = 16, context_dim: int = 0) -> str:
    """One TensorRT profile shape of the graph's inputs, `windows:BxNxD` (and `,context:BxC` with context)."""
    shape = f"{INPUT_NAME}:{batch}x{window}x{dim}"
    return f"{shape},{CONTEXT_INPUT_NAME}:{batch}x{context_dim}" if context_dim else shape


def tensorrt_options(
    window: int,
    context_dim: int = 0,
    fp16: bool = True,
    int8: bool = False,
    cache_dir: Path | None = None,
    batch_range: tuple[int, int, int] = (TRT_MIN_BATCH, TRT_OPT_BATCH, TRT_MAX_BATCH),
) -> dict[str, Any]:
    """TensorRT provider options: precision, an engine + timing cache, and one explicit batch profile.

    Without a profile TensorRT rebuilds its engine for every new batch size (seconds each); with one
    it builds once for batch min..max, tuned at opt. `int8` needs calibration data in TensorRT itself
    and is off by default: our int8 is ORT's dynamic quantization, which TensorRT cannot run.
    """
    low, opt, high = batch_range
    if not 1 <= low <= opt <= high:
        raise ValueError(f"TensorRT batch profile must satisfy 1 <= min <= opt <= max, got {batch_range}")
    options: dict[str, Any] = {
        "trt_fp16_enable": fp16,
        "trt_int8_enable": int8,
        "trt_max_workspace_size": TRT_WORKSPACE_BYTES,
        "trt_profile_min_shapes": batch_shape(low, window, context_dim=context_dim),
        "trt_profile_opt_shapes": batch_shape(opt, window, context_dim=context_dim),
        "trt_profile_max_shapes": batch_shape(high, window, context_dim=context_dim),
    }
    if cache_dir is not None:
        # Engines take seconds to minutes to build; the cache makes a restart (or a second replica on
        # the same node) load them instead. Keyed by TensorRT on the graph, GPU and options.
        options.update(
            trt_engine_cache_enable=True,
            trt_engine_cache_path=str(cache_dir),
            trt_timing_cache_enable=True,
            trt_timing_cache_path=str(cache_dir),
        )
    return options


def cuda_options(device_id: int = 0) -> dict[str, Any]:
    """CUDA provider options: one device, a growing arena, copies on the compute stream."""
    return {
        "device_id": device_id,
        "arena_extend_strategy": "kNextPowerOfTwo",
        "do_copy_in_default_stream": True,
    }


@dataclass(frozen=True)
class ProviderPlan:
    """What an OnnxEngine session gets: providers in order, each with its options."""

    providers: list[str]
    options: list[dict[str, Any]]

    @property
    def first(self) -> str:
        return self.providers[0]


def plan_providers(
    requested: Sequence[str],
    window: int,
    context_dim: int = 0,
    fp16: bool = True,
    trt_cache_dir: Path | None = None,
    available: Sequence[str] | None = None,
) -> ProviderPlan:
    """Filter `requested` (select_providers) and attach each one's options."""
    return plan_for(select_providers(requested, available), window, context_dim, fp16, trt_cache_dir)


def plan_for(
    chosen: Sequence[str], window: int, context_dim: int = 0, fp16: bool = True, trt_cache_dir: Path | None = None
) -> ProviderPlan:
    """TensorRT/CUDA options for providers already selected (`context_dim`: the graph's context width, 0 for
    none); CPU takes no options."""
    options: list[dict[str, Any]] = []
    for name in chosen:
        if name == TENSORRT:
            options.append(tensorrt_options(window, context_dim, fp16=fp16, cache_dir=trt_cache_dir))
        elif name == CUDA:
            options.append(cuda_options())
        else:
            options.append({})
    return ProviderPlan(providers=list(chosen), options=options)
