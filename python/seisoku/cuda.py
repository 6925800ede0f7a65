"""CUDA status and cuBLAS loading.

cuBLAS is loaded at run time, on the first GPU GEMM: from $SEISOKU_CUBLAS if set, else
from the nvidia-cublas wheel when installed (CuPy and PyTorch bring it), else by the
system loader's search for libcublas.so.13 / .12.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os

from . import _core

_cublas_handle: ctypes.CDLL | None = None


def is_built() -> bool:
    """True when seisoku was compiled with its CUDA kernels."""
    return bool(_core.cuda_is_built())


def is_available() -> bool:
    """True when seisoku has CUDA kernels and at least one CUDA device is usable."""
    return bool(_core.cuda_is_available())


def device_count() -> int:
    """Number of usable CUDA devices (0 without CUDA)."""
    return int(_core.cuda_device_count())


def get_device_name(index: int = 0) -> str:
    """Name, compute capability and memory of device `index`."""
    return str(_core.cuda_device_name(index))


def synchronize() -> None:
    """Wait for all work queued on the current device."""
    _core.cuda_synchronize()


def _wheel_cublas_candidates() -> list[str]:
    found: list[str] = []
    spec = importlib.util.find_spec("nvidia")
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        for pattern in ("cu13/lib/libcublas.so*", "cublas/lib/libcublas.so*"):
            found.extend(sorted(glob.glob(os.path.join(root, pattern)), reverse=True))
    return [f for f in found if "Lt" not in os.path.basename(f)]


def load_cublas() -> str:
    """Load cuBLAS for GPU GEMM and return where it came from (RuntimeError if absent)."""
    global _cublas_handle
    if _cublas_handle is None and not os.environ.get("SEISOKU_CUBLAS"):
        for path in _wheel_cublas_candidates():
            try:
                _cublas_handle = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                break
            except OSError:
                continue
    return str(_core.cublas_library())


__all__ = [
    "device_count",
    "get_device_name",
    "is_available",
    "is_built",
    "load_cublas",
    "synchronize",
]
