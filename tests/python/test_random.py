"""Philox4x32-10 stream: known answers, a pure-Python oracle, distributions, and identical
bits for any thread count and on CPU and GPU."""

from __future__ import annotations

import numpy as np
import pytest

import seisoku as sei
from conftest import requires_cuda, to_host
from seisoku.random import philox4x32_10

M32 = 0xFFFFFFFF


def philox_reference(ctr, key):
    """Philox4x32-10 written from the paper's round function, in plain Python integers."""
    c = list(ctr)
    k0, k1 = key
    for _ in range(10):
        p0 = 0xD2511F53 * c[0]
        p1 = 0xCD9E8D57 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k0) & M32, p1 & M32, ((p0 >> 32) ^ c[3] ^ k1) & M32, p0 & M32]
        k0 = (k0 + 0x9E3779B9) & M32
        k1 = (k1 + 0xBB67AE85) & M32
    return tuple(c)


def test_known_answer_zero():
    assert philox4x32_10(0, 0, 0) == (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)


@pytest.mark.parametrize(
    "seed,offset,block",
    [(0, 0, 0), (1, 0, 0), (2**64 - 1, 2**64 - 1, 2**64 - 1), (0x0123456789ABCDEF, 77, 2**33 + 5)],
)
def test_matches_python_reference(seed, offset, block):
    ctr = (block & M32, block >> 32, offset & M32, offset >> 32)
    assert philox4x32_10(seed, offset, block) == philox_reference(ctr, (seed & M32, seed >> 32))


def test_uniform_float32_is_the_top_24_bits():
    g = sei.Generator(123, offset=9)
    u = g.uniform(10, dtype="float32")
    words = [w for b in range(3) for w in philox4x32_10(123, 9, b)][:10]
    np.testing.assert_array_equal(u, np.array([(w >> 8) * 2.0**-24 for w in words], np.float32))


