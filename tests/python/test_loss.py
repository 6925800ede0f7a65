"""Fused losses against PyTorch and NumPy references, finite differences, weights, threads."""

from __future__ import annotations

import numpy as np
import pytest

import seisoku as sei
from conftest import to_device, to_host
from seisoku.nn.functional import (
    LossResult,
    bce_with_logits,
    cross_entropy,
    kl_div_softened,
    mse_loss,
)

FLOATS = [np.float32, np.float64]


def tol(dtype) -> float:
    return 2e-5 if np.dtype(dtype) == np.float32 else 1e-12


def rand(shape, dtype=np.float64, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def labels(n, k, dtype=np.int64, seed=1):
    return np.random.default_rng(seed).integers(0, k, n).astype(dtype)


# ---- NumPy references (float64): per-sample losses l and unscaled gradients dl/dx ----


def log_softmax(x):
    z = x - x.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def smoothed_target(y, k, eps, convention):
    if convention == "lecture":
        on, off = 1.0 - eps, (eps / (k - 1) if k > 1 else 0.0)
    else:
        on, off = 1.0 - eps + eps / k, eps / k
    q = np.full((len(y), k), off)
    q[np.arange(len(y)), y] = on
    return q


def ce_ref(x, y, eps=0.0, convention="lecture"):
    x = x.astype(np.float64)
    q = smoothed_target(y, x.shape[1], eps, convention)
    lp = log_softmax(x)
    return -(q * lp).sum(axis=1), np.exp(lp) - q


def mse_ref(x, t):
    n = x.shape[0]
    d = (x.astype(np.float64) - t.astype(np.float64)).reshape(n, -1)
    return (d**2).mean(axis=1), (2 * d / d.shape[1]).reshape(x.shape)


def bce_ref(x, t):
    n = x.shape[0]
    x = x.astype(np.float64).reshape(n, -1)
    t = t.astype(np.float64).reshape(n, -1)
    e = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    sig = 1 / (1 + np.exp(-x))
    return e.mean(axis=1), ((sig - t) / x.shape[1])


def kl_ref(s, t, temp, scale_t2=True):
    lps = log_softmax(s.astype(np.float64) / temp)
    lpt = log_softmax(t.astype(np.float64) / temp)
    pt = np.exp(lpt)
    f = temp * temp if scale_t2 else 1.0
    c = temp if scale_t2 else 1.0 / temp
    return (pt * (lpt - lps)).sum(axis=1) * f, c * (np.exp(lps) - pt)


def weighted(per_sample, g, w):
    """The weighted mean loss and its gradient from per-sample losses and gradients."""
    n = len(per_sample)
    w = np.ones(n) if w is None else w.astype(np.float64)
    total = w.sum()
    scale = (w / total).reshape((n,) + (1,) * (g.ndim - 1))
    return (w * per_sample).sum() / total, g.reshape(g.shape) * scale


def check(res: LossResult, ref_l, ref_g, w, dtype, x_shape, per_sample=True):
    loss, grad = weighted(ref_l, ref_g, w)
    assert to_host(res.loss).shape == () and to_host(res.loss).dtype == dtype
    np.testing.assert_allclose(float(to_host(res.loss)), loss, rtol=tol(dtype), atol=tol(dtype))
    g = to_host(res.grad)
    assert g.shape == x_shape and g.dtype == dtype
    np.testing.assert_allclose(
        g, grad.reshape(x_shape), rtol=tol(dtype), atol=tol(dtype) * np.abs(grad).max()
    )
    if per_sample:
        ps = to_host(res.per_sample)
        assert ps.shape == (x_shape[0],) and ps.dtype == dtype
        np.testing.assert_allclose(ps, ref_l, rtol=tol(dtype), atol=tol(dtype))


# ---- PyTorch parity ----


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35])
@pytest.mark.parametrize("shape", [(7, 5), (64, 10), (3, 2000), (5, 1)])
@pytest.mark.parametrize("target_dtype", [np.int64, np.int32])
def test_cross_entropy_uniform_matches_torch(dtype, eps, shape, target_dtype):
    torch = pytest.importorskip("torch")
    fn = torch.nn.functional
    x = rand(shape, dtype, scale=3.0)
    y = labels(shape[0], shape[1], target_dtype)
    res = cross_entropy(x, y, label_smoothing=eps, convention="uniform")
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    ref = fn.cross_entropy(tx, torch.tensor(y.astype(np.int64)), label_smoothing=eps)
    ref.backward()
    np.testing.assert_allclose(float(res.loss), ref.item(), rtol=tol(dtype), atol=tol(dtype))
    np.testing.assert_allclose(
        res.grad, tx.grad.numpy(), rtol=tol(dtype), atol=tol(dtype) / shape[0]
    )
    assert res.per_sample is None


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("shape", [(9, 2), (16, 10), (4, 300)])
def test_cross_entropy_lecture_matches_formula(dtype, eps, shape):
    x = rand(shape, dtype, seed=4, scale=2.0)
    y = labels(shape[0], shape[1])
    res = cross_entropy(x, y, label_smoothing=eps, per_sample=True)  # the default convention
    per, g = ce_ref(x, y, eps, "lecture")
    check(res, per, g, None, dtype, shape)
    named = cross_entropy(x, y, label_smoothing=eps, convention="lecture", per_sample=True)
    assert to_host(named.loss).tobytes() == to_host(res.loss).tobytes()
    np.testing.assert_array_equal(named.grad, res.grad)
    # the lecture's target: 1 - eps on the true class, eps / (K - 1) elsewhere
    q = smoothed_target(y, shape[1], eps, "lecture")
    np.testing.assert_allclose(q.sum(axis=1), 1.0)
    assert q[0, y[0]] == pytest.approx(1 - eps)


