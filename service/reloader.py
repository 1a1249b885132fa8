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

    async def follow_pointers(self, force: bool = False) -> bool:
        """Serve what the `serving` pointer names (else the newest) and shadow what `shadow` names; a refusal is
        logged and the old model goes on serving (False). `force` (SIGHUP) reloads the version even when it
        already serves: its files may have been replaced in place."""
        try:
            served = self.repository.resolve()
            if force or served.label != self.slot.serving.label:
                await self.load(served.label)
            shadow = self.repository.pointer("shadow")
            running = self.slot.shadow.label if self.slot.shadow is not None else None
            if shadow != (running.rsplit("/", 1)[-1] if running else None):
                await self.set_shadow(shadow)
        except (UnknownVersion, ModelRefused) as exc:
            logger.error("reload refused; the old model goes on serving: %s", exc)
            return False
        return True

    async def watch(self, every_s: float) -> None:
        """Poll the repository (SI_MODEL_POLL_S): when the version the pointers name (or the newest) changes,
        follow it, as SIGHUP would. Every replica sharing a volume picks a new version up by itself."""
        seen = self._pointed()
        while True:
            await asyncio.sleep(every_s)
            now = self._pointed()
            if now != seen:
                logger.info("model repository changed (%s → %s): reloading", seen, now)
                if await self.follow_pointers():
                    seen = now  # a refused version is tried again at the next poll (say, a copy still under way)

    def _pointed(self) -> tuple[str | None, str | None]:
        """(the version to serve, the shadow pointer) as the repository says now."""
        try:
            serving = self.repository.resolve().label
        except UnknownVersion:
            serving = None
        return serving, self.repository.pointer("shadow")

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
