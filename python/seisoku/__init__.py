"""seisoku: deep-learning regularization and efficient training on a C++/CUDA core.

Arrays go in and come out zero-copy: NumPy arrays on the CPU, CuPy arrays on the GPU.
"""

from __future__ import annotations

import ctypes
import os


def _preload_openblas() -> None:
    """Load OpenBLAS from the scipy-openblas32 package that Python sees, so that the core
    library finds it even where its RPATH points elsewhere (e.g. a venv using system
    site-packages)."""
    try:
        import scipy_openblas32
    except ImportError:
        return
    path = os.path.join(scipy_openblas32.get_lib_dir(), "libscipy_openblas.so")
    if os.path.exists(path):
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


_preload_openblas()
# OpenMP workers that spin long after each parallel region (libgomp's default: 300000
# iterations) starve other threads (NumPy's OpenBLAS, data loading) on a few cores; workers
# that sleep at once cost a wake-up of tens of microseconds per region (on a 2-core VM, a 2-thread
# op on 64k elements took 4.5x its 1-thread time). A short spin (10000 iterations, about 0.5 ms)
# bridges the gaps between the regions of one training step and then sleeps. Read by libgomp
# when the core library loads; either variable set by the user decides instead.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ["GOMP_SPINCOUNT"] = "10000"

from . import (  # noqa: E402
    _core,
    augment,
    cuda,
    data,
    distill,
    ensemble,
    multitask,
    nn,
    optim,
    prune,
    quant,
    semi,
    train,
)
from .ops import (  # noqa: E402
    add,
    axpy,
    axpy_sign,
    cast,
    column_sum,
    copy,
    fill,
    gemm,
    max,
    mean,
    mul,
    norm,
    row_norm,
    scale,
    sum,
)
from .random import Generator, manual_seed  # noqa: E402

__version__: str = _core.build_info()["version"]

__all__ = [
    "Generator",
    "__version__",
    "add",
    "augment",
    "axpy",
    "axpy_sign",
    "build_info",
    "cast",
    "cmake_prefix_path",
    "column_sum",
    "copy",
    "cuda",
    "data",
    "describe",
    "distill",
    "ensemble",
    "fill",
    "gemm",
    "get_num_threads",
    "manual_seed",
    "max",
    "mean",
    "mul",
    "multitask",
    "nn",
    "norm",
    "optim",
    "prune",
    "quant",
    "row_norm",
    "scale",
    "semi",
    "set_num_threads",
    "sum",
    "train",
]


def set_num_threads(n: int) -> None:
    """Set the number of CPU threads seisoku's kernels use, GEMM included (n >= 1).

    The count is seisoku's own: it is passed to each of seisoku's OpenMP regions and does not
    change the OpenMP default that other libraries read, so `torch.set_num_threads` and
    seisoku's count leave each other alone, though both libraries share one OpenMP runtime
    (libgomp) and its worker threads. OpenBLAS always runs single-threaded inside seisoku
    (GEMM tiles go to these threads). Results never depend on the thread count.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"[set_num_threads] n must be an int >= 1, got {n!r}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Number of CPU threads seisoku's kernels use: the last set_num_threads, else
    OMP_NUM_THREADS when set, else the cores this process may run on."""
    return int(_core.get_num_threads())


def build_info() -> dict[str, str]:
    """Facts about this build and machine: version, compiler, cuda_built, cuda_archs, openmp,
    native, cpu_features (compiled in), cpu_supports (seen at run time), blas, blas_core,
    blas_config, num_threads."""
    return dict(_core.build_info())


def describe(x: object) -> str:
    """The tensor the core sees for an array, e.g. 'float32(2, 3) cpu' (a ValueError names
    what makes x unacceptable)."""
    return str(_core.describe(x))


def cmake_prefix_path() -> str:
    """Folder to put on CMAKE_PREFIX_PATH so that C++ code can `find_package(seisoku)`."""
    return os.path.dirname(os.path.abspath(_core.__file__))