def test_smoothing_conventions_agree_without_smoothing_and_differ_with_it():
    x, y = rand((10, 6)), labels(10, 6)
    a = cross_entropy(x, y, convention="lecture")
    b = cross_entropy(x, y, convention="uniform")
    assert float(a.loss) == float(b.loss)
    np.testing.assert_array_equal(a.grad, b.grad)
    a = cross_entropy(x, y, label_smoothing=0.2, convention="lecture")
    b = cross_entropy(x, y, label_smoothing=0.2, convention="uniform")
    assert float(a.loss) != float(b.loss)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(8,), (6, 3), (4, 5, 7), (2, 3000)])
def test_mse_matches_torch(dtype, shape):
    torch = pytest.importorskip("torch")
    x, t = rand(shape, dtype, 1), rand(shape, dtype, 2)
    res = mse_loss(x, t, per_sample=True)
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    ref = torch.nn.functional.mse_loss(tx, torch.tensor(t.astype(np.float64)))
    ref.backward()
    np.testing.assert_allclose(float(res.loss), ref.item(), rtol=tol(dtype))
    np.testing.assert_allclose(res.grad, tx.grad.numpy(), rtol=tol(dtype), atol=tol(dtype) * 1e-3)
    per, g = mse_ref(x, t)
    check(res, per, g, None, dtype, shape)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(8,), (6, 3), (4, 5, 7), (2, 3000)])
def test_bce_with_logits_matches_torch(dtype, shape):
    torch = pytest.importorskip("torch")
    x = rand(shape, dtype, 1, scale=4.0)
    t = np.random.default_rng(2).random(shape).astype(dtype)
    t[t < 0.3] = 0.0
    res = bce_with_logits(x, t, per_sample=True)
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        tx, torch.tensor(t.astype(np.float64))
    )
    ref.backward()
    np.testing.assert_allclose(float(res.loss), ref.item(), rtol=tol(dtype))
    np.testing.assert_allclose(res.grad, tx.grad.numpy(), rtol=tol(dtype), atol=tol(dtype) * 1e-3)
    per, g = bce_ref(x, t)
    check(res, per, g, None, dtype, shape)


