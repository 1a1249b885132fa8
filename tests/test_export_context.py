"""A model with context (model/context.py) through export and the engine: two graph inputs, the parity, int8
and fp16 gates on real contexts, the context fingerprint, zeros for a batch without context."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from bench.engine.torch_engine import TorchEngine
from model.artifacts import CONTEXT_INPUT_NAME, FP16_FILE, FP32_FILE, INPUT_NAME, INT8_FILE
from model.card import ModelCard
from model.context import CONTEXT_SETS, ContextMismatch, context_fingerprint, context_units
from model.export import fp16 as export_fp16
from model.export.exporter import AUC_DROP_BUDGET, ValidationWindows, export_model, onnx_probs
from model.export.inputs import GraphInputs
from model.training.checkpoint import load_model, predict_proba
from service.engine.onnx_engine import OnnxEngine, load_engine
from service.engine.providers import CPU, tensorrt_options
from tests.service_support import copy_with_card
from tests.test_export import FEATURES, copy_model, make_tiny_model, synthetic_windows

NAMES = CONTEXT_SETS["session+history"]
K = len(NAMES)


@pytest.fixture(scope="module")
def val() -> ValidationWindows:
    return synthetic_windows(context=NAMES)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, val: ValidationWindows) -> Path:
    path = make_tiny_model(tmp_path_factory.mktemp("context") / "tiny-ctx", context=NAMES)
    export_model(path, val, min_int8_speedup=0)
    return path


def test_the_graph_takes_windows_and_raw_context(model_dir: Path, val: ValidationWindows) -> None:
    proto = onnx.load(str(model_dir / FP32_FILE))
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert dims == {INPUT_NAME: ["batch", FEATURES.window, 16], CONTEXT_INPUT_NAME: ["batch", K]}
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["context_fingerprint"] == context_fingerprint(NAMES) == ModelCard.load(model_dir).context["fingerprint"]
    net, _ = load_model(model_dir)
    for batch in (1, 7, 300):
        inputs = val.inputs[:batch]
        np.testing.assert_allclose(onnx_probs(model_dir / FP32_FILE, inputs),
                                   predict_proba(net, inputs.windows, inputs.context), atol=1e-5)  # fmt: skip
    # the context matters: the same windows with another context score differently
    assert np.abs(onnx_probs(model_dir / FP32_FILE, GraphInputs(val.X[:50], val.C[:50] * 0)) -  # type: ignore[index]
                  onnx_probs(model_dir / FP32_FILE, val.inputs[:50])).max() > 1e-3  # fmt: skip


def test_int8_and_fp16_pass_their_gates_with_context(model_dir: Path, val: ValidationWindows) -> None:
    record = ModelCard.load(model_dir).extra["export"]
    assert record["fp32"]["parity_max_abs"] <= 1e-4
    assert record["int8"]["written"] and max(record["int8"]["auc_drop"].values()) <= AUC_DROP_BUDGET
    assert record["fp16"]["written"] and record["fp16"]["max_abs_vs_fp32_cpu"] <= 1e-2
    for name in (INT8_FILE, FP16_FILE):
        inputs = {i.name for i in onnx.load(str(model_dir / name)).graph.input}
        assert inputs == {INPUT_NAME, CONTEXT_INPUT_NAME}


def test_fp16_keeps_raw_context_out_of_fp16(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gap of days in seconds overflows fp16 (65504); the fp16 file must scale it in fp32 first."""
    windows = synthetic_windows(50, seed=4).X[:8]
    is_flag = context_units(NAMES) == 0  # a flag is 0/1; every count and duration far past fp16's range
    large = np.where(is_flag, 1.0, 1e6).astype(np.float32) * np.ones((8, 1), np.float32)
    inputs = GraphInputs(windows, large)
    p16, p32 = onnx_probs(model_dir / FP16_FILE, inputs), onnx_probs(model_dir / FP32_FILE, inputs)
    assert np.isfinite(p16).all() and np.abs(p16 - p32).max() < 1e-2
    # without the rewiring the converter sends the raw context through fp16: the gate refuses the file
    monkeypatch.setattr(export_fp16, "_rewire_fp32_chain", lambda proto, blocked: None)
    card = ModelCard.load(model_dir)
    report = export_fp16.export_fp16(model_dir / FP32_FILE, tmp_path / FP16_FILE, synthetic_windows(
        50, seed=4, context=NAMES).inputs, card)  # fmt: skip
    assert not report["written"] and not (tmp_path / FP16_FILE).exists()


