"""Distributed training over MPI (mpi4py): asynchronous parameter server, pipeline and
tensor-parallel model parallelism.

The submodules import mpi4py only when a communicator is needed, so ``import seisoku`` works
without it; launch programs with ``mpiexec -n N python script.py``.
"""

from .async_ps import AsyncResult, train_async
from .pipeline import Pipeline, balanced_split, bubble_fraction, idle_fractions, profile_layers
from .tensor_parallel import ColumnParallelLinear, RowParallelLinear

__all__ = [
    "AsyncResult",
    "ColumnParallelLinear",
    "Pipeline",
    "RowParallelLinear",
    "balanced_split",
    "bubble_fraction",
    "idle_fractions",
    "profile_layers",
    "train_async",
]
