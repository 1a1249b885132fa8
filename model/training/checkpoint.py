"""A model directory's torch side: `model.pt` (weights + NetConfig) beside `card.json`.

The loader rebuilds the exact network from the files alone: no code-side defaults are consulted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from model.artifacts import WEIGHTS_FILE
from model.card import ModelCard
from model.training.nets import IntentNet, NetConfig, build_net

CHECKPOINT_FORMAT = 1


def save_model(model_dir: Path, net: IntentNet, card: ModelCard) -> None:
    """Write `model.pt` (state dict + NetConfig dict) and `card.json` into `model_dir`."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "net_config": net.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
    }
    torch.save(checkpoint, model_dir / WEIGHTS_FILE)
    card.save(model_dir)


def load_net(model_dir: Path) -> IntentNet:
    """The network of `model_dir/model.pt`, in eval mode."""
    path = Path(model_dir) / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_FILE} in {model_dir}: not a trained model directory")
    # weights_only: a model file is data, never code to unpickle.
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: checkpoint format {checkpoint.get('format')!r}, expected {CHECKPOINT_FORMAT}")
    net = build_net(NetConfig.from_dict(checkpoint["net_config"]))
    net.load_state_dict(checkpoint["state_dict"])
    return net.eval()


def load_model(model_dir: Path) -> tuple[IntentNet, ModelCard]:
    """The network (eval mode) and the card of a model directory."""
    return load_net(model_dir), ModelCard.load(Path(model_dir))


def predict_logits(
    net: IntentNet, X: np.ndarray, context: np.ndarray | None = None, batch_size: int = 4096
) -> np.ndarray:
    """(n, 2) float32 logits of raw windows X (n, N, 16) and raw context (n, k) if the net takes one, batch by batch."""
    was_training = net.training
    net.eval()
    out = np.empty((len(X), 2), dtype=np.float32)
    try:
        with torch.inference_mode():
            for start in range(0, len(X), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(X[start : start + batch_size], dtype=np.float32))
                ctx = None
                if context is not None and net.config.context_dim:
                    ctx = torch.from_numpy(np.ascontiguousarray(context[start : start + batch_size], dtype=np.float32))
                out[start : start + len(batch)] = net(batch, ctx).numpy()
    finally:
        net.train(was_training)
    return out


def predict_proba(
    net: IntentNet, X: np.ndarray, context: np.ndarray | None = None, batch_size: int = 4096
) -> np.ndarray:
    """(n, 2) float32 probabilities [p_add_cart, p_make_order] of raw windows X (n, N, 16) [and context (n, k)]."""
    logits = predict_logits(net, X, context, batch_size)
    return torch.sigmoid(torch.from_numpy(logits)).numpy()
