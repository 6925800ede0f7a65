"""Array helpers: which module (NumPy or CuPy) owns an array, dtype names, allocation."""

from __future__ import annotations

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
