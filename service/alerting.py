"""Coupon alerts from settings and the model card: the store's AlertConfig and the scorer's ArmAssigner."""

from __future__ import annotations

import logging

from model.card import ModelCard
from service.arms import ArmAssigner
from service.settings import Settings
from service.store.alerts import AlertConfig

log = logging.getLogger(__name__)

DEV_HOLDOUT_KEY = "session-intent-development-holdout"


def alert_config(settings: Settings, card: ModelCard) -> AlertConfig:
    """The stream's bound and the outcomes' retention; warns when the starting model has no policy (a model
    without one raises no alert: its card decides, per click, after a reload too)."""
    if settings.alerts_enabled and card.policy is None:
        log.warning("the model card has no alert policy: no coupon alerts (run `session-intent policy`)")
    return AlertConfig(stream_maxlen=settings.alert_stream_maxlen,
                       outcome_ttl_s=round(settings.alert_outcome_days * 86400))


def arm_assigner(settings: Settings) -> ArmAssigner | None:
    if not settings.alerts_enabled:
        return None
    secret = settings.holdout_secret.get_secret_value()
    if not secret:
        if settings.auth_active:
            log.warning("SI_HOLDOUT_SECRET is unset: the holdout uses a fixed development key, so a client can "
                        "predict its arm; set a secret for a real experiment")
        secret = DEV_HOLDOUT_KEY
    return ArmAssigner(secret, settings.holdout_share)
