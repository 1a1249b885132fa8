"""Training hyperparameters (`TrainConfig`) and the names they take: torch-free, so the CLI reads its options'
defaults from here without importing the training stack (the serving install has no torch).

The calibration vocabulary lives here too, because `TrainConfig` validates against it; `calibration_choice.py`
implements what each name means.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

SCHEDULES: tuple[str, ...] = ("plateau", "cosine", "none")
DEFAULT_PATIENCE = 4  # TrainConfig.patience, and the CLI's, whose option cannot be None

# Calibration sources (calibration_choice.py): the network's own logits, Platt on validation, Platt on a training
# sample beside validation.
NONE, VALIDATION, TRAIN_VALIDATION = "none", "validation", "train+validation"
CALIBRATION_SOURCES: tuple[str, ...] = (NONE, VALIDATION, TRAIN_VALIDATION)
AUTO = "auto"  # per label, the source with the lowest out-of-fold ECE
CALIBRATION_FITS: tuple[str, ...] = (AUTO, VALIDATION, TRAIN_VALIDATION)  # TrainConfig.calibration_fit
POOLED = "pooled"
CROSSFIT = "crossfit"  # pooled, with out-of-fold training logits (crossfit.py): judged and fitted alike
CALIBRATION_SCORES: tuple[str, ...] = (POOLED, VALIDATION, CROSSFIT)  # TrainConfig.calibration_score


@dataclass
class TrainConfig:
    """Optimisation hyperparameters; saved in the card beside the NetConfig."""

    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    pos_weight: tuple[float, float] | None = None  # BCE positive weight per label [add_cart, make_order]
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    schedule: str = "plateau"  # plateau: halve the LR after `lr_patience` flat epochs; cosine: anneal over `epochs`
    lr_patience: int = 1
    # Epochs without validation improvement before stopping; None: never stop early.
    patience: int | None = DEFAULT_PATIENCE
    # The gain in the monitored value (make_order PR-AUC, or -val loss) an epoch must bring to reset the patience
    # count. 0: any gain. The best epoch's weights are kept either way; on a big log each epoch brings a little.
    min_delta: float = 0.0
    seed: int = 0
    # torch intra-op threads (0: torch's default). 1 by default: on a shared 2-core box, 2 threads run
    # an epoch several times slower than 1 (spinning OpenMP workers fight other processes); docs/training.md.
    threads: int = 1
    # Prefixes drawn per epoch (without replacement, fresh each epoch) for logs too big for full epochs;
    # None: every training prefix. Validation always scores every validation prefix.
    prefixes_per_epoch: int | None = None
    max_minutes: float | None = None  # wall-clock budget; the epoch running at the deadline is cut short
    temperature: float = 1.0  # distillation temperature
    # Share of TRAINING sessions trained with their id-less context (model/training/id_dropout.py), so clicks
    # sent without ids score sensibly; only for nets with context. Seeded by `seed`.
    context_dropout: float = 0.2
    # Platt scaling per label folded into the last layer (calibration.py), fitted on the windows
    # `calibration_fit` names: "auto" picks per label by out-of-fold validation ECE (calibration_choice.py).
    calibrate: bool = True
    calibration_fit: str = AUTO
    # Whose sessions score the sources "auto" compares: "pooled" (training sample + validation) or "validation".
    calibration_score: str = VALIDATION

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")
        if self.calibration_fit not in CALIBRATION_FITS:
            raise ValueError(f"calibration_fit must be one of {CALIBRATION_FITS}, got {self.calibration_fit!r}")
        if self.calibration_score not in CALIBRATION_SCORES:
            raise ValueError(f"calibration_score must be one of {CALIBRATION_SCORES}, got {self.calibration_score!r}")
        if not 0.0 <= self.context_dropout <= 1.0:
            raise ValueError(f"context_dropout must be in [0, 1], got {self.context_dropout}")
        if self.prefixes_per_epoch is not None and self.prefixes_per_epoch < 1:
            raise ValueError(f"prefixes_per_epoch must be >= 1, got {self.prefixes_per_epoch}")
        if self.pos_weight is not None:
            self.pos_weight = (float(self.pos_weight[0]), float(self.pos_weight[1]))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})