@pytest.mark.parametrize("dtype", FLOATS)
def test_bce_with_extreme_logits_stays_finite(device, dtype):
    torch = pytest.importorskip("torch")
    x = np.array([[100.0, -100.0, 100.0, -100.0, 0.0]], dtype)
    t = np.array([[1.0, 0.0, 0.0, 1.0, 0.5]], dtype)
    res = bce_with_logits(to_device(x, device), to_device(t, device), per_sample=True)
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        tx, torch.tensor(t.astype(np.float64))
    )
    ref.backward()
    loss, grad = to_host(res.loss), to_host(res.grad)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(float(loss), ref.item(), rtol=tol(dtype))
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=tol(dtype), atol=1e-30)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.5, 0.5])
@pytest.mark.parametrize("shape", [(6, 10), (3, 2), (2, 3000)])
def test_kl_div_softened_matches_torch(dtype, temperature, shape):
    torch = pytest.importorskip("torch")
    fn = torch.nn.functional
    s, t = rand(shape, dtype, 1, 3.0), rand(shape, dtype, 2, 3.0)
    res = kl_div_softened(s, t, temperature, per_sample=True)
    ts = torch.tensor(s.astype(np.float64), requires_grad=True)
    tt = torch.tensor(t.astype(np.float64))
    ref = (
        fn.kl_div(
            fn.log_softmax(ts / temperature, dim=1),
            fn.softmax(tt / temperature, dim=1),
            reduction="batchmean",
        )
        * temperature**2
    )
    ref.backward()
    np.testing.assert_allclose(float(res.loss), ref.item(), rtol=tol(dtype) * 10, atol=tol(dtype))
    np.testing.assert_allclose(
        res.grad, ts.grad.numpy(), rtol=tol(dtype) * 10, atol=tol(dtype) / shape[0]
    )
    per, g = kl_ref(s, t, temperature)
    check(res, per, g, None, dtype, shape)


def test_kl_div_softened_without_t2_scaling():
    s, t = rand((5, 7), seed=1), rand((5, 7), seed=2)
    for temp in (0.7, 3.0):
        res = kl_div_softened(s, t, temp, scale_t2=False, per_sample=True)
        per, g = kl_ref(s, t, temp, scale_t2=False)
        check(res, per, g, None, np.float64, s.shape)
        scaled = kl_div_softened(s, t, temp)
        np.testing.assert_allclose(float(scaled.loss), float(res.loss) * temp**2, rtol=1e-13)
        np.testing.assert_allclose(scaled.grad, res.grad * temp**2, rtol=1e-13)


def test_kl_of_identical_logits_is_zero():
    s = rand((4, 9))
    res = kl_div_softened(s, s.copy(), 2.0)
    assert abs(float(res.loss)) < 1e-15
    np.testing.assert_allclose(res.grad, 0.0, atol=1e-16)


# ---- per-sample weights ----


def all_losses(dtype, seed=0):
    """(name, call(weight, x) -> LossResult, x, ref(x) -> (l, g)) for every loss."""
    n = 11
    x_ce, y = rand((n, 6), dtype, seed, 2.0), labels(n, 6, seed=seed + 1)
    x_mse, t_mse = rand((n, 2, 3), dtype, seed + 2), rand((n, 2, 3), dtype, seed + 3)
    x_bce = rand((n, 4), dtype, seed + 4, 3.0)
    t_bce = np.random.default_rng(seed + 5).random((n, 4)).astype(dtype)
    s_kl, t_kl = rand((n, 5), dtype, seed + 6, 2.0), rand((n, 5), dtype, seed + 7, 2.0)
    return [
        (
            "cross_entropy_lecture",
            lambda w, x: cross_entropy(x, y, label_smoothing=0.2, sample_weight=w, per_sample=True),
            x_ce,
            lambda x: ce_ref(x, y, 0.2, "lecture"),
        ),
        (
            "cross_entropy_uniform",
            lambda w, x: cross_entropy(
                x, y, label_smoothing=0.1, convention="uniform", sample_weight=w, per_sample=True
            ),
            x_ce,
            lambda x: ce_ref(x, y, 0.1, "uniform"),
        ),
        (
            "mse",
            lambda w, x: mse_loss(x, t_mse, sample_weight=w, per_sample=True),
            x_mse,
            lambda x: mse_ref(x, t_mse),
        ),
        (
            "bce",
            lambda w, x: bce_with_logits(x, t_bce, sample_weight=w, per_sample=True),
            x_bce,
            lambda x: bce_ref(x, t_bce),
        ),
        (
            "kl",
            lambda w, x: kl_div_softened(x, t_kl, 2.5, sample_weight=w, per_sample=True),
            s_kl,
            lambda x: kl_ref(x, t_kl, 2.5),
        ),
    ]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("index", range(5))
