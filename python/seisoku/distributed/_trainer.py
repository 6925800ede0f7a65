"""What seisoku.train.Trainer does differently under data parallel (it imports these when
given a parallel wrapper): the shard of a global batch, sharded evaluation, and reading a
checkpoint on rank 0 for every rank."""

from __future__ import annotations

import os
import zlib
from typing import Any

import numpy as np

from .._array import is_cuda_array
from .._state_file import load_state
from ._comm import shard_bounds
from .sampler import DistributedSampler

Array = Any


def shard_batch(par: Any, idx: Array, sample_weight: Array | None) -> tuple[int, Array]:
    """This rank's rows [start, end) of the global batch idx, announced to the parallel
    wrapper with this rank's share of the loss (its share of the batch's weight sum when
    weighted); returns (start, the indices of those rows)."""
    rows = len(idx)
    start, end = shard_bounds(rows, par.rank, par.size)
    fraction = None
    if sample_weight is not None:
        total = float(sample_weight[idx].sum())
        if total > 0:
            fraction = float(sample_weight[idx[start:end]].sum()) / total
    par.begin_batch(start, end, rows, fraction)
    return start, idx[start:end]


def _fingerprint(a: Array) -> int:
    """CRC-32 of the shape, dtype and up to 64 evenly spaced rows of a (cheap for any size)."""
    rows = np.unique(np.linspace(0, a.shape[0] - 1, min(64, a.shape[0])).astype(np.int64))
    sample = a[rows]
    if is_cuda_array(sample):
        sample = sample.get()
    head = repr((tuple(a.shape), str(a.dtype))).encode()
    return zlib.crc32(np.ascontiguousarray(sample).tobytes(), zlib.crc32(head))


def check_fit(par: Any, x: Array, y: Array, batch_size: int) -> None:
    """ValueError on every rank unless all ranks hold the same training data (shapes, dtypes
    and a sample of rows) and every global batch has a row for each rank."""
    DistributedSampler(x.shape[0], batch_size, rank=par.rank, size=par.size).check_batches()
    mine = np.array([_fingerprint(x), _fingerprint(y)], dtype=np.float64)
    every = par.allgather(mine)
    for r in range(par.size):
        if not np.array_equal(every[r], every[0]):
            raise ValueError(
                f"[DataParallel] fit: rank {r} holds other training data than rank 0 (shape "
                "or values of X or y differ): every rank must load the whole, same data set "
                "(the ranks split each batch, not the data set)"
            )


def backward_step(trainer: Any, out: Array, yb: Array, batch_loss: float) -> tuple[float, float]:
    """The backward pass of one step with its gradients reduced over the ranks; returns the
    global batch's (mean loss, correct count), summed while the gradients are reduced, the
    same on every rank (so every rank takes the same decisions)."""
    par = trainer.parallel
    correct = trainer._correct(out, yb) if trainer._classification() else 0.0
    sums = par.start_sum([batch_loss * par.factor if par.factor else 0.0, correct])
    par.backward(trainer.loss.backward())
    total = sums.result()
    return float(total[0]), float(total[1])


def evaluate_sharded(trainer: Any, x: Array, y: Array, batch_size: int) -> dict[str, float]:
    """Trainer.evaluate over the ranks: each evaluates a contiguous slice of (x, y), the
    loss sums and correct counts are summed, so every rank gets the same numbers."""
    par = trainer.parallel
    n = x.shape[0]
    start, end = shard_bounds(n, par.rank, par.size)
    loss_sum = correct = 0.0
    classification = trainer._classification()
    if end > start:
        xs, ys = x[start:end], y[start:end]
        out = trainer.predict(xs, batch_size)
        trainer._bind_inputs(xs)
        loss_sum = float(trainer.loss(out, ys)) * (end - start)
        if classification:
            correct = trainer._correct(out, ys)
    total = par.allreduce_sum([loss_sum, correct])
    result = {"loss": float(total[0]) / n}
    if classification:
        result["accuracy"] = float(total[1]) / n
    return result


def load_from_rank0(trainer: Any, path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """The state in the file `path` as rank 0 reads it, on every rank (files need not be
    visible to the other ranks); rank 0's ValueError is raised on every rank."""
    state, error = None, None
    if trainer.parallel.is_main:
        try:
            state = load_state(path, kind)
        except ValueError as e:
            error = str(e)
    state, error = trainer.parallel.broadcast_object((state, error))
    if error is not None:
        raise ValueError(error)
    return state
