"""The one place for numerical tolerances used by the tests."""

from __future__ import annotations

import numpy as np


def rtol_for(dtype, ops: int = 1) -> float:
    """Relative tolerance for a result of `ops` rounded operations in `dtype`."""
    eps = float(np.finfo(dtype).eps)
    return eps * max(1, ops) * 4


def assert_close(actual, expected, dtype=None, ops: int = 1, atol: float = 0.0) -> None:
    """Assert allclose with a tolerance scaled to dtype and operation count."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    dt = np.dtype(dtype) if dtype is not None else actual.dtype
    np.testing.assert_allclose(actual, expected, rtol=rtol_for(dt, ops), atol=atol)


def gemm_tolerance(dtype, k: int) -> float:
    """Relative tolerance for a dot product of length k (error grows like sqrt(k) * eps)."""
    eps = float(np.finfo(dtype).eps)
    return 8 * eps * max(1.0, np.sqrt(k)) * 4
