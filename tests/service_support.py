"""Support for the service tests: a tiny, really trained model directory, and settings for a test app.

The model is built once per test process (about 5 s on CPU) and shared by every service test module.
When a `tiny_model_dir` session fixture lands in conftest.py, these modules can switch to it.
"""

from __future__ import annotations

import json
import shutil
import time
from functools import cache
from pathlib import Path
from typing import Any

import redis

from service.settings import Settings
from service.store.keys import KeyScheme
from service.store.score_record import F

WINDOW = 10


@cache
def tiny_model_dir(root: Path, context: tuple[str, ...] = ()) -> Path:
    """Train a lstm_gru_small with 16/8 units for 3 epochs on 600 synthetic sessions, then export it; with
    `context` (model/context.py names) the net takes those features beside the window."""
    from model.card import ModelCard
    from model.context import context_card
    from model.data.dataset import Sessions, build_windows, curate, slot_coverage
    from model.data.synth import generate_sessions
    from model.export.exporter import ValidationWindows, export_model
    from model.features import FeatureConfig
    from model.training.checkpoint import save_model
    from model.training.config import TrainConfig
    from model.training.loop import deterministic_torch, fit
    from model.training.nets import NetConfig, build_net

    features = FeatureConfig(window=WINDOW)
    synth = generate_sessions(600, seed=3)
    sessions = curate(Sessions(ids=synth.session_ids, events=synth.to_event_log()))
    windows = build_windows(sessions, features)
    is_val = windows.session % 5 == 0
    train, val = windows.take(~is_val), windows.take(is_val)
    net_cfg = NetConfig.for_arch("lstm_gru_small", window=WINDOW, lstm_units=16, gru_units=8, context=context)
    train_cfg = TrainConfig(epochs=3, batch_size=256, lr=1e-2, patience=None, seed=0, threads=1)
    with deterministic_torch(train_cfg.seed, train_cfg.threads):
        net = build_net(net_cfg)
        fit(net, train, val, train_cfg, show_progress=False)
    model_dir = root / ("tiny-context-model" if context else "tiny-model")
    shutil.rmtree(model_dir, ignore_errors=True)
    card = ModelCard(name="tiny-test", arch=net_cfg.arch, hparams={"net": net_cfg.to_dict()}, features=features,
                     slot_coverage=slot_coverage(sessions), data={"name": "synth seed 3, 600 sessions"},
                     context=context_card(context))  # fmt: skip
    save_model(model_dir, net.eval(), card)
    C = val.contexts(slice(None), context) if context else None
    export_model(model_dir, ValidationWindows(val.X, val.Y, "synthetic", "tiny test validation", C), min_int8_speedup=0)
    return model_dir


def copy_with_card(src: Path, dst: Path, **card_changes: object) -> Path:
    """A copy of a model directory whose card.json has some fields replaced (e.g. a wrong fingerprint)."""
    shutil.copytree(src, dst)
    card = json.loads((dst / "card.json").read_text())
    card.update(card_changes)
    (dst / "card.json").write_text(json.dumps(card))
    return dst


def service_settings(model_dir: Path, redis_url: str | None, **overrides: Any) -> Settings:
    """Settings for an app under test: CPU only, auth off unless overridden, and from SI_* env for the rest."""
    values: dict[str, Any] = {
        "redis_url": redis_url, "model_dir": model_dir, "providers": ("CPUExecutionProvider",),
        "auth_enabled": False, **overrides,
    }
    return Settings(**values)


def metric_sample(metrics_text: str, name: str) -> float:
    """The value of an unlabelled sample in Prometheus text, e.g. `si_batch_size_count`."""
    for line in metrics_text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def written(redis_url: str, session: str, event_index: int, timeout_s: float = 5.0) -> None:
    """Wait until the write-behind has put the scores of `event_index` in Redis (what other replicas read)."""
    deadline = time.monotonic() + timeout_s
    with redis.Redis.from_url(redis_url) as connection:
        while time.monotonic() < deadline:
            scored = connection.hget(KeyScheme().session(session).meta, F["event_index"])
            if scored is not None and int(scored) >= event_index:
                return
            time.sleep(0.005)
    raise AssertionError(f"scores of {session} event {event_index} not in Redis within {timeout_s}s")
