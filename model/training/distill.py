"""Knowledge distillation: a small student learns from a big teacher's soft labels plus the true labels.

The counterpart of the published pruning step: the student keeps most of the teacher's accuracy at a
fraction of its serving cost. loss = alpha · BCE(true labels) + (1 − alpha) · T² · BCE(soft labels at T).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from model.training.checkpoint import predict_logits
from model.training.nets import IntentNet


def teacher_soft_targets(
    teacher: IntentNet, X: np.ndarray, temperature: float = 1.0, context: np.ndarray | None = None
) -> np.ndarray:
    """(n, 2) float32 sigmoid(teacher logits / T) for raw windows X (n, N, 16) [and the teacher's context (n, k)]."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if teacher.config.window != X.shape[1]:
        raise ValueError(
            f"teacher was trained on windows of N={teacher.config.window}, but the data has N={X.shape[1]}; "
            "train the student with the teacher's --window"
        )
    logits = predict_logits(teacher, X, context)
    return torch.sigmoid(torch.from_numpy(logits) / temperature).numpy()


def distillation_loss(
    logits: Tensor, targets: Tensor, soft: Tensor, alpha: float, temperature: float, pos_weight: Tensor | None
) -> Tensor:
    """alpha · BCE(logits, targets) + (1 − alpha) · T² · BCE(logits / T, soft); all (B, 2).

    T² keeps the soft term's gradient on the same scale whatever the temperature (Hinton et al. 2015).
    """
    hard = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)
    distilled = F.binary_cross_entropy_with_logits(logits / temperature, soft)
    return alpha * hard + (1.0 - alpha) * temperature**2 * distilled
