"""Fixtures shared by the reliability tests: the tiny trained model of tests/service_support.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service_support import tiny_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.getbasetemp())
