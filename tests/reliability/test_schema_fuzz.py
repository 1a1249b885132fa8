"""Schemathesis on every route, auth off and auth on with a real key: the short CI version of `bench fuzz`."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.reliability.fuzz import MODES, FuzzPlan, run_fuzz
from bench.reliability.fuzz_report import SERVER_ERROR_CODES


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(model_dir: Path, mode: str) -> None:
    (result,) = run_fuzz(FuzzPlan(max_examples=8, max_time_s=25, model_dir=model_dir), modes=(mode,))
    assert result.operations >= 8 and result.generated >= 100, result.cli_tail
    assert all(result.failing_cases(code) == 0 for code in SERVER_ERROR_CODES), result.cli_tail
    found = {(str(f["code"]), str(op)) for f in result.failures for op in f.get("operations", [])}  # type: ignore[attr-defined]
    assert not found, result.cli_tail
