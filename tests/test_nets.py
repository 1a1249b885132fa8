"""The model zoo: shapes, the scaling inside the net, ONNX exportability, and save → load."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from model.artifacts import WEIGHTS_FILE
from model.card import ModelCard
from model.features import ACTION_INDEX, N_ACTIONS, SCALE_DIVISOR, VECTOR_DIM, FeatureConfig
from model.training.checkpoint import load_model, predict_proba, save_model
from model.training.nets import ARCHS, AttentionEncoder, DwellScaling, IntentNet, NetConfig, RecurrentEncoder, build_net

TINY = {"lstm_units": 8, "gru_units": 4}  # 8 is divisible by the attention's 4 heads


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_net(arch: str, window: int = 6, seed: int = 0) -> IntentNet:
    torch.manual_seed(seed)
    return build_net(NetConfig.for_arch(arch, window=window, **TINY)).eval()


def raw_windows(batch: int, window: int, seed: int = 0, padded: int = 2) -> torch.Tensor:
    """(B, N, 16) raw windows like model/features.py makes: one dwell per step, flags, front padding."""
    rng = np.random.default_rng(seed)
    x = np.zeros((batch, window, VECTOR_DIM), dtype=np.float32)
    actions = rng.integers(0, N_ACTIONS, size=(batch, window))
    dwell = rng.uniform(1, 600, size=(batch, window))
    np.put_along_axis(x, actions[..., None], dwell[..., None].astype(np.float32), axis=-1)
    x[..., N_ACTIONS:] = rng.integers(0, 2, size=(batch, window, VECTOR_DIM - N_ACTIONS))
    x[:, :padded] = 0.0
    return torch.from_numpy(x)


@pytest.mark.parametrize("arch", ARCHS)
def test_each_arch_returns_two_logits_per_window(arch: str) -> None:
    net = tiny_net(arch)
    with torch.inference_mode():
        logits = net(raw_windows(5, 6))
    assert logits.shape == (5, 2)
    assert torch.isfinite(logits).all()


def test_published_defaults() -> None:
    cfg = NetConfig.for_arch("lstm_gru")
    assert (cfg.lstm_units, cfg.gru_units, cfg.dropout) == (500, 300, 0.2)
    net = build_net(cfg)
    assert isinstance(net.encoder, RecurrentEncoder)
    assert [type(m).__name__ for m in net.encoder.layers] == ["LSTM", "GRU"]
    attn = NetConfig.for_arch("lstm_attn")
    assert (attn.lstm_units, attn.attn_heads, attn.dropout) == (128, 4, 0.3)


def test_config_round_trips_and_rejects_unknown_arch() -> None:
    cfg = NetConfig.for_arch("lstm_attn", window=14, lstm_units=16)
    assert NetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown arch"):
        NetConfig(arch="transformer")


def test_scaling_maps_600_seconds_to_one_and_keeps_flags() -> None:
    x = torch.zeros(1, 1, VECTOR_DIM)
    x[0, 0, ACTION_INDEX["view_product"]] = 600.0
    x[0, 0, ACTION_INDEX["order"]] = 1.0
    x[0, 0, N_ACTIONS:] = torch.tensor([1.0, 0.0, 1.0, 1.0])
    scaled = DwellScaling()(x)[0, 0]
    assert scaled[ACTION_INDEX["view_product"]].item() == pytest.approx(1.0)
    assert scaled[ACTION_INDEX["order"]].item() == pytest.approx(math.log(2) / SCALE_DIVISOR)
    assert scaled[N_ACTIONS:].tolist() == [1.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("arch", ["lstm_gru", "lstm_attn"])
def test_the_recurrent_layers_see_scaled_input(arch: str) -> None:
    """The network itself scales: what reaches the encoder is log1p(x)/log1p(600), not raw seconds."""
    net = tiny_net(arch)
    seen: list[torch.Tensor] = []
    net.encoder.register_forward_pre_hook(lambda _module, args: seen.append(args[0].clone()))
    x = raw_windows(2, 6)
    x[:, -1, :N_ACTIONS] = 0.0
    x[:, -1, ACTION_INDEX["add_cart"]] = 600.0
    with torch.inference_mode():
        net(x)
    assert torch.allclose(seen[0][:, -1, ACTION_INDEX["add_cart"]], torch.ones(2))
    assert seen[0][..., :N_ACTIONS].max().item() <= 1.0 + 1e-6


def test_recurrent_net_reads_the_newest_step() -> None:
    net = tiny_net("lstm_gru")
    x = raw_windows(1, 6)
    changed = x.clone()
    changed[:, -1, N_ACTIONS:] = 1.0 - changed[:, -1, N_ACTIONS:]
    with torch.inference_mode():
        assert not torch.allclose(net(x), net(changed))


def test_attention_masks_front_padding() -> None:
    """Padded steps are masked out of the attention's keys; with only the newest step real, still finite."""
    net = tiny_net("lstm_attn")
    masks: list[torch.Tensor] = []
    assert isinstance(net.encoder, AttentionEncoder)
    net.encoder.attn.register_forward_pre_hook(
        lambda _module, _args, kwargs: masks.append(kwargs["key_padding_mask"]), with_kwargs=True
    )
    x = raw_windows(3, 6, padded=5)
    x[1, 3:] = raw_windows(1, 6, seed=5, padded=0)[0, 3:]  # window 1 has three real steps
    with torch.inference_mode():
        logits = net(x)
    assert torch.isfinite(logits).all()
    expected = torch.tensor([[True] * 5 + [False], [True] * 3 + [False] * 3, [True] * 5 + [False]])
    assert torch.equal(masks[0], expected)


