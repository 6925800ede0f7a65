"""copy/cast between dtypes: NumPy (and ml_dtypes for bfloat16) as the oracle."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import seisoku as sei
from conftest import to_device, to_host

ALL = ["float32", "float64", "float16", "int8", "uint8", "int16", "int32", "int64"]


def special_floats(dtype):
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.standard_normal(5000) * 100,
            rng.standard_normal(5000) * 1e-5,  # float16 subnormals
            np.array([0.0, -0.0, 1.0, 65504.0, 65519.9, 65520.0, 1e6, -1e6, np.inf, -np.inf]),
            # exact ties for float16 (11 bits) and bfloat16 (8 bits): round half to even
            1.0 + np.array([2.0**-11, 3 * 2.0**-11, 2.0**-8, 3 * 2.0**-8]),
            np.array([2.0**-25, 3 * 2.0**-25, 2.0**-24, 5.96e-8]),
        ]
    )
    return x.astype(dtype)


@pytest.mark.parametrize("src", ["float32", "float64"])
@pytest.mark.parametrize("dst", ["float16", "bfloat16"])
def test_rounding_to_16_bit_floats_is_nearest_even(src, dst):
    x = special_floats(src)
    ours = sei.cast(x, dst)
    with np.errstate(over="ignore"):
        ref = x.astype(ml_dtypes.bfloat16 if dst == "bfloat16" else np.float16)
    np.testing.assert_array_equal(ours.view(np.uint16), ref.view(np.uint16))


@pytest.mark.parametrize("src", ["float16", "bfloat16"])
def test_16_bit_floats_widen_exactly(src):
    bits = np.arange(0, 1 << 16, dtype=np.uint16)
    x = bits.view(ml_dtypes.bfloat16 if src == "bfloat16" else np.float16)
    ours = sei.cast(x, "float32")
    ref = x.astype(np.float32)
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(ours[finite], ref[finite])
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_array_equal(ours[np.isinf(ref)], ref[np.isinf(ref)])


def test_nan_stays_nan_in_16_bit():
    x = np.array([np.nan, -np.nan], np.float32)
    assert np.isnan(sei.cast(x, "float16").astype(np.float32)).all()
    assert np.isnan(sei.cast(x, "bfloat16").astype(np.float32)).all()


@pytest.mark.parametrize("src", ALL)
@pytest.mark.parametrize("dst", ALL)
def test_in_range_casts_match_numpy(device, src, dst):
    # values representable in every integer type: -128..127 plus fractions for float sources
    base = np.arange(-128, 128, dtype=np.float64)
    if src in ("float32", "float64", "float16"):
        base = base + np.where(base >= 0, 0.25, -0.25)
    if src == "uint8" or dst == "uint8":
        base = np.abs(base)
    x = base.astype(src)
    ours = to_host(sei.cast(to_device(x, device), dst))
    np.testing.assert_array_equal(ours, x.astype(dst))


def test_float_to_int_saturates_and_nan_is_zero():
    x = np.array([300.7, -300.7, -1.9, 1.9, np.nan, np.inf, -np.inf], np.float32)
    np.testing.assert_array_equal(sei.cast(x, "int8"), [127, -128, -1, 1, 0, 127, -128])
    np.testing.assert_array_equal(sei.cast(x, "uint8"), [255, 0, 0, 1, 0, 255, 0])
    big = np.array([1e30, -1e30], np.float64)
    np.testing.assert_array_equal(sei.cast(big, "int64"), [2**63 - 1, -(2**63)])


def test_int_to_int_wraps_like_numpy():
    x = np.array([300, -129, 2**40 + 5], np.int64)
    np.testing.assert_array_equal(sei.cast(x, "int8"), x.astype(np.int8))
    np.testing.assert_array_equal(sei.cast(x, "int32"), x.astype(np.int32))


def test_large_int64_to_float_rounds_like_numpy():
    x = np.array([2**53 + 1, 2**62 + 2**10 + 1, -(2**63)], np.int64)
    np.testing.assert_array_equal(sei.cast(x, "float64"), x.astype(np.float64))
    np.testing.assert_array_equal(sei.cast(x, "float32"), x.astype(np.float32))


def test_copy_requires_equal_shapes():
    with pytest.raises(ValueError, match=r"\[copy\].*same shape"):
        sei.copy(np.zeros(4, np.float32), np.zeros((2, 2), np.float32))


def test_cast_rejects_unknown_dtype():
    with pytest.raises(ValueError, match="dtype must be one of"):
        sei.cast(np.zeros(2, np.float32), "complex64")
