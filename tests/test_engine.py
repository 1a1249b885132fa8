"""Inference engines (service/engine/onnx_engine.py) and provider selection (service/engine/providers.py).

This machine's onnxruntime offers only the CPU provider: TensorRT/CUDA are covered by selection and
option tests, and by one load with a stand-in session that reports the GPU provider as chosen.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from bench.engine.torch_engine import TorchEngine
from model.artifacts import FP16_FILE, FP32_FILE, INT8_FILE
from model.card import FingerprintMismatch
from model.export.exporter import export_model
from service.engine import providers as prov
from service.engine.onnx_engine import OnnxEngine, load_engine, onnx_file_for
from service.engine.providers import CPU, CUDA, DEFAULT_PROVIDERS, TENSORRT, NoUsableProvider, plan_providers
from tests.test_export import copy_model, make_tiny_model, synthetic_windows

ALL_PROVIDERS = [TENSORRT, CUDA, CPU]
REAL_SESSION = ort.InferenceSession


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    return synthetic_windows(200, seed=21).X[:300]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = make_tiny_model(tmp_path_factory.mktemp("engine") / "tiny")
    export_model(path, synthetic_windows(), min_int8_speedup=0)  # int8 written whatever its speed
    return path


# --- provider selection and options (no GPU needed) ---


def test_cpu_only_build_keeps_the_cpu_provider() -> None:
    available = ort.get_available_providers()
    chosen = prov.select_providers(DEFAULT_PROVIDERS)
    assert chosen == [name for name in DEFAULT_PROVIDERS if name in available] and chosen[-1] == CPU
    assert prov.select_providers(DEFAULT_PROVIDERS, available=["AzureExecutionProvider", CPU]) == [CPU]


def test_selection_keeps_the_configured_order() -> None:
    assert prov.select_providers(DEFAULT_PROVIDERS, available=[CPU, CUDA, TENSORRT]) == ALL_PROVIDERS
    assert prov.select_providers([CUDA, CPU, CUDA], available=ALL_PROVIDERS) == [CUDA, CPU]


def test_no_usable_provider_is_a_clear_error() -> None:
    with pytest.raises(NoUsableProvider, match="onnxruntime-gpu"):
        prov.select_providers([TENSORRT, CUDA], available=[CPU])


def test_tensorrt_and_cuda_options(tmp_path: Path) -> None:
    plan = plan_providers(DEFAULT_PROVIDERS, window=10, fp16=True, trt_cache_dir=tmp_path, available=ALL_PROVIDERS)
    assert plan.first == TENSORRT and plan.providers == ALL_PROVIDERS
    trt, cuda, cpu = plan.options
    assert trt["trt_fp16_enable"] is True and trt["trt_int8_enable"] is False
    assert (trt["trt_profile_min_shapes"], trt["trt_profile_opt_shapes"], trt["trt_profile_max_shapes"]) == (
        "windows:1x10x16", "windows:64x10x16", "windows:512x10x16")  # fmt: skip
    assert trt["trt_engine_cache_enable"] is True and trt["trt_engine_cache_path"] == str(tmp_path)
    assert trt["trt_timing_cache_path"] == str(tmp_path)
    assert cuda["device_id"] == 0 and cpu == {}
    no_cache = prov.tensorrt_options(window=8, fp16=False)
    assert "trt_engine_cache_path" not in no_cache and no_cache["trt_profile_opt_shapes"] == "windows:64x8x16"
    with pytest.raises(ValueError, match="batch profile"):
        prov.tensorrt_options(window=8, batch_range=(64, 8, 512))


def test_precision_picks_the_file_per_provider(model_dir: Path) -> None:
    assert onnx_file_for(model_dir, "int8", CPU) == (model_dir / INT8_FILE, False)
    assert onnx_file_for(model_dir, "fp32", CPU) == (model_dir / FP32_FILE, False)
    assert onnx_file_for(model_dir, "fp16", CPU) == (model_dir / FP32_FILE, False)  # fp16 is a GPU precision
    # int8 is a CPU affair: on a GPU it runs fp16, by TensorRT's flag or by CUDA on the fp16 graph
    assert onnx_file_for(model_dir, "int8", TENSORRT) == (model_dir / FP32_FILE, True)
    assert onnx_file_for(model_dir, "int8", CUDA) == (model_dir / FP16_FILE, False)
    assert onnx_file_for(model_dir, "fp32", TENSORRT) == (model_dir / FP32_FILE, False)


class RecordingSession:
    """Stands in for a GPU build's InferenceSession: records what it was asked, runs the graph on CPU, and
    reports the first requested provider as the one in use (what ORT reports when TensorRT loads)."""

    calls: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, path: str, options: ort.SessionOptions, providers: list[str],
                 provider_options: list[dict[str, Any]]) -> None:  # fmt: skip
        RecordingSession.calls.append({"path": path, "providers": providers, "options": provider_options,
                                       "threads": options.intra_op_num_threads})  # fmt: skip
        self._session = REAL_SESSION(path, options, providers=[CPU])
        self._providers = providers

    def get_providers(self) -> list[str]:
        return self._providers

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def test_gpu_build_runs_fp16_through_tensorrt(model_dir: Path, tmp_path: Path, windows: np.ndarray,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(prov, "available_providers", lambda: ALL_PROVIDERS)
    monkeypatch.setattr(ort, "InferenceSession", RecordingSession)
    RecordingSession.calls.clear()
    engine = load_engine(model_dir, precision="int8", trt_cache_dir=tmp_path, intra_op_threads=2)
    (call,) = RecordingSession.calls
    assert Path(call["path"]).name == FP32_FILE and call["providers"] == ALL_PROVIDERS and call["threads"] == 2
    trt_options = call["options"][0]
    assert trt_options["trt_fp16_enable"] is True and trt_options["trt_engine_cache_path"] == str(tmp_path)
    assert engine.provider == TENSORRT and engine.model_id.startswith("lstm_gru_small-fp16@")
    assert engine.run(windows[:4]).shape == (4, 2)


# --- engines on the CPU provider ---


def test_load_engine_reports_the_provider_it_chose(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="service.engine.onnx_engine"):
        engine = load_engine(model_dir)  # default: int8, TensorRT → CUDA → CPU
    assert engine.provider == CPU and engine.window == 6
    sha = hashlib.sha256((model_dir / INT8_FILE).read_bytes()).hexdigest()[:6]
    assert engine.model_id == f"lstm_gru_small-int8@{sha}"
    assert any(CPU in r.getMessage() and engine.model_id in r.getMessage() for r in caplog.records)


def test_onnx_engine_matches_torch_engine(model_dir: Path, windows: np.ndarray) -> None:
    onnx_engine = load_engine(model_dir, precision="fp32")
    torch_engine = TorchEngine(model_dir, device="cpu")
    assert torch_engine.provider == "torch:cpu:fp32"
    for engine in (onnx_engine, torch_engine):
        engine.warmup((1, 3))
    np.testing.assert_allclose(onnx_engine.run(windows), torch_engine.run(windows), atol=1e-5)


def test_int8_engine_is_close_to_fp32(model_dir: Path, windows: np.ndarray) -> None:
    fp32, int8 = load_engine(model_dir, precision="fp32"), load_engine(model_dir, precision="int8")
    assert fp32.model_id != int8.model_id
    delta = np.abs(fp32.run(windows) - int8.run(windows))
    assert 0 < delta.mean() < 5e-3 and delta.max() < 0.1


def test_missing_int8_falls_back_to_fp32(model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bare = copy_model(model_dir, tmp_path / "no-int8")
    shutil.copy2(model_dir / FP32_FILE, bare / FP32_FILE)
    with caplog.at_level(logging.WARNING, logger="service.engine.onnx_engine"):
        engine = load_engine(bare, precision="int8")
    assert "-fp32@" in engine.model_id and any("running fp32" in r.getMessage() for r in caplog.records)


def test_run_checks_the_batch_shape(model_dir: Path) -> None:
    engine = load_engine(model_dir)
    assert engine.run(np.zeros((0, 6, 16), np.float32)).shape == (0, 2)
    with pytest.raises(ValueError, match=r"\(B, 6, 16\)"):
        engine.run(np.zeros((2, 10, 16), np.float32))


def test_torch_engine_refuses_fp16_on_cpu(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="needs CUDA"):
        TorchEngine(model_dir, device="cpu", fp16=True)


# --- fingerprint: a model built for another feature layout is refused ---


def test_card_with_a_wrong_fingerprint_is_refused(model_dir: Path, tmp_path: Path) -> None:
    other = copy_model(model_dir, tmp_path / "other-layout")
    for name in (FP32_FILE, INT8_FILE):  # the graphs carry the right fingerprint: only the card is off
        shutil.copy2(model_dir / name, other / name)
    card = json.loads((other / "card.json").read_text())
    card["fingerprint"] = "0123456789abcdef"
    (other / "card.json").write_text(json.dumps(card))
    loaders = (lambda: load_engine(other, precision="int8"), lambda: TorchEngine(other))
    for load in loaders:
        with pytest.raises(FingerprintMismatch, match=r"feature layout '0123456789abcdef'.*Retrain or re-export"):
            load()


def test_onnx_file_with_a_wrong_fingerprint_is_refused(model_dir: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(model_dir / FP32_FILE))
    props = {p.key: p.value for p in proto.metadata_props} | {"fingerprint": "feedfacefeedface"}
    proto.metadata_props.clear()
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(tmp_path / FP32_FILE))
    card = load_engine(model_dir, precision="fp32").card
    where = re.escape(str(tmp_path / FP32_FILE))
    with pytest.raises(FingerprintMismatch, match=rf"model file {where}.*'feedfacefeedface'"):
        OnnxEngine(tmp_path / FP32_FILE, card, [CPU])
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    with pytest.raises(FingerprintMismatch, match="carries no feature-layout fingerprint"):
        OnnxEngine(tmp_path / "bare.onnx", card, [CPU])


# --- the benchmark command end to end, on the tiny model and a tiny timing plan ---


@pytest.mark.slow
def test_engine_bench_writes_md_csv_png(model_dir: Path, tmp_path: Path) -> None:
    from bench.engine.report import CSV_COLUMNS, write_report
    from bench.engine.run import run_engine_bench
    from model.export.timing import TimingPlan

    plan = TimingPlan(target_runs=6, min_runs=3, cell_budget_s=0.05, warmup_s=0.01, rounds=2)
    bench = run_engine_bench([str(model_dir)], tmp_path / "models", None, tmp_path / "work", plan,
                             batches=(1, 4), threads=(1,), max_windows=500)  # fmt: skip
    (result,) = bench.models
    assert result.source == f"trained: {model_dir}" and result.rss["int8"]["provider"] == CPU
    assert {(r["engine"], r["batch"]) for r in result.grid} == {
        (e, b) for e in ("torch eager fp32", "ORT fp32", "ORT int8") for b in (1, 4)}  # fmt: skip
    assert result.batch_mates["fp32"]["max_abs"] == 0.0  # fp32 scores do not depend on batch-mates
    md, csv_path, png = write_report(bench, tmp_path / "out", "session-intent bench engine --test")
    rows = csv_path.read_text().splitlines()
    assert rows[0].split(",") == list(CSV_COLUMNS) and len(rows) == 1 + 6
    text = md.read_text()
    assert "session-intent bench engine --test" in text and bench.machine["isa"] in text
    assert "262 ms" in text and "not measured" in text and png.stat().st_size > 10_000
