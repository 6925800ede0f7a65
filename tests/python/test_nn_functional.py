"""seisoku.nn.functional (activations, softmax, dropout, Gaussian noise, the fused linear
layer, penalties) and the raw axpy_sign / column_sum bindings.

Oracles: NumPy formulas in float64, central finite differences in float64, PyTorch autograd
where installed, and the Philox stream of seisoku.Generator for every random mask. The CPU
result is the oracle for the CUDA twins.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import seisoku as sei
from conftest import to_device, to_host
from seisoku import _core
from seisoku.nn import functional as nnf
from seisoku.random import philox4x32_10
from tolerance import assert_close, gemm_tolerance

FLOATS = [np.float32, np.float64]
ACTS = [
    ("identity", 0.01),
    ("relu", 0.01),
    ("leaky_relu", 0.1),
    ("leaky_relu", 0.0),
    ("tanh", 0.01),
    ("sigmoid", 0.01),
]
ACT_IDS = [f"{a}-{s}" if a == "leaky_relu" else a for a, s in ACTS]


# ---- helpers ----


def rand(shape, dtype=np.float64, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def away_from_zero(shape, dtype=np.float64, seed=0, margin=0.1):
    """Normal values pushed at least `margin` away from 0 (away from the kinks of relu)."""
    x = rand(shape, np.float64, seed)
    return (x + np.where(x >= 0, margin, -margin)).astype(dtype)


def grad_tol(dtype) -> float:
    """Tolerance of a gradient against a float64 finite difference."""
    return 2e-5 if np.dtype(dtype) == np.float32 else 1e-7


def fd_grad(f, x, h=1e-6):
    """Central finite differences of the scalar f at x, in float64."""
    x = np.array(x, dtype=np.float64)
    g = np.empty_like(x)
    xf, gf = x.reshape(-1), g.reshape(-1)
    for i in range(xf.size):
        old = xf[i]
        xf[i] = old + h
        up = f(x)
        xf[i] = old - h
        down = f(x)
        xf[i] = old
        gf[i] = (up - down) / (2 * h)
    return g


def assert_grad(actual, expected, dtype):
    t = grad_tol(dtype)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=t, atol=t * scale)


@contextlib.contextmanager
def num_threads(n: int):
    old = sei.get_num_threads()
    sei.set_num_threads(n)
    try:
        yield
    finally:
        sei.set_num_threads(old)


def keep_mask(n: int, p: float, seed: int, offset: int) -> np.ndarray:
    """The documented dropout mask: bernoulli(1 - p) of the stream (seed, offset)."""
    return sei.Generator(seed, offset=offset).bernoulli(n, p=1.0 - p, dtype="uint8").astype(bool)


def act_ref(x, name, slope=0.01):
    """NumPy activation in float64 (sigmoid in its overflow-free form)."""
    x = np.asarray(x, np.float64)
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "leaky_relu":
        return np.where(x > 0, x, x * slope)
    if name == "tanh":
        return np.tanh(x)
    if name == "sigmoid":
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return x.copy()


def torch_act(torch, name, slope):
    fn = torch.nn.functional
    return {
        "identity": lambda t: t,
        "relu": fn.relu,
        "leaky_relu": lambda t: fn.leaky_relu(t, negative_slope=slope),
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
    }[name]


def softmax_ref(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


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
    with pytest.raises(ValueError, match="activation must be one of"):
        nnf.activation(x, "gelu")
    with pytest.raises(ValueError, match="activation must be one of"):
        nnf.activation_backward(x, x, "gelu")
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        _core.activation(x, np.empty_like(x), "gelu", 0.01)
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


# ---- dropout ----


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("n", [1, 3, 5, 1003])
def test_dropout_mask_is_bernoulli_of_the_stream(n, p, dtype):
    seed, offset = 1234, 56
    x = away_from_zero(n, dtype, seed=12)
    out = nnf.dropout(x, p, seed, offset, scale=1.7)
    kept = keep_mask(n, p, seed, offset)
    np.testing.assert_array_equal(out != 0, kept)
    np.testing.assert_array_equal(out[kept], x[kept] * dtype(1.7))
    assert np.all(out[~kept] == 0)
    assert out.dtype == dtype


@pytest.mark.parametrize("p", [0.25, 0.6])
def test_dropout_mask_is_the_raw_philox_word_test(p):
    """Element i kept iff word i % 4 of block i / 4 of the stream is < (1 - p) * 2**32."""
    seed, offset, n = 77, 9, 41
    out = nnf.dropout(np.ones(n), p, seed, offset, scale=1.0)
    threshold = (1.0 - p) * 2.0**32
    words = [w for b in range((n + 3) // 4) for w in philox4x32_10(seed, offset, b)][:n]
    np.testing.assert_array_equal(out, [1.0 if w < threshold else 0.0 for w in words])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", [0.2, 0.5, 0.75])
def test_dropout_default_is_inverted(p, dtype):
    x = rand(999, dtype, seed=13)
    out = nnf.dropout(x, p, 5, 6)
    kept = keep_mask(x.size, p, 5, 6)
    np.testing.assert_array_equal(out[kept], x[kept] * dtype(1.0 / (1.0 - p)))
    assert np.all(out[~kept] == 0)
    np.testing.assert_array_equal(nnf.dropout(x, p, 5, 6, scale=1.0 / (1.0 - p)), out)


def test_dropout_seed_and_offset_select_the_stream():
    x = np.ones(4096, np.float32)
    base = nnf.dropout(x, 0.5, 1, 0)
    np.testing.assert_array_equal(nnf.dropout(x, 0.5, 1, 0), base)
    assert not np.array_equal(nnf.dropout(x, 0.5, 2, 0), base)
    assert not np.array_equal(nnf.dropout(x, 0.5, 1, 1), base)
    big = nnf.dropout(x, 0.5, 2**64 - 1, 2**64 - 1)
    np.testing.assert_array_equal(big != 0, keep_mask(x.size, 0.5, 2**64 - 1, 2**64 - 1))


@pytest.mark.parametrize("p", [0.1, 0.3, 0.8])
def test_dropout_keep_rate_and_mean(p):
    n = 1_000_000
    out = nnf.dropout(np.ones(n, np.float32), p, 2024, 3)
    q = 1.0 - p
    rate = np.count_nonzero(out) / n
    assert abs(rate - q) < 5 * np.sqrt(p * q / n)
    # inverted scaling: each element is 1/q w.p. q, else 0 -> mean 1, variance p / q
    assert abs(float(out.astype(np.float64).mean()) - 1.0) < 5 * np.sqrt(p / q / n)


@pytest.mark.parametrize("dtype", FLOATS)
def test_dropout_on_gradient_is_backward(dtype):
    seed, offset, p = 31, 4, 0.4
    x = rand((5, 9), dtype, seed=14)
    g = rand((5, 9), dtype, seed=15)
    grad = nnf.dropout(g, p, seed, offset)
    g64 = g.astype(np.float64)
    fd = fd_grad(lambda v: float(np.sum(g64 * nnf.dropout(v, p, seed, offset))), x)
    assert_grad(grad, fd, dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_dropout_p_zero_copies(dtype):
    x = rand(1001, dtype, seed=16)
    x[:2] = [-0.0, np.nan]
    out = nnf.dropout(x, 0.0, 1, 2)
    assert out is not x
    np.testing.assert_array_equal(out.view(np.uint8), x.view(np.uint8))


@pytest.mark.parametrize("dtype", FLOATS)
def test_dropout_out_may_alias_x(dtype):
    x = rand(5000, dtype, seed=17)
    expected = nnf.dropout(x, 0.3, 8, 9)
    nnf.dropout(x, 0.3, 8, 9, out=x)
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan"), True, "0.5"])
def test_dropout_bad_p(p):
    with pytest.raises(ValueError, match="p must be"):
        nnf.dropout(np.ones(4), p, 0, 0)


def test_dropout_bad_p_native():
    x = np.ones(4)
    for p in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match=r"\[dropout\] p must be"):
            _core.dropout(x, np.empty_like(x), p, 0, 0, 1.0)
    with pytest.raises(ValueError, match="scale must be finite"):
        _core.dropout(x, np.empty_like(x), 0.5, 0, 0, float("inf"))
    with pytest.raises(ValueError, match=r"\[dropout\]"):
        nnf.dropout(np.ones(4, np.int32), 0.5, 0, 0)


@pytest.mark.parametrize("dtype", FLOATS)
def test_dropout_bits_identical_for_one_and_two_threads(dtype):
    x = rand(1_000_003, dtype, seed=18)
    with num_threads(1):
        one = nnf.dropout(x, 0.35, 11, 12)
    with num_threads(2):
        assert sei.get_num_threads() == 2
        two = nnf.dropout(x, 0.35, 11, 12)
    np.testing.assert_array_equal(one.view(np.uint8), two.view(np.uint8))
    np.testing.assert_array_equal(one != 0, keep_mask(x.size, 0.35, 11, 12))


@pytest.mark.parametrize("p", [2.0**-54, 1e-17, 1e-300])
def test_dropout_tiny_p_keeps_everything(p):
    x = rand(64, np.float64, seed=19)
    np.testing.assert_array_equal(keep_mask(x.size, p, 1, 2), np.ones(x.size, bool))
    np.testing.assert_array_equal(nnf.dropout(x, p, 1, 2, scale=1.0), x)


# ---- gaussian_noise ----


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", [1, 2, 3, 5, 1001])
@pytest.mark.parametrize("std", [1.0, 0.3])
def test_gaussian_noise_on_zeros_is_generator_normal(n, std, dtype):
    out = nnf.gaussian_noise(np.zeros(n, dtype), std, 21, 22)
    ref = sei.Generator(21, offset=22).normal(n, std=std, dtype=np.dtype(dtype).name)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("dtype", FLOATS)
def test_gaussian_noise_adds_to_x(dtype):
    x = rand((37, 29), dtype, seed=23)
    out = nnf.gaussian_noise(x, 0.5, 3, 4)
    noise = sei.Generator(3, offset=4).normal(x.shape, std=0.5, dtype=np.dtype(dtype).name)
    # fma(n, std, x) versus x + fl(n * std): at most one rounding apart
    eps = float(np.finfo(dtype).eps)
    np.testing.assert_allclose(out, x + noise, rtol=2 * eps, atol=2 * eps)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("std", [1.0, 2.5])
def test_gaussian_noise_statistics(std, dtype):
    n = 1_000_000
    x = rand(n, dtype, seed=24)
    noise = nnf.gaussian_noise(x, std, 7, 8).astype(np.float64) - x.astype(np.float64)
    assert abs(noise.mean()) < 5 * std / np.sqrt(n)
    assert abs(noise.std() - std) < 5 * std / np.sqrt(2 * n)


@pytest.mark.parametrize("dtype", FLOATS)
def test_gaussian_noise_zero_std_and_aliasing(dtype):
    x = rand(777, dtype, seed=25)
    np.testing.assert_array_equal(nnf.gaussian_noise(x, 0.0, 1, 1), x)
    expected = nnf.gaussian_noise(x, 0.7, 1, 1)
    nnf.gaussian_noise(x, 0.7, 1, 1, out=x)
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("dtype", FLOATS)
def test_gaussian_noise_bits_identical_for_one_and_two_threads(dtype):
    x = rand(1_000_003, dtype, seed=26)
    with num_threads(1):
        one = nnf.gaussian_noise(x, 0.8, 13, 14)
    with num_threads(2):
        two = nnf.gaussian_noise(x, 0.8, 13, 14)
    np.testing.assert_array_equal(one.view(np.uint8), two.view(np.uint8))


@pytest.mark.parametrize("std", [-1.0, float("nan"), float("inf")])
def test_gaussian_noise_bad_std(std):
    with pytest.raises(ValueError, match=r"\[gaussian_noise\] stddev must be"):
        nnf.gaussian_noise(np.ones(4), std, 0, 0)


# ---- linear / bias_act_dropout_backward / linear_backward ----


def linear_case(dtype, n=6, k=5, f=4, seed=0, bias=True, margin=0.05):
    """x (n, k), w (f, k), b (f,) (None without bias) whose pre-activations keep `margin`
    away from 0, relu's kink (no such condition when margin is None)."""
    for s in range(seed, seed + 1000):
        rng = np.random.default_rng(s)
        x = rng.standard_normal((n, k)).astype(dtype)
        w = (rng.standard_normal((f, k)) / np.sqrt(k)).astype(dtype)
        b = rng.standard_normal(f).astype(dtype) if bias else None
        z = x.astype(np.float64) @ w.astype(np.float64).T
        z = z if b is None else z + b
        if margin is None or np.abs(z).min() > margin:
            return x, w, b
    raise AssertionError("no case found")


