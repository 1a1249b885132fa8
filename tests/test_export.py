"""ONNX export (model/export/exporter.py): the graph's contract, the parity gate, the int8 AUC gate, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import typer
from typer.testing import CliRunner

from model.artifacts import FP16_FILE, FP32_FILE, INT8_FILE
from model.card import ModelCard
from model.context import context_card
from model.data.dataset import Sessions, build_windows, curate
from model.data.synth import generate_sessions, write_csv
from model.export import graphs as export_graphs
from model.export import int8 as export_int8
from model.export.exporter import AUC_DROP_BUDGET, ExportParityError, ValidationWindows, export_model, onnx_probs
from model.export.graphs import HoistedGRUGraph, export_fp32
from model.export.quantize import EXPORT_ORDER, RECIPES, op_census, quantize_model
from model.export.timing import TimingPlan
from model.features import FeatureConfig, layout_fingerprint
from model.training.checkpoint import load_model, predict_proba, save_model
from model.training.nets import IntentNet, NetConfig, build_net

FEATURES = FeatureConfig(window=6)


def synthetic_windows(n_sessions: int = 400, seed: int = 3, context: tuple[str, ...] = ()) -> ValidationWindows:
    """Windows and targets (and the raw `context` features) of synthetic sessions, through the real data pipeline."""
    log = generate_sessions(n_sessions, seed)
    windows = build_windows(curate(Sessions(ids=log.session_ids, events=log.to_event_log())), FEATURES)
    C = windows.contexts(slice(None), context) if context else None
    return ValidationWindows(windows.X, windows.Y, "synthetic", f"test seed {seed}", C)


def make_tiny_model(model_dir: Path, steps: int = 150, context: tuple[str, ...] = ()) -> Path:
    """A tiny LSTM→GRU trained for a few Adam steps (so its outputs vary), saved as a model directory.

    One torch thread: on a busy 2-core machine a 2-thread pool waits on its own spinning workers.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = NetConfig.for_arch("lstm_gru_small", window=FEATURES.window, lstm_units=16, gru_units=8, context=context)
    net = build_net(cfg)
    data = synthetic_windows(300, seed=11, context=context)
    X, Y = torch.from_numpy(data.X[:1024]), torch.from_numpy(data.Y[:1024])
    C = torch.from_numpy(data.C[:1024]) if data.C is not None else None
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)  # 150 steps: AUC about 0.7 / 0.85 on `val`
    for _ in range(steps):
        optimiser.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(net(X, C), Y).backward()
        optimiser.step()
    torch.set_num_threads(threads)
    card = ModelCard(name=model_dir.name, arch=cfg.arch, hparams={"net": cfg.to_dict()}, features=FEATURES,
                     data={"name": "synthetic", "split": "session"}, context=context_card(context))  # fmt: skip
    save_model(model_dir, net.eval(), card)
    return model_dir


@pytest.fixture(scope="module")
def val() -> ValidationWindows:
    return synthetic_windows()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


def copy_model(src: Path, dst: Path) -> Path:
    """A fresh model directory holding only `src`'s weights and card, as `train` leaves it."""
    dst.mkdir(parents=True)
    for name in ("model.pt", "card.json"):
        shutil.copy2(src / name, dst / name)
    return dst


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, trained: Path, val: ValidationWindows) -> Path:
    model_dir = copy_model(trained, tmp_path_factory.mktemp("exported") / "tiny")
    export_model(model_dir, val, min_int8_speedup=0)  # keep the first recipe within budget, time nothing
    return model_dir


