"""conv2d and conv2d_backward: parity with torch, finite differences, accumulate,
determinism across runs and thread counts, non-finite inputs, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import seisoku as sei
from conftest import requires_cuda, to_device, to_host
from seisoku.nn import functional as F  # noqa: N812
from tolerance import gemm_tolerance

FLOATS = [np.float32, np.float64]

# (N, C, H, W, O, kh, kw, stride, padding)
SHAPES = [
    (2, 3, 8, 8, 4, 3, 3, 1, 1),
    (3, 2, 9, 7, 5, 3, 2, (2, 1), (1, 0)),
    (2, 4, 1, 17, 3, 1, 5, 1, (0, 2)),  # 1-D signal, 1 x k kernel
    (2, 3, 1, 16, 2, 1, 4, (1, 2), 0),  # 1-D, strided
    (4, 1, 28, 28, 6, 5, 5, 1, 2),  # LeNet conv1
    (4, 6, 14, 14, 16, 5, 5, 1, 0),  # LeNet conv2
    (2, 3, 11, 10, 4, 4, 3, 2, (2, 1)),
    (1, 2, 5, 5, 3, 5, 5, 1, 0),  # kernel as large as the input
    (2, 3, 7, 7, 2, 1, 1, 1, 0),  # 1 x 1
    (2, 2, 6, 9, 3, 3, 3, 3, 1),
    (1, 2, 3, 4, 7, 3, 3, 1, 3),  # padding larger than the kernel reach
    (3, 13, 5, 6, 9, 2, 2, 1, 1),  # channel and tap counts off the register blocks
    (1, 1, 96, 96, 64, 3, 3, 1, 1),  # a sample too large for the whole-sample CPU grad_x path
]


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


def _rand(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _case(shape, dtype, seed=0):
    n, c, h, w, o, kh, kw, stride, padding = shape
    x = _rand((n, c, h, w), dtype, seed)
    wt = _rand((o, c, kh, kw), dtype, seed + 1)
    b = _rand((o,), dtype, seed + 2)
    return x, wt, b, stride, padding


def _torch_conv(x, w, b, stride, padding, grad=None):
    """Forward (and with grad, backward) in float64 by torch; also the same with |values|,
    a bound on the sums' magnitudes for the tolerance."""
    torch = pytest.importorskip("torch")
    f = torch.nn.functional

    def run(xv, wv, bv, gv):
        tx = torch.tensor(xv, dtype=torch.float64, requires_grad=True)
        tw = torch.tensor(wv, dtype=torch.float64, requires_grad=True)
        tb = None if bv is None else torch.tensor(bv, dtype=torch.float64, requires_grad=True)
        y = f.conv2d(tx, tw, tb, stride=stride, padding=padding)
        out = {"y": y.detach().numpy()}
        if gv is not None:
            y.backward(torch.tensor(gv, dtype=torch.float64))
            out["gx"] = tx.grad.numpy()
            out["gw"] = tw.grad.numpy()
            out["gb"] = None if tb is None else tb.grad.numpy()
        return out

    ref = run(x, w, b, grad)
    mag = run(
        np.abs(x),
        np.abs(w),
        None if b is None else np.abs(b),
        None if grad is None else np.abs(grad),
    )
    return ref, mag


def _check(actual, ref, mag, dtype, length):
    err = np.abs(to_host(actual).astype(np.float64) - ref)
    tol = gemm_tolerance(dtype, length) * (mag + np.finfo(dtype).tiny)
    assert np.all(err <= tol), f"max error {err.max()} (bound {tol[np.argmax(err - tol)]})"


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_backward_match_torch(device, shape, dtype, with_bias):
    x, w, b, stride, padding = _case(shape, dtype)
    b = b if with_bias else None
    y = F.conv2d(
        to_device(x, device),
        to_device(w, device),
        None if b is None else to_device(b, device),
        stride=stride,
        padding=padding,
    )
    g = _rand(to_host(y).shape, dtype, 7)
    ref, mag = _torch_conv(x, w, b, stride, padding, grad=g)
    n, c, _, _, o, kh, kw = shape[:7]
    pixels = n * g.shape[2] * g.shape[3]
    _check(y, ref["y"], mag["y"], dtype, c * kh * kw + 1)
    gx, gw, gb = F.conv2d_backward(
        to_device(g, device),
        to_device(x, device),
        to_device(w, device),
        stride=stride,
        padding=padding,
        need_grad_bias=with_bias,
    )
    _check(gx, ref["gx"], mag["gx"], dtype, o * kh * kw)
    _check(gw, ref["gw"], mag["gw"], dtype, pixels)
    if with_bias:
        _check(gb, ref["gb"], mag["gb"], dtype, pixels)
    else:
        assert gb is None