def linear_ref(x, w, b, name, slope, p, seed, offset, scale=None):
    """dropout(act(x @ w.T + b)) in float64 with the Generator's mask; also the bound of the
    rounding error of each output (|x| @ |w|.T + |b|, times the scale)."""
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    z = x64 @ w64.T
    bound = np.abs(x64) @ np.abs(w64).T
    if b is not None:
        z = z + b
        bound = bound + np.abs(b.astype(np.float64))
    y = act_ref(z, name, slope)
    if p > 0:
        scale = 1.0 / (1.0 - p) if scale is None else scale
        mask = keep_mask(z.size, p, seed, offset).reshape(z.shape)
        y = np.where(mask, y * scale, 0.0)
        bound = bound * scale
    return y, bound + 1.0


def assert_linear_close(out, ref, bound, dtype, k):
    err = np.abs(out.astype(np.float64) - ref)
    assert np.all(err <= gemm_tolerance(dtype, k) * bound), err.max()


def linear_grads(x, w, b, g, name, slope, p, seed, offset, accumulate=False, gw=None, gb=None):
    """seisoku's (grad_x, grad_w, grad_b) of sum(g * linear(x, w, b))."""
    kw = {"activation": name, "slope": slope, "dropout_p": p, "seed": seed, "offset": offset}
    y = nnf.linear(x, w, b, **kw)
    grad_z = nnf.bias_act_dropout_backward(g, y, **kw)
    gw = np.empty_like(w) if gw is None else gw
    gb = (None if b is None else np.empty_like(b)) if gb is None else gb
    gx = nnf.linear_backward(grad_z, x, w, grad_weight=gw, grad_bias=gb, accumulate=accumulate)
    return gx, gw, gb


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5])
@pytest.mark.parametrize(("name", "slope"), ACTS, ids=ACT_IDS)
def test_linear_matches_numpy(name, slope, p, dtype):
    x, w, b = linear_case(dtype, n=33, k=70, f=21, seed=30, margin=None)
    out = nnf.linear(x, w, b, activation=name, slope=slope, dropout_p=p, seed=3, offset=4)
    assert out.dtype == dtype and out.shape == (33, 21)
    ref, bound = linear_ref(x, w, b, name, slope, p, 3, 4)
    assert_linear_close(out, ref, bound, dtype, 70)
    if p > 0:
        dropped = ~keep_mask(out.size, p, 3, 4).reshape(out.shape)
        assert np.all(out[dropped] == 0)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", [0.0, 0.25])
