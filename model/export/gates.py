"""The int8 file's gates, defined once and torch-free, so `session-intent export --help` can show them
without importing torch (model/export/int8.py applies them)."""

from __future__ import annotations

AUC_DROP_BUDGET = 0.002  # per label, int8 vs fp32, on the validation windows
MIN_SPEEDUP = 1.05  # geometric mean over SPEED_BATCHES, 1 thread; below it int8 is not worth a second file
SPEED_BATCHES: tuple[int, ...] = (1, 64)  # a lone click, and the batcher's max_batch_size