def _numeric_grad(f, arr, eps=1e-6):
    grad = np.zeros_like(arr)
    flat = arr.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        grad.reshape(-1)[i] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize(
    "shape",
    [
        (2, 2, 5, 6, 3, 3, 2, (2, 1), (1, 1)),
        (2, 3, 4, 5, 2, 2, 3, 1, (1, 2)),
        (1, 2, 1, 9, 2, 1, 3, 1, 1),
    ],
)
def test_backward_matches_finite_differences(device, shape):
    x, w, b, stride, padding = _case(shape, np.float64, seed=3)
    y = F.conv2d(x, w, b, stride=stride, padding=padding)
    g = _rand(y.shape, np.float64, 11)

    def loss():
        return float(np.sum(F.conv2d(x, w, b, stride=stride, padding=padding) * g))

    gx, gw, gb = F.conv2d_backward(
        to_device(g, device),
        to_device(x, device),
        to_device(w, device),
        stride=stride,
        padding=padding,
    )
    for analytic, arr in ((gx, x), (gw, w), (gb, b)):
        np.testing.assert_allclose(
            to_host(analytic), _numeric_grad(loss, arr), rtol=1e-6, atol=1e-8
        )


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("dtype", FLOATS)
def test_accumulate_adds_into_existing_gradients(device, dtype, stride):
    x, w, _, _, padding = _case((3, 2, 7, 6, 4, 3, 3, stride, 1), dtype, seed=5)
    y = F.conv2d(x, w, stride=stride, padding=padding)
    g = _rand(y.shape, dtype, 6)
    args = (to_device(g, device), to_device(x, device), to_device(w, device))
    kw = {"stride": stride, "padding": padding}
    _, fresh_w, fresh_b = F.conv2d_backward(*args, **kw)
    start_w, start_b = _rand(w.shape, dtype, 8), _rand((4,), dtype, 9)
    gw, gb = to_device(start_w.copy(), device), to_device(start_b.copy(), device)
    gx, out_w, out_b = F.conv2d_backward(
        *args, **kw, need_grad_x=False, grad_weight=gw, grad_bias=gb, accumulate=True
    )
    assert gx is None and out_w is gw and out_b is gb
    tol = {
        "rtol": 1e-5 if dtype == np.float32 else 1e-12,
        "atol": 1e-5 if dtype == np.float32 else 1e-12,
    }
    np.testing.assert_allclose(to_host(gw), start_w + to_host(fresh_w), **tol)
    np.testing.assert_allclose(to_host(gb), start_b + to_host(fresh_b), **tol)
    # Without accumulate the given arrays are overwritten.
    F.conv2d_backward(*args, **kw, need_grad_x=False, grad_weight=gw, grad_bias=gb)
    np.testing.assert_array_equal(to_host(gw), to_host(fresh_w))
    np.testing.assert_array_equal(to_host(gb), to_host(fresh_b))


def test_accumulate_into_new_arrays_starts_at_zero():
    x, w, _, _, padding = _case((2, 2, 5, 5, 3, 3, 3, 1, 1), np.float64)
    g = _rand((2, 3, 5, 5), np.float64, 1)
    _, gw, gb = F.conv2d_backward(g, x, w, padding=padding, accumulate=True)
    _, ref_w, ref_b = F.conv2d_backward(g, x, w, padding=padding)
    np.testing.assert_array_equal(gw, ref_w)
    np.testing.assert_array_equal(gb, ref_b)


