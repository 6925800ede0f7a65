"""Sharding each epoch's shuffled global batches across ranks.

The order of epoch e is the permutation the single-process Trainer draws,
np.random.default_rng([seed, e]).permutation(n); global batch b is its slice
[b * B, (b + 1) * B); rank r of N takes the contiguous rows [start_r, end_r) of that slice
(shard_bounds: the first B % N ranks one row more). So the global batches, and the sequence
of samples they hold, are the same for any number of ranks, and row i of a batch is row i
wherever it is computed (the row offset keys its dropout and augmentation draws).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._comm import get_comm, shard_bounds


@dataclass(frozen=True)
class Shard:
    """One rank's part of one global batch.

    indices: the sample indices of rows [start, end) of the global batch (in batch order);
    start, end: the rows of the global batch this rank takes; rows: the global batch size;
    step: the batch number within the epoch.
    """

    indices: np.ndarray
    start: int
    end: int
    rows: int
    step: int


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(
            f"[DistributedSampler] argument '{name}' must be an int >= {minimum}, got {value!r}"
        )
    return int(value)


class DistributedSampler:
    """Each epoch's shuffled indices split into global batches, each batch split across ranks.

    Args:
        n: number of samples (>= 1).
        batch_size: global batch size B (>= 1; the last batch of an epoch may be smaller).
        comm: mpi4py communicator (default MPI.COMM_WORLD); not used when rank and size are
            both given.
        seed: shuffling seed (default 0); epoch e's order depends only on (seed, e).
        rank, size: this rank and the number of ranks (default: those of comm).
        shuffle: shuffle each epoch (default True); False keeps 0 .. n-1.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        comm: Any = None,
        *,
        seed: int = 0,
        rank: int | None = None,
        size: int | None = None,
        shuffle: bool = True,
    ) -> None:
        self.n = _int(n, "n", 1)
        self.batch_size = _int(batch_size, "batch_size", 1)
        self.seed = _int(seed, "seed", 0)
        if rank is None or size is None:
            c = get_comm(comm)
            rank = c.Get_rank() if rank is None else rank
            size = c.Get_size() if size is None else size
        self.size = _int(size, "size", 1)
        self.rank = _int(rank, "rank", 0)
        if self.rank >= self.size:
            raise ValueError(
                f"[DistributedSampler] argument 'rank' must be < size={self.size}, got {self.rank}"
            )
        self.shuffle = bool(shuffle)

    def __len__(self) -> int:
        """Global batches (optimizer steps) per epoch."""
        return -(-self.n // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The global order of epoch `epoch` (the single-process Trainer's)."""
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, _int(epoch, "epoch", 0)]).permutation(self.n)

    def shard(self, batch: np.ndarray, step: int = 0) -> Shard:
        """This rank's rows of one global batch of indices."""
        start, end = shard_bounds(len(batch), self.rank, self.size)
        return Shard(batch[start:end], start, end, len(batch), step)

    def epoch(self, epoch: int, first_step: int = 0) -> Iterator[Shard]:
        """This rank's shard of every global batch of `epoch`, from batch first_step on."""
        order = self.order(epoch)
        for b in range(first_step, len(self)):
            yield self.shard(order[b * self.batch_size : (b + 1) * self.batch_size], b)

    def check_batches(self) -> None:
        """ValueError when some global batch (the last one of an epoch included) has fewer
        rows than there are ranks: a rank would get no sample."""
        last = self.n - (len(self) - 1) * self.batch_size
        smallest = min(self.batch_size, last)
        if smallest < self.size:
            raise ValueError(
                f"[DistributedSampler] every global batch needs at least one row per rank: with "
                f"n={self.n} and batch_size={self.batch_size} a batch has {smallest} rows for "
                f"{self.size} ranks (choose batch_size >= {self.size} and n % batch_size either "
                f"0 or >= {self.size})"
            )