def test_fp32_graph_has_the_serving_contract(exported: Path, val: ValidationWindows) -> None:
    proto = onnx.load(str(exported / FP32_FILE))
    (inp,), (out,) = proto.graph.input, proto.graph.output
    in_dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    out_dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert (inp.name, in_dims) == ("windows", ["batch", FEATURES.window, 16])
    assert (out.name, out_dims) == ("probs", ["batch", 2])
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["fingerprint"] == layout_fingerprint() and meta["context_fingerprint"] == ""  # no context
    assert (meta["window"], meta["precision"]) == (str(FEATURES.window), "fp32")
    assert json.loads(meta["card"])["arch"] == "lstm_gru_small"
    # probabilities (the sigmoid is in the graph), equal to torch at batch sizes never seen at export
    net, _ = load_model(exported)
    for batch in (1, 7, 300):
        probs = onnx_probs(exported / FP32_FILE, val.inputs[:batch])
        assert probs.shape == (batch, 2) and probs.min() >= 0.0 and probs.max() <= 1.0
        np.testing.assert_allclose(probs, predict_proba(net, val.X[:batch]), atol=1e-5)


def test_card_records_the_export(exported: Path) -> None:
    record = ModelCard.load(exported).extra["export"]
    assert record["fp32"]["parity_max_abs"] <= 1e-4
    assert record["validation"]["source"] == "synthetic"
    int8 = record["int8"]
    assert int8["written"] and max(int8["auc_drop"].values()) <= AUC_DROP_BUDGET
    # every recipe is scored; without timing, the first within budget in EXPORT_ORDER is kept
    assert [t["recipe"] for t in int8["tried"]] == list(EXPORT_ORDER)
    assert int8["recipe"] == next(t["recipe"] for t in int8["tried"] if t["passed"])
    assert all(t["passed"] == (max(t["auc_drop"].values()) <= AUC_DROP_BUDGET) for t in int8["tried"])
    assert record["fp16"]["written"] and (exported / FP16_FILE).is_file()


def test_plain_int8_quantizes_the_lstm_and_keeps_the_gru_fp32(exported: Path, val: ValidationWindows,
                                                              tmp_path: Path) -> None:  # fmt: skip
    int8 = quantize_model(exported / FP32_FILE, tmp_path / "plain.onnx", RECIPES["dynamic_quint8"])
    ops = op_census(int8)
    assert ops.get("DynamicQuantizeLSTM") == 1 and ops.get("MatMulInteger") == 1
    assert ops.get("GRU") == 1 and "LSTM" not in ops  # ORT has no quantized GRU
    delta = np.abs(onnx_probs(exported / FP32_FILE, val.inputs) - onnx_probs(int8, val.inputs))
    # A 16-unit LSTM averages little quantization noise away: mean |Δ| about 1e-3, the worst window about 0.06.
    assert 0 < delta.mean() < 5e-3 and delta.max() < 0.1


def test_hoisted_gru_graph_matches_torch_and_quantizes_the_projection(exported: Path, val: ValidationWindows,
                                                                       tmp_path: Path) -> None:  # fmt: skip
    net, card = load_model(exported)
    hoisted = tmp_path / "hoisted.onnx"
    assert export_fp32(net, card, hoisted, val.inputs, HoistedGRUGraph)["parity_max_abs"] <= 1e-4
    assert op_census(hoisted) == {"LSTM": 1, "Gemm": FEATURES.window + 1, "MatMul": 1}  # N recurrent steps + head
    int8 = quantize_model(hoisted, tmp_path / "hoisted.int8.onnx", RECIPES["hoisted_gru_quint8"])
    # the LSTM and the GRU's hoisted input projection in int8; the recurrent steps and the head stay fp32
    assert op_census(int8) == {"DynamicQuantizeLSTM": 1, "MatMulInteger": 1, "MatMul": FEATURES.window + 1}
    delta = np.abs(onnx_probs(hoisted, val.inputs) - onnx_probs(int8, val.inputs))
    assert 0 < delta.mean() < 5e-3 and delta.max() < 0.1
    # the export order's first recipe: the N recurrent steps and the head in int8 too, nothing left in fp32
    every = quantize_model(hoisted, tmp_path / "hoisted_all.int8.onnx", RECIPES["hoisted_gru_quint8_all"])
    assert op_census(every) == {"DynamicQuantizeLSTM": 1, "MatMulInteger": FEATURES.window + 2}
    delta = np.abs(onnx_probs(hoisted, val.inputs) - onnx_probs(every, val.inputs))
    assert 0 < delta.mean() < 5e-3 and delta.max() < 0.1


