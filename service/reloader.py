"""Hot reload (docs/service.md "Models"): load a version, check it, warm it on the engine thread, swap it in.

    resolve (repository) ─► load + check (a worker thread: card, fingerprint, ONNX, N) ─► warm (engine thread,
    between two batches) ─► slot.serving = new (the next batch runs on it)

A version that fails any step is refused with `ModelRefused` naming the reason, and the old model goes on
serving: nothing is swapped until the new one has run its warmup batches. One load at a time (a lock).
The admin routes (service/routes/model.py) and SIGHUP (service/app.py) both come here; SIGHUP loads what
the repository's `serving` and `shadow` pointers name.
"""

from __future__ import annotations

import asyncio
import logging

from service.batcher import MicroBatcher
from service.model_repository import ModelRepository, ModelVersion, UnknownVersion
from service.rollout_metrics import RolloutMetrics
from service.served_model import ModelSlot, ServedModel, load_served
from service.settings import Settings
from service.shadow import ShadowRunner

logger = logging.getLogger(__name__)


class ModelRefused(ValueError):
    """A version that cannot serve: no card, wrong fingerprint, unreadable ONNX, another N."""


class ModelReloader:
    """Loads versions into one replica's ModelSlot, one at a time."""

    def __init__(self, repository: ModelRepository, slot: ModelSlot, batcher: MicroBatcher, settings: Settings,
                 metrics: RolloutMetrics) -> None:
        self.repository = repository
        self.slot = slot
        self.batcher = batcher
        self.settings = settings
        self.metrics = metrics
        self._lock = asyncio.Lock()

    async def load(self, version: str | None = None) -> ServedModel:
        """Serve `version` (default: the `serving` pointer, else the newest). UnknownVersion, ModelRefused."""
        async with self._lock:
            ref = self.repository.resolve(version)
            served = await self._ready(ref)
            old, self.slot.serving = self.slot.serving, served
            self.slot.reloads += 1
            if self.slot.shadow is not None:
                self.slot.shadow.serving = served
            self.metrics.reloads.labels("loaded").inc()
            self.metrics.serving.labels(old.label).set(0)
            self.metrics.serving.labels(served.label).set(1)
            logger.info("model %s now serves (was %s)", served.model, old.model)
            return served

    async def set_shadow(self, version: str | None, share: float | None = None) -> ShadowRunner | None:
        """Run `version` as the shadow candidate on `share` of the batches; None stops the shadow."""
        async with self._lock:
            runner = None
            if version is not None:
                candidate = await self._ready(self.repository.resolve(version))
                runner = ShadowRunner(candidate, self.slot.serving, share or self.settings.shadow_share,
                                      self.metrics, queue_size=self.settings.shadow_queue_size).start()
            old, self.slot.shadow = self.slot.shadow, runner
            if old is not None:
                await asyncio.to_thread(old.stop)
            logger.info("shadow candidate: %s", runner.candidate.model if runner else "none")
            return runner

    async def follow_pointers(self) -> None:
        """SIGHUP: serve what the `serving` pointer names and shadow what `shadow` names; log any refusal."""
        try:
            await self.load()
            shadow = self.repository.pointer("shadow") if self.repository.folder is not None else None
            if shadow is not None or self.slot.shadow is not None:
                await self.set_shadow(shadow)
        except (UnknownVersion, ModelRefused) as exc:
            logger.error("reload on SIGHUP refused; the old model goes on serving: %s", exc)

    async def _ready(self, ref: ModelVersion) -> ServedModel:
        """Load, check and warm a version; ModelRefused on any failure (counted), nothing swapped."""
        try:
            served = await asyncio.to_thread(load_served, ref, self.settings)
            self._check_window(served)
            await self.batcher.run_on_engine_thread(served.engine.warmup)
        except ModelRefused:
            self.metrics.reloads.labels("refused").inc()
            raise
        except Exception as exc:
            # Any failure to load is a refusal: besides FileNotFoundError (no card, no ONNX file),
            # FingerprintMismatch and NoUsableProvider, onnxruntime raises its own classes (InvalidProtobuf,
            # Fail, ...) straight off Exception for an unreadable graph.
            self.metrics.reloads.labels("refused").inc()
            raise ModelRefused(f"version {ref.label} ({ref.path}) refused: {exc}") from exc
        return served

    def _check_window(self, served: ServedModel) -> None:
        """The store keeps N events per session; a model for another N needs a restart, not a reload."""
        serving = self.slot.serving.card.window
        if served.card.window != serving:
            raise ModelRefused(f"version {served.label} reads windows of N={served.card.window}, but this replica "
                               f"keeps N={serving} events per session: restart the service to change N")
