"""Elementwise ops against NumPy on every device."""

from __future__ import annotations

import numpy as np
import pytest

import seisoku as sei
from conftest import to_device, to_host
from reference import assert_twin, rand, snap

FLOATS = [np.float32, np.float64]
SIZES = [(0,), (1,), (7,), (3, 5), (100_003,), (257, 129)]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SIZES)
def test_add_mul_scale_axpy_match_numpy(device, dtype, shape):
    a, b = rand(shape, dtype, 1), rand(shape, dtype, 2)
    da, db = to_device(a, device), to_device(b, device)
    np.testing.assert_array_equal(to_host(sei.add(da, db)), a + b)
    np.testing.assert_array_equal(to_host(sei.mul(da, db)), a * b)
    np.testing.assert_array_equal(to_host(sei.scale(0.5, da)), dtype(0.5) * a)
    y = b.copy()
    dy = to_device(y, device)
    sei.axpy(-1.5, da, dy)
    expected = b.astype(np.float64) - 1.5 * a.astype(np.float64)
    # one or two roundings (the compiler may fuse the multiply-add): bound by the terms' size
    bound = 2 * np.finfo(dtype).eps * (np.abs(b) + 1.5 * np.abs(a))
    assert np.all(np.abs(to_host(dy) - expected) <= bound)


def test_output_may_alias_input(device):
    a = to_device(np.arange(10, dtype=np.float32), device)
    sei.add(a, a, out=a)
    np.testing.assert_array_equal(to_host(a), 2 * np.arange(10, dtype=np.float32))


def test_outputs_are_written_in_place_zero_copy():
    a = np.ones(5, np.float32)
    out = np.empty(5, np.float32)
    assert sei.add(a, a, out=out) is out
    np.testing.assert_array_equal(out, 2)
    y = np.zeros(4)
    assert sei.axpy(2.0, np.ones(4), y) is y
    np.testing.assert_array_equal(y, 2.0)


@pytest.mark.parametrize(
    "dtype",
    ["float32", "float64", "float16", "bfloat16", "int8", "uint8", "int16", "int32", "int64"],
)
def test_fill_every_dtype(device, dtype):
    if device == "cuda" and dtype == "bfloat16":
        pytest.skip("CuPy has no bfloat16 arrays")
    from seisoku._array import resolve_dtype

    dt = resolve_dtype(dtype)
    x = to_device(np.zeros((3, 4), dtype=dt), device)
    sei.fill(x, 7)
    np.testing.assert_array_equal(to_host(x).astype(np.float64), 7.0)


def test_fill_rejects_nonfinite_for_ints():
    with pytest.raises(ValueError, match=r"\[fill\]"):
        sei.fill(np.zeros(3, np.int32), float("nan"))


def test_views_of_numpy_memory_see_the_change():
    base = np.zeros(8, np.float32)
    sei.fill(base[2:6], 3.0)
    np.testing.assert_array_equal(base, [0, 0, 3, 3, 3, 3, 0, 0])


def test_describe_reports_what_the_core_sees():
    assert sei.describe(np.zeros((2, 3), np.float32)) == "float32(2, 3) cpu"
    import ml_dtypes

    assert sei.describe(np.zeros(4, ml_dtypes.bfloat16)) == "bfloat16(4,) cpu"


# ---- axpy_sign ----


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("alpha", [0.5, -2.0, 0.0])
def test_axpy_sign(alpha, dtype):
    x = rand(1000, dtype, seed=100)
    x[:4] = [0.0, -0.0, 1e-300 if dtype == np.float64 else 1e-40, -np.inf]
    y = rand(1000, dtype, seed=101)
    expected = y + dtype(alpha) * np.sign(x).astype(dtype)
    sei.axpy_sign(alpha, x, y)
    np.testing.assert_array_equal(y, expected)
    assert y[0] == expected[0] and y[1] == expected[1]  # sign(+-0) = 0


def test_axpy_sign_bad_arguments():
    with pytest.raises(ValueError, match=r"\[axpy_sign\]"):
        sei.axpy_sign(1.0, np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match=r"\[axpy_sign\]"):
        sei.axpy_sign(float("nan"), np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"\[axpy_sign\]"):
        sei.axpy_sign(1.0, np.ones(3, np.float32), np.ones(3))


# ---- CUDA twins (the CPU result is the oracle) ----


def _cases():
    """name -> fn(dev) returning [(result on host, exact?)]; dev moves a host array."""
    x = rand((300, 257), np.float32, seed=140, scale=3.0)
    x64 = x.astype(np.float64)
    cases = {}

    def axpy_sign(d):
        out = []
        for xv in (x, x64):
            xv = xv.copy()
            xv[0, :2] = [0.0, -0.0]
            y = d(rand(xv.shape, xv.dtype, seed=147))
            sei.axpy_sign(-0.25, d(xv), y)
            out.append((snap(y), True))
        return out

    cases.update(axpy_sign=axpy_sign)
    return cases


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_device_matches_cpu(device, case):
    fn = CASES[case]
    assert_twin(fn(lambda a: to_device(a, device)), fn(lambda a: a))