def test_export_refuses_a_graph_that_breaks_parity(tmp_path: Path, trained: Path, val: ValidationWindows,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    model_dir = copy_model(trained, tmp_path / "broken")
    card_before = (model_dir / "card.json").read_text()
    real_export = export_graphs.to_onnx_proto

    def corrupted(net: IntentNet, window: int, graph_type: type[torch.nn.Module]) -> onnx.ModelProto:
        proto = real_export(net, window, graph_type)
        head = next(t for t in proto.graph.initializer if "head" in t.name and "weight" in t.name)
        weights = onnx.numpy_helper.to_array(head).copy()
        weights[0, 0] += 0.5  # one weight of the output layer, off by 0.5
        head.CopyFrom(onnx.numpy_helper.from_array(weights, head.name))
        return proto

    monkeypatch.setattr(export_graphs, "to_onnx_proto", corrupted)
    with pytest.raises(ExportParityError, match=r"refusing to write model\.onnx"):
        export_model(model_dir, val)
    assert sorted(p.name for p in model_dir.iterdir()) == ["card.json", "model.pt"]  # nothing written, no scratch
    assert (model_dir / "card.json").read_text() == card_before


def test_int8_is_not_written_when_it_misses_the_auc_budget(tmp_path: Path, trained: Path, val: ValidationWindows,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    model_dir = copy_model(trained, tmp_path / "strict")
    (model_dir / INT8_FILE).write_bytes(b"stale int8 from an earlier export")
    monkeypatch.setattr(export_int8, "AUC_DROP_BUDGET", -1.0)  # no recipe can gain AUC by 1.0
    monkeypatch.setattr(export_int8, "EXPORT_ORDER", ("dynamic_quint8", "dynamic_matmul_only"))
    report = export_model(model_dir, val)
    assert not report.int8["written"] and [t["recipe"] for t in report.int8["tried"]] == [
        "dynamic_quint8", "dynamic_matmul_only"]  # fmt: skip
    assert not (model_dir / INT8_FILE).exists()  # the stale file would not match model.pt
    assert (model_dir / FP32_FILE).is_file()
    assert ModelCard.load(model_dir).extra["export"]["int8"]["written"] is False


def test_int8_is_not_written_when_it_is_not_faster_than_fp32(tmp_path: Path, trained: Path, val: ValidationWindows,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    model_dir = copy_model(trained, tmp_path / "slow")
    monkeypatch.setattr(export_int8, "EXPORT_ORDER", ("dynamic_matmul_only",))  # within budget on this model
    monkeypatch.setattr(export_int8, "SPEED_PLAN", TimingPlan(target_runs=10, min_runs=5, cell_budget_s=0.2))
    report = export_model(model_dir, val, min_int8_speedup=1000.0)
    (attempt,) = report.int8["tried"]
    assert attempt["passed"] and set(attempt["speedup"]) == {"b1", "b64", "geomean"}
    assert not report.int8["written"] and "beat fp32 by 1000" in report.int8["reason"]
    assert not (model_dir / INT8_FILE).exists()


def test_export_command_uses_the_validation_split_of_data(tmp_path: Path, trained: Path) -> None:
    from cli import export_command

    model_dir = copy_model(trained, tmp_path / "cli")
    csv_path = tmp_path / "events.csv"
    write_csv(generate_sessions(300, seed=5), csv_path)
    app = typer.Typer()
    export_command.register(app)
    app.command("noop")(lambda: None)  # a second command keeps `export` a named subcommand
    result = CliRunner().invoke(app, ["export", str(model_dir), "--data", str(csv_path), "--min-int8-speedup", "0"])
    assert result.exit_code == 0, result.output
    record = ModelCard.load(model_dir).extra["export"]
    assert record["validation"]["source"] == "real" and record["validation"]["name"].startswith("events")
    session = ort.InferenceSession(str(model_dir / INT8_FILE), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["precision"] == "int8"