def _all_results(x, w, b, g, stride, padding):
    y = F.conv2d(x, w, b, stride=stride, padding=padding)
    gx, gw, gb = F.conv2d_backward(g, x, w, stride=stride, padding=padding)
    return [to_host(a).copy() for a in (y, gx, gw, gb)]


@pytest.mark.parametrize("shape", [(64, 6, 14, 14, 16, 5, 5, 1, 0), (37, 3, 11, 9, 5, 3, 3, 2, 1)])
def test_deterministic_across_runs_and_thread_counts(shape):
    x, w, b, stride, padding = _case(shape, np.float32, seed=21)
    y = F.conv2d(x, w, b, stride=stride, padding=padding)
    g = _rand(y.shape, np.float32, 22)
    before = sei.get_num_threads()
    try:
        sei.set_num_threads(1)
        one = _all_results(x, w, b, g, stride, padding)
        sei.set_num_threads(2)
        two = _all_results(x, w, b, g, stride, padding)
        again = _all_results(x, w, b, g, stride, padding)
    finally:
        sei.set_num_threads(before)
    for a, b2, c in zip(one, two, again):
        np.testing.assert_array_equal(a, b2)
        np.testing.assert_array_equal(b2, c)


@requires_cuda
def test_cuda_runs_are_bitwise_reproducible():
    device = "cuda"
    x, w, b, stride, padding = _case((16, 6, 14, 14, 16, 5, 5, 1, 2), np.float32, seed=4)
    y = F.conv2d(x, w, b, stride=stride, padding=padding)
    g = _rand(y.shape, np.float32, 5)
    args = [to_device(a, device) for a in (x, w, b, g)]
    first = _all_results(*args, stride, padding)
    second = _all_results(*args, stride, padding)
    for a, c in zip(first, second):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("stride", [1, 2])
def test_non_finite_input_and_weight_match_torch(device, stride):
    torch = pytest.importorskip("torch")
    # 40 samples: several per grad_W group, only one of them non-finite.
    x, w, b, _, padding = _case((40, 2, 6, 7, 3, 3, 3, stride, 1), np.float64, seed=8)
    x[17, 0, 2, 3] = np.inf
    w_nan = w.copy()
    w_nan[1, 1, 0, 2] = np.nan
    y = F.conv2d(x, w, b, stride=stride, padding=padding)
    g = _rand(y.shape, np.float64, 9)
    for xv, wv in ((x, w), (np.nan_to_num(x, posinf=0.0), w_nan)):
        tx = torch.tensor(xv, requires_grad=True)
        tw = torch.tensor(wv, requires_grad=True)
        ty = torch.nn.functional.conv2d(tx, tw, torch.tensor(b), stride=stride, padding=padding)
        ty.backward(torch.tensor(g))
        ours_y = F.conv2d(
            to_device(xv, device),
            to_device(wv, device),
            to_device(b, device),
            stride=stride,
            padding=padding,
        )
        gx, gw, _ = F.conv2d_backward(
            to_device(g, device),
            to_device(xv, device),
            to_device(wv, device),
            stride=stride,
            padding=padding,
        )
        for ours, ref in (
            (ours_y, ty.detach().numpy()),
            (gx, tx.grad.numpy()),
            (gw, tw.grad.numpy()),
        ):
            np.testing.assert_allclose(to_host(ours), ref, rtol=1e-10, atol=1e-10)


def test_outputs_shapes_dtypes_and_none_returns():
    x = _rand((2, 3, 9, 8), np.float32, 0)
    w = _rand((5, 3, 3, 2), np.float32, 1)
    y = F.conv2d(x, w, stride=(2, 3), padding=(1, 0))
    assert y.shape == (2, 5, 5, 3) and y.dtype == np.float32
    gx, gw, gb = F.conv2d_backward(
        np.ones_like(y),
        x,
        w,
        stride=(2, 3),
        padding=(1, 0),
        need_grad_x=False,
        need_grad_bias=False,
    )
    assert gx is None and gb is None and gw.shape == w.shape


