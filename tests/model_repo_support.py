"""A model repository of tiny models for the rollout tests (tests/test_model_*.py), and a click helper."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.service_support import copy_with_card


def make_repository(root: Path, model_dir: Path, versions: int = 2) -> Path:
    """root/tiny/1..versions, each a copy of the tiny model; version k's τ_risk is 0.1·k (so cards differ)."""
    for k in range(1, versions + 1):
        copy_with_card(model_dir, root / "tiny" / str(k), thresholds={"order": 0.5, "risk": 0.1 * k},
                       metrics={"validation": {"abandonment_risk": {"roc_auc": 0.5 + k / 100}}},
                       data={"name": "synth", "sha256": f"{k:064x}"})
    return root


def click(http: httpx.Client, session: str, action: str = "add_cart") -> dict:
    answer = http.post(f"/v1/sessions/{session}/events", json={"action": action, "ts": time.time()})
    assert answer.status_code == 200, answer.text
    return answer.json()