def test_weights_match_numpy(dtype, index):
    _, call, x, ref = all_losses(dtype)[index]
    n = x.shape[0]
    w = np.random.default_rng(9).random(n).astype(dtype) * 3
    res = call(w, x)
    per, g = ref(x)
    check(res, per, g, w, dtype, x.shape)


@pytest.mark.parametrize("index", range(5))
def test_equal_weights_give_the_unweighted_result(index):
    _, call, x, _ = all_losses(np.float64, seed=3)[index]
    plain = call(None, x)
    for c in (1.0, 0.25, 7.0):
        res = call(np.full(x.shape[0], c), x)
        np.testing.assert_allclose(float(res.loss), float(plain.loss), rtol=1e-14)
        np.testing.assert_allclose(res.grad, plain.grad, rtol=1e-13, atol=1e-18)
        np.testing.assert_array_equal(res.per_sample, plain.per_sample)


@pytest.mark.parametrize("index", range(5))
def test_zero_weight_removes_a_sample(index):
    _, call, x, ref = all_losses(np.float64, seed=5)[index]
    n = x.shape[0]
    w = np.ones(n)
    w[[2, 7]] = 0.0
    res = call(w, x)
    keep = w > 0
    per, g = ref(x)
    np.testing.assert_allclose(float(res.loss), per[keep].mean(), rtol=1e-13)
    assert np.all(res.grad[~keep] == 0.0)
    np.testing.assert_allclose(res.grad[keep], g[keep] / keep.sum(), rtol=1e-12, atol=1e-18)


# ---- finite differences (float64) ----


def finite_difference_check(f, x, grad, h=1e-6):
    """Central differences of the scalar f at x against grad, every element."""
    num = np.empty_like(x)
    flat, nflat = x.reshape(-1), num.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = f(x)
        flat[i] = old - h
        down = f(x)
        flat[i] = old
        nflat[i] = (up - down) / (2 * h)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("weighted_", [False, True])
@pytest.mark.parametrize("index", range(5))
def test_finite_difference_gradients(index, weighted_):
    _, call, x, _ = all_losses(np.float64, seed=11)[index]
    w = np.random.default_rng(2).random(x.shape[0]) + 0.1 if weighted_ else None
    x = x.copy()
    res = call(w, x)
    finite_difference_check(lambda z: float(call(w, z).loss), x, res.grad)


@pytest.mark.parametrize("convention", ["lecture", "uniform"])
@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_finite_difference_cross_entropy_smoothing_and_weights(convention, eps):
    x, y = rand((6, 4), seed=21, scale=2.0), labels(6, 4, seed=22)
    w = np.array([0.5, 2.0, 0.0, 1.0, 3.0, 0.25])

    def f(z):
        return cross_entropy(z, y, label_smoothing=eps, convention=convention, sample_weight=w)

    finite_difference_check(lambda z: float(f(z).loss), x, f(x).grad)


@pytest.mark.parametrize("scale_t2", [True, False])
@pytest.mark.parametrize("temperature", [0.6, 3.0])
def test_finite_difference_kl(scale_t2, temperature):
    s, t = rand((4, 6), seed=31, scale=2.0), rand((4, 6), seed=32, scale=2.0)
    w = np.array([1.0, 0.5, 2.0, 0.1])

    def f(z):
        return kl_div_softened(z, t, temperature, scale_t2=scale_t2, sample_weight=w)

    finite_difference_check(lambda z: float(f(z).loss), s, f(s).grad)


# ---- outputs and options ----


def test_outputs_are_optional_and_fresh():
    x, y = rand((5, 3), np.float32), labels(5, 3)
    res = cross_entropy(x, y, need_grad=False)
    assert isinstance(res, LossResult) and res.grad is None and res.per_sample is None
    assert res.loss.shape == () and res.loss.dtype == np.float32
    full = cross_entropy(x, y, per_sample=True)
    assert float(full.loss) == float(res.loss)
    np.testing.assert_allclose(
        float(full.loss), full.per_sample.astype(np.float64).mean(), rtol=1e-6
    )
    only = mse_loss(x, x + 1, need_grad=False, per_sample=True)
    assert only.grad is None
    np.testing.assert_allclose(only.per_sample, 1.0, rtol=1e-6)