def _bad(match, fn, *args, **kwargs):
    with pytest.raises(ValueError, match=match):
        fn(*args, **kwargs)


def test_bad_input_raises_value_error():
    x = _rand((2, 3, 8, 8), np.float32, 0)
    w = _rand((4, 3, 3, 3), np.float32, 1)
    out = np.empty((2, 4, 6, 6), np.float32)
    _bad(r"\[conv2d\] x must be 4-D", F.conv2d, x[0], w)
    _bad(r"\[conv2d\].*input channel", F.conv2d, x, w[:, :2].copy())
    _bad(
        r"\[conv2d\].*larger than the padded input",
        F.conv2d,
        x,
        _rand((4, 3, 9, 3), np.float32, 2),
    )
    _bad(r"\[conv2d\] argument 'stride' must be an int >= 1.*, got 0", F.conv2d, x, w, stride=0)
    _bad(r"\[conv2d\] argument 'padding' must be an int >= 0", F.conv2d, x, w, padding=(0, -1))
    pair = r"must be an int >= 1 or a pair \(h, w\) of them"
    _bad(rf"\[conv2d\] argument 'stride' {pair}, got \(1, 1, 1\)", F.conv2d, x, w, stride=(1, 1, 1))
    _bad(r"\[conv2d\] argument 'padding' must be an int", F.conv2d, x, w, padding=1.5)
    _bad(r"\[conv2d\] argument 'stride' must be an int", F.conv2d, x, w, stride=True)
    _bad(r"\[conv2d\].*same dtype", F.conv2d, x, w.astype(np.float64))
    _bad(r"\[conv2d\].*dtype", F.conv2d, x.astype(np.int32), w.astype(np.int32))
    _bad(r"\[conv2d\].*empty batch", F.conv2d, x[:0], w)
    _bad(r"\[conv2d\] bias must have shape \(4,\)", F.conv2d, x, w, np.zeros(3, np.float32))
    _bad(r"\[conv2d\] out must have shape", F.conv2d, x, w, out=out[:, :, :5].copy())
    alias = np.zeros(x.size + 64, np.float32)
    xa = alias[: x.size].reshape(x.shape)
    xa[...] = x
    overlapping = alias[64 : 64 + out.size].reshape(out.shape)
    _bad(r"\[conv2d\] out and x must not overlap", F.conv2d, xa, w, out=overlapping)
    _bad(r"must be a NumPy or CuPy array", F.conv2d, x.tolist(), w)
    _bad(r"C-contiguous", F.conv2d, np.asfortranarray(x), w)
    y = F.conv2d(x, w)
    _bad(
        r"\[conv2d_backward\] grad_out must have shape",
        F.conv2d_backward,
        y[:, :, :5].copy(),
        x,
        w,
    )
    _bad(
        r"\[conv2d_backward\] grad_weight must have shape",
        F.conv2d_backward,
        y,
        x,
        w,
        grad_weight=np.zeros((4, 3, 3, 2), np.float32),
    )
    _bad(
        r"\[conv2d_backward\].*same dtype",
        F.conv2d_backward,
        y,
        x,
        w,
        grad_bias=np.zeros(4, np.float64),
    )
    _bad(r"\[conv2d_backward\].*empty batch", F.conv2d_backward, y[:0], x[:0], w)
    _bad(
        r"\[conv2d_backward\] grad_weight and grad_bias must not overlap",
        F.conv2d_backward,
        y,
        x,
        w,
        need_grad_x=False,
        grad_weight=alias[: w.size].reshape(w.shape),
        grad_bias=alias[:4],
    )


@requires_cuda
def test_device_mismatch_raises():
    device = "cuda"
    x = _rand((2, 3, 8, 8), np.float32, 0)
    w = _rand((4, 3, 3, 3), np.float32, 1)
    with pytest.raises(ValueError, match=r"\[conv2d\].*is on"):
        F.conv2d(to_device(x, device), w, out=to_device(np.empty((2, 4, 6, 6), np.float32), device))
