"""Activations and softmax (seisoku.nn.functional): NumPy formulas in float64, central finite
differences, PyTorch where installed; the CPU result is the oracle of the CUDA twins."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import to_device, to_host
from reference import (
    ACT_IDS,
    ACTS,
    FLOATS,
    act_ref,
    assert_grad,
    assert_twin,
    away_from_zero,
    fd_grad,
    rand,
    snap,
    softmax_ref,
    torch_act,
)
from seisoku.nn import functional as nnf
from tolerance import assert_close

# ---- activation / activation_backward ----


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("name", "slope"), ACTS, ids=ACT_IDS)
def test_activation_forward_matches_numpy(name, slope, dtype):
    x = rand((17, 33), dtype, seed=1, scale=3.0)
    x[0, :3] = [0.0, -0.0, 1e-30]
    y = nnf.activation(x, name, slope=slope)
    assert y.dtype == dtype and y.shape == x.shape
    if name in ("identity", "relu", "leaky_relu"):
        # one rounding at most (x * slope in dtype): exact
        ref = np.where(x > 0, x, x * dtype(slope)) if name == "leaky_relu" else act_ref(x, name)
        np.testing.assert_array_equal(y, ref.astype(dtype))
    else:
        assert_close(y, act_ref(x, name), dtype, ops=4, atol=float(np.finfo(dtype).tiny))


@pytest.mark.parametrize("dtype", FLOATS)
def test_activation_out_may_alias_x(dtype):
    x = rand(100, dtype, seed=2)
    expected = nnf.activation(x, "tanh")
    nnf.activation(x, "tanh", out=x)
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("name", "slope"), ACTS, ids=ACT_IDS)
def test_activation_backward_matches_finite_differences(name, slope, dtype):
    x = away_from_zero((6, 7), dtype, seed=3)
    g = rand((6, 7), dtype, seed=4)
    y = nnf.activation(x, name, slope=slope)
    grad = nnf.activation_backward(g, y, name, slope=slope)
    assert grad.dtype == dtype and grad.shape == x.shape
    x64, g64 = x.astype(np.float64), g.astype(np.float64)

    def loss(v):
        return float(np.sum(g64 * nnf.activation(v, name, slope=slope)))

    assert_grad(grad, fd_grad(loss, x64), dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("name", "slope"), ACTS, ids=ACT_IDS)
def test_activation_matches_torch(name, slope, dtype):
    torch = pytest.importorskip("torch")
    x = away_from_zero((9, 11), dtype, seed=5, margin=0.01) * dtype(2)
    g = rand((9, 11), dtype, seed=6)
    y = nnf.activation(x, name, slope=slope)
    grad = nnf.activation_backward(g, y, name, slope=slope)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = torch_act(torch, name, slope)(tx)
    ty.backward(torch.from_numpy(g.copy()))
    t = 4 * float(np.finfo(dtype).eps)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=t, atol=t)
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=4 * t, atol=4 * t)


@pytest.mark.parametrize("dtype", FLOATS)
def test_sigmoid_is_stable_at_large_magnitude(dtype):
    x = np.array([-100.0, -50.0, 0.0, 50.0, 100.0], dtype)
    y = nnf.activation(x, "sigmoid")
    assert np.all(np.isfinite(y))
    assert y[-1] == 1.0 and y[2] == 0.5
    assert 0.0 <= y[0] < 1e-40
    if dtype == np.float64:
        np.testing.assert_allclose(y[:2], np.exp([-100.0, -50.0]), rtol=1e-14)
    grad = nnf.activation_backward(np.ones_like(x), y, "sigmoid")
    assert np.all(np.isfinite(grad)) and np.all(grad >= 0)
    assert grad[2] == 0.25


@pytest.mark.parametrize("dtype", FLOATS)
def test_tanh_saturates(dtype):
    y = nnf.activation(np.array([-1e4, 1e4], dtype), "tanh")
    np.testing.assert_array_equal(y, [-1.0, 1.0])


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "tanh", "sigmoid"])
def test_activations_propagate_nan(device, name):
    """A NaN pre-activation stays NaN (as in torch), in the activation op and the fused Linear,
    so that a diverging model shows it instead of turning NaN into zeros."""
    x = to_device(np.array([[np.nan, 1.0, -1.0, 0.0]], np.float32), device)
    y = to_host(nnf.activation(x, name))
    assert np.isnan(y[0, 0]) and np.isfinite(y[0, 1:]).all()
    rows = to_device(np.array([[np.nan, 1.0], [1.0, -1.0]], np.float32), device)
    w = to_device(np.array([[1.0, 0.0], [-1.0, 0.5]], np.float32), device)  # NaN fills row 0
    z = to_host(nnf.linear(rows, w, activation=name))
    assert np.isnan(z[0]).all() and np.isfinite(z[1]).all()


def test_activation_bad_arguments():
    x = rand(5)
    with pytest.raises(ValueError, match="slope must be finite and >= 0"):
        nnf.activation(x, "leaky_relu", slope=-0.1)
    with pytest.raises(ValueError, match="slope must be finite and >= 0"):
        nnf.activation_backward(x, x, "leaky_relu", slope=-0.1)
    with pytest.raises(ValueError, match=r"\[activation\] argument 'activation' must be one of"):
        nnf.activation(x, "gelu")
    with pytest.raises(ValueError, match=r"\[activation_backward\] argument 'activation' must"):
        nnf.activation_backward(x, x, "gelu")
    with pytest.raises(ValueError, match=r"\[activation\] argument 'slope' must be a real number"):
        nnf.activation(x, "relu", slope="0.1")
    with pytest.raises(ValueError, match=r"\[activation\]"):
        nnf.activation(x, "relu", out=np.empty(4))
    with pytest.raises(ValueError, match=r"\[activation\]"):
        nnf.activation(x, "relu", out=np.empty(5, np.float32))
    with pytest.raises(ValueError, match=r"\[activation_backward\]"):
        nnf.activation_backward(rand(4), x, "relu")
    with pytest.raises(ValueError, match="must be a NumPy or CuPy array"):
        nnf.activation([1.0, 2.0], "relu")


# ---- softmax / softmax_backward ----

SOFTMAX_SHAPES = [(5, 7), (2, 3, 9), (4, 1), (3, 300)]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES)
def test_softmax_matches_numpy(shape, dtype):
    x = rand(shape, dtype, seed=7, scale=3.0)
    y = nnf.softmax(x)
    assert y.dtype == dtype and y.shape == shape
    assert_close(y, softmax_ref(x), dtype, ops=8, atol=float(np.finfo(dtype).tiny))
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=16 * float(np.finfo(dtype).eps))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 9)])
def test_softmax_backward_matches_finite_differences(shape, dtype):
    x = rand(shape, dtype, seed=8, scale=2.0)
    g = rand(shape, dtype, seed=9)
    y = nnf.softmax(x)
    grad = nnf.softmax_backward(g, y)
    assert grad.dtype == dtype and grad.shape == shape
    g64 = g.astype(np.float64)
    fd = fd_grad(lambda v: float(np.sum(g64 * nnf.softmax(v))), x.astype(np.float64))
    assert_grad(grad, fd, dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 9), (8, 1000)])
def test_softmax_matches_torch(shape, dtype):
    torch = pytest.importorskip("torch")
    x = rand(shape, dtype, seed=10, scale=3.0)
    g = rand(shape, dtype, seed=11)
    y = nnf.softmax(x)
    grad = nnf.softmax_backward(g, y)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = torch.softmax(tx, dim=-1)
    ty.backward(torch.from_numpy(g.copy()))
    t = 16 * float(np.finfo(dtype).eps)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=t, atol=t)
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=t, atol=t * np.abs(g).max())


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_large_values_stay_finite(dtype):
    x = np.array(
        [[1e4, 1e4, 1e4], [1e4, 0.0, -1e4], [-1e4, -1e4 + 1, -1e4 + 2], [1e4, 1e4 - 1, 1e4 - 3]],
        dtype,
    )
    y = nnf.softmax(x)
    assert np.all(np.isfinite(y))
    assert_close(y, softmax_ref(x), dtype, ops=8, atol=float(np.finfo(dtype).tiny))
    np.testing.assert_allclose(y[0], 1.0 / 3.0, rtol=4 * float(np.finfo(dtype).eps))
    np.testing.assert_array_equal(y[1], [1.0, 0.0, 0.0])
    grad = nnf.softmax_backward(np.ones_like(x), y)
    assert np.all(np.isfinite(grad))


def test_softmax_bad_arguments():
    with pytest.raises(ValueError, match=r"\[softmax\]"):
        nnf.softmax(rand((3, 4)), out=np.empty((3, 5)))
    with pytest.raises(ValueError, match=r"\[softmax\]"):
        nnf.softmax(np.ones((3, 4), np.int32))
    with pytest.raises(ValueError, match=r"\[softmax_backward\]"):
        nnf.softmax_backward(rand((3, 4)), rand((3, 4)).astype(np.float32))


# ---- CUDA twins (the CPU result is the oracle) ----


def _cases():
    """name -> fn(dev) returning [(result on host, exact?)]; dev moves a host array."""
    x = rand((300, 257), np.float32, seed=140, scale=3.0)
    x64 = x.astype(np.float64)
    g = rand((300, 257), np.float32, seed=141)
    cases = {}
    cases = {}
    for name, slope in ACTS:

        def act(d, name=name, slope=slope):
            out = []
            for xv, gv in ((x, g), (x64, g.astype(np.float64))):
                y = nnf.activation(d(xv), name, slope=slope)
                out.append((snap(y), False))
                out.append((snap(nnf.activation_backward(d(gv), y, name, slope=slope)), False))
            return out

        cases[f"activation-{name}-{slope}"] = act

    def softmax(d):
        out = []
        for xv in (x, x64, x.reshape(3, 100, 257), np.full((4, 5), 1e4, np.float32)):
            y = nnf.softmax(d(xv))
            gv = rand(xv.shape, xv.dtype, seed=142)
            out += [(snap(y), False), (snap(nnf.softmax_backward(d(gv), y)), False)]
        return out

    cases.update(softmax=softmax)
    return cases


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_device_matches_cpu(device, case):
    fn = CASES[case]
    assert_twin(fn(lambda a: to_device(a, device)), fn(lambda a: a))