def test_normal_matches_box_muller_in_float64():
    n = 4000
    z = sei.Generator(5).normal(n, dtype="float32")
    words = np.array([w for b in range(n // 4) for w in philox4x32_10(5, 0, b)], np.uint64)
    u1 = ((words[0::2] >> 8) + 1) * 2.0**-24
    u2 = (words[1::2] >> 8) * 2.0**-24
    r = np.sqrt(-2 * np.log(u1))
    ref = np.empty(n)
    ref[0::2] = r * np.cos(2 * np.pi * u2)
    ref[1::2] = r * np.sin(2 * np.pi * u2)
    err = np.abs(z - ref) / (1 + np.abs(ref))
    assert err.max() < 5e-7, err.max()


def test_normal_float64_matches_box_muller():
    n = 2000
    z = sei.Generator(8).normal(n, dtype="float64")
    words = [philox4x32_10(8, 0, b) for b in range(n // 2)]
    ref = []
    for w0, w1, w2, w3 in words:
        u1 = (((w0 >> 5) << 26 | (w1 >> 6)) + 1) * 2.0**-53
        u2 = ((w2 >> 5) << 26 | (w3 >> 6)) * 2.0**-53
        r = np.sqrt(-2 * np.log(u1))
        ref += [r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)]
    ref = np.array(ref)
    err = np.abs(z - ref) / (1 + np.abs(ref))
    assert err.max() < 2e-14, err.max()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_distributions(dtype):
    n = 2_000_000
    g = sei.Generator(42)
    u = g.uniform(n, low=-2.0, high=3.0, dtype=dtype)
    assert u.min() >= -2.0 and u.max() < 3.0
    se = 5 / np.sqrt(12 * n)
    assert abs(u.mean() - 0.5) < 5 * se
    assert abs(u.var() - 25 / 12) < 0.01
    z = g.normal(n, mean=1.0, std=2.0, dtype=dtype)
    assert abs(z.mean() - 1.0) < 5 * 2 / np.sqrt(n)
    assert abs(z.std() - 2.0) < 0.01
    # tails: P(|z0| > 3) = 0.0026998, 4 sigma = 6.334e-5
    z0 = (z - 1.0) / 2.0
    assert abs(np.mean(np.abs(z0) > 3) - 0.0026998) < 5 * np.sqrt(0.0027 / n)
    assert abs(np.mean(np.abs(z0) > 4) - 6.334e-5) < 5 * np.sqrt(6.3e-5 / n)
    b = g.bernoulli(n, p=0.3, dtype=dtype)
    assert set(np.unique(b)) <= {0.0, 1.0}
    assert abs(b.mean() - 0.3) < 5 * np.sqrt(0.21 / n)


def test_bernoulli_edges_and_uint8():
    g = sei.Generator(1)
    assert g.bernoulli(1000, p=0.0, dtype="uint8").sum() == 0
    assert g.bernoulli(1000, p=1.0, dtype="uint8").sum() == 1000
    assert g.bernoulli(10, p=0.5, dtype="uint8").dtype == np.uint8


def test_draws_depend_only_on_seed_and_offset():
    a = sei.Generator(7).uniform(1000)
    b = sei.Generator(7).uniform(1000)
    np.testing.assert_array_equal(a, b)
    g = sei.Generator(7)
    first, second = g.uniform(1000), g.uniform(1000)
    assert not np.array_equal(first, second)
    assert g.offset == 2
    np.testing.assert_array_equal(sei.Generator(7, offset=1).uniform(1000), second)
    # a prefix of a longer draw is the shorter draw
    np.testing.assert_array_equal(sei.Generator(7).normal(1003)[:999], sei.Generator(7).normal(999))
    assert not np.array_equal(sei.Generator(8).uniform(1000), a)


def test_state_dict_round_trip():
    g = sei.Generator(11)
    g.uniform(5)
    state = g.state_dict()
    expected = g.normal(100)
    h = sei.Generator(0)
    h.load_state_dict(state)
    np.testing.assert_array_equal(h.normal(100), expected)


@pytest.mark.parametrize("kind", ["uniform", "normal", "bernoulli"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bits_identical_for_one_and_two_threads(kind, dtype):
    n = 3_000_001
    old = sei.get_num_threads()
    try:
        sei.set_num_threads(1)
        one = getattr(sei.Generator(99), kind)(n, dtype=dtype)
        s1 = sei.sum(one)
        sei.set_num_threads(2)
        assert sei.get_num_threads() == 2
        two = getattr(sei.Generator(99), kind)(n, dtype=dtype)
        s2 = sei.sum(two)
    finally:
        sei.set_num_threads(old)
    np.testing.assert_array_equal(one.view(np.uint8), two.view(np.uint8))
    assert s1.tobytes() == s2.tobytes()


@requires_cuda
@pytest.mark.parametrize("kind", ["uniform", "normal", "bernoulli"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cuda_bits_equal_cpu_bits(kind, dtype):
    n = 1_000_003
    cpu = getattr(sei.Generator(3, offset=5), kind)(n, dtype=dtype)
    gpu = getattr(sei.Generator(3, offset=5), kind)(n, dtype=dtype, device="cuda")
    np.testing.assert_array_equal(cpu.view(np.uint8), to_host(gpu).view(np.uint8))


def test_bad_arguments():
    for bad in (-1, 2**64, 1.5, True, "1"):
        with pytest.raises(ValueError, match=r"\[Generator\] argument 'seed' must be an int in"):
            sei.Generator(bad)
    with pytest.raises(ValueError, match=r"\[Generator\] argument 'offset' must be an int in"):
        sei.Generator(0, offset=-3)
    g = sei.Generator(0)
    with pytest.raises(ValueError, match=r"\[bernoulli\] p must be in \[0, 1\], got 1.5"):
        g.bernoulli(3, p=1.5)
    with pytest.raises(ValueError, match=r"\[bernoulli\] p must be in"):
        g.bernoulli(3, p=float("nan"))
    with pytest.raises(ValueError, match=r"\[normal\] argument 'std' must be finite and >= 0"):
        g.normal(3, std=-1.0)
    with pytest.raises(ValueError, match=r"\[uniform\] need finite low <= high"):
        g.uniform(3, low=1.0, high=0.0)
    with pytest.raises(ValueError, match=r"\[uniform\] argument 'size' must be a non-negative int"):
        g.uniform((2, -1))
    with pytest.raises(ValueError, match=r"\[uniform\] argument 'dtype' must be one of float32, f"):
        g.uniform(3, dtype="int32")
    with pytest.raises(ValueError, match=r"\[uniform\] argument 'device' must be 'cpu', 'cuda'"):
        g.uniform(3, device="tpu")
    with pytest.raises(ValueError, match=r"\[Generator.next_offset\] argument 'n' must be"):
        g.next_offset(0)
    with pytest.raises(ValueError, match=r"\[uniform\] out must have dtype float32, float64"):
        g.uniform(out=np.zeros(3, np.int16))
