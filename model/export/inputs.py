"""What one exported graph is fed: raw windows (n, N, 16) and, for a model with context, the raw context (n, C).

numpy only: the timing loops (model/export/timing.py) and the benchmarks pass it around as one batch. The
names of the graph's inputs come from model/artifacts.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.artifacts import CONTEXT_INPUT_NAME, INPUT_NAME


@dataclass(frozen=True)
class GraphInputs:
    """A batch of graph inputs; `context` None for a model without context (a one-input graph)."""

    windows: np.ndarray  # (n, N, 16) float32 raw
    context: np.ndarray | None = None  # (n, C) float32 raw, in the card's context order

    def __post_init__(self) -> None:
        if self.context is not None and len(self.context) != len(self.windows):
            raise ValueError(f"{len(self.windows)} windows but {len(self.context)} context rows")

    def __len__(self) -> int:
        return int(self.windows.shape[0])

    def __getitem__(self, index: slice | np.ndarray) -> GraphInputs:
        return GraphInputs(self.windows[index], None if self.context is None else self.context[index])

    def feeds(self) -> dict[str, np.ndarray]:
        """The ONNX Runtime feed: C-contiguous float32 per input name."""
        feed = {INPUT_NAME: np.ascontiguousarray(self.windows, dtype=np.float32)}
        if self.context is not None:
            feed[CONTEXT_INPUT_NAME] = np.ascontiguousarray(self.context, dtype=np.float32)
        return feed

    def repeated_to(self, size: int) -> GraphInputs:
        """The first `size` rows (the rows repeated if there are fewer), C-contiguous float32."""
        reps = -(-size // len(self))

        def tile(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(np.concatenate([a] * reps)[:size], dtype=np.float32)

        return GraphInputs(tile(self.windows), None if self.context is None else tile(self.context))

    @staticmethod
    def concatenate(parts: list[GraphInputs]) -> GraphInputs:
        context = None if parts[0].context is None else np.concatenate([p.context for p in parts])  # type: ignore[misc]
        return GraphInputs(np.concatenate([p.windows for p in parts]), context)
