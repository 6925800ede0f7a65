"""Array helpers: which module (NumPy or CuPy) owns an array, dtype names, allocation."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

DTYPE_NAMES = (
    "float32",
    "float64",
    "float16",
    "bfloat16",
    "int8",
    "uint8",
    "int16",
    "int32",
    "int64",
)


def is_cuda_array(x: Any) -> bool:
    """True for arrays on a CUDA device (anything with __cuda_array_interface__)."""
    return hasattr(x, "__cuda_array_interface__")


def array_module(x: Any) -> Any:
    """numpy for host arrays, cupy for CUDA arrays."""
    if is_cuda_array(x):
        import cupy

        return cupy
    return np


def device_module(device: str) -> Any:
    """numpy for device 'cpu', cupy for 'cuda' (with a clear error if CuPy is missing)."""
    if device == "cpu":
        return np
    if device == "cuda":
        try:
            import cupy
        except ImportError as e:
            raise ValueError("device 'cuda' needs CuPy: pip install cupy-cuda13x") from e
        return cupy
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")


def resolve_dtype(dtype: Any, arg: str = "dtype") -> np.dtype:
    """A NumPy dtype for a name or dtype among DTYPE_NAMES; 'bfloat16' uses ml_dtypes."""
    name = dtype if isinstance(dtype, str) else getattr(np.dtype(dtype), "name", str(dtype))
    if name not in DTYPE_NAMES:
        raise ValueError(f"{arg} must be one of {', '.join(DTYPE_NAMES)}, got {dtype!r}")
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def require_array(x: Any, arg: str, op: str) -> Any:
    """x itself if it is a NumPy or CUDA array, else a ValueError naming the argument."""
    if isinstance(x, np.ndarray) or is_cuda_array(x):
        return x
    raise ValueError(
        f"[{op}] argument '{arg}' must be a NumPy or CuPy array, got {type(x).__name__}"
    )


class BufferPool:
    """Reusable NumPy results: the last two arrays handed out under each key.

    get() hands an array out again once nothing else holds it (its reference count shows
    only the pool's list), so a loop that lets go of each result within two calls writes
    into the same memory every time instead of freshly mapped pages, whose first touch
    costs a page fault and a page the kernel zeroes. An array still held anywhere (kept by
    the caller, viewed, saved for a backward pass) is never handed out again. Owners drop
    the pool when pickled or copied.
    """

    __slots__ = ("_pools",)

    def __init__(self) -> None:
        self._pools: dict[str, list[np.ndarray]] = {}

    def get(self, key: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialised array of `shape` and `dtype` that nothing outside the pool holds."""
        pool = self._pools.setdefault(key, [])
        for buf in pool:
            # References: the list, the loop variable and getrefcount's argument.
            if sys.getrefcount(buf) == 3 and buf.shape == shape and buf.dtype == dtype:
                return buf
        buf = np.empty(shape, dtype=dtype)
        pool.append(buf)
        if len(pool) > 2:
            pool.pop(0)
        return buf
