"""The model card: everything a model directory says about itself, read by export, evaluate and serving.

A model directory holds `model.pt`, `model.onnx`, `model.int8.onnx` and `card.json`. json/numpy only,
so the serving image can read a card without torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from model.artifacts import CARD_FILE
from model.features import FeatureConfig, layout_fingerprint
from model.policy import AlertPolicy

CARD_VERSION = 1


class FingerprintMismatch(ValueError):
    """The model was trained on a different feature layout than this code encodes."""


@dataclass
class Thresholds:
    """Decision thresholds tuned on validation data (docs/architecture.md §4)."""

    order: float = 0.5  # τ_order (F1-best): p_make_order at or above it means `purchase` without a purchase policy
    risk: float = 0.5  # τ_risk: abandonment_risk at or above it means `cart_abandonment`


@dataclass
class ModelCard:
    name: str
    arch: str
    hparams: dict[str, Any]
    features: FeatureConfig
    fingerprint: str = field(default_factory=layout_fingerprint)
    thresholds: Thresholds = field(default_factory=Thresholds)
    # The alert policy (model/policy.py); when set, its threshold replaces τ_risk (model.risk.decision_thresholds).
    policy: AlertPolicy | None = None
    # The purchase policy (model/policy.py, unit: windows); when set, its threshold replaces τ_order. None in
    # cards written before it: serving then keeps the F1 τ_order.
    purchase_policy: AlertPolicy | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # name, sha256, licence, n_sessions, ...
    slot_coverage: dict[str, int] = field(default_factory=dict)  # action -> training event count
    seed: int = 0
    git_commit: str = "unknown"
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = CARD_VERSION
    # The context beside the window (model/context.py): {"names": [...], "fingerprint": "..."}. Empty, as in
    # every card written before context existed: the model takes no context (size 0).
    context: dict[str, Any] = field(default_factory=dict)
    # Binned training distribution of the inputs and scores (model/drift.py); empty: no drift gauges.
    reference: dict[str, Any] = field(default_factory=dict)

    @property
    def window(self) -> int:
        return self.features.window

    @property
    def context_names(self) -> tuple[str, ...]:
        return tuple(self.context.get("names", ()))

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["features"] = self.features.to_dict()
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelCard:
        raw = dict(raw)
        raw["features"] = FeatureConfig.from_dict(raw.get("features", {}))
        raw["thresholds"] = Thresholds(**raw.get("thresholds", {}))
        for key in ("policy", "purchase_policy"):
            raw[key] = AlertPolicy.from_dict(raw[key]) if raw.get(key) else None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})

    def save(self, model_dir: Path) -> Path:
        model_dir.mkdir(parents=True, exist_ok=True)
        path = model_dir / CARD_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str) + "\n")
        return path

    @classmethod
    def load(cls, model_dir: Path) -> ModelCard:
        path = Path(model_dir) / CARD_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {CARD_FILE} in {model_dir}: not a model directory")
        return cls.from_dict(json.loads(path.read_text()))


def check_fingerprint(found: str, source: str) -> None:
    """Refuse a model whose feature layout differs from the one this code encodes."""
    expected = layout_fingerprint()
    if found == expected:
        return
    raise FingerprintMismatch(
        f"{source} was built for feature layout {found!r}, but this code encodes layout {expected!r} "
        "(model/features.py: slot order, dwell clipping, provisional dwell or scaling changed). "
        "Retrain or re-export the model with this version of model/features.py."
    )