def test_outputs_are_new_arrays_each_call():
    x, y = rand((4, 3)), labels(4, 3)
    a = cross_entropy(x, y, label_smoothing=0.1, per_sample=True)
    b = cross_entropy(x, y, label_smoothing=0.1, per_sample=True)
    for u, v in zip(a, b):
        assert u is not v and not np.shares_memory(u, v) and not np.shares_memory(u, x)
        np.testing.assert_array_equal(u, v)


# ---- determinism ----


@pytest.mark.parametrize("index", range(5))
def test_same_bits_for_one_and_two_threads(index):
    rng = np.random.default_rng(0)
    n = 40_000
    makers = [
        lambda: (
            lambda w: cross_entropy(x, y, label_smoothing=0.1, sample_weight=w, per_sample=True)
        ),
        lambda: (
            lambda w: cross_entropy(
                x, y, convention="uniform", label_smoothing=0.1, sample_weight=w
            )
        ),
        lambda: lambda w: mse_loss(x, t, sample_weight=w, per_sample=True),
        lambda: lambda w: bce_with_logits(x, p, sample_weight=w, per_sample=True),
        lambda: lambda w: kl_div_softened(x, t, 2.0, sample_weight=w, per_sample=True),
    ]
    x = rng.standard_normal((n, 7)).astype(np.float32)
    t = rng.standard_normal((n, 7)).astype(np.float32)
    p = rng.random((n, 7)).astype(np.float32)
    y = rng.integers(0, 7, n)
    w = rng.random(n).astype(np.float32)
    call = makers[index]()
    old = sei.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            sei.set_num_threads(threads)
            results.append((call(None), call(w)))
    finally:
        sei.set_num_threads(old)
    for a, b in zip(results[0], results[1]):
        assert to_host(a.loss).tobytes() == to_host(b.loss).tobytes()
        np.testing.assert_array_equal(a.grad, b.grad)
        if a.per_sample is not None:
            np.testing.assert_array_equal(a.per_sample, b.per_sample)


# ---- CUDA twins (CPU is the oracle) ----


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("k", [3, 37, 3000])
@pytest.mark.parametrize("weighted_", [False, True])
def test_device_matches_cpu(device, dtype, k, weighted_):
    n = 300 if k < 3000 else 20
    rng = np.random.default_rng(k)
    x = (rng.standard_normal((n, k)) * 3).astype(dtype)
    t = (rng.standard_normal((n, k)) * 3).astype(dtype)
    p = rng.random((n, k)).astype(dtype)
    y = rng.integers(0, k, n).astype(np.int32)
    w = (rng.random(n) * 2).astype(dtype) if weighted_ else None
    dev = lambda a: None if a is None else to_device(a, device)  # noqa: E731
    calls = [
        lambda f: cross_entropy(
            f(x), f(y), label_smoothing=0.1, sample_weight=f(w), per_sample=True
        ),
        lambda f: cross_entropy(
            f(x),
            f(y.astype(np.int64)),
            convention="uniform",
            label_smoothing=0.2,
            sample_weight=f(w),
            per_sample=True,
        ),
        lambda f: mse_loss(f(x), f(t), sample_weight=f(w), per_sample=True),
        lambda f: bce_with_logits(f(x), f(p), sample_weight=f(w), per_sample=True),
        lambda f: kl_div_softened(f(x), f(t), 1.7, sample_weight=f(w), per_sample=True),
    ]
    for call in calls:
        got = call(dev)
        ref = call(lambda a: a)
        assert type(got.loss) is type(dev(ref.loss))
        r = tol(dtype) * 5
        np.testing.assert_allclose(float(to_host(got.loss)), float(ref.loss), rtol=r, atol=r)
        np.testing.assert_allclose(
            to_host(got.grad), ref.grad, rtol=r, atol=r * np.abs(ref.grad).max()
        )
        np.testing.assert_allclose(to_host(got.per_sample), ref.per_sample, rtol=r, atol=r)
        again = call(dev)
        assert to_host(again.loss).tobytes() == to_host(got.loss).tobytes()
        np.testing.assert_array_equal(to_host(again.grad), to_host(got.grad))


