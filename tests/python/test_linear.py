"""The fused linear layer (seisoku.nn.functional.linear, bias_act_dropout_backward,
linear_backward) and its sparse products: float64 NumPy products, central finite differences,
PyTorch where installed; the CPU result is the oracle of the CUDA twins."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import to_device
from reference import (
    ACT_IDS,
    ACTS,
    FLOATS,
    act_ref,
    assert_grad,
    assert_twin,
    fd_grad,
    num_threads,
    rand,
    snap,
    torch_act,
)
from reference import dropout_keep_mask as keep_mask
from seisoku.nn import functional as nnf
from tolerance import gemm_tolerance

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
    """dropout(act(x @ w.T + b)) in float64 with the documented dropout mask; also the bound of the
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


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(3, 5), (33, 70), (700, 301)])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_epilogue_and_dropout_op_draw_the_same_mask(shape, p, dtype):
    """For the same (seed, offset, element index) the fused epilogue (forward and backward)
    drops exactly what the standalone dropout op drops, for 1 and 2 threads."""
    z = np.abs(rand(shape, dtype, seed=81)) + dtype(0.5)
    g = np.ones(shape, dtype)
    kw = {"dropout_p": p, "seed": 21, "offset": 2**40 + 9}
    for threads in (1, 2):
        with num_threads(threads):
            fused = nnf.bias_act_dropout(z, activation="relu", **kw)
            back = nnf.bias_act_dropout_backward(g, fused, activation="relu", **kw)
            plain = nnf.dropout(z, p, 21, 2**40 + 9)
        np.testing.assert_array_equal(fused != 0, plain != 0)
        np.testing.assert_array_equal(back != 0, plain != 0)
        expected = keep_mask(z.size, p, 21, 2**40 + 9).reshape(shape)
        np.testing.assert_array_equal(fused != 0, expected)


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
    with pytest.raises(ValueError, match=r"\[linear\] argument 'activation' must be one of"):
        nnf.linear(x, w, b, activation="softplus")
    with pytest.raises(ValueError, match=r"\[linear\] argument 'seed' must be an int in"):
        nnf.linear(x, w, b, dropout_p=0.5, seed=-1)
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


def exact_share(shape, share, seed, dtype=np.float32):
    """Nonzero normal values at exactly round(share * size) random places, zeros elsewhere."""
    rng = np.random.default_rng(seed)
    size = shape[0] * shape[1]
    keep = np.zeros(size, bool)
    keep[rng.permutation(size)[: round(share * size)]] = True
    values = rng.standard_normal(size) + np.sign(rng.standard_normal(size))
    return np.where(keep, values, 0.0).astype(dtype).reshape(shape)


def sparse_paths(x, w, grad_z):
    """Which path each product of a Linear took, (forward, grad_x, grad_weight), True for
    the sparse one: each product meets an Inf in its right operand with zeros only (column 5
    of x, column 5 of grad_z, sample 7 of grad_z are emptied), which gives NaN only where
    the zeros' terms are multiplied."""
    x, grad_z = x.copy(), grad_z.copy()
    x[:, 5] = 0.0
    grad_z[:, 5] = 0.0
    grad_z[7, :] = 0.0
    w_fwd, w_bwd, x_bwd = w.copy(), w.copy(), x.copy()
    w_fwd[:, 5] = np.inf
    w_bwd[5, :] = np.inf
    x_bwd[7, :] = np.inf
    grad_w = np.empty_like(w)
    forward = np.isfinite(nnf.linear(x, w_fwd)).all()
    grad_x = np.isfinite(nnf.linear_backward(grad_z, x, w_bwd)).all()
    nnf.linear_backward(grad_z, x_bwd, w, need_grad_x=False, grad_weight=grad_w)
    return bool(forward), bool(grad_x), bool(np.isfinite(grad_w).all())


@pytest.mark.parametrize("percent", [30, 40, 45, 50, 60])
def test_linear_sparse_decision_in_the_band(percent):
    """The products of a 800 -> 800 Linear at batch 128 (an MLP's hidden layer) take the
    sparse path up to 40% nonzeros and the dense one from 45% on, where the sparse path
    would be slower, for any thread count; both give the product."""
    x = exact_share((128, 800), percent / 100, seed=percent)
    grad_z = exact_share((128, 800), percent / 100, seed=percent + 1)
    w = rand((800, 800), np.float32, seed=2)
    for threads in (1, 2, 3):  # the split of the work differs, the decision must not
        with num_threads(threads):
            assert sparse_paths(x, w, grad_z) == (percent <= 40,) * 3
    assert_product(nnf.linear(x, w), x, w.T, np.float32)
    grad_w = np.empty_like(w)
    grad_x = nnf.linear_backward(grad_z, x, w, grad_weight=grad_w)
    assert_product(grad_x, grad_z, w, np.float32)
    assert_product(grad_w, grad_z.T, x, np.float32)


def test_linear_sparse_decision_counts_every_column():
    """Nonzeros in every 25th column only (4%), and the reverse at 45%: an evenly strided
    sample of a 128 x 800 operand (stride 25) sees the same 32 columns in every row and
    would take the first for dense and the second for sparse."""
    w = rand((800, 800), np.float32, seed=3)
    lone = np.zeros((128, 800), np.float32)
    lone[:, ::25] = exact_share((128, 32), 1.0, seed=4)
    assert sparse_paths(lone, w, lone) == (True, True, True)
    rest = exact_share((128, 800), 0.45 * 800 / 768, seed=5)
    rest[:, ::25] = 0.0
    assert 0.44 < np.count_nonzero(rest) / rest.size < 0.46
    assert sparse_paths(rest, w, rest) == (False, False, False)
    assert_product(nnf.linear(lone, w), lone, w.T, np.float32)
    assert_product(nnf.linear(rest, w), rest, w.T, np.float32)


@pytest.mark.parametrize("dense_rows", ["even", "odd"])
def test_linear_sparse_decision_samples_rows_across_periods(dense_rows):
    """A product too small to count all of op(A) (512 x 800 into 128 outputs) counts whole
    rows of a sample: with every other row empty it must still see the share, 25% (sparse)
    or 45% (dense), whichever rows hold the nonzeros."""
    x = np.zeros((512, 800), np.float32)
    rows = slice(0, None, 2) if dense_rows == "even" else slice(1, None, 2)
    share = 0.5 if dense_rows == "even" else 0.9
    x[rows] = exact_share((256, 800), share, seed=6)
    w = rand((128, 800), np.float32, seed=7)
    w_inf = w.copy()
    x[:, 5] = 0.0
    w_inf[:, 5] = np.inf
    assert np.isfinite(nnf.linear(x, w_inf)).all() == (dense_rows == "even")
    assert_product(nnf.linear(x, w), x, w.T, np.float32)


def test_linear_sparse_path_declines_narrow_outputs():
    """16 outputs: a pass over each nonzero computes one vector, and counting and
    compacting op(A) alone cost more than the dense product; the dense path runs."""
    x = exact_share((256, 800), 0.05, seed=8)
    assert (
        sparse_paths(x, rand((16, 800), np.float32, seed=9), exact_share((256, 16), 0.05, 10))[0]
        is False
    )


# ---- CUDA twins (the CPU result is the oracle) ----


def _cases():
    """name -> fn(dev) returning [(result on host, exact?)]; dev moves a host array."""
    cases = {}

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

    cases.update(linear=linear)
    return cases


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_device_matches_cpu(device, case):
    fn = CASES[case]
    assert_twin(fn(lambda a: to_device(a, device)), fn(lambda a: a))