@pytest.mark.parametrize("arch", ARCHS)
def test_legacy_onnx_export_keeps_rnn_ops_and_matches_torch(tmp_path: Path, arch: str) -> None:
    net = tiny_net(arch)
    path = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            net, (raw_windows(2, 6),), str(path), dynamo=False, input_names=["windows"], output_names=["logits"],
            dynamic_axes={"windows": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
        )  # fmt: skip
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "LSTM" in ops or "GRU" in ops
    assert not {"Loop", "Scan"} & ops  # whole RNN ops, not unrolled cells
    x = raw_windows(7, 6, seed=3)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"windows": x.numpy()})
    with torch.inference_mode():
        np.testing.assert_allclose(got, net(x).numpy(), atol=1e-5)


@pytest.mark.parametrize("arch", ["lstm_gru_small", "lstm_attn"])
def test_save_load_gives_identical_outputs(tmp_path: Path, arch: str) -> None:
    net = tiny_net(arch, window=6, seed=7)
    card = ModelCard(name="t", arch=arch, hparams={"net": net.config.to_dict()}, features=FeatureConfig(window=6))
    save_model(tmp_path / "m", net, card)
    loaded, loaded_card = load_model(tmp_path / "m")
    assert not loaded.training
    assert loaded.config == net.config
    assert loaded_card.arch == arch and loaded_card.window == 6
    x = raw_windows(9, 6, seed=1).numpy()
    np.testing.assert_array_equal(predict_proba(loaded, x), predict_proba(net, x))
    torch.manual_seed(99)  # a fresh net of the same config must differ: the weights came from the file
    assert not np.array_equal(predict_proba(build_net(net.config), x), predict_proba(loaded, x))


def test_predict_proba_is_sigmoid_of_logits_in_batches() -> None:
    net = tiny_net("gru")
    x = raw_windows(10, 6, seed=2)
    probs = predict_proba(net, x.numpy(), batch_size=3)
    assert probs.shape == (10, 2) and probs.dtype == np.float32
    with torch.inference_mode():
        np.testing.assert_allclose(probs, torch.sigmoid(net(x)).numpy(), atol=1e-6)


def test_load_refuses_a_directory_without_weights(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=WEIGHTS_FILE):
        load_model(tmp_path)