def first_bad_row_message(x, y):
    with raises("cross_entropy") as e:
        cross_entropy(x, y, per_sample=True)
    return str(e.value)


@pytest.mark.parametrize("target_dtype", [np.int64, np.int32])
@pytest.mark.parametrize("k", [5, 40, 3000])
def test_out_of_range_target_names_the_first_bad_row_on_every_device(device, target_dtype, k):
    x = rand((4, k), np.float32)
    y = np.array([0, k, 2, -1], target_dtype)
    message = first_bad_row_message(to_device(x, device), to_device(y, device))
    assert f"target[1] = {k}" in message and f"[0, {k})" in message
    assert message == first_bad_row_message(x, y)  # the same words on the CPU and the GPU
    y[1] = 1
    message = first_bad_row_message(to_device(x, device), to_device(y, device))
    assert "target[3] = -1" in message


@pytest.mark.parametrize("n", [1, 257, 20_000])
def test_the_smallest_bad_row_is_named_whatever_the_order_of_the_rows(device, n):
    """Rows run in parallel (many blocks on the GPU); the report is still the first bad row."""
    rng = np.random.default_rng(n)
    x = rand((n, 7), np.float32, seed=n)
    y = rng.integers(0, 7, n)
    bad = sorted({n - 1, n // 2, n // 3})
    for i, r in enumerate(reversed(bad)):
        y[r] = 7 + i if i % 2 == 0 else -5 - i
    message = first_bad_row_message(to_device(x, device), to_device(y, device))
    assert message.endswith(f"got target[{bad[0]}] = {y[bad[0]]}")
    y[bad] = 0
    res = cross_entropy(to_device(x, device), to_device(y, device))
    assert np.isfinite(to_host(res.loss))


# ---- bad input ----


def raises(op):
    return pytest.raises(ValueError, match=rf"\[{op}\]")


def test_cross_entropy_bad_input(device):
    d = lambda a: to_device(a, device)  # noqa: E731
    x, y = d(rand((4, 5), np.float32)), d(labels(4, 5))
    with raises("cross_entropy"):
        cross_entropy(d(rand((4,), np.float32)), y)
    with raises("cross_entropy"):
        cross_entropy(d(rand((4, 5, 1), np.float32)), y)
    with raises("cross_entropy"):
        cross_entropy(x, d(labels(3, 5)))
    with raises("cross_entropy"):
        cross_entropy(x, d(labels(4, 5).astype(np.float32)))
    with raises("cross_entropy"):
        cross_entropy(d(rand((4, 5)).astype(np.int32)), y)
    with raises("cross_entropy"):
        cross_entropy(d(np.zeros((0, 5), np.float32)), d(np.zeros(0, np.int64)))
    with raises("cross_entropy"):
        cross_entropy(d(np.zeros((4, 0), np.float32)), y)
    for eps in (-0.1, 1.0, 1.5, float("nan"), "a"):
        with raises("cross_entropy") as e:
            cross_entropy(x, y, label_smoothing=eps)
        assert "label_smoothing" in str(e.value)
    with raises("cross_entropy") as e:
        cross_entropy(x, y, convention="torch")
    assert "'torch'" in str(e.value)
    with raises("cross_entropy"):
        cross_entropy(d(rand((4, 1), np.float32)), d(np.zeros(4, np.int64)), label_smoothing=0.1)
    with raises("cross_entropy"):
        cross_entropy(x, y, sample_weight=d(np.ones(3, np.float32)))
    with raises("cross_entropy"):
        cross_entropy(x, y, sample_weight=d(np.ones(4, np.float64)))
    with raises("cross_entropy"):
        cross_entropy(x, y, sample_weight=[1.0, 1.0, 1.0, 1.0])


def test_cross_entropy_bad_values_on_cpu():
    x = rand((4, 5), np.float32)
    for bad, row in ((5, 2), (-1, 1)):
        y = np.array([0, 1, 2, 3])
        y[row] = bad
        with raises("cross_entropy") as e:
            cross_entropy(x, y.astype(np.int32))
        assert f"target[{row}] = {bad}" in str(e.value)
    y = labels(4, 5)
    with raises("cross_entropy") as e:
        cross_entropy(x, y, sample_weight=np.array([1, -0.5, 1, 1], np.float32))
    assert "weight[1] = -0.5" in str(e.value)
    with raises("cross_entropy"):
        cross_entropy(x, y, sample_weight=np.zeros(4, np.float32))
    with raises("cross_entropy"):
        cross_entropy(x, y, sample_weight=np.array([1, np.nan, 1, 1], np.float32))
    with raises("cross_entropy"):
        cross_entropy(x, y, sample_weight=np.array([1, np.inf, 1, 1], np.float32))


def test_native_checks_reach_the_functions():
    x, y = rand((4, 5)), labels(4, 5)
    for eps in (1.0, 1.0 + 1e-12, -1e-300, float("inf")):
        with raises("cross_entropy") as e:
            cross_entropy(x, y, label_smoothing=eps)
        assert "label_smoothing" in str(e.value)
    for temp in (0.0, -0.5, float("inf"), float("nan")):
        with raises("kl_div_softened") as e:
            kl_div_softened(x, x, temp)
        assert "temperature" in str(e.value)


@pytest.mark.parametrize("name", ["seed", "torch", "Lecture", "uniform ", "", None, 1])
def test_unknown_smoothing_convention_is_a_value_error(name):
    x, y = rand((4, 5)), labels(4, 5)
    with raises("cross_entropy") as e:
        cross_entropy(x, y, label_smoothing=0.1, convention=name)
    message = str(e.value)
    assert "convention" in message and repr(name) in message
    assert "'lecture'" in message and "'uniform'" in message


@pytest.mark.parametrize("op", ["mse_loss", "bce_with_logits"])
def test_elementwise_losses_bad_input(device, op):
    fn = mse_loss if op == "mse_loss" else bce_with_logits
    d = lambda a: to_device(a, device)  # noqa: E731
    x = d(rand((4, 3), np.float32))
    t = d(np.full((4, 3), 0.5, np.float32))
    with raises(op):
        fn(x, d(np.full((4, 2), 0.5, np.float32)))
    with raises(op):
        fn(x, d(np.full((3, 4), 0.5, np.float32)))
    with raises(op):
        fn(x, d(np.full((4, 3), 0.5, np.float64)))
    with raises(op):
        fn(d(np.zeros((0, 3), np.float32)), d(np.zeros((0, 3), np.float32)))
    with raises(op):
        fn(d(np.zeros((0,), np.float32)), d(np.zeros((0,), np.float32)))
    with raises(op):
        fn(d(np.zeros((), np.float32)), d(np.zeros((), np.float32)))
    with raises(op):
        fn(x, t, sample_weight=d(np.ones((4, 1), np.float32)))
    with raises(op):
        fn(x.tolist() if device == "cpu" else x.get().tolist(), t)


def test_bce_target_outside_unit_interval_on_cpu():
    x = rand((3, 2))
    for bad in (1.5, -0.1, np.nan):
        t = np.full((3, 2), 0.5)
        t[1, 0] = bad
        with raises("bce_with_logits") as e:
            bce_with_logits(x, t)
        assert "flat index 2" in str(e.value)


def test_kl_div_softened_bad_input(device):
    d = lambda a: to_device(a, device)  # noqa: E731
    s, t = d(rand((4, 5), np.float32)), d(rand((4, 5), np.float32, seed=1))
    for temp in (0.0, -1.0, float("nan"), float("inf"), None):
        with raises("kl_div_softened") as e:
            kl_div_softened(s, t, temp)
        assert "temperature" in str(e.value)
    with raises("kl_div_softened"):
        kl_div_softened(s, d(rand((4, 6), np.float32)), 2.0)
    with raises("kl_div_softened"):
        kl_div_softened(s, d(rand((4, 5), np.float64)), 2.0)
    with raises("kl_div_softened"):
        kl_div_softened(d(rand((20,), np.float32)), d(rand((20,), np.float32)), 2.0)
    with raises("kl_div_softened"):
        kl_div_softened(d(np.zeros((0, 5), np.float32)), d(np.zeros((0, 5), np.float32)), 2.0)