def test_linear_without_bias(p, dtype):
    x, w, _ = linear_case(dtype, n=17, k=40, f=9, seed=31, bias=False, margin=None)
    out = nnf.linear(x, w, activation="tanh", dropout_p=p, seed=5, offset=6)
    ref, bound = linear_ref(x, w, None, "tanh", 0.01, p, 5, 6)
    assert_linear_close(out, ref, bound, dtype, 40)
    plain = nnf.linear(x, w)
    ref, bound = linear_ref(x, w, None, "identity", 0.01, 0.0, 0, 0)
    assert_linear_close(plain, ref, bound, dtype, 40)


@pytest.mark.parametrize("dtype", FLOATS)
def test_linear_dropout_scale_and_out(dtype):
    x, w, b = linear_case(dtype, n=8, k=10, f=6, seed=32)
    out = np.full((8, 6), np.nan, dtype)
    res = nnf.linear(x, w, b, activation="relu", dropout_p=0.4, dropout_scale=1.0, seed=1, out=out)
    assert res is out
    ref, bound = linear_ref(x, w, b, "relu", 0.01, 0.4, 1, 0, scale=1.0)
    assert_linear_close(out, ref, bound, dtype, 10)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", [0.0, 0.4])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("name", "slope"), ACTS, ids=ACT_IDS)
