"""Elementwise ops, reductions and GEMM over NumPy (CPU) and CuPy (CUDA) arrays.

Inputs are used zero-copy. They must be C-contiguous and of a supported dtype: anything
else raises ValueError naming the argument (seisoku never copies silently; call
numpy.ascontiguousarray or .astype yourself). Outputs are allocated on the inputs' device
unless `out` is given.
"""

from __future__ import annotations

import builtins
from typing import Any

from . import _core
from ._array import array_module, is_cuda_array, require_array, resolve_dtype

Array = Any  # numpy.ndarray or cupy.ndarray


def _out_like(x: Array, out: Array | None, op: str, dtype: Any = None, shape: Any = None) -> Array:
    if out is not None:
        return require_array(out, "out", op)
    xp = array_module(x)
    return xp.empty(x.shape if shape is None else shape, dtype=x.dtype if dtype is None else dtype)


def add(a: Array, b: Array, out: Array | None = None) -> Array:
    """Elementwise a + b (float32 or float64, same shape, dtype and device); returns out."""
    require_array(a, "a", "add")
    out = _out_like(a, out, "add")
    _core.add(a, b, out)
    return out


def mul(a: Array, b: Array, out: Array | None = None) -> Array:
    """Elementwise a * b (float32 or float64, same shape, dtype and device); returns out."""
    require_array(a, "a", "mul")
    out = _out_like(a, out, "mul")
    _core.mul(a, b, out)
    return out


def axpy(alpha: float, x: Array, y: Array) -> Array:
    """In place y += alpha * x (float32 or float64); returns y."""
    _core.axpy(float(alpha), x, y)
    return y


def axpy_sign(alpha: float, x: Array, y: Array) -> Array:
    """In place y += alpha * sign(x) (sign(0) = 0, NaN stays NaN; float32 or float64: the
    L1 subgradient); returns y."""
    _core.axpy_sign(float(alpha), x, y)
    return y


def scale(alpha: float, x: Array, out: Array | None = None) -> Array:
    """alpha * x (float32 or float64); returns out."""
    require_array(x, "x", "scale")
    out = _out_like(x, out, "scale")
    _core.scale(float(alpha), x, out)
    return out


def fill(out: Array, value: float) -> Array:
    """Set every element of out (any supported dtype) to value; returns out."""
    _core.fill(out, float(value))
    return out


def copy(src: Array, dst: Array) -> Array:
    """dst[...] = src converted to dst's dtype (same shape); returns dst.

    Floats to ints truncate toward zero and saturate (NaN becomes 0); ints to ints wrap as
    in NumPy; to float16/bfloat16 rounds to nearest even. Between CPU and GPU only with
    equal dtypes.
    """
    _core.copy(src, dst)
    return dst


def cast(x: Array, dtype: Any) -> Array:
    """A new array with x's values converted to dtype (a name like 'bfloat16' or a dtype)."""
    require_array(x, "x", "cast")
    dt = resolve_dtype(dtype)
    if is_cuda_array(x) and dt.name == "bfloat16":
        raise ValueError("[cast] bfloat16 arrays are not supported by CuPy; use float16 on the GPU")
    out = array_module(x).empty(x.shape, dtype=dt)
    _core.copy(x, out)
    return out


def _scalar_out(x: Array, op: str) -> Array:
    require_array(x, "x", op)
    return array_module(x).empty((), dtype=x.dtype)


def sum(x: Array) -> Array:
    """Sum of all elements as a 0-d array of x's dtype (float64 accumulation, fixed order)."""
    out = _scalar_out(x, "sum")
    _core.sum(x, out)
    return out


def mean(x: Array) -> Array:
    """Mean of all elements as a 0-d array; x must not be empty."""
    out = _scalar_out(x, "mean")
    _core.mean(x, out)
    return out


def max(x: Array) -> Array:
    """Largest element as a 0-d array (NaN if x holds a NaN); x must not be empty."""
    out = _scalar_out(x, "max")
    _core.max(x, out)
    return out


def _ord(ord: float, op: str) -> float:
    """ord as a float for the native op (which checks that it is 0, 1, 2 or inf)."""
    if not isinstance(ord, bool):
        try:
            return float(ord)
        except (TypeError, ValueError):
            pass
    raise ValueError(f"[{op}] argument 'ord' must be 0, 1, 2 or inf, got {ord!r}")


def norm(x: Array, ord: float = 2) -> Array:
    """Norm of all elements as a 0-d array.

    ord=0 counts non-zeros (L0), 1 sums magnitudes, 2 is the Euclidean norm, inf the
    largest magnitude.
    """
    out = _scalar_out(x, "norm")
    _core.norm(x, _ord(ord, "norm"), out)
    return out


def row_norm(x: Array, ord: float = 2) -> Array:
    """Norm of each row of x seen as (x.shape[0], -1): one value per row (e.g. per unit)."""
    require_array(x, "x", "row_norm")
    if x.ndim < 1:
        raise ValueError(f"[row_norm] x must have at least 1 dimension, got shape {x.shape}")
    out = array_module(x).empty((x.shape[0],), dtype=x.dtype)
    _core.row_norm(x, _ord(ord, "row_norm"), out)
    return out


def column_sum(x: Array, out: Array | None = None, accumulate: bool = False) -> Array:
    """Sums of the columns of x (N, F) as an (F,) array, rows added in order (the gradient of
    a bias); with accumulate (default False) added into out. Returns out."""
    require_array(x, "x", "column_sum")
    if out is None:
        out = array_module(x).empty(x.shape[-1:] if x.ndim else (0,), dtype=x.dtype)
    _core.column_sum(x, out, bool(accumulate))
    return out


def gemm(
    a: Array,
    b: Array,
    out: Array | None = None,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    beta: float = 0.0,
) -> Array:
    """out = alpha * op(a) @ op(b) + beta * out, op(x) = x.T when trans_x (2-D float32/64).

    With out=None a new array is made and beta must be 0. Runs on OpenBLAS for NumPy
    arrays and on cuBLAS for CuPy arrays.
    """
    require_array(a, "a", "gemm")
    require_array(b, "b", "gemm")
    if out is None:
        if beta != 0.0:
            raise ValueError(f"[gemm] beta={beta!r} needs an existing out array")
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(f"[gemm] a and b must be 2-D, got shapes {a.shape} and {b.shape}")
        m = a.shape[1] if trans_a else a.shape[0]
        n = b.shape[0] if trans_b else b.shape[1]
        out = array_module(a).empty((m, n), dtype=a.dtype)
    if is_cuda_array(a):
        from . import cuda

        cuda.load_cublas()
    _core.gemm(a, b, out, builtins.bool(trans_a), builtins.bool(trans_b), float(alpha), float(beta))
    return out
