"""How arrays cross into the core: zero-copy views, and clear ValueErrors for anything
that cannot be viewed as-is (never a silent copy, never a crash)."""

from __future__ import annotations

import numpy as np
import pytest

import seisoku as sei


def test_rejects_non_contiguous_naming_the_argument():
    a = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match=r"\[add\] argument 'b' must be C-contiguous"):
        sei.add(a, a.T)
    with pytest.raises(ValueError, match=r"\[sum\] argument 'x' must be C-contiguous"):
        sei.sum(a[:, 1])


def test_rejects_unsupported_and_mismatched_dtypes():
    with pytest.raises(ValueError, match=r"argument 'a' has unsupported dtype complex64"):
        sei.add(np.ones(2, np.complex64), np.ones(2, np.complex64), out=np.ones(2, np.complex64))
    with pytest.raises(
        ValueError, match=r"\[add\] a and b must have the same dtype, got float32 and float64"
    ):
        sei.add(np.ones(2, np.float32), np.ones(2, np.float64))
    with pytest.raises(ValueError, match=r"\[mul\] a must have dtype float32, float64, got int64"):
        sei.mul(np.ones(2, np.int64), np.ones(2, np.int64))
    with pytest.raises(ValueError, match="big-endian"):
        sei.sum(np.ones(3, dtype=">f4"))


def test_rejects_shape_mismatch():
    with pytest.raises(
        ValueError, match=r"\[add\] a and b must have the same shape, got \(2, 3\) and \(3, 2\)"
    ):
        sei.add(np.ones((2, 3), np.float32), np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"\[axpy\] x and y must have the same shape"):
        sei.axpy(1.0, np.ones(3), np.ones(4))


def test_rejects_read_only_outputs_and_non_arrays():
    ro = np.ones(3, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"\[fill\] argument 'out' is read-only"):
        sei.fill(ro, 1.0)
    with pytest.raises(ValueError, match=r"argument 'a' must be a NumPy or CuPy array, got list"):
        sei.add([1.0, 2.0], np.ones(2))
    with pytest.raises(ValueError, match=r"argument 'x' must be a NumPy or CuPy array, got float"):
        sei.sum(3.0)


def test_rejects_nonfinite_scalars():
    with pytest.raises(ValueError, match=r"\[scale\] alpha must be finite"):
        sei.scale(float("inf"), np.ones(2))
    with pytest.raises(ValueError, match=r"\[gemm\] alpha and beta must be finite"):
        sei.gemm(np.ones((2, 2)), np.ones((2, 2)), alpha=float("nan"))


def test_empty_arrays_are_fine_for_elementwise_ops():
    e = np.zeros((0, 3), np.float32)
    assert sei.add(e, e).shape == (0, 3)
    assert sei.cast(e, "float16").shape == (0, 3)


def test_zero_dim_arrays():
    x = np.array(2.5, np.float32)
    assert float(sei.scale(2.0, x)) == 5.0
    assert float(sei.sum(x)) == 2.5


class FakeCudaArray:
    """An object claiming to be device memory at an address that is not."""

    def __init__(self, ptr: int) -> None:
        self.__cuda_array_interface__ = {
            "shape": (4,),
            "typestr": "<f4",
            "data": (ptr, False),
            "version": 3,
            "strides": None,
        }


def test_cuda_arrays_without_a_gpu_fail_cleanly():
    if sei.cuda.is_available():
        pytest.skip("a GPU is present: host pointers are checked by the driver instead")
    host = np.ones(4, np.float32)
    fake = FakeCudaArray(host.ctypes.data)
    with pytest.raises((ValueError, RuntimeError), match=r"CUDA|cuda"):
        sei.fill(fake, 1.0)
    np.testing.assert_array_equal(host, 1.0)  # untouched


def test_threads():
    old = sei.get_num_threads()
    try:
        sei.set_num_threads(1)
        assert sei.get_num_threads() == 1
    finally:
        sei.set_num_threads(old)
    for bad in (0, -3, 1.5, True):
        with pytest.raises(ValueError, match="n must be"):
            sei.set_num_threads(bad)
