"""GEMM with every transpose, odd sizes, alpha/beta, against NumPy in float64."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import seisoku as sei
from conftest import to_device, to_host
from tolerance import gemm_tolerance

SHAPES = [
    (1, 1, 1),
    (3, 5, 7),
    (37, 19, 53),
    (64, 64, 64),
    (129, 1, 300),
    (1, 257, 31),
    (200, 300, 150),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_matches_numpy(device, dtype, trans_a, trans_b, m, n, k):
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    ref = 0.75 * (opa.astype(np.float64) @ opb.astype(np.float64)) - 0.5 * c.astype(np.float64)
    dc = to_device(c.copy(), device)
    sei.gemm(
        to_device(a, device),
        to_device(b, device),
        dc,
        trans_a=trans_a,
        trans_b=trans_b,
        alpha=0.75,
        beta=-0.5,
    )
    scale = np.abs(opa).astype(np.float64) @ np.abs(opb).astype(np.float64) + np.abs(c)
    err = np.abs(to_host(dc) - ref)
    assert np.all(err <= gemm_tolerance(dtype, k) * scale)


def test_gemm_allocates_output():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(sei.gemm(a, b), a @ b)
    np.testing.assert_allclose(sei.gemm(a, a, trans_b=True), a @ a.T)


def test_beta_zero_ignores_nan_in_out():
    a = np.ones((2, 2), np.float32)
    out = np.full((2, 2), np.nan, np.float32)
    sei.gemm(a, a, out)
    np.testing.assert_array_equal(out, 2.0)


@pytest.mark.parametrize("trans_b", [False, True])
def test_beta_zero_ignores_nan_in_out_of_one_row(trans_b):
    """A single row of C takes the matrix-vector path, which must clear C too."""
    a = np.ones((1, 3), np.float32)
    b = np.ones((5, 3) if trans_b else (3, 5), np.float32)
    out = np.full((1, 5), np.nan, np.float32)
    sei.gemm(a, b, out, trans_b=trans_b)
    np.testing.assert_array_equal(out, 3.0)


def test_k_zero_scales_out_by_beta():
    a = np.zeros((3, 0), np.float64)
    b = np.zeros((0, 2), np.float64)
    out = np.full((3, 2), 4.0)
    sei.gemm(a, b, out, beta=0.5)
    np.testing.assert_array_equal(out, 2.0)
    sei.gemm(a, b, out)
    np.testing.assert_array_equal(out, 0.0)


def test_gemm_bad_input():
    a = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"\[gemm\] inner dimensions differ"):
        sei.gemm(a, a)
    with pytest.raises(ValueError, match=r"\[gemm\] a and b must have the same dtype"):
        sei.gemm(a, np.ones((3, 2), np.float64))
    with pytest.raises(ValueError, match=r"\[gemm\] c must have shape \(2, 2\)"):
        sei.gemm(a, a.T.copy(), np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[gemm\] a must be 2-D"):
        sei.gemm(np.ones(3, np.float32), a, np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match=r"argument 'b' must be C-contiguous"):
        sei.gemm(a, a.T)
    with pytest.raises(ValueError, match=r"needs an existing out array"):
        sei.gemm(a, a.T.copy(), beta=1.0)
    with pytest.raises(ValueError, match=r"\[gemm\] a must have dtype float32, float64, got int32"):
        sei.gemm(np.ones((2, 2), np.int32), np.ones((2, 2), np.int32))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("m", "n", "k", "trans_a", "trans_b"),
    [
        (32, 512, 512, False, False),
        (128, 800, 784, False, True),
        (800, 784, 128, True, False),
        (10, 800, 128, True, False),
        (128, 10, 800, False, True),
        (1000, 300, 64, False, False),
        (257, 263, 301, True, True),
        (800, 800, 512, True, False),  # cut into tiles both ways
        (1, 8192, 2048, False, True),  # one row (gemv), its columns cut into tiles
        (1, 8192, 2048, True, False),
    ],
)
def test_gemm_bits_do_not_depend_on_the_thread_count(dtype, m, n, k, trans_a, trans_b):
    rng = np.random.default_rng(m * n + k)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    old = sei.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            sei.set_num_threads(threads)
            c = c0.copy()
            sei.gemm(a, b, c, alpha=0.5, beta=2.0, trans_a=trans_a, trans_b=trans_b)
            results.append(c)
    finally:
        sei.set_num_threads(old)
    opa = (a.T if trans_a else a).astype(np.float64)
    opb = (b.T if trans_b else b).astype(np.float64)
    ref = 0.5 * (opa @ opb) + 2.0 * c0
    scale = 0.5 * (np.abs(opa) @ np.abs(opb)) + 2.0 * np.abs(c0)
    assert np.all(np.abs(results[0] - ref) <= gemm_tolerance(dtype, k) * scale)
    for c in results[1:]:
        np.testing.assert_array_equal(c.view(np.uint8), results[0].view(np.uint8))
