"""Mini-batches gathered from compact training data: a torch Dataset over prefix indices and a sampler.

The training loop never holds the (P, N, 16) window tensor: each batch of prefix indices is turned
into its (B, N, 16) windows by `WindowSet.windows` (model/data/compact.py) when the loop asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from model.data.dataset import WindowSet


class PrefixWindows(Dataset[tuple[torch.Tensor, ...]]):
    """dataset[indices] → (windows (B, N, 16), targets (B, 2), context (B, k)[, teacher probabilities (B, 2)]).

    context: the raw model/context.py features `context` names ((B, 0) for none).
    """

    def __init__(self, windows: WindowSet, soft: np.ndarray | None = None, context: tuple[str, ...] = ()) -> None:
        self.set = windows
        self.soft = soft
        self.context = context

    def __len__(self) -> int:
        return len(self.set)

    def __getitem__(self, index: list[int]) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        idx = np.asarray(index, dtype=np.int64)
        out = (
            torch.from_numpy(self.set.windows(idx)),
            torch.from_numpy(self.set.Y[idx]),
            torch.from_numpy(self.set.contexts(idx, self.context)),
        )
        if self.soft is None:
            return out
        return (*out, torch.from_numpy(self.soft[idx]))


class EpochSampler(Sampler[int]):
    """A fresh permutation of the n prefixes each epoch; with `per_epoch`, only its first `per_epoch`.

    Drawn from `generator`, so a seed fixes every epoch's sample; without `per_epoch` the order is
    exactly `torch.randperm(n, generator=generator)`.
    """

    def __init__(self, n: int, generator: torch.Generator, per_epoch: int | None = None) -> None:
        self.n = n
        self.generator = generator
        self.per_epoch = min(per_epoch, n) if per_epoch is not None else n

    def __len__(self) -> int:
        return self.per_epoch

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.n, generator=self.generator)[: self.per_epoch]
        return iter(order.tolist())


def epoch_batches(
    windows: WindowSet,
    batch_size: int,
    generator: torch.Generator,
    per_epoch: int | None = None,
    soft: np.ndarray | None = None,
    context: tuple[str, ...] = (),
) -> DataLoader[tuple[torch.Tensor, ...]]:
    """Batches of one epoch, in the main process (no workers: the box has 2 cores and gathering is numpy)."""
    sampler = BatchSampler(EpochSampler(len(windows), generator, per_epoch), batch_size, drop_last=False)
    # A generator of its own: without one, each epoch's iterator draws a seed from torch's global RNG,
    # and that draw would shift the dropout stream the model trains with.
    return DataLoader(
        PrefixWindows(windows, soft, context),
        sampler=sampler,
        batch_size=None,
        collate_fn=_as_is,
        generator=torch.Generator(),
    )


def _as_is(batch: Any) -> Any:
    """The dataset already returns tensors: no collation."""
    return batch
