"""SI_GIL_SWITCH_INTERVAL_MS reaches the serving process: a real app (real Redis, uvicorn in this process)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from service.app import create_app
from tests.redis_procs import RedisServer
from tests.service_support import service_settings, tiny_model_dir
from tests.uvicorn_proc import UvicornThread


def test_the_app_serves_with_the_configured_switch_interval_and_restores_it(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    before = sys.getswitchinterval()
    settings = service_settings(tiny_model_dir(tmp_path), redis_server.url, gil_switch_interval_ms=0.7)
    with UvicornThread(create_app(settings)):
        assert sys.getswitchinterval() == pytest.approx(0.0007)
    assert sys.getswitchinterval() == pytest.approx(before)
