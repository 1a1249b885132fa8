"""The published-size probe (bench/engine/published_probe.py): its session-option variants and its timing cells."""

from __future__ import annotations

import time

import numpy as np
import onnxruntime as ort

from bench.engine.published_probe import _options, time_cells
from model.export.inputs import GraphInputs


def test_each_variant_changes_only_its_own_option() -> None:
    base = _options("service")
    assert base.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert base.intra_op_num_threads == 1 and base.enable_mem_pattern and base.enable_cpu_mem_arena
    spin = _options("spin off")
    assert spin.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert spin.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert not _options("mem pattern off").enable_mem_pattern and _options("mem pattern off").enable_cpu_mem_arena
    assert not _options("arena off").enable_cpu_mem_arena
    assert _options("opt basic").graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC


def test_time_cells_reads_thread_cpu_not_wall() -> None:
    def busy(_: GraphInputs) -> None:
        end = time.thread_time() + 0.002
        while time.thread_time() < end:
            pass

    def sleeps(_: GraphInputs) -> None:
        time.sleep(0.002)

    x = GraphInputs(np.zeros((1, 10, 16), dtype=np.float32))
    cells = time_cells({"busy": busy, "sleeps": sleeps}, x, secs=0.2)
    assert cells["busy"][0] >= 1.9 and cells["busy"][1] >= cells["busy"][0]  # (CPU ms, wall ms)
    assert cells["sleeps"][0] < 0.5 < 1.9 <= cells["sleeps"][1]  # a sleep costs wall, not CPU
