"""Activity and tying penalties (seisoku.nn.functional) against NumPy and finite
differences; the CPU result is the oracle of the CUDA twins."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import to_device
from reference import (
    FLOATS,
    assert_grad,
    assert_twin,
    away_from_zero,
    fd_grad,
    grad_tol,
    rand,
    snap,
)
from seisoku.nn import functional as nnf
from tolerance import assert_close

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
    with pytest.raises(ValueError, match=r"argument 'ord' must be an int in \[1, 2\]"):
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
    with pytest.raises(ValueError, match=r"\[activity_penalty\] argument 'ord' must be an int"):
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


# ---- CUDA twins (the CPU result is the oracle) ----


def _cases():
    """name -> fn(dev) returning [(result on host, exact?)]; dev moves a host array."""
    x = rand((300, 257), np.float32, seed=140, scale=3.0)
    x64 = x.astype(np.float64)
    cases = {}

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

    cases.update(penalties=penalties)
    return cases


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_device_matches_cpu(device, case):
    fn = CASES[case]
    assert_twin(fn(lambda a: to_device(a, device)), fn(lambda a: a))
