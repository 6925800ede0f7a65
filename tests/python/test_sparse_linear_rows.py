"""SparseLinear's few-sample products (gather-dots for one sample, the transposed batch from
two) against NumPy's dense product of the densified weight over shapes with empty and ragged
rows and row counts that are not multiples of 16, in float32 and float64; and first_row (the
dropout masks of a shard of the batch are those of its rows of the whole batch, as Linear's)."""

from __future__ import annotations

import numpy as np
import pytest

import seisoku as sei
from seisoku import nn
from seisoku.sparse import SparseLinear
from tolerance import gemm_tolerance

SHAPES = [(1, 1), (15, 7), (16, 40), (17, 33), (33, 100), (250, 300), (800, 784)]
ACTS = {
    None: lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
}


def ragged_weight(out, inp, seed, dtype="float32"):
    """A weight whose rows hold from none to all of their entries (empty rows included)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((out, inp)).astype(dtype)
    keep = rng.random((out, inp)) < rng.choice([0.0, 0.02, 0.05, 0.3, 1.0], size=(out, 1))
    w[~keep] = 0
    if out > 2:
        w[1] = 0  # at least one empty row
    return w


def layer_from(w, bias=None, **kw):
    rows, cols = np.nonzero(w)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=w.shape[0]))])
    out, inp = w.shape
    b = nn.Parameter(bias.copy()) if bias is not None else False
    return SparseLinear(inp, out, indptr, cols, np.ascontiguousarray(w[rows, cols]), b, **kw)


def reference(x, w, b=None, act=None):
    z = x.astype(np.float64) @ w.astype(np.float64).T
    return ACTS[act](z if b is None else z + b)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("batch", [1, 2, 3, 4, 5, 9])
def test_few_samples_equal_the_dense_product(shape, batch):
    out, inp = shape
    w = ragged_weight(out, inp, seed=out * 7 + inp)
    b = np.random.default_rng(1).standard_normal(out).astype("float32")
    x = np.random.default_rng(batch).standard_normal((batch, inp)).astype("float32")
    y = layer_from(w, b)(x)
    rtol = gemm_tolerance(np.float32, inp)
    np.testing.assert_allclose(y, reference(x, w, b), rtol=rtol, atol=rtol * 4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_few_samples_give_each_sample_the_bits_of_its_own_product(dtype):
    # One to three samples share the passes over the rows; each sample's sums are its own.
    w = ragged_weight(37, 300, seed=3, dtype=dtype)
    x = np.random.default_rng(4).standard_normal((3, 300)).astype(dtype)
    layer = layer_from(w, np.linspace(-1, 1, 37).astype(dtype), activation="tanh")
    for n in (2, 3):
        y = layer(x[:n]).copy()
        for i in range(n):
            np.testing.assert_array_equal(y[i], layer(np.ascontiguousarray(x[i : i + 1]))[0])


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_single_samples_fuse_bias_and_activation(act, dtype):
    w = ragged_weight(45, 60, seed=5, dtype=dtype)
    b = np.random.default_rng(6).standard_normal(45).astype(dtype)
    x = np.random.default_rng(7).standard_normal((1, 60)).astype(dtype)
    y = layer_from(w, b, activation=act)(x)
    assert y.dtype == np.dtype(dtype) and y.shape == (1, 45)
    rtol = gemm_tolerance(np.dtype(dtype), 60)
    np.testing.assert_allclose(y, reference(x, w, b, act), rtol=rtol, atol=rtol * 4)


def test_inputs_outside_a_rows_columns_do_not_reach_it():
    # An infinite x[0] must reach only the rows that hold column 0.
    w = ragged_weight(40, 50, seed=8)
    w[:20, 0] = 0
    w[20:, 0] = 1.0
    x = np.random.default_rng(9).standard_normal((1, 50)).astype("float32")
    x[0, 0] = np.inf
    y = layer_from(w)(x)
    assert np.all(np.isfinite(y[0, :20]))
    np.testing.assert_allclose(y[0, :20], reference(x[:, 1:], w[:20, 1:])[0], rtol=1e-4, atol=1e-4)
    assert np.all(y[0, 20:] == np.inf)


def test_values_changed_in_place_are_used_at_once():
    w = ragged_weight(70, 90, seed=10)
    layer = layer_from(w)
    x = np.random.default_rng(11).standard_normal((1, 90)).astype("float32")
    layer(x)
    layer.values.value[...] *= -2
    np.testing.assert_allclose(layer(x), reference(x, -2 * w), rtol=1e-4, atol=1e-4)


def test_a_single_sample_gives_the_same_bits_on_1_and_2_threads():
    # 4000 x 1500 with rows from 0% to 100% nonzero: about 1.6M nonzeros, past the work from
    # which a team of threads takes the rows (about 1M multiply-adds).
    w = ragged_weight(4000, 1500, seed=12)
    assert np.count_nonzero(w) > 1.2e6
    x = np.random.default_rng(13).standard_normal((1, 1500)).astype("float32")
    before = sei.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            sei.set_num_threads(threads)
            results.append(layer_from(w)(x).copy())
    finally:
        sei.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], reference(x, w), rtol=1e-3, atol=1e-3)


# -- first_row -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_first_row_gives_a_shard_the_masks_of_its_rows_of_the_whole_batch(dtype):
    w = ragged_weight(11, 6, seed=14, dtype=dtype)
    x = np.random.default_rng(15).standard_normal((12, 6)).astype(dtype)

    def make():
        layer = layer_from(w, np.full(11, 0.5, dtype), activation="relu", dropout=0.5)
        layer.generator = sei.Generator(9)
        return layer

    whole = make()
    assert whole.first_row == 0
    y = whole(x).copy()
    assert np.any(y == 0) and np.any(y != 0)
    g = np.cos(np.arange(y.size, dtype=dtype)).reshape(y.shape)
    gx = whole.backward(g).copy()
    grad = np.zeros_like(whole.values.grad)
    for a, b in [(0, 5), (5, 12), (3, 4)]:
        layer = make()
        layer.first_row = a
        assert layer.first_row == a
        # The same mask; the products of a single sample may round otherwise than a batch's.
        ys = layer(np.ascontiguousarray(x[a:b]))
        np.testing.assert_array_equal(ys == 0, y[a:b] == 0)
        np.testing.assert_allclose(ys, y[a:b], rtol=1e-6, atol=1e-6)
        gs = layer.backward(np.ascontiguousarray(g[a:b]))
        np.testing.assert_array_equal(gs == 0, gx[a:b] == 0)
        np.testing.assert_allclose(gs, gx[a:b], rtol=1e-6, atol=1e-6)
        if (a, b) != (3, 4):
            grad += layer.values.grad
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(grad, whole.values.grad, rtol=tol, atol=tol)


def test_first_row_equals_the_dense_layers_draw_and_rejects_bad_values():
    dense = nn.Linear(6, 11, activation="relu", dropout=0.5)
    sparse = SparseLinear.from_dense(dense)
    dense.generator, sparse.generator = sei.Generator(3), sei.Generator(3)
    dense.first_row = sparse.first_row = 7
    x = np.random.default_rng(16).standard_normal((4, 6)).astype("float32")
    np.testing.assert_allclose(sparse(x), dense(x), rtol=1e-5, atol=1e-6)
    for bad in (-1, 1.5, "3", None):
        with pytest.raises(ValueError, match="first_row"):
            sparse.first_row = bad
