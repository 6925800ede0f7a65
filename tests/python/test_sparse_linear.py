"""SparseLinear (a pruned Linear in compressed sparse rows) and seisoku.sparse.to_sparse: the
forward against NumPy's dense product on the densified weight (every batch path, activation,
dtype), the input, value and bias gradients against NumPy and central differences, results
independent of the thread count, fine-tuning equal to masked dense training, conversion of
pruned models (Sequential kept, shared weights left dense), copies, and bad input."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import seisoku as sei
from conftest import requires_cuda, to_device, to_host
from gradcheck import check_gradients, objective, weighted_sum
from seisoku import nn, optim
from seisoku.prune import Masks, magnitude_prune
from seisoku.sparse import SparseLinear, to_dense, to_sparse
from seisoku.train import Trainer
from tolerance import gemm_tolerance

ACTS = {
    None: lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
}


def pruned_weight(out, inp, sparsity, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((out, inp)).astype(dtype)
    w[rng.random((out, inp)) < sparsity] = 0
    return w


def csr(w):
    rows, cols = np.nonzero(w)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=w.shape[0]))])
    return indptr, cols, w[rows, cols]


def layer_from(w, bias=None, **kw):
    indptr, indices, values = csr(w)
    out, inp = w.shape
    b = nn.Parameter(bias.copy()) if bias is not None else False
    return SparseLinear(inp, out, indptr, indices, np.ascontiguousarray(values), b, **kw)


def dense_reference(x, w, b, act):
    z = x.astype(np.float64) @ w.astype(np.float64).T
    if b is not None:
        z = z + b
    return ACTS[act](z)


# -- forward -------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 2, 3, 4, 5, 17, 64, 128])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.95])
def test_forward_equals_the_dense_product_of_the_densified_weight(batch, sparsity):
    w = pruned_weight(29, 37, sparsity, seed=batch)
    b = np.random.default_rng(1).standard_normal(29).astype("float32")
    x = np.random.default_rng(2).standard_normal((batch, 37)).astype("float32")
    y = layer_from(w, b)(x)
    rtol = gemm_tolerance(np.float32, 37)
    np.testing.assert_allclose(y, dense_reference(x, w, b, None), rtol=rtol, atol=rtol * 4)
    assert y.shape == (batch, 29) and y.dtype == np.float32


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [1, 40])
def test_forward_fuses_bias_and_every_activation(act, dtype, batch):
    w = pruned_weight(50, 70, 0.9, seed=3, dtype=dtype)
    b = np.random.default_rng(4).standard_normal(50).astype(dtype)
    x = np.random.default_rng(5).standard_normal((batch, 70)).astype(dtype)
    y = layer_from(w, b, activation=act)(x)
    assert y.dtype == np.dtype(dtype)
    rtol = gemm_tolerance(np.dtype(dtype), 70)
    np.testing.assert_allclose(y, dense_reference(x, w, b, act), rtol=rtol, atol=rtol)


def test_empty_rows_and_an_all_zero_weight_give_the_activated_bias():
    w = np.zeros((6, 20), "float32")
    w[2, 5] = 1.5
    b = np.arange(6, dtype="float32") - 2
    x = np.random.default_rng(0).standard_normal((9, 20)).astype("float32")
    y = layer_from(w, b, activation="relu")(x)
    np.testing.assert_allclose(y, dense_reference(x, w, b, "relu"), rtol=1e-6)
    y0 = layer_from(np.zeros((6, 20), "float32"), b)(x)
    np.testing.assert_array_equal(y0, np.broadcast_to(b, (9, 6)))


@pytest.mark.parametrize("batch", [20, 128])
def test_results_are_the_same_bits_on_1_and_2_threads(batch):
    # Large enough to run on both threads (a team is woken from about 1M multiply-add lanes).
    w = pruned_weight(800, 700, 0.9, seed=7)
    x = np.random.default_rng(8).standard_normal((batch, 700)).astype("float32")
    g = np.random.default_rng(9).standard_normal((batch, 800)).astype("float32")
    results = []
    before = sei.get_num_threads()
    try:
        for threads in (1, 2):
            sei.set_num_threads(threads)
            layer = layer_from(w, np.ones(800, "float32"), activation="tanh")
            y = layer(x).copy()
            gx = layer.backward(g).copy()
            results.append((y, gx, layer.values.grad.copy(), layer.bias.grad.copy()))
    finally:
        sei.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# -- backward ------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3, 4, 33, 128])
def test_backward_gives_the_input_value_and_bias_gradients_of_numpy(batch):
    w = pruned_weight(45, 60, 0.85, seed=batch, dtype="float64")
    x = np.random.default_rng(10).standard_normal((batch, 60))
    g = np.random.default_rng(11).standard_normal((batch, 45))
    layer = layer_from(w, np.zeros(45))
    layer(x)
    gx = layer.backward(g)
    rows, cols = np.nonzero(w)
    np.testing.assert_allclose(gx, g @ w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.values.grad, (g.T @ x)[rows, cols], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, g.sum(axis=0), rtol=1e-12, atol=1e-12)


def test_gradients_match_central_differences_through_relu():
    w = pruned_weight(12, 15, 0.7, seed=12, dtype="float64")
    model = nn.Sequential(layer_from(w, np.linspace(-0.5, 0.5, 12), activation="tanh"))
    x = np.random.default_rng(13).standard_normal((6, 15))
    weights = np.random.default_rng(14).standard_normal((6, 12))
    check_gradients(model, x, objective(model, weighted_sum(weights)), entries=6)


def test_backward_adds_into_gradients_until_zero_grad():
    w = pruned_weight(20, 30, 0.8, seed=15, dtype="float64")
    layer = layer_from(w, np.zeros(20))
    x = np.random.default_rng(16).standard_normal((8, 30))
    g = np.random.default_rng(17).standard_normal((8, 20))
    layer(x)
    layer.backward(g, need_input_grad=False)
    first = layer.values.grad.copy()
    layer(x)
    layer.backward(g)
    np.testing.assert_allclose(layer.values.grad, 2 * first, rtol=1e-14)
    layer.zero_grad()
    layer(x)
    layer.backward(g)
    np.testing.assert_allclose(layer.values.grad, first, rtol=1e-14)


def test_fine_tuning_equals_masked_dense_training():
    """SGD with momentum and weight decay on the sparse model gives the parameters of the dense
    model trained with its pruning masks attached (the pattern never changes)."""
    dense = nn.mlp((20, 32, 16, 4), generator=sei.Generator(3), dtype="float64")
    masks = magnitude_prune(dense, 0.9)
    sparse = to_sparse(dense)
    opt_d = optim.SGD(dense.parameters(), lr=0.05, momentum=0.9, l2=1e-3)
    masks.attach(opt_d)
    opt_s = optim.SGD(sparse.parameters(), lr=0.05, momentum=0.9, l2=1e-3)
    loss = nn.CrossEntropyLoss()
    rng = np.random.default_rng(18)
    for _ in range(5):
        x = rng.standard_normal((16, 20))
        t = rng.integers(0, 4, 16)
        for model, opt in ((dense, opt_d), (sparse, opt_s)):
            opt.zero_grad()
            y = model(x)
            loss(y, t)
            model.backward(loss.backward())
            opt.step()
    back = to_dense(sparse)
    for (name, p), (_, q) in zip(dense.named_parameters(), back.named_parameters()):
        np.testing.assert_allclose(q.value, p.value, rtol=1e-10, atol=1e-12, err_msg=name)
    assert isinstance(masks, Masks)


# -- dropout and evaluation rules, as Linear ----------------------------------------------


@pytest.mark.parametrize("mode", ["inverted", "lecture"])
def test_dropout_draws_the_dense_layers_mask(mode):
    dense = nn.Linear(40, 30, activation="relu", dropout=0.5, dropout_mode=mode)
    dense.generator = sei.Generator(21)
    w = to_host(dense.weight.value)
    w[np.abs(w) < np.quantile(np.abs(w), 0.9)] = 0
    dense.bias.value[...] = 0.1
    sparse = SparseLinear.from_dense(dense)
    sparse.generator = sei.Generator(21)
    x = np.random.default_rng(22).standard_normal((64, 40)).astype("float32")
    g = np.random.default_rng(23).standard_normal((64, 30)).astype("float32")
    for train in (True, False):
        dense.train(train)
        sparse.train(train)
        yd, ys = dense(x).copy(), sparse(x).copy()
        np.testing.assert_array_equal(ys == 0, yd == 0)
        np.testing.assert_allclose(ys, yd, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(sparse.backward(g), dense.backward(g), rtol=1e-5, atol=1e-5)


# -- conversion ----------------------------------------------------------------------------


def test_to_sparse_converts_pruned_linears_and_keeps_the_sequential():
    model = nn.Sequential(
        nn.Linear(784, 800, activation="relu", generator=sei.Generator(0)),
        nn.Sequential(nn.Linear(800, 800, activation="relu", generator=sei.Generator(1))),
        nn.Linear(800, 10, generator=sei.Generator(2)),
    )
    magnitude_prune(model, 0.9)
    model[2].weight.value[...] = np.random.default_rng(3).standard_normal((10, 800))  # dense
    before = model.state_dict()
    fast = to_sparse(model)
    assert isinstance(fast, nn.Sequential) and isinstance(fast[1], nn.Sequential)
    assert isinstance(fast[0], SparseLinear) and isinstance(fast[1][0], SparseLinear)
    assert type(fast[2]) is nn.Linear  # not pruned: stays dense
    assert fast[0].activation == "relu" and fast[0].nnz == np.count_nonzero(model[0].weight.value)
    np.testing.assert_array_equal(fast[0].dense_weight(), model[0].weight.value)
    indptr, indices, _ = csr(model[1][0].weight.value)
    np.testing.assert_array_equal(fast[1][0].indptr, indptr)
    np.testing.assert_array_equal(fast[1][0].indices, indices)
    for name, v in model.state_dict().items():  # the model is unchanged
        np.testing.assert_array_equal(v, before[name])
    x = np.random.default_rng(4).standard_normal((128, 784)).astype("float32")
    model.eval()
    fast.eval()
    np.testing.assert_allclose(fast(x), model(x), rtol=1e-4, atol=1e-4)
    assert sei.prune.to_sparse is to_sparse


def test_to_dense_inverts_to_sparse_and_shared_weights_stay_dense():
    enc = nn.Linear(30, 12, activation="relu", generator=sei.Generator(5))
    model = nn.Sequential(enc, nn.TiedLinear(enc), nn.Linear(30, 5, generator=sei.Generator(6)))
    magnitude_prune(model, 0.8)
    fast = to_sparse(model)
    assert type(fast[0]) is nn.Linear and isinstance(fast[2], SparseLinear)
    back = to_dense(fast)
    assert type(back[2]) is nn.Linear and back[2].activation == model[2].activation
    np.testing.assert_array_equal(back[2].weight.value, model[2].weight.value)
    np.testing.assert_array_equal(back[2].bias.value, model[2].bias.value)


def test_copies_pickles_and_state_dicts_keep_the_pattern_and_values():
    layer = layer_from(
        pruned_weight(10, 14, 0.7, seed=24), np.ones(10, "float32"), activation="relu"
    )
    x = np.random.default_rng(25).standard_normal((5, 14)).astype("float32")
    y = layer(x).copy()
    for other in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert other.values is not layer.values
        np.testing.assert_array_equal(other(x), y)
        np.testing.assert_array_equal(other.indices, layer.indices)
    assert list(layer.state_dict()) == ["values", "bias"]
    assert layer.values.regularize and not layer.bias.regularize
    assert "nnz=" in repr(layer) and "relu" in repr(layer)


# -- CUDA against the CPU twin -------------------------------------------------------------


@requires_cuda
@pytest.mark.parametrize("batch", [1, 5, 70, 300])
def test_cuda_matches_the_cpu_twin(batch):
    device = "cuda"
    w = pruned_weight(90, 130, 0.9, seed=batch)
    cpu = layer_from(w, np.linspace(-1, 1, 90).astype("float32"), activation="relu")
    gpu = copy.deepcopy(cpu).to(device)
    x = np.random.default_rng(26).standard_normal((batch, 130)).astype("float32")
    g = np.random.default_rng(27).standard_normal((batch, 90)).astype("float32")
    yc, yg = cpu(x), gpu(to_device(x, device))
    np.testing.assert_allclose(to_host(yg), yc, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        to_host(gpu.backward(to_device(g, device))), cpu.backward(g), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(to_host(gpu.values.grad), cpu.values.grad, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(to_host(gpu.bias.grad), cpu.bias.grad, rtol=1e-5, atol=1e-5)


# -- bad input -----------------------------------------------------------------------------


def test_bad_input_gives_clear_errors():
    w = pruned_weight(8, 6, 0.5, seed=28)
    layer = layer_from(w)
    with pytest.raises(ValueError, match=r"\[SparseLinear\] x must have 6 features"):
        layer(np.zeros((3, 7), "float32"))
    with pytest.raises(ValueError, match=r"\[SparseLinear\] x must be 2-D"):
        layer(np.zeros(6, "float32"))
    with pytest.raises(ValueError, match="same dtype"):
        layer(np.zeros((3, 6), "float64"))
    with pytest.raises(ValueError, match="backward needs a forward first"):
        layer_from(w).backward(np.zeros((3, 8), "float32"))
    layer(np.zeros((3, 6), "float32"))
    with pytest.raises(ValueError, match="shapes do not match"):
        layer.backward(np.zeros((3, 9), "float32"))
    with pytest.raises(ValueError, match=r"argument 'linear' must be a seisoku.nn.Linear"):
        SparseLinear.from_dense(nn.Conv2d(1, 2, 3))
    nan = nn.Linear(4, 3)
    nan.weight.value[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"weight must be finite, got nan at \(1, 2\)"):
        SparseLinear.from_dense(nan)
    indptr, indices, values = csr(w)
    bad = [
        (dict(indptr=indptr[:-1]), "row_ptr must have shape"),
        (dict(indptr=indptr[::-1].copy()), "row_ptr must run from 0"),
        (dict(indices=indices + 6), "col_idx must be in"),
        (dict(indices=indices[::-1].copy()), "ascending"),
        (dict(indptr=indptr.astype(float)), "argument 'indptr' must be a 1-D array of integers"),
        (dict(values=values[:-1].copy()), "shared values has shape"),
        (dict(values=values.astype("int32")), "must be float32 or float64"),
        (dict(values=[1.0] * len(values)), "argument 'values' must be a seisoku.nn.Parameter"),
    ]
    for change, message in bad:
        args = dict(indptr=indptr, indices=indices, values=np.ascontiguousarray(values))
        args.update(change)
        with pytest.raises(ValueError, match=message):
            SparseLinear(6, 8, args["indptr"], args["indices"], args["values"])
    with pytest.raises(ValueError, match="argument 'dropout' must be a probability"):
        SparseLinear(6, 8, indptr, indices, np.ascontiguousarray(values), dropout=1.0)


def test_to_sparse_rejects_unpruned_models_and_other_modules():
    model = nn.mlp((10, 8, 3), generator=sei.Generator(0))
    with pytest.raises(ValueError, match=r"\[to_sparse\] .* no Linear layer.*sparsities"):
        to_sparse(model)
    with pytest.raises(ValueError, match=r"argument 'model' must be a seisoku\.nn\.Linear"):
        to_sparse(nn.Conv2d(1, 2, 3))
    with pytest.raises(ValueError, match="argument 'model' must be"):
        to_sparse("model")
    with pytest.raises(ValueError, match="argument 'min_sparsity' must be a number in"):
        to_sparse(model, min_sparsity=1.5)
    assert isinstance(to_sparse(model, min_sparsity=0.0)[0], SparseLinear)


def test_trainer_fine_tunes_a_sparse_model_keeping_its_pattern():
    rng = np.random.default_rng(30)
    centers = rng.standard_normal((4, 20)) * 2
    y = rng.integers(0, 4, 512)
    x = (centers[y] + rng.standard_normal((512, 20))).astype("float32")
    model = nn.mlp((20, 64, 4), generator=sei.Generator(31))
    magnitude_prune(model, 0.9)
    fast = to_sparse(model)
    indices = fast[0].indices
    opt = optim.SGD(fast.parameters(), lr=0.05, momentum=0.9)
    trainer = Trainer(fast, nn.CrossEntropyLoss(), opt, progress=False)
    before = trainer.evaluate(x, y)
    trainer.fit(x, y, epochs=5, batch_size=32)
    after = trainer.evaluate(x, y)
    assert after["loss"] < 0.7 * before["loss"] and after["accuracy"] > 0.9
    np.testing.assert_array_equal(fast[0].indices, indices)
    assert np.count_nonzero(to_dense(fast)[0].weight.value) == fast[0].nnz
