"""Knowledge distillation: a small student learns from a big teacher's soft labels plus the true labels.

The counterpart of the published pruning step: the student keeps most of the teacher's accuracy at a
fraction of its serving cost. loss = alpha · BCE(true labels) + (1 − alpha) · T² · BCE(soft labels at T).
The teacher may be an ensemble (several seeds): its logit is the mean of its members' logits, and the student is one
net of the student's size, so serving costs what one student costs.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    return ensemble_soft_targets([teacher], X, temperature, [context])


def ensemble_soft_targets(
    teachers: Sequence[IntentNet],
    X: np.ndarray,
    temperature: float = 1.0,
    contexts: Sequence[np.ndarray | None] | None = None,
) -> np.ndarray:
    """(n, 2) float32 sigmoid(mean of the teachers' logits / T); contexts[i]: teacher i's context (n, k_i) or None.

    The mean is taken on logits, not probabilities: a member's confident logit moves the teacher as far as it would
    move one net, and one member alone gives exactly its own soft labels.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if not teachers:
        raise ValueError("an ensemble teacher needs at least one member")
    contexts = list(contexts) if contexts is not None else [None] * len(teachers)
    if len(contexts) != len(teachers):
        raise ValueError(f"{len(teachers)} teachers but {len(contexts)} contexts")
    total = np.zeros((len(X), 2), dtype=np.float64)
    for teacher, context in zip(teachers, contexts, strict=True):
        if teacher.config.window != X.shape[1]:
            raise ValueError(
                f"teacher was trained on windows of N={teacher.config.window}, but the data has N={X.shape[1]}; "
                "train the student with the teacher's --window"
            )
        total += predict_logits(teacher, X, context)
    mean = torch.from_numpy((total / len(teachers)).astype(np.float32))
    return torch.sigmoid(mean / temperature).numpy()


def distillation_loss(
    logits: Tensor, targets: Tensor, soft: Tensor, alpha: float, temperature: float, pos_weight: Tensor | None
) -> Tensor:
    """alpha · BCE(logits, targets) + (1 − alpha) · T² · BCE(logits / T, soft); all (B, 2).

    T² keeps the soft term's gradient on the same scale whatever the temperature (Hinton et al. 2015).
    """
    hard = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)
    distilled = F.binary_cross_entropy_with_logits(logits / temperature, soft)
    return alpha * hard + (1.0 - alpha) * temperature**2 * distilled
