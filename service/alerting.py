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
    """Alerts on when the settings allow them and the card has a policy; else an AlertConfig that raises none."""
    if not settings.alerts_enabled:
        return AlertConfig()
    if card.policy is None:
        log.warning("the model card has no alert policy: no coupon alerts (run `session-intent policy`)")
        return AlertConfig()
    return AlertConfig(policy=card.policy.label, threshold=card.policy.threshold,
                       stream_maxlen=settings.alert_stream_maxlen,
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
