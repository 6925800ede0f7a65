"""Dropout and Gaussian noise (seisoku.nn.functional): masks and noise are the Philox stream
of seisoku.Generator, the same bits for any thread count; the CPU result is the oracle of the
CUDA twins. The dropout mask is checked against an independent NumPy Philox4x32-10 and the
documented 16-bit draw (seisoku/mask.hpp)."""

from __future__ import annotations

import numpy as np
import pytest

import seisoku as sei
from conftest import to_device
from reference import (
    FLOATS,
    assert_grad,
    assert_twin,
    away_from_zero,
    dropout_keep_mask,
    fd_grad,
    num_threads,
    numpy_philox,
    rand,
    snap,
)
from seisoku.nn import functional as nnf
from seisoku.random import philox4x32_10


def test_numpy_philox_known_answers():
    """Random123's known-answer vectors of philox4x32_10, and seisoku's own generator."""
    kat = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ]
    for ctr, key, expected in kat:
        seed = key[0] | key[1] << 32
        block, offset = ctr[0] | ctr[1] << 32, ctr[2] | ctr[3] << 32
        assert tuple(int(v) for v in numpy_philox(seed, offset, [block])[0]) == expected
    seed, offset = 2**64 - 3, 2**63 + 7
    blocks = [0, 1, 2**32 + 5, 2**64 - 1]
    ours = numpy_philox(seed, offset, blocks)
    for b, row in zip(blocks, ours):
        assert tuple(int(v) for v in row) == philox4x32_10(seed, offset, b)


# ---- dropout ----


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("n", [1, 3, 5, 8, 9, 255, 256, 257, 1003, 70_001])
def test_dropout_mask_is_the_documented_16_bit_draw(n, p, dtype):
    seed, offset = 1234, 56
    x = away_from_zero(n, dtype, seed=12)
    out = nnf.dropout(x, p, seed, offset, scale=1.7)
    kept = dropout_keep_mask(n, p, seed, offset)
    np.testing.assert_array_equal(out != 0, kept)
    np.testing.assert_array_equal(out[kept], x[kept] * dtype(1.7))
    assert np.all(out[~kept] == 0)
    assert out.dtype == dtype


