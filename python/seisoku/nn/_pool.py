"""Functional 2-D max and average pooling over NCHW NumPy (CPU) or CuPy (GPU) arrays.

Inputs are used zero-copy and must be C-contiguous float32 or float64 arrays; outputs are
allocated on the input's device. Output size Ho = (H + 2 * pad_h - kh) // stride_h + 1
(floor), Wo likewise; padding may be at most half the kernel size.
"""

from __future__ import annotations

import operator
from typing import Any

from .. import _core
from .._array import array_module, require_array
from ._conv import IntPair, _check_nchw, _pair

Array = Any  # numpy.ndarray or cupy.ndarray


def _window(
    op: str, kernel_size: IntPair, stride: IntPair | None, padding: IntPair
) -> tuple[int, int, int, int, int, int]:
    """(kh, kw, sh, sw, ph, pw); stride None means the kernel size."""
    kh, kw = _pair(kernel_size, "kernel_size", op, 1)
    sh, sw = (kh, kw) if stride is None else _pair(stride, "stride", op, 1)
    ph, pw = _pair(padding, "padding", op, 0)
    return kh, kw, sh, sw, ph, pw


def _out_hw(op: str, h: int, w: int, win: tuple[int, int, int, int, int, int]) -> tuple[int, int]:
    kh, kw, sh, sw, ph, pw = win
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ValueError(
            f"[{op}] kernel {kh}x{kw} is larger than the padded input {h + 2 * ph}x{w + 2 * pw}"
        )
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def _shape4(x_shape: Any, op: str) -> tuple[int, int, int, int]:
    """x_shape as a tuple of four non-negative ints; ValueError otherwise."""
    try:
        dims = tuple(operator.index(d) for d in x_shape)
    except TypeError:
        raise ValueError(f"[{op}] x_shape must be 4 ints (N, C, H, W), got {x_shape!r}") from None
    if len(dims) != 4 or min(dims) < 0:
        raise ValueError(f"[{op}] x_shape must be 4 ints (N, C, H, W) >= 0, got {x_shape!r}")
    return dims[0], dims[1], dims[2], dims[3]


def pool2d_shape(
    op: str, x: Array, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> tuple[int, int, int, int]:
    """The (N, C, Ho, Wo) shape of op ('max_pool2d' or 'avg_pool2d') on x; ValueError for
    inputs the op rejects by shape."""
    _check_nchw(x, "x", op)
    win = _window(op, kernel_size, stride, padding)
    n, c, h, w = (int(d) for d in x.shape)
    return (n, c, *_out_hw(op, h, w, win))


def max_pool2d(
    x: Array,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    out: Array | None = None,
    indices: Array | None = None,
) -> tuple[Array, Array]:
    """Max pooling of x (N, C, H, W): returns (out, indices), both (N, C, Ho, Wo).

    kernel_size, stride (default: kernel_size) and padding (default 0, at most half the
    kernel) are an int or an (h, w) pair, in pixels. indices (int64) holds the flat index
    h * W + w of each maximum in its input plane: padding never wins, ties pick the first
    element in row-major window order, and a NaN in the window wins (output NaN). out and
    indices: optional preallocated results.
    """
    op = "max_pool2d"
    shape = pool2d_shape(op, x, kernel_size, stride, padding)
    win = _window(op, kernel_size, stride, padding)
    xp = array_module(x)
    out = xp.empty(shape, dtype=x.dtype) if out is None else out
    indices = xp.empty(shape, dtype=xp.int64) if indices is None else indices
    _core.max_pool2d(x, out, indices, *win)
    return out, indices


def max_pool2d_backward(
    grad_out: Array, indices: Array, x_shape: tuple[int, ...], grad_x: Array | None = None
) -> Array:
    """Gradient of max_pool2d: an array of x_shape (N, C, H, W) on grad_out's device (new, or
    the given grad_x).

    Each input element receives the sum of grad_out over the outputs whose index points at
    it, added in row-major output order (deterministic).
    """
    op = "max_pool2d_backward"
    _check_nchw(grad_out, "grad_out", op)
    require_array(indices, "indices", op)
    shape = _shape4(x_shape, op)
    if grad_x is None:
        grad_x = array_module(grad_out).empty(shape, dtype=grad_out.dtype)
    _core.max_pool2d_backward(grad_out, indices, grad_x)
    return grad_x


def avg_pool2d(
    x: Array,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    count_include_pad: bool = True,
) -> Array:
    """Average pooling of x (N, C, H, W): a new (N, C, Ho, Wo) array.

    kernel_size, stride (default: kernel_size) and padding (zeros, default 0, at most half
    the kernel) are an int or an (h, w) pair, in pixels. Each window's sum is divided by
    kh * kw when count_include_pad (default True), else by the number of its elements
    inside the input.
    """
    op = "avg_pool2d"
    _check_nchw(x, "x", op)
    win = _window(op, kernel_size, stride, padding)
    n, c, h, w = (int(d) for d in x.shape)
    ho, wo = _out_hw(op, h, w, win)
    out = array_module(x).empty((n, c, ho, wo), dtype=x.dtype)
    _core.avg_pool2d(x, out, *win, bool(count_include_pad))
    return out


def avg_pool2d_backward(
    grad_out: Array,
    x_shape: tuple[int, ...],
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    count_include_pad: bool = True,
) -> Array:
    """Gradient of avg_pool2d: a new array of x_shape (N, C, H, W) on grad_out's device.

    The window arguments must be those of the forward call (same defaults). Computed as a
    gather: each input element sums grad_out / divisor over its windows in a fixed order.
    """
    op = "avg_pool2d_backward"
    _check_nchw(grad_out, "grad_out", op)
    win = _window(op, kernel_size, stride, padding)
    grad_x = array_module(grad_out).empty(_shape4(x_shape, op), dtype=grad_out.dtype)
    _core.avg_pool2d_backward(grad_out, grad_x, *win, bool(count_include_pad))
    return grad_x
