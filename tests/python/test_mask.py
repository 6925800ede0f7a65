"""Dropout and Gaussian noise (seisoku.nn.functional): masks and noise are the Philox stream
of seisoku.Generator, the same bits for any thread count; the CPU result is the oracle of the
CUDA twins."""

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
    fd_grad,
    keep_mask,
    num_threads,
    rand,
    snap,
)
from seisoku.nn import functional as nnf
from seisoku.random import philox4x32_10

# ---- dropout ----


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("n", [1, 3, 5, 1003])
def test_dropout_mask_is_bernoulli_of_the_stream(n, p, dtype):
    seed, offset = 1234, 56
    x = away_from_zero(n, dtype, seed=12)
    out = nnf.dropout(x, p, seed, offset, scale=1.7)
    kept = keep_mask(n, p, seed, offset)
    np.testing.assert_array_equal(out != 0, kept)
    np.testing.assert_array_equal(out[kept], x[kept] * dtype(1.7))
    assert np.all(out[~kept] == 0)
    assert out.dtype == dtype


@pytest.mark.parametrize("p", [0.25, 0.6])
def test_dropout_mask_is_the_raw_philox_word_test(p):
    """Element i kept iff word i % 4 of block i / 4 of the stream is < (1 - p) * 2**32."""
    seed, offset, n = 77, 9, 41
    out = nnf.dropout(np.ones(n), p, seed, offset, scale=1.0)
    threshold = (1.0 - p) * 2.0**32
    words = [w for b in range((n + 3) // 4) for w in philox4x32_10(seed, offset, b)][:n]
    np.testing.assert_array_equal(out, [1.0 if w < threshold else 0.0 for w in words])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", [0.2, 0.5, 0.75])
def test_dropout_default_is_inverted(p, dtype):
    x = rand(999, dtype, seed=13)
    out = nnf.dropout(x, p, 5, 6)
    kept = keep_mask(x.size, p, 5, 6)
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
    np.testing.assert_array_equal(big != 0, keep_mask(x.size, 0.5, 2**64 - 1, 2**64 - 1))


@pytest.mark.parametrize("p", [0.1, 0.3, 0.8])
def test_dropout_keep_rate_and_mean(p):
    n = 1_000_000
    out = nnf.dropout(np.ones(n, np.float32), p, 2024, 3)
    q = 1.0 - p
    rate = np.count_nonzero(out) / n
    assert abs(rate - q) < 5 * np.sqrt(p * q / n)
    # inverted scaling: each element is 1/q w.p. q, else 0 -> mean 1, variance p / q
    assert abs(float(out.astype(np.float64).mean()) - 1.0) < 5 * np.sqrt(p / q / n)


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
    np.testing.assert_array_equal(one != 0, keep_mask(x.size, 0.35, 11, 12))


@pytest.mark.parametrize("p", [2.0**-54, 1e-17, 1e-300])
def test_dropout_tiny_p_keeps_everything(p):
    x = rand(64, np.float64, seed=19)
    np.testing.assert_array_equal(keep_mask(x.size, p, 1, 2), np.ones(x.size, bool))
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


def test_dropout_large_float32_output_matches_the_stream():
    # 2**21 + 5 elements: large enough for the streaming-store path, with a ragged tail.
    n = (1 << 21) + 5
    x = np.random.default_rng(4).random(n, dtype=np.float32) + 0.5
    y = nnf.dropout(x, 0.3, 5, 7)
    kept = sei.Generator(5, offset=7).bernoulli(n, p=0.7, dtype="uint8").astype(bool)
    np.testing.assert_array_equal(y != 0, kept)
    np.testing.assert_array_equal(y[kept], x[kept] * np.float32(1 / 0.7))
