"""max_pool2d and avg_pool2d with their backward ops: parity with torch, finite
differences, ties, NaN, padding, determinism and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import seisoku as sei
from conftest import requires_cuda, to_device, to_host
from seisoku.nn import functional as F  # noqa: N812
from tolerance import rtol_for

FLOATS = [np.float32, np.float64]

# (x shape, kernel_size, stride, padding)
CASES = [
    ((2, 3, 8, 8), 2, None, 0),
    ((2, 2, 7, 9), 3, 2, 1),
    ((1, 3, 5, 11), (1, 3), (1, 2), (0, 1)),  # 1-D signal
    ((2, 1, 6, 6), (2, 3), 1, (1, 1)),  # overlapping windows
    ((3, 2, 13, 10), (3, 2), (2, 3), (1, 0)),
    ((2, 4, 28, 28), 2, 2, 0),  # LeNet
    ((1, 1, 3, 3), 3, 1, 1),
]


def _rand(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _torch():
    torch = pytest.importorskip("torch")
    return torch, torch.nn.functional


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", CASES)
def test_max_pool_matches_torch(device, case, dtype):
    torch, f = _torch()
    shape, k, s, p = case
    x = _rand(shape, dtype, 1)
    out, idx = F.max_pool2d(to_device(x, device), k, s, p)
    tx = torch.tensor(x, requires_grad=True)
    ty, ti = f.max_pool2d(tx, k, s, p, return_indices=True)
    np.testing.assert_array_equal(to_host(out), ty.detach().numpy())
    np.testing.assert_array_equal(to_host(idx), ti.numpy())
    assert to_host(idx).dtype == np.int64
    g = _rand(ty.shape, dtype, 2)
    ty.backward(torch.tensor(g))
    gx = F.max_pool2d_backward(to_device(g, device), idx, shape)
    np.testing.assert_allclose(to_host(gx), tx.grad.numpy(), rtol=rtol_for(dtype, 9))


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", CASES)
def test_avg_pool_matches_torch(device, case, dtype, count_include_pad):
    torch, f = _torch()
    shape, k, s, p = case
    x = _rand(shape, dtype, 3)
    out = F.avg_pool2d(to_device(x, device), k, s, p, count_include_pad)
    tx = torch.tensor(x, requires_grad=True)
    ty = f.avg_pool2d(tx, k, s, p, count_include_pad=count_include_pad)
    window = int(np.prod(np.broadcast_to(k, 2)))
    np.testing.assert_allclose(
        to_host(out), ty.detach().numpy(), rtol=rtol_for(dtype, window), atol=1e-6
    )
    g = _rand(ty.shape, dtype, 4)
    ty.backward(torch.tensor(g))
    gx = F.avg_pool2d_backward(to_device(g, device), shape, k, s, p, count_include_pad)
    np.testing.assert_allclose(
        to_host(gx), tx.grad.numpy(), rtol=rtol_for(dtype, 2 * window), atol=1e-6
    )


def test_max_pool_ties_pick_the_first_in_row_major_window_order(device):
    x = np.zeros((1, 1, 4, 5), np.float32)
    out, idx = F.max_pool2d(to_device(x, device), (2, 3), (2, 2), (1, 1))
    # Windows start at row -1 / 1 and column -1 / 1 / 3: the first element inside the input.
    expected = np.array([[0, 1, 3], [5, 6, 8], [15, 16, 18]], np.int64)
    np.testing.assert_array_equal(to_host(idx)[0, 0], expected)
    np.testing.assert_array_equal(to_host(out), 0)
    out, idx = F.max_pool2d(to_device(np.full_like(x, -np.inf), device), (2, 3), (2, 2), (1, 1))
    np.testing.assert_array_equal(to_host(idx)[0, 0], expected)
    np.testing.assert_array_equal(to_host(out), -np.inf)
    x = np.array([[[[1, 3, 3], [3, 2, 3]]]], np.float64)
    _, idx = F.max_pool2d(to_device(x, device), (2, 3), 1)
    assert int(to_host(idx)[0, 0, 0, 0]) == 1


def test_max_pool_padding_never_wins(device):
    x = -np.abs(_rand((2, 3, 5, 5), np.float32, 5)) - 1.0  # all negative
    out, idx = F.max_pool2d(to_device(x, device), 3, 2, 1)
    assert np.all(to_host(out) < 0)
    idx = to_host(idx)
    assert idx.min() >= 0 and idx.max() < 25
    flat = x.reshape(2, 3, 25)
    np.testing.assert_array_equal(
        np.take_along_axis(flat, idx.reshape(2, 3, -1), 2), to_host(out).reshape(2, 3, -1)
    )


def test_max_pool_nan_wins_and_is_indexed(device):
    torch, f = _torch()
    x = _rand((1, 2, 6, 6), np.float64, 6)
    x[0, 0, 1, 2] = np.nan
    x[0, 1, 4, 4] = np.nan
    out, idx = F.max_pool2d(to_device(x, device), 3, 2, 1)
    ty, ti = f.max_pool2d(torch.tensor(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(to_host(out), ty.numpy())  # NaN positions equal too
    np.testing.assert_array_equal(to_host(idx), ti.numpy())
    # Two NaNs in one window: the first in row-major order wins.
    x = np.ones((1, 1, 2, 2), np.float32)
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 1, 0] = np.nan
    out, idx = F.max_pool2d(to_device(x, device), 2)
    assert np.isnan(to_host(out)[0, 0, 0, 0]) and int(to_host(idx)[0, 0, 0, 0]) == 1
    # The gradient follows the index.
    gx = F.max_pool2d_backward(
        to_device(np.full((1, 1, 1, 1), 2.0, np.float32), device), idx, x.shape
    )
    np.testing.assert_array_equal(to_host(gx)[0, 0], [[0, 2], [0, 0]])


def _numeric_grad(loss, arr, eps=1e-6):
    grad = np.zeros_like(arr)
    flat = arr.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = loss()
        flat[i] = old - eps
        down = loss()
        flat[i] = old
        grad.reshape(-1)[i] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("case", [((2, 2, 5, 6), 3, 1, 1), ((1, 2, 7, 5), (2, 3), (2, 1), (1, 1))])
def test_backward_matches_finite_differences(device, case):
    shape, k, s, p = case
    x = _rand(shape, np.float64, 7)
    out, idx = F.max_pool2d(x, k, s, p)
    g = _rand(out.shape, np.float64, 8)

    def max_loss():
        return float(np.sum(F.max_pool2d(x, k, s, p)[0] * g))

    gx = F.max_pool2d_backward(to_device(g, device), to_device(idx, device), shape)
    np.testing.assert_allclose(to_host(gx), _numeric_grad(max_loss, x), rtol=1e-6, atol=1e-8)
    for include in (True, False):

        def avg_loss(include=include):
            return float(np.sum(F.avg_pool2d(x, k, s, p, include) * g))

        gx = F.avg_pool2d_backward(to_device(g, device), shape, k, s, p, include)
        np.testing.assert_allclose(to_host(gx), _numeric_grad(avg_loss, x), rtol=1e-6, atol=1e-8)


def test_backward_is_deterministic_across_runs_and_thread_counts():
    x = _rand((16, 8, 17, 15), np.float32, 9)
    out, idx = F.max_pool2d(x, 3, 1, 1)  # overlapping windows: pixels get several terms
    g = _rand(out.shape, np.float32, 10)
    before = sei.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 2):
            sei.set_num_threads(threads)
            results.append(
                (
                    F.max_pool2d(x, 3, 1, 1)[0],
                    F.max_pool2d_backward(g, idx, x.shape),
                    F.avg_pool2d(x, 3, 1, 1, False),
                    F.avg_pool2d_backward(g, x.shape, 3, 1, 1, False),
                )
            )
    finally:
        sei.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@requires_cuda
def test_cuda_matches_cpu_bitwise():
    x = _rand((8, 4, 15, 13), np.float32, 11)
    out, idx = F.max_pool2d(x, 3, 1, 1)
    g = _rand(out.shape, np.float32, 12)
    dx, dg, di = to_device(x, "cuda"), to_device(g, "cuda"), to_device(idx, "cuda")
    np.testing.assert_array_equal(to_host(F.max_pool2d(dx, 3, 1, 1)[1]), idx)
    np.testing.assert_array_equal(
        to_host(F.max_pool2d_backward(dg, di, x.shape)),
        F.max_pool2d_backward(g, idx, x.shape),
    )
    np.testing.assert_array_equal(to_host(F.avg_pool2d(dx, 3, 1, 1)), F.avg_pool2d(x, 3, 1, 1))
    np.testing.assert_array_equal(
        to_host(F.avg_pool2d_backward(dg, x.shape, 3, 1, 1)),
        F.avg_pool2d_backward(g, x.shape, 3, 1, 1),
    )


def _bad(match, fn, *args, **kwargs):
    with pytest.raises(ValueError, match=match):
        fn(*args, **kwargs)


def test_bad_input_raises_value_error():
    x = _rand((2, 3, 8, 8), np.float32, 0)
    _bad(r"\[max_pool2d\] x must be 4-D", F.max_pool2d, x[0], 2)
    _bad(r"\[avg_pool2d\] x must be 4-D", F.avg_pool2d, x[0], 2)
    _bad(r"\[max_pool2d\] argument 'kernel_size' must be an int >= 1.*, got 0", F.max_pool2d, x, 0)
    pair = r"must be an int >= 1 or a pair \(h, w\) of them"
    _bad(rf"\[max_pool2d\] argument 'kernel_size' {pair}", F.max_pool2d, x, (2, 2, 2))
    _bad(r"\[avg_pool2d\] argument 'stride' must be an int >= 1", F.avg_pool2d, x, 2, (1, 0))
    _bad(r"\[avg_pool2d\] argument 'padding' must be an int >= 0", F.avg_pool2d, x, 2, 1, -1)
    _bad(r"\[max_pool2d\] padding must be at most half the kernel size", F.max_pool2d, x, 3, 1, 2)
    _bad(r"\[avg_pool2d\] padding must be at most half", F.avg_pool2d, x, (2, 4), 1, (2, 0))
    _bad(r"\[max_pool2d\] kernel 9x2 is larger than the padded input", F.max_pool2d, x, (9, 2))
    _bad(r"\[max_pool2d\].*empty batch", F.max_pool2d, x[:0], 2)
    _bad(r"\[avg_pool2d\].*dtype", F.avg_pool2d, x.astype(np.int32), 2)
    out, idx = F.max_pool2d(x, 2)
    _bad(
        r"\[max_pool2d_backward\] indices must have dtype int64",
        F.max_pool2d_backward,
        out,
        idx.astype(np.int32),
        x.shape,
    )
    _bad(
        r"\[max_pool2d_backward\] indices must have shape",
        F.max_pool2d_backward,
        out,
        idx[:, :2].copy(),
        x.shape,
    )
    bad_idx = idx.copy()
    bad_idx[1, 2, 3, 0] = 64
    _bad(
        r"\[max_pool2d_backward\] indices must lie in \[0, H \* W\)",
        F.max_pool2d_backward,
        out,
        bad_idx,
        x.shape,
    )
    _bad(
        r"\[max_pool2d_backward\] argument 'x_shape' must be 4 ints",
        F.max_pool2d_backward,
        out,
        idx,
        (2, 3, 8),
    )
    _bad(
        r"\[max_pool2d_backward\].*agree on N and C",
        F.max_pool2d_backward,
        out,
        idx,
        (2, 4, 8, 8),
    )
    _bad(
        r"\[max_pool2d_backward\].*empty batch",
        F.max_pool2d_backward,
        out[:0],
        idx[:0],
        (0, 3, 8, 8),
    )
    _bad(
        r"\[avg_pool2d_backward\] grad_out must have shape \(2, 3, 7, 7\), got",
        F.avg_pool2d_backward,
        out,
        x.shape,
        2,
        1,
    )
    _bad(
        r"\[avg_pool2d_backward\].*same dtype",
        F.avg_pool2d_backward,
        out,
        x.shape,
        2,
        grad_x=np.empty(x.shape, np.float64),
    )
    overlapping = x.reshape(-1)[: out.size].reshape(out.shape)
    _bad(
        r"\[max_pool2d\] out and x must not overlap",
        F.max_pool2d,
        x,
        2,
        out=overlapping,
        indices=idx,
    )
