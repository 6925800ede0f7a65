"""Reductions and norms against NumPy (float64 reference)."""

from __future__ import annotations

import numpy as np
import pytest

import seisoku as sei
from conftest import to_device, to_host
from reference import assert_twin, num_threads, rand, snap
from tolerance import assert_close

FLOATS = [np.float32, np.float64]


def data(shape, dtype, seed=0, zeros=0.3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3
    x[rng.random(shape) < zeros] = 0.0
    return x.astype(dtype)


def result_tol(dtype):
    return 1e-6 if dtype == np.float32 else 1e-12


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(1,), (7,), (8192,), (8193,), (1_000_003,), (33, 65)])
def test_sum_mean_max_match_numpy(device, dtype, shape):
    x = data(shape, dtype)
    dx = to_device(x, device)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(
        float(to_host(sei.sum(dx))),
        x64.sum(),
        rtol=result_tol(dtype),
        atol=result_tol(dtype) * np.abs(x64).sum(),
    )
    np.testing.assert_allclose(
        float(to_host(sei.mean(dx))),
        x64.mean(),
        rtol=result_tol(dtype),
        atol=result_tol(dtype) * np.abs(x64).mean(),
    )
    assert float(to_host(sei.max(dx))) == x.max()
    assert to_host(sei.sum(dx)).dtype == dtype and to_host(sei.sum(dx)).shape == ()


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("ord", [0, 1, 2, np.inf])
def test_norms_match_numpy(device, dtype, ord):
    x = data((123_457,), dtype)
    ref = np.linalg.norm(x.astype(np.float64), ord=ord)
    got = float(to_host(sei.norm(to_device(x, device), ord)))
    np.testing.assert_allclose(got, ref, rtol=result_tol(dtype))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("ord", [0, 1, 2, np.inf])
@pytest.mark.parametrize("shape", [(5, 3), (300, 17), (4, 20_000), (6, 2, 3, 3)])
def test_row_norms_match_numpy(device, dtype, ord, shape):
    x = data(shape, dtype, seed=3)
    rows = x.reshape(shape[0], -1).astype(np.float64)
    ref = np.linalg.norm(rows, ord=ord, axis=1)
    got = to_host(sei.row_norm(to_device(x, device), ord))
    assert got.shape == (shape[0],)
    np.testing.assert_allclose(got, ref, rtol=result_tol(dtype))


def test_row_norm_of_one_row_equals_norm_bit_for_bit():
    x = data((1_000_001,), np.float32)
    for ord in (0, 1, 2, np.inf):
        assert sei.row_norm(x.reshape(1, -1), ord)[0] == sei.norm(x, ord)


def test_l0_counts_nonzeros_and_nan():
    x = np.array([0.0, -0.0, 1e-30, np.nan, 2.0], np.float32)
    assert float(sei.norm(x, 0)) == 3.0


def test_nan_propagates_through_max_and_sums():
    x = np.ones(20_000, np.float32)
    x[12_345] = np.nan
    assert np.isnan(sei.max(x))
    assert np.isnan(sei.sum(x))
    assert np.isnan(sei.norm(x, np.inf))


def test_empty_inputs():
    e = np.zeros(0, np.float32)
    assert float(sei.sum(e)) == 0.0
    assert float(sei.norm(e, 2)) == 0.0
    with pytest.raises(ValueError, match=r"\[mean\] x is empty"):
        sei.mean(e)
    with pytest.raises(ValueError, match=r"\[max\] x is empty"):
        sei.max(e)


def test_float32_sum_is_accurate_where_naive_float32_is_not():
    x = np.full(10_000_000, 0.1, np.float32)
    exact = 10_000_000 * float(np.float32(0.1))
    assert abs(float(sei.sum(x)) - exact) <= exact * 1e-7
    naive = np.cumsum(x, dtype=np.float32)[-1]
    assert abs(float(naive) - exact) > exact * 1e-4  # what float32 accumulation would give


@pytest.mark.parametrize("ord", [3, -1, -np.inf, 0.5])
def test_bad_ord(ord):
    with pytest.raises(ValueError, match="ord must be 0, 1, 2 or inf"):
        sei.norm(np.ones(3, np.float32), ord)


def test_reductions_reject_integer_input():
    with pytest.raises(ValueError, match=r"\[sum\] x must have dtype float32, float64, got int32"):
        sei.sum(np.ones(3, np.int32))


# ---- column_sum ----


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (300, 513), (2, 3000)])
def test_column_sum(shape, dtype):
    x = rand(shape, dtype, seed=110)
    out = np.full(shape[1], np.nan, dtype)
    sei.column_sum(x, out, False)
    ref = x.astype(np.float64).sum(axis=0)
    assert_close(out, ref, dtype, ops=2, atol=16 * float(np.finfo(dtype).eps) * shape[0])
    start = rand(shape[1], dtype, seed=111)
    acc = start.copy()
    sei.column_sum(x, acc, True)
    assert_close(acc, ref + start, dtype, ops=2, atol=16 * float(np.finfo(dtype).eps) * shape[0])


@pytest.mark.parametrize("dtype", FLOATS)
def test_column_sum_bits_identical_for_one_and_two_threads(dtype):
    x = rand((400, 3001), dtype, seed=112, scale=100.0)
    outs = []
    for threads in (1, 2):
        with num_threads(threads):
            out = rand(3001, dtype, seed=113)
            sei.column_sum(x, out, True)
            outs.append(out)
    np.testing.assert_array_equal(outs[0].view(np.uint8), outs[1].view(np.uint8))


def test_column_sum_bad_arguments():
    with pytest.raises(ValueError, match=r"\[column_sum\] x must be 2-D"):
        sei.column_sum(np.ones(3), np.empty(3), False)
    with pytest.raises(ValueError, match=r"\[column_sum\]"):
        sei.column_sum(np.ones((2, 3)), np.empty(2))


# ---- CUDA twins (the CPU result is the oracle) ----


def _cases():
    """name -> fn(dev) returning [(result on host, exact?)]; dev moves a host array."""
    x = rand((300, 257), np.float32, seed=140, scale=3.0)
    x64 = x.astype(np.float64)
    cases = {}

    def column_sum(d):
        out = []
        for xv in (x, x64):
            o = d(rand(xv.shape[1], xv.dtype, seed=148))
            sei.column_sum(d(xv), o, False)
            out.append((snap(o), False))
            sei.column_sum(d(xv), o, True)
            out.append((snap(o), False))
        return out

    cases.update(column_sum=column_sum)
    return cases


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_device_matches_cpu(device, case):
    fn = CASES[case]
    assert_twin(fn(lambda a: to_device(a, device)), fn(lambda a: a))