def test_linear_backward_matches_finite_differences(name, slope, bias, p, dtype):
    seed, offset = 41, 2
    x, w, b = linear_case(dtype, seed=40, bias=bias)
    g = rand((x.shape[0], w.shape[0]), dtype, seed=42)
    gx, gw, gb = linear_grads(x, w, b, g, name, slope, p, seed, offset)
    assert gx.dtype == dtype and gx.shape == x.shape and gw.shape == w.shape

    x64, w64, g64 = x.astype(np.float64), w.astype(np.float64), g.astype(np.float64)
    b64 = None if b is None else b.astype(np.float64)
    kw = {"activation": name, "slope": slope, "dropout_p": p, "seed": seed, "offset": offset}

    def loss(xv, wv, bv):
        return float(np.sum(g64 * nnf.linear(xv, wv, bv, **kw)))

    assert_grad(gx, fd_grad(lambda v: loss(v, w64, b64), x64), dtype)
    assert_grad(gw, fd_grad(lambda v: loss(x64, v, b64), w64), dtype)
    if bias:
        assert_grad(gb, fd_grad(lambda v: loss(x64, w64, v), b64), dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("name", "slope"), ACTS, ids=ACT_IDS)
def test_linear_matches_torch(name, slope, bias, dtype):
    torch = pytest.importorskip("torch")
    x, w, b = linear_case(dtype, n=16, k=24, f=12, seed=50, bias=bias, margin=1e-3)
    g = rand((16, 12), dtype, seed=51)
    y = nnf.linear(x, w, b, activation=name, slope=slope)
    gx, gw, gb = linear_grads(x, w, b, g, name, slope, 0.0, 0, 0)

    tx = torch.from_numpy(x.copy()).requires_grad_()
    tw = torch.from_numpy(w.copy()).requires_grad_()
    tb = None if b is None else torch.from_numpy(b.copy()).requires_grad_()
    ty = torch_act(torch, name, slope)(torch.nn.functional.linear(tx, tw, tb))
    (ty * torch.from_numpy(g.copy())).sum().backward()
    t = gemm_tolerance(dtype, 24)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=t, atol=t)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=t, atol=t)
    np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=t, atol=t * 4)
    if bias:
        np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=t, atol=t * 4)


@pytest.mark.parametrize("dtype", FLOATS)
def test_linear_backward_accumulate(dtype):
    x, w, b = linear_case(dtype, seed=60)
    g = rand((x.shape[0], w.shape[0]), dtype, seed=61)
    fresh_x, fresh_w, fresh_b = linear_grads(x, w, b, g, "sigmoid", 0.01, 0.3, 9, 1)
    w0, b0 = rand(w.shape, dtype, seed=62), rand(b.shape, dtype, seed=63)
    gw, gb = w0.copy(), b0.copy()
    gx, gw2, gb2 = linear_grads(x, w, b, g, "sigmoid", 0.01, 0.3, 9, 1, True, gw, gb)
    assert gw2 is gw and gb2 is gb
    np.testing.assert_array_equal(gx, fresh_x)
    t = 8 * float(np.finfo(dtype).eps)
    np.testing.assert_allclose(gw, w0 + fresh_w, rtol=t, atol=t)
    np.testing.assert_allclose(gb, b0 + fresh_b, rtol=t, atol=t)
    # accumulate=False overwrites whatever was there, NaN included
    gw, gb = np.full_like(w, np.nan), np.full_like(b, np.nan)
    linear_grads(x, w, b, g, "sigmoid", 0.01, 0.3, 9, 1, False, gw, gb)
    np.testing.assert_array_equal(gw, fresh_w)
    np.testing.assert_array_equal(gb, fresh_b)


@pytest.mark.parametrize("dtype", FLOATS)
def test_linear_backward_without_grad_x(dtype):
    x, w, b = linear_case(dtype, seed=70)
    grad_z = rand((x.shape[0], w.shape[0]), dtype, seed=71)
    gw, gb = np.empty_like(w), np.empty_like(b)
    assert (
        nnf.linear_backward(grad_z, x, w, need_grad_x=False, grad_weight=gw, grad_bias=gb) is None
    )
    g64 = grad_z.astype(np.float64)
    t = gemm_tolerance(dtype, x.shape[0])
    np.testing.assert_allclose(gw, g64.T @ x.astype(np.float64), rtol=t, atol=t)
    np.testing.assert_allclose(gb, g64.sum(axis=0), rtol=t, atol=t)
    gx = nnf.linear_backward(grad_z, x, w)
    np.testing.assert_allclose(gx, g64 @ w.astype(np.float64), rtol=t, atol=t)


def test_bias_act_dropout_backward_uses_the_same_mask():
    x, w, b = linear_case(np.float64, n=50, k=8, f=40, seed=80, margin=None)
    y = nnf.linear(x, w, b, activation="identity", dropout_p=0.5, seed=3, offset=7)
    grad_z = nnf.bias_act_dropout_backward(
        np.ones_like(y), y, activation="identity", dropout_p=0.5, seed=3, offset=7
    )
    kept = keep_mask(y.size, 0.5, 3, 7).reshape(y.shape)
    np.testing.assert_array_equal(grad_z, np.where(kept, 2.0, 0.0))