def test_export_refuses_validation_windows_without_the_context(tmp_path: Path, model_dir: Path,
                                                               val: ValidationWindows) -> None:  # fmt: skip
    bare = copy_model(model_dir, tmp_path / "bare")
    with pytest.raises(ValueError, match=r"takes context .* carry 0 context columns"):
        export_model(bare, ValidationWindows(val.X, val.Y, "synthetic", "no context"), min_int8_speedup=0)


# --- the engine ---


@pytest.mark.parametrize("precision", ["int8", "fp32", "fp16"])
def test_engine_runs_context_and_feeds_zeros_without_it(model_dir: Path, val: ValidationWindows,
                                                        precision: str) -> None:  # fmt: skip
    engine = load_engine(model_dir, precision=precision, providers=[CPU])
    engine.warmup((1, 4))
    windows, context = val.X[:64], val.C[:64]  # type: ignore[index]
    net, _ = load_model(model_dir)
    atol = 1e-5 if precision == "fp32" else 0.05
    np.testing.assert_allclose(engine.run(windows, context), predict_proba(net, windows, context), atol=atol)
    zeros = np.zeros((64, K), np.float32)
    np.testing.assert_array_equal(engine.run(windows), engine.run(windows, zeros))
    with pytest.raises(ValueError, match=rf"context of shape \(64, {K}\)"):
        engine.run(windows, context[:, :3])


def test_a_model_without_context_ignores_one(tmp_path: Path, val: ValidationWindows) -> None:
    plain = make_tiny_model(tmp_path / "plain", steps=5)
    export_model(plain, synthetic_windows(), min_int8_speedup=0)
    engine = load_engine(plain, precision="fp32", providers=[CPU])
    np.testing.assert_array_equal(engine.run(val.X[:8]), engine.run(val.X[:8], val.C[:8]))  # type: ignore[index]


def test_torch_engine_takes_the_context_too(model_dir: Path, val: ValidationWindows) -> None:
    onnx_engine, torch_engine = load_engine(model_dir, precision="fp32", providers=[CPU]), TorchEngine(model_dir)
    windows, context = val.X[:32], val.C[:32]  # type: ignore[index]
    np.testing.assert_allclose(onnx_engine.run(windows, context), torch_engine.run(windows, context), atol=1e-5)
    np.testing.assert_allclose(onnx_engine.run(windows), torch_engine.run(windows), atol=1e-5)


def test_a_context_mismatch_is_refused(model_dir: Path, tmp_path: Path) -> None:
    stale = copy_with_card(model_dir, tmp_path / "stale", context={"names": list(NAMES), "fingerprint": "0" * 16})
    with pytest.raises(ContextMismatch, match="fingerprint '0000000000000000'"):
        load_engine(stale, precision="fp32", providers=[CPU])
    with pytest.raises(ContextMismatch):
        TorchEngine(stale)
    # a card that lost its context, beside a graph that takes one: inputs disagree
    lost = copy_with_card(model_dir, tmp_path / "lost", context={})
    with pytest.raises(ContextMismatch, match=r"takes inputs \['windows', 'context'\]"):
        load_engine(lost, precision="fp32", providers=[CPU])
    # a graph stamped with another context fingerprint than its card's
    proto = onnx.load(str(model_dir / FP32_FILE))
    props = {p.key: p.value for p in proto.metadata_props} | {"context_fingerprint": "feedfacefeedface"}
    proto.metadata_props.clear()
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(tmp_path / "other.onnx"))
    with pytest.raises(ContextMismatch, match="exported for context fingerprint 'feedfacefeedface'"):
        OnnxEngine(tmp_path / "other.onnx", ModelCard.load(model_dir), [CPU])


def test_tensorrt_profile_covers_the_context_input() -> None:
    options = tensorrt_options(window=10, context_dim=K)
    assert options["trt_profile_opt_shapes"] == f"windows:64x10x16,context:64x{K}"
    assert tensorrt_options(window=10)["trt_profile_opt_shapes"] == "windows:64x10x16"
