"""The PyTorch engine the benchmarks and the naive baseline compare against: `model.pt` under
`inference_mode`, CPU fp32 or CUDA fp32/fp16. It satisfies the service's `Engine` protocol, but the
service never loads it (docs/architecture.md §11: serving imports no torch).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from model.artifacts import CARD_FILE, WEIGHTS_FILE
from model.card import check_fingerprint
from model.context import check_context
from model.training.checkpoint import load_model
from service.engine.onnx_engine import check_context_batch, check_windows, file_tag, warm

logger = logging.getLogger(__name__)


class TorchEngine:
    """The PyTorch network of `model.pt` under `inference_mode`: CPU fp32, or CUDA fp32/fp16."""

    def __init__(self, model_dir: Path, device: str = "cpu", fp16: bool = False, threads: int | None = None) -> None:
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        if fp16 and device == "cpu":
            raise ValueError("fp16 TorchEngine needs CUDA; on CPU use fp32 (or the ONNX int8 engine)")
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("TorchEngine(device='cuda'): this torch build sees no CUDA device")
        if threads is not None:
            torch.set_num_threads(threads)  # process-wide: torch has one intra-op pool
        self.model_dir = Path(model_dir)
        net, card = load_model(self.model_dir)
        check_fingerprint(card.fingerprint, f"{self.model_dir / CARD_FILE}")
        self.card = card
        self.window = card.window
        self.context_names = check_context(card.context, f"{self.model_dir / CARD_FILE}")
        self.dtype = torch.float16 if fp16 else torch.float32
        self.device = torch.device(device)
        self.net = net.to(self.device, self.dtype).eval()
        if fp16 and net.context_encoder is not None:
            _scale_context_in_fp32(net.context_encoder)
        self.provider = f"torch:{device}:{'fp16' if fp16 else 'fp32'}"
        self.model_id = f"{card.arch}-torch-{'fp16' if fp16 else 'fp32'}@{file_tag(self.model_dir / WEIGHTS_FILE)}"
        logger.info("engine %s on %s", self.model_id, self.provider)

    def run(self, windows: np.ndarray, context: np.ndarray | None = None) -> np.ndarray:
        batch = check_windows(windows, self.window)
        fed = check_context_batch(context, batch.shape[0], self.context_names)
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, self.dtype)  # (B, N, 16)
            c = None if fed is None else torch.from_numpy(fed).to(self.device)  # (B, C)
            probs = torch.sigmoid(self.net(x, c).float())  # (B, 2), sigmoid in fp32
            return probs.cpu().numpy()

    def warmup(self, batch_sizes: Sequence[int] = (1, 8, 64)) -> None:
        warm(self, batch_sizes)


def _scale_context_in_fp32(encoder: torch.nn.Module) -> None:
    """Keep the context's scaling fp32 in an fp16 net, as the fp16 ONNX file does: raw counts and seconds
    overflow fp16 (65504), their log1p does not. The layer after it gets its input cast to its own dtype."""
    scaling, first_linear = encoder[0], encoder[1]  # type: ignore[index]
    scaling.float()
    first_linear.register_forward_pre_hook(lambda layer, args: (args[0].to(layer.weight.dtype),))