def test_linear_bad_arguments():
    x, w, b = linear_case(np.float32, n=4, k=5, f=3, seed=90)
    with pytest.raises(ValueError, match=r"\[linear\] x has 6 features"):
        nnf.linear(np.ones((4, 6), np.float32), w)
    with pytest.raises(ValueError, match=r"\[linear\] x and weight must be 2-D"):
        nnf.linear(np.ones(5, np.float32), w)
    with pytest.raises(ValueError, match=r"\[linear\] x must be 2-D"):
        nnf.linear(np.ones(5, np.float32), w, out=np.empty((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[linear\] out must have shape"):
        nnf.linear(x, w, out=np.empty((4, 4), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        nnf.linear(x.astype(np.float64), w)
    with pytest.raises(ValueError, match="dtype"):
        nnf.linear(x, w, b.astype(np.float64))
    with pytest.raises(ValueError, match=r"\[linear\] bias must have shape \(3,\)"):
        nnf.linear(x, w, np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"\[linear\] bias must have shape \(3,\)"):
        nnf.linear(x, w, np.ones((1, 3), np.float32))
    for p in (1.0, -0.5):
        with pytest.raises(ValueError, match="dropout_p must be"):
            nnf.linear(x, w, b, dropout_p=p)
        with pytest.raises(ValueError, match="dropout_p must be"):
            nnf.bias_act_dropout_backward(x, x, dropout_p=p)
    with pytest.raises(ValueError, match="activation must be one of"):
        nnf.linear(x, w, b, activation="softplus")
    with pytest.raises(ValueError, match="slope must be finite and >= 0"):
        nnf.linear(x, w, b, activation="leaky_relu", slope=-1.0)
    with pytest.raises(ValueError, match=r"\[linear_backward\] shapes do not match"):
        nnf.linear_backward(np.ones((4, 2), np.float32), x, w)
    with pytest.raises(ValueError, match=r"\[bias_act_dropout_backward\]"):
        nnf.bias_act_dropout_backward(np.ones((4, 2), np.float32), np.ones((4, 3), np.float32))


def test_linear_tiny_dropout_p_keeps_everything():
    x, w, b = linear_case(np.float64, n=4, k=5, f=3, seed=91)
    plain = nnf.linear(x, w, b)
    np.testing.assert_array_equal(nnf.linear(x, w, b, dropout_p=1e-17, dropout_scale=1.0), plain)


# ---- linear with sparse operands (CPU) ---------------------------------------------------


def sparse_rand(shape, density, dtype, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * (rng.random(shape) < density)).astype(dtype)


def assert_product(actual, a, b, dtype, add=None):
    """actual == a @ b (+ add) within the dot-product tolerance, a and b in float64."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = a64 @ b64 + (0 if add is None else add)
    scale = np.abs(a64) @ np.abs(b64) + (0 if add is None else np.abs(add))
    err = np.abs(np.asarray(actual, np.float64) - ref)
    assert np.all(err <= gemm_tolerance(dtype, a.shape[1]) * scale + 1e-300)


SPARSE_CASES = [
    (128, 800, 784, 0.25),
    (64, 130, 200, 0.1),
    (37, 203, 331, 0.39),
    (300, 70, 129, 0.02),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("n", "f", "k", "density"), SPARSE_CASES)
def test_linear_sparse_operands_match_numpy(dtype, n, f, k, density):
    """Forward with a sparse x, backward with a sparse grad_z (both products, accumulate on
    and off), against float64 products; the shapes leave partial column blocks and tails."""
    x = sparse_rand((n, k), density, dtype, seed=n + k)
    w = rand((f, k), dtype, seed=f)
    assert_product(nnf.linear(x, w), x, w.T, dtype)
    grad_z = sparse_rand((n, f), density, dtype, seed=n + f)
    x_dense = rand((n, k), dtype, seed=k)
    grad_w = rand((f, k), dtype, seed=7)
    start = grad_w.astype(np.float64)
    grad_x = nnf.linear_backward(grad_z, x_dense, w, grad_weight=grad_w, accumulate=True)
    assert_product(grad_x, grad_z, w, dtype)
    assert_product(grad_w, grad_z.T, x_dense, dtype, add=start)
    nnf.linear_backward(grad_z, x_dense, w, need_grad_x=False, grad_weight=grad_w)
    assert_product(grad_w, grad_z.T, x_dense, dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_linear_sparse_operand_with_dense_and_empty_rows(dtype):
    """Rows of every density in one sparse operand: all nonzero (the packing reaches the
    row's end), all zero, and a lone nonzero in the last column."""
    x = sparse_rand((96, 203), 0.1, dtype, seed=20)
    x[:10] = rand((10, 203), dtype, seed=21) + 3.0
    x[10:20] = 0.0
    x[20, :] = 0.0
    x[20, -1] = 2.0
    w = rand((150, 203), dtype, seed=22)
    y = nnf.linear(x, w)
    assert_product(y, x, w.T, dtype)
    assert not y[10:20].any()


def test_linear_sparse_path_skips_zero_terms_and_dense_path_does_not():
    """Observable difference of the two paths: an Inf weight that meets only zeros. At 25%
    nonzeros the zeros' terms are left out (finite outputs, equal to the product without that
    column); at 60% the dense product runs and Inf * 0 gives NaN."""
    n, f, k = 128, 96, 256
    w = rand((f, k), np.float64, seed=3)
    w[:, 5] = np.inf
    for density, sparse in ((0.25, True), (0.6, False)):
        x = sparse_rand((n, k), density, np.float64, seed=4)
        x[:, 5] = 0.0
        y = nnf.linear(x, w)
        if sparse:
            keep = np.arange(k) != 5
            assert_product(y, x[:, keep], w[:, keep].T, np.float64)
        else:
            assert np.isnan(y).all()
    # backward: grad_x = grad_z @ w (an Inf row of w met by a zero column of grad_z) and
    # grad_w = grad_z.T @ x (an Inf row of x met by a zero row of grad_z)
    grad_z = sparse_rand((n, k), 0.25, np.float64, seed=5)
    grad_z[:, 9] = 0.0
    grad_z[11, :] = 0.0
    w2 = rand((k, f), np.float64, seed=6)
    w2[9, :] = np.inf
    x2 = rand((n, f), np.float64, seed=7)
    x2[11, :] = np.inf
    grad_w = np.empty((k, f))
    grad_x = nnf.linear_backward(grad_z, x2, w2, grad_weight=grad_w)
    rows = np.arange(k) != 9
    assert_product(grad_x, grad_z[:, rows], w2[rows], np.float64)
    samples = np.arange(n) != 11
    assert_product(grad_w, grad_z[samples].T, x2[samples], np.float64)


def test_linear_sparse_path_keeps_nan_inputs():
    x = sparse_rand((128, 256), 0.2, np.float32, seed=8)
    x[3, 10] = np.nan
    y = nnf.linear(x, rand((64, 256), np.float32, seed=9))
    assert np.isnan(y[3]).all() and np.isfinite(np.delete(y, 3, axis=0)).all()


@pytest.mark.parametrize("dtype", FLOATS)
def test_linear_sparse_bits_do_not_depend_on_threads_or_the_batch(dtype):
    x = sparse_rand((200, 300), 0.25, dtype, seed=10)
    w = rand((500, 300), dtype, seed=11)
    grad_z = sparse_rand((200, 500), 0.25, dtype, seed=12)
    runs = []
    for threads in (1, 2, 3):
        with num_threads(threads):
            grad_w = np.empty_like(w)
            grad_x = nnf.linear_backward(grad_z, x, w, grad_weight=grad_w)
            runs.append((nnf.linear(x, w), grad_x, grad_w))
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))
    # a sample's outputs are the same bits in a batch of 200 and in a batch of 60
    np.testing.assert_array_equal(nnf.linear(x[100:160], w), runs[0][0][100:160])


def test_linear_sparse_rejects_mismatched_dtypes_before_reading():
    x = sparse_rand((128, 300), 0.2, np.float32, seed=13)
    with pytest.raises(ValueError, match=r"\[linear\] x and weight must have the same dtype"):
        nnf.linear(x, rand((64, 300), np.float64, seed=14), out=np.empty((128, 64), np.float32))
    bad = r"\[linear_backward\] grad_z and x must have the same dtype"
    with pytest.raises(ValueError, match=bad):
        nnf.linear_backward(x, rand((128, 64)), rand((300, 64)), grad_x=np.empty((128, 64)))
    with pytest.raises(ValueError, match=r"\[linear_backward\] grad_weight and grad_z must have"):
        grad_z = sparse_rand((128, 300), 0.2, np.float64, seed=15)
        nnf.linear_backward(
            grad_z, rand((128, 64)), rand((300, 64)), grad_weight=np.empty((300, 64), np.float32)
        )
    with pytest.raises(ValueError, match=r"\[linear_backward\] grad_x must have shape \(128, 64\)"):
        nnf.linear_backward(grad_z, rand((128, 64)), rand((300, 64)), grad_x=np.empty((64, 128)))


# ---- axpy_sign ----


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("alpha", [0.5, -2.0, 0.0])
def test_axpy_sign(alpha, dtype):
    x = rand(1000, dtype, seed=100)
    x[:4] = [0.0, -0.0, 1e-300 if dtype == np.float64 else 1e-40, -np.inf]
    y = rand(1000, dtype, seed=101)
    expected = y + dtype(alpha) * np.sign(x).astype(dtype)
    _core.axpy_sign(alpha, x, y)
    np.testing.assert_array_equal(y, expected)
    assert y[0] == expected[0] and y[1] == expected[1]  # sign(+-0) = 0


def test_axpy_sign_bad_arguments():
    with pytest.raises(ValueError, match=r"\[axpy_sign\]"):
        _core.axpy_sign(1.0, np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match=r"\[axpy_sign\]"):
        _core.axpy_sign(float("nan"), np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"\[axpy_sign\]"):
        _core.axpy_sign(1.0, np.ones(3, np.float32), np.ones(3))


# ---- column_sum ----


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (300, 513), (2, 3000)])
def test_column_sum(shape, dtype):
    x = rand(shape, dtype, seed=110)
    out = np.full(shape[1], np.nan, dtype)
    _core.column_sum(x, out, False)
    ref = x.astype(np.float64).sum(axis=0)
    assert_close(out, ref, dtype, ops=2, atol=16 * float(np.finfo(dtype).eps) * shape[0])
    start = rand(shape[1], dtype, seed=111)
    acc = start.copy()
    _core.column_sum(x, acc, True)
    assert_close(acc, ref + start, dtype, ops=2, atol=16 * float(np.finfo(dtype).eps) * shape[0])


@pytest.mark.parametrize("dtype", FLOATS)
def test_column_sum_bits_identical_for_one_and_two_threads(dtype):
    x = rand((400, 3001), dtype, seed=112, scale=100.0)
    outs = []
    for threads in (1, 2):
        with num_threads(threads):
            out = rand(3001, dtype, seed=113)
            _core.column_sum(x, out, True)
            outs.append(out)
    np.testing.assert_array_equal(outs[0].view(np.uint8), outs[1].view(np.uint8))


def test_column_sum_bad_arguments():
    with pytest.raises(ValueError, match=r"\[column_sum\] x must be 2-D"):
        _core.column_sum(np.ones(3), np.empty(3), False)
    with pytest.raises(ValueError, match=r"\[column_sum\]"):
        _core.column_sum(np.ones((2, 3)), np.empty(2), False)


# ---- activity_penalty ----


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("ord_", [1, 2])
@pytest.mark.parametrize("shape", [(8,), (6, 5), (4, 3, 2)])
def test_activity_penalty(shape, ord_, dtype):
    lam = 0.3
    x = away_from_zero(shape, dtype, seed=120)
    g0 = rand(shape, dtype, seed=121)
    grad = g0.copy()
    value = nnf.activity_penalty(x, lam, ord_, grad)
    assert value.shape == () and value.dtype == dtype
    n = shape[0]
    x64 = x.astype(np.float64)
    ref = lam / n * (np.abs(x64).sum() if ord_ == 1 else (x64**2).sum())
    assert_close(value, ref, dtype, ops=8)
    step = lam / n * np.sign(x64) if ord_ == 1 else 2 * lam / n * x64
    assert_close(grad - g0.astype(np.float64), step, dtype, ops=4, atol=4 * grad_tol(dtype))

    def penalty(v):
        return float(nnf.activity_penalty(v, lam, ord_, np.zeros_like(v)))

    assert_grad(grad.astype(np.float64) - g0, fd_grad(penalty, x64), dtype)


def test_activity_penalty_bad_arguments():
    x = rand((3, 4))
    with pytest.raises(ValueError, match="ord must be 1 or 2"):
        nnf.activity_penalty(x, 0.1, 3, np.zeros_like(x))
    for lam in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lambda must be finite and >= 0"):
            nnf.activity_penalty(x, lam, 1, np.zeros_like(x))
    with pytest.raises(ValueError, match=r"\[activity_penalty\]"):
        nnf.activity_penalty(x, 0.1, 1, np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"\[activity_penalty\]"):
        nnf.activity_penalty(np.zeros((0, 4)), 0.1, 1, np.zeros((0, 4)))


@pytest.mark.parametrize("ord_", [1.5, 2.9])
def test_activity_penalty_rejects_non_integer_ord(ord_):
    x = rand((3, 4))
    with pytest.raises(ValueError, match="ord must be 1 or 2"):
        nnf.activity_penalty(x, 0.1, ord_, np.zeros_like(x))


def test_activity_penalty_value_does_not_overflow_in_float32():
    x = np.array([[1e20, -1e20]], np.float32)
    value = nnf.activity_penalty(x, 1e-10, 2, np.zeros_like(x))
    assert_close(value, 1e-10 * 2e40, np.float32, ops=8)


# ---- tying_penalty ----


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(7,), (4, 6)])
def test_tying_penalty(shape, dtype):
    lam = 0.25
    a, b = rand(shape, dtype, seed=130), rand(shape, dtype, seed=131)
    ga0, gb0 = rand(shape, dtype, seed=132), rand(shape, dtype, seed=133)
    ga, gb = ga0.copy(), gb0.copy()
    value = nnf.tying_penalty(a, b, lam, ga, gb)
    assert value.shape == () and value.dtype == dtype
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    d = a64 - b64
    assert_close(value, lam * (d**2).sum(), dtype, ops=8)
    t = grad_tol(dtype)
    np.testing.assert_allclose(ga - ga0.astype(np.float64), 2 * lam * d, rtol=t, atol=t)
    np.testing.assert_allclose(gb - gb0.astype(np.float64), -2 * lam * d, rtol=t, atol=t)

    def penalty(av, bv):
        return float(nnf.tying_penalty(av, bv, lam, np.zeros_like(av), np.zeros_like(bv)))

    assert_grad(ga.astype(np.float64) - ga0, fd_grad(lambda v: penalty(v, b64), a64), dtype)
    assert_grad(gb.astype(np.float64) - gb0, fd_grad(lambda v: penalty(a64, v), b64), dtype)


