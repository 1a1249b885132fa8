"""What a route handler may depend on: the running service's parts, built by the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from service.batcher import MicroBatcher
from service.engine.onnx_engine import Engine
from service.metrics import ServiceMetrics
from service.reloader import ModelReloader
from service.scorer import SessionScorer
from service.served_model import ModelSlot
from service.settings import Settings
from service.store.window_store import SessionWindowStore


@dataclass
class ServiceState:
    """One replica's live parts; `warmed` turns true once a warmup batch has run through the batcher."""

    settings: Settings
    metrics: ServiceMetrics
    redis: Any  # redis.asyncio.Redis or RedisCluster
    store: SessionWindowStore
    batcher: MicroBatcher
    scorer: SessionScorer
    slot: ModelSlot
    reloader: ModelReloader
    warmed: bool = False

    @property
    def engine(self) -> Engine:
        """The serving model's engine now (a reload swaps it)."""
        return self.slot.serving.engine


async def get_state(request: Request) -> ServiceState:
    # async on purpose: FastAPI runs a plain `def` dependency on its thread pool, a thread hop per request.
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]
