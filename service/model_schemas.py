"""Bodies of the model routes (service/routes/model.py): the served card, a reload, a shadow, with OpenAPI examples."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from model.risk import decision_thresholds
from service.schemas import ErrorOut
from service.served_model import ServedModel

VERSION_PATTERN = r"^[A-Za-z0-9_.-]{1,64}(/[0-9]{1,9})?$"

_CARD_EXAMPLE: dict[str, Any] = {
    "version": "taobao/2", "name": "taobao", "number": "2", "model": "taobao/2:lstm_gru_small-int8@8d545b",
    "arch": "lstm_gru_small", "precision": "int8", "provider": "CPUExecutionProvider",
    "fingerprint": "f0e1d2c3b4a59687", "window": 10, "thresholds": {"order": 0.3021, "risk": 0.3913},
    "f1_thresholds": {"order": 0.1086, "risk": 0.3913},
    "policy": None, "purchase_policy": None, "slot_coverage": {"view_product": 56179, "add_cart": 3406, "order": 1148},
    "validation": {"abandonment_risk": {"roc_auc": 0.83, "pr_auc": 0.827, "n": 13715}},
    "data_hash": "1dfd516b34160af2427de85788e2949e0fbe1ebf5157e32ab075d16003554ea7", "data_name": "taobao",
    "loaded_at": 1795000000.0,
}


class ModelCardOut(BaseModel):
    """One loaded version: what its card says, and how this replica runs it."""

    model_config = ConfigDict(json_schema_extra={"examples": [_CARD_EXAMPLE]})

    version: str = Field(description="<name>/<version> in a model repository; the directory name otherwise.")
    name: str
    number: str | None = Field(description="The repository version; null for a plain model directory.")
    model: str = Field(description="The `model` text every answer, stored score and at-risk entry carries.")
    arch: str
    precision: str
    provider: str
    fingerprint: str = Field(description="Feature-layout fingerprint (model/features.py); checked at load.")
    window: int = Field(description="N, the events per window.")
    thresholds: dict[str, float] = Field(
        description="The τ_order and τ_risk this version's answers apply: each policy's threshold where the card "
        "has one, else the F1-best one (model.risk.decision_thresholds)."
    )
    f1_thresholds: dict[str, float] = Field(description="The card's F1-best τ_order and τ_risk, picked on validation.")
    policy: dict[str, Any] | None = Field(
        default=None, description="The card's alert policy (its threshold is τ_risk), when it has one."
    )
    purchase_policy: dict[str, Any] | None = Field(
        default=None, description="The card's purchase policy (its threshold is τ_order), when it has one."
    )
    slot_coverage: dict[str, int] = Field(description="Training events per action slot.")
    validation: dict[str, Any] = Field(description="Validation metrics from the card.")
    data_hash: str | None = Field(description="sha256 of the training data.")
    data_name: str | None = None
    loaded_at: float = Field(description="Epoch seconds this replica loaded it.")

    @classmethod
    def of(cls, served: ServedModel) -> ModelCardOut:
        card, engine = served.card, served.engine
        return cls(
            version=served.label, name=served.version.name, number=served.version.version, model=served.model,
            arch=card.arch, precision=str(getattr(engine, "precision", "?")), provider=engine.provider,
            fingerprint=card.fingerprint, window=card.window, thresholds=asdict(decision_thresholds(card)),
            f1_thresholds=asdict(card.thresholds),
            policy=policy_of(card), purchase_policy=_dataclass_dict(getattr(card, "purchase_policy", None)),
            slot_coverage=dict(card.slot_coverage),
            validation=dict(card.metrics.get("validation", {})), data_hash=card.data.get("sha256"),
            data_name=card.data.get("name"), loaded_at=served.loaded_at,
        )


class ShadowOut(BaseModel):
    candidate: ModelCardOut
    share: float = Field(description="Share of the serving batches the candidate scores.")


class ModelOut(BaseModel):
    """The version this replica serves, its shadow candidate, and the versions it could load."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "serving": _CARD_EXAMPLE, "shadow": None, "versions": ["taobao/1", "taobao/2"], "reloads": 1,
    }]})

    serving: ModelCardOut
    shadow: ShadowOut | None = None
    versions: list[str] = Field(description="Versions the repository holds (this replica's model only).")
    reloads: int = Field(description="Successful reloads since this replica started.")


class ReloadIn(BaseModel):
    """The version to serve; omitted: what the repository's `serving` pointer names, else the newest."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": "2"}, {}]})

    version: str | None = Field(default=None, pattern=VERSION_PATTERN, description='"2" or "taobao/2".')


class ShadowIn(BaseModel):
    """A version to run as the shadow candidate on a share of the batches; a null version stops the shadow."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": "3", "share": 0.2},
                                                                              {"version": None}]})

    version: str | None = Field(pattern=VERSION_PATTERN, description='"3" or "taobao/3"; null: no shadow.')
    share: float | None = Field(default=None, gt=0, le=1, description="Default: SI_SHADOW_SHARE.")


def policy_of(card: Any) -> dict[str, Any] | None:
    """The card's alert policy as JSON, from a `policy` field or `extra["policy"]`; None without one."""
    return _dataclass_dict(getattr(card, "policy", None) or card.extra.get("policy"))


def _dataclass_dict(policy: Any) -> dict[str, Any] | None:
    if policy is None:
        return None
    if is_dataclass(policy) and not isinstance(policy, type):
        return asdict(policy)
    return dict(policy)


def model_error_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI answers of the admin model routes, with their examples."""
    described = {
        404: ("no such version in the model repository", "no version '9' in models/taobao (versions: 1, 2)"),
        409: ("the version cannot serve (no card, wrong fingerprint, unreadable ONNX, another N); the old model "
              "goes on serving", "version taobao/3 (models/taobao/3) refused: no card.json in models/taobao/3"),
    }
    return {
        code: {"model": ErrorOut, "description": described[code][0],
               "content": {"application/json": {"example": {"error": described[code][1]}}}}
        for code in codes
    }