def test_tying_penalty_bad_arguments():
    a = rand(4)
    z = np.zeros(4)
    with pytest.raises(ValueError, match="lambda must be finite and >= 0"):
        nnf.tying_penalty(a, a, -1.0, z.copy(), z.copy())
    with pytest.raises(ValueError, match=r"\[tying_penalty\]"):
        nnf.tying_penalty(a, rand(5), 1.0, z.copy(), z.copy())
    with pytest.raises(ValueError, match=r"\[tying_penalty\]"):
        nnf.tying_penalty(a, a.astype(np.float32), 1.0, z.copy(), z.copy())


def test_tying_penalty_value_does_not_overflow_in_float32():
    a, b = np.array([1e20], np.float32), np.array([-1e20], np.float32)
    value = nnf.tying_penalty(a, b, 1e-10, np.zeros_like(a), np.zeros_like(b))
    assert_close(value, 1e-10 * 4e40, np.float32, ops=8)


# ---- the Philox stream arguments of the stochastic ops ----


@pytest.mark.parametrize("bad", [-1, 2**64])
@pytest.mark.parametrize("op", ["dropout", "gaussian_noise", "linear"])
def test_stream_arguments_out_of_range_raise_valueerror(op, bad):
    x = np.ones((2, 3))
    call = {
        "dropout": lambda: nnf.dropout(x, 0.5, bad, 0),
        "gaussian_noise": lambda: nnf.gaussian_noise(x, 0.5, 0, bad),
        "linear": lambda: nnf.linear(x, np.ones((4, 3)), dropout_p=0.5, seed=bad),
    }[op]
    with pytest.raises(ValueError):
        call()


