"""Distributed training over MPI (mpi4py): ranks, sharded sampling, synchronous data parallel,
an asynchronous parameter server, pipeline stages and tensor-parallel Linear layers.

    mpiexec -n 4 python train.py                 # or: mpirun -n 4 seisoku train --parallel data

    import seisoku as sei
    from seisoku import distributed as dist

    model = sei.nn.Sequential(sei.nn.Linear(784, 800, activation="relu", dropout=0.2), ...)
    opt = sei.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    dp = dist.DataParallel(model, optimizer=opt)          # MPI.COMM_WORLD by default
    trainer = sei.train.Trainer(model, loss, opt, parallel=dp)
    trainer.fit(x, y, batch_size=256)                     # 256 rows per step over all ranks

Every rank holds the whole data set and the same model; each global batch of the
single-process order (seed, epoch) is split into contiguous rank slices; every sample's
dropout mask and augmentation draws are keyed by its row in the global batch, so N ranks
train the same parameters as one process with the same global batch (up to the rounding of
the summation order). Only rank 0 shows progress, logs and writes checkpoints; a checkpoint
written with N ranks resumes with M.

Asynchronous data parallel: `train_async` (rank 0 serves, a staleness bound k; k = 0 is
synchronous training). Model parallel: `Pipeline` (a Sequential split into stages over the ranks,
GPipe or 1F1B micro-batch schedules, `idle_fractions` against the bubble) and
`ColumnParallelLinear` / `RowParallelLinear`. `seisoku train --parallel async|pipeline` runs them.

mpi4py is imported on first use, not by `import seisoku` or `import seisoku.distributed`.
"""

from __future__ import annotations

from ._comm import (
    DEFAULT_TIMEOUT_S,
    available,
    get_comm,
    install_abort_handler,
    is_main,
    launched_size,
    rank,
    shard_bounds,
    size,
    wait_all,
)
from .async_ps import AsyncResult, train_async
from .data_parallel import REDUCTIONS, DataParallel
from .launch import PARALLEL_MODES, lazy_mode, register_mode, train_parallel
from .pipeline import Pipeline, balanced_split, bubble_fraction, idle_fractions, profile_layers
from .sampler import DistributedSampler, Shard
from .tensor_parallel import ColumnParallelLinear, RowParallelLinear

register_mode("async", lazy_mode("runs", "async_mode"))
register_mode("pipeline", lazy_mode("runs", "pipeline_mode"))

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "PARALLEL_MODES",
    "REDUCTIONS",
    "AsyncResult",
    "ColumnParallelLinear",
    "DataParallel",
    "DistributedSampler",
    "Pipeline",
    "RowParallelLinear",
    "Shard",
    "available",
    "balanced_split",
    "bubble_fraction",
    "get_comm",
    "idle_fractions",
    "install_abort_handler",
    "is_main",
    "launched_size",
    "lazy_mode",
    "profile_layers",
    "rank",
    "register_mode",
    "shard_bounds",
    "size",
    "train_async",
    "train_parallel",
    "wait_all",
]
