"""The model a replica serves now, and how a batch's scores say which model produced them.

`ModelSlot.serving` is read once per batch on the engine thread (service/scorer.py `engine_runner`), so a
reload (service/reloader.py) takes effect between batches: a batch never mixes two models. The scores come
back as `ModelScores`, an ndarray that carries the `ServedModel` that computed them, and every view of it
(one caller's rows) carries it too, so the scorer labels an answer, and applies thresholds, by the model
that really scored it, even when a swap lands between the batch and the answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from model.card import ModelCard, Thresholds
from model.risk import decision_thresholds
from service.engine.onnx_engine import Engine, load_engine
from service.model_repository import LABEL_SEPARATOR, ModelVersion

if TYPE_CHECKING:
    from service.settings import Settings
    from service.shadow import ShadowRunner


@dataclass(frozen=True, eq=False)
class ServedModel:
    """A loaded version: its engine, its card and the `model` text its answers carry."""

    version: ModelVersion
    engine: Engine
    loaded_at: float = field(default_factory=time.time)

    @property
    def card(self) -> ModelCard:
        return self.engine.card

    @property
    def label(self) -> str:
        return self.version.label

    # Cached: every answer reads both (a version's card and label never change once loaded).
    @cached_property
    def model(self) -> str:
        """The answers' `model`: "<version label>:<engine model id>", e.g. "taobao/2:lstm_gru_small-int8@8d545b"."""
        return f"{self.label}{LABEL_SEPARATOR}{self.engine.model_id}"

    @cached_property
    def thresholds(self) -> Thresholds:
        """The thresholds its answers apply (model.risk.decision_thresholds of its card)."""
        return decision_thresholds(self.card)


def load_served(version: ModelVersion, settings: Settings) -> ServedModel:
    """Load (not warm) a version as the settings ask; raises what load_engine raises."""
    engine = load_engine(version.path, precision=settings.precision, providers=settings.providers,
                         intra_op_threads=settings.intra_op_threads, trt_cache_dir=settings.trt_cache_dir)
    return ServedModel(version, engine)


class ModelScores(np.ndarray):
    """(B, 2) probabilities that remember the ServedModel that computed them; slices keep it."""

    served: ServedModel | None

    def __array_finalize__(self, obj: Any) -> None:
        self.served = getattr(obj, "served", None)


def scored_by(probs: np.ndarray, served: ServedModel) -> ModelScores:
    out = probs.view(ModelScores)
    out.served = served
    return out


@dataclass
class ModelSlot:
    """The serving model and the shadow candidate of one replica; swapped by the reloader."""

    serving: ServedModel
    shadow: ShadowRunner | None = None
    reloads: int = 0

    def model_of(self, probs: np.ndarray) -> ServedModel:
        """The model that scored `probs` (the serving one when the array does not say)."""
        served = getattr(probs, "served", None)
        return served if isinstance(served, ServedModel) else self.serving