# ---- CUDA twins (the CPU result is the oracle) ----


def snap(a) -> np.ndarray:
    """A host copy of a (to_host alone returns a NumPy array itself, which a later in-place
    op would change)."""
    return np.array(to_host(a))


def _cases():
    """name -> fn(dev) returning [(result on host, exact?)]; dev moves a host array."""
    x = rand((300, 257), np.float32, seed=140, scale=3.0)
    x64 = x.astype(np.float64)
    g = rand((300, 257), np.float32, seed=141)
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

    def dropout(d):
        out = []
        for xv in (x, x64, rand(1_000_003, np.float32, seed=143)):
            out.append((snap(nnf.dropout(d(xv), 0.3, 17, 2**40 + 3)), True))
            out.append((snap(nnf.dropout(d(xv), 0.6, 18, 1, scale=1.0)), True))
            out.append((snap(nnf.dropout(d(xv), 0.0, 18, 1)), True))
        return out

    def gaussian_noise(d):
        out = []
        for xv in (x, x64, rand(1_000_003, np.float64, seed=144)):
            out.append((snap(nnf.gaussian_noise(d(xv), 0.7, 19, 5)), True))
        return out

    def linear(d):
        out = []
        for dtype in FLOATS:
            xv, w, b = linear_case(dtype, n=64, k=48, f=80, seed=145, margin=None)
            gv = rand((64, 80), dtype, seed=146)
            # identity epilogue: an output is 0 exactly where the mask drops it
            y = nnf.linear(d(xv), d(w), d(b), dropout_p=0.4, seed=20, offset=21)
            out += [(snap(y) == 0, True), (snap(y), False)]
            for name, slope in ACTS:
                kw = {"activation": name, "slope": slope, "dropout_p": 0.3, "seed": 22}
                y = nnf.linear(d(xv), d(w), d(b), **kw)
                gz = nnf.bias_act_dropout_backward(d(gv), y, **kw)
                gw, gb = d(np.full_like(w, 0.5)), d(np.full_like(b, 0.5))
                gx = nnf.linear_backward(gz, d(xv), d(w), grad_weight=gw, grad_bias=gb)
                out += [(snap(a), False) for a in (y, gz, gx, gw, gb)]
                nnf.linear_backward(gz, d(xv), d(w), grad_weight=gw, grad_bias=gb, accumulate=True)
                out += [(snap(gw), False), (snap(gb), False)]
        return out

    def axpy_sign(d):
        out = []
        for xv in (x, x64):
            xv = xv.copy()
            xv[0, :2] = [0.0, -0.0]
            y = d(rand(xv.shape, xv.dtype, seed=147))
            _core.axpy_sign(-0.25, d(xv), y)
            out.append((snap(y), True))
        return out

    def column_sum(d):
        out = []
        for xv in (x, x64):
            o = d(rand(xv.shape[1], xv.dtype, seed=148))
            _core.column_sum(d(xv), o, False)
            out.append((snap(o), False))
            _core.column_sum(d(xv), o, True)
            out.append((snap(o), False))
        return out

    def penalties(d):
        out = []
        for xv in (x, x64):
            for ord_ in (1, 2):
                gr = d(np.ones_like(xv))
                out += [(snap(nnf.activity_penalty(d(xv), 0.2, ord_, gr)), False)]
                out += [(snap(gr), False)]
            bv = rand(xv.shape, xv.dtype, seed=149)
            ga, gb = d(np.ones_like(xv)), d(np.zeros_like(xv))
            out += [(snap(nnf.tying_penalty(d(xv), d(bv), 0.1, ga, gb)), False)]
            out += [(snap(ga), False), (snap(gb), False)]
        return out

    cases.update(
        softmax=softmax,
        dropout=dropout,
        gaussian_noise=gaussian_noise,
        linear=linear,
        axpy_sign=axpy_sign,
        column_sum=column_sum,
        penalties=penalties,
    )
    return cases


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_device_matches_cpu(device, case):
    fn = CASES[case]
    ref = fn(lambda a: a)
    got = fn(lambda a: to_device(a, device))
    assert len(got) == len(ref)
    for (a, exact), (r, _) in zip(got, ref):
        assert a.dtype == r.dtype and a.shape == r.shape
        if exact:
            np.testing.assert_array_equal(a.view(np.uint8), r.view(np.uint8))
        else:
            t = 64 * float(np.finfo(r.dtype).eps)
            scale = max(1.0, float(np.abs(r).max()))
            np.testing.assert_allclose(a, r, rtol=t, atol=t * scale)


def test_dropout_large_float32_output_matches_the_stream():
    # 2**21 + 5 elements: large enough for the streaming-store path, with a ragged tail.
    n = (1 << 21) + 5
    x = np.random.default_rng(4).random(n, dtype=np.float32) + 0.5
    y = nnf.dropout(x, 0.3, 5, 7)
    kept = sei.Generator(5, offset=7).bernoulli(n, p=0.7, dtype="uint8").astype(bool)
    np.testing.assert_array_equal(y != 0, kept)
    np.testing.assert_array_equal(y[kept], x[kept] * np.float32(1 / 0.7))