@pytest.mark.parametrize("p", [0.25, 0.6])
def test_dropout_mask_element_by_element(p):
    """Element i kept iff half i % 2 of word (i // 2) % 4 of block i // 8 of the stream is
    < 65536 - round(65536 p), with the words of seisoku.random.philox4x32_10."""
    seed, offset, n = 77, 9, 41
    out = nnf.dropout(np.ones(n), p, seed, offset, scale=1.0)
    bound = 65536 - round(65536 * p)
    expected = []
    for i in range(n):
        word = philox4x32_10(seed, offset, i // 8)[(i // 2) % 4]
        expected.append(1.0 if (word >> (16 * (i % 2))) & 0xFFFF < bound else 0.0)
    np.testing.assert_array_equal(out, expected)


def test_dropout_p_resolution_is_two_to_the_minus_16():
    """p is rounded to a multiple of 2**-16 (halves up): p values that round alike give the
    same mask, the next multiple a different one; p < 2**-17 drops nothing, p >= 1 - 2**-17
    everything."""
    n, seed, offset = 1 << 20, 3, 4
    x = np.ones(n, np.float32)

    def kept(p):
        return nnf.dropout(x, p, seed, offset, scale=1.0) != 0

    d = 6554  # 0.1 * 65536 = 6553.6
    base = kept(d / 65536)
    np.testing.assert_array_equal(base, dropout_keep_mask(n, d / 65536, seed, offset))
    for p in (0.1, (d - 0.5) / 65536, (d + 0.49) / 65536):
        np.testing.assert_array_equal(kept(p), base)
    above = kept((d + 0.5) / 65536)
    assert np.count_nonzero(base & ~above) > 0 and not np.any(above & ~base)
    assert kept(2.0**-17 * 0.999).all()
    assert not kept(2.0**-17).all()  # about 16 of the 2**20 draws are 65535
    assert not kept(1.0 - 2.0**-17).any()
    assert kept(1.0 - 2.0**-16).any()


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", [0.2, 0.5, 0.75])
def test_dropout_default_is_inverted(p, dtype):
    x = rand(999, dtype, seed=13)
    out = nnf.dropout(x, p, 5, 6)
    kept = dropout_keep_mask(x.size, p, 5, 6)
    np.testing.assert_array_equal(out[kept], x[kept] * dtype(1.0 / (1.0 - p)))
    assert np.all(out[~kept] == 0)
    np.testing.assert_array_equal(nnf.dropout(x, p, 5, 6, scale=1.0 / (1.0 - p)), out)


def test_dropout_seed_and_offset_select_the_stream():
    x = np.ones(4096, np.float32)
    base = nnf.dropout(x, 0.5, 1, 0)
    np.testing.assert_array_equal(nnf.dropout(x, 0.5, 1, 0), base)
    assert not np.array_equal(nnf.dropout(x, 0.5, 2, 0), base)
    assert not np.array_equal(nnf.dropout(x, 0.5, 1, 1), base)
    big = nnf.dropout(x, 0.5, 2**64 - 1, 2**64 - 1)
    np.testing.assert_array_equal(big != 0, dropout_keep_mask(x.size, 0.5, 2**64 - 1, 2**64 - 1))


@pytest.mark.parametrize("p", [0.1, 0.3, 0.8])
def test_dropout_keep_rate_and_mean(p):
    n = 1_000_000
    out = nnf.dropout(np.ones(n, np.float32), p, 2024, 3)
    q = 1.0 - p
    rate = np.count_nonzero(out) / n
    assert abs(rate - q) < 5 * np.sqrt(p * q / n)
    # inverted scaling: each element is 1/q w.p. about q, else 0 -> mean 1 (within the 2**-17
    # resolution of p), variance p / q
    assert abs(float(out.astype(np.float64).mean()) - 1.0) < 5 * np.sqrt(p / q / n) + 2.0**-17 / q


@pytest.mark.parametrize("dtype", FLOATS)
def test_dropout_on_gradient_is_backward(dtype):
    seed, offset, p = 31, 4, 0.4
    x = rand((5, 9), dtype, seed=14)
    g = rand((5, 9), dtype, seed=15)
    grad = nnf.dropout(g, p, seed, offset)
    g64 = g.astype(np.float64)
    fd = fd_grad(lambda v: float(np.sum(g64 * nnf.dropout(v, p, seed, offset))), x)
    assert_grad(grad, fd, dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_dropout_p_zero_copies(dtype):
    x = rand(1001, dtype, seed=16)
    x[:2] = [-0.0, np.nan]
    out = nnf.dropout(x, 0.0, 1, 2)
    assert out is not x
    np.testing.assert_array_equal(out.view(np.uint8), x.view(np.uint8))


@pytest.mark.parametrize("dtype", FLOATS)
def test_dropout_out_may_alias_x(dtype):
    x = rand(5000, dtype, seed=17)
    expected = nnf.dropout(x, 0.3, 8, 9)
    nnf.dropout(x, 0.3, 8, 9, out=x)
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan"), True, "0.5"])
def test_dropout_bad_p(p):
    with pytest.raises(ValueError, match=r"\[dropout\] (argument 'p'|p) must be"):
        nnf.dropout(np.ones(4), p, 0, 0)


def test_dropout_bad_p_native():
    x = np.ones(4)
    for p in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match=r"\[dropout\] p must be"):
            nnf.dropout(x, p, 0, 0, scale=1.0)
    with pytest.raises(ValueError, match="scale must be finite"):
        nnf.dropout(x, 0.5, 0, 0, scale=float("inf"))
    with pytest.raises(ValueError, match=r"\[dropout\]"):
        nnf.dropout(np.ones(4, np.int32), 0.5, 0, 0)


@pytest.mark.parametrize("dtype", FLOATS)
def test_dropout_bits_identical_for_one_and_two_threads(dtype):
    x = rand(1_000_003, dtype, seed=18)
    with num_threads(1):
        one = nnf.dropout(x, 0.35, 11, 12)
    with num_threads(2):
        assert sei.get_num_threads() == 2
        two = nnf.dropout(x, 0.35, 11, 12)
    np.testing.assert_array_equal(one.view(np.uint8), two.view(np.uint8))
    np.testing.assert_array_equal(one != 0, dropout_keep_mask(x.size, 0.35, 11, 12))


@pytest.mark.parametrize("p", [2.0**-54, 1e-17, 1e-300, 2.0**-18])
def test_dropout_tiny_p_keeps_everything(p):
    x = rand(64, np.float64, seed=19)
    np.testing.assert_array_equal(dropout_keep_mask(x.size, p, 1, 2), np.ones(x.size, bool))
    np.testing.assert_array_equal(nnf.dropout(x, p, 1, 2, scale=1.0), x)


# ---- gaussian_noise ----


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", [1, 2, 3, 5, 1001])
@pytest.mark.parametrize("std", [1.0, 0.3])
def test_gaussian_noise_on_zeros_is_generator_normal(n, std, dtype):
    out = nnf.gaussian_noise(np.zeros(n, dtype), std, 21, 22)
    ref = sei.Generator(21, offset=22).normal(n, std=std, dtype=np.dtype(dtype).name)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("dtype", FLOATS)
def test_gaussian_noise_adds_to_x(dtype):
    x = rand((37, 29), dtype, seed=23)
    out = nnf.gaussian_noise(x, 0.5, 3, 4)
    noise = sei.Generator(3, offset=4).normal(x.shape, std=0.5, dtype=np.dtype(dtype).name)
    # fma(n, std, x) versus x + fl(n * std): at most one rounding apart
    eps = float(np.finfo(dtype).eps)
    np.testing.assert_allclose(out, x + noise, rtol=2 * eps, atol=2 * eps)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("std", [1.0, 2.5])
def test_gaussian_noise_statistics(std, dtype):
    n = 1_000_000
    x = rand(n, dtype, seed=24)
    noise = nnf.gaussian_noise(x, std, 7, 8).astype(np.float64) - x.astype(np.float64)
    assert abs(noise.mean()) < 5 * std / np.sqrt(n)
    assert abs(noise.std() - std) < 5 * std / np.sqrt(2 * n)


@pytest.mark.parametrize("dtype", FLOATS)
def test_gaussian_noise_zero_std_and_aliasing(dtype):
    x = rand(777, dtype, seed=25)
    np.testing.assert_array_equal(nnf.gaussian_noise(x, 0.0, 1, 1), x)
    expected = nnf.gaussian_noise(x, 0.7, 1, 1)
    nnf.gaussian_noise(x, 0.7, 1, 1, out=x)
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("dtype", FLOATS)
def test_gaussian_noise_bits_identical_for_one_and_two_threads(dtype):
    x = rand(1_000_003, dtype, seed=26)
    with num_threads(1):
        one = nnf.gaussian_noise(x, 0.8, 13, 14)
    with num_threads(2):
        two = nnf.gaussian_noise(x, 0.8, 13, 14)
    np.testing.assert_array_equal(one.view(np.uint8), two.view(np.uint8))


@pytest.mark.parametrize("std", [-1.0, float("nan"), float("inf")])
def test_gaussian_noise_bad_std(std):
    with pytest.raises(ValueError, match=r"\[gaussian_noise\] stddev must be"):
        nnf.gaussian_noise(np.ones(4), std, 0, 0)


# ---- the Philox stream arguments of the stochastic ops ----


@pytest.mark.parametrize("bad", [-1, 2**64])
@pytest.mark.parametrize("op", ["dropout", "gaussian_noise", "linear"])
def test_stream_arguments_out_of_range_raise_valueerror(op, bad):
    x = np.ones((2, 3))
    call = {
        "dropout": lambda: nnf.dropout(x, 0.5, bad, 0),
        "gaussian_noise": lambda: nnf.gaussian_noise(x, 0.5, 0, bad),
        "linear": lambda: nnf.linear(x, np.ones((4, 3)), dropout_p=0.5, seed=bad),
    }[op]
    with pytest.raises(ValueError):
        call()


# ---- CUDA twins (the CPU result is the oracle) ----


def _cases():
    """name -> fn(dev) returning [(result on host, exact?)]; dev moves a host array."""
    x = rand((300, 257), np.float32, seed=140, scale=3.0)
    x64 = x.astype(np.float64)
    cases = {}

    def dropout(d):
        out = []
        for xv in (x, x64, rand(1_000_003, np.float32, seed=143)):
            out.append((snap(nnf.dropout(d(xv), 0.3, 17, 2**40 + 3)), True))
            out.append((snap(nnf.dropout(d(xv), 0.6, 18, 1, scale=1.0)), True))
            out.append((snap(nnf.dropout(d(xv), 0.0, 18, 1)), True))
        return out

    def gaussian_noise(d):
        out = []
        for xv in (x, x64, rand(1_000_003, np.float64, seed=144)):
            out.append((snap(nnf.gaussian_noise(d(xv), 0.7, 19, 5)), True))
        return out

    cases.update(dropout=dropout, gaussian_noise=gaussian_noise)
    return cases


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_device_matches_cpu(device, case):
    fn = CASES[case]
    assert_twin(fn(lambda a: to_device(a, device)), fn(lambda a: a))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", [(1 << 21) + 5, (1 << 21) + 64 * 3])
def test_dropout_large_float32_output_matches_the_stream(n, threads):
    # Large enough for the streaming-store path, with a ragged tail; outputs starting at every
    # float offset from a 64-byte boundary (streamed between masked head and tail stores) and
    # in place (never streamed) give the same values.
    x = np.random.default_rng(4).random(n, dtype=np.float32) + 0.5
    buf = np.empty(n + 32, np.float32)
    base = (-buf.ctypes.data % 64) // 4
    with num_threads(threads):
        y = nnf.dropout(x, 0.3, 5, 7)
        in_place = x.copy()
        nnf.dropout(in_place, 0.3, 5, 7, out=in_place)
        for lead in range(17):
            out = buf[base + lead : base + lead + n]
            out.fill(-1.0)
            nnf.dropout(x, 0.3, 5, 7, out=out)
            np.testing.assert_array_equal(out, y, err_msg=f"output {lead} floats past 64 bytes")
    kept = dropout_keep_mask(n, 0.3, 5, 7)
    np.testing.assert_array_equal(y != 0, kept)
    np.testing.assert_array_equal(y[kept], x[kept] * np.float32(1 / 0.7))
    np.testing.assert_array_equal(in_place, y)


def test_dropout_nan_and_inf_inputs():
    """A kept NaN/Inf is scaled, a dropped one gives NaN (x * 0), on every path."""
    n = (1 << 20) + 37
    x = np.ones(n, np.float32)
    x[::7] = np.nan
    x[3::7] = np.inf
    kept = dropout_keep_mask(n, 0.5, 1, 2)
    for out in (nnf.dropout(x, 0.5, 1, 2), nnf.dropout(x[:300].copy(), 0.5, 1, 2)):
        m = out.size
        special = ~np.isfinite(x[:m])
        np.testing.assert_array_equal(np.isnan(out), np.isnan(x[:m]) | (special & ~kept[:m]))
        np.testing.assert_array_equal(np.isinf(out), np.isinf(x[:m]) & kept[:m])
