"""seisoku.augment's Gaussian smoothing and elastic fields against an exact NumPy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import to_device, to_host
from seisoku import augment as sa
from test_augment import images

RNG = np.random.default_rng(20240602)

# From tiny to the largest sigma accepted, across every method the smoothing switches between
# (sampled kernel, float and double recursive filters) and both sides of each switch.
SIGMAS = [1e-3, 0.2, 0.5, 0.8, 1.0, 4 / 3, 1.5, 2.0, 3.0, 4.0, 7.5, 16.0, 50.0, 63.9, 64.0]
SIGMAS += [200.0, 1e3, 1e4, 1e6]


def gaussian_weights(n: int, sigma: float) -> np.ndarray:
    """(n, n) float64 W with out = W @ line: the sampled Gaussian exp(-k^2 / (2 sigma^2)) / Z
    over all integers k (untruncated, Z its sum), the line's end values extended without end
    (scipy.ndimage's mode "nearest" with an unlimited truncate)."""
    k = np.arange(n, dtype=np.float64)
    g = np.exp(-0.5 * (k / sigma) ** 2)
    if sigma >= 2:  # Poisson summation: the sum is sqrt(2 pi) sigma to 1e-17 from sigma 2 on
        z = math.sqrt(2 * math.pi) * sigma
    else:
        z = 1.0 + 2.0 * np.exp(-0.5 * (np.arange(1, 40 * max(sigma, 1.0)) / sigma) ** 2).sum()
    g /= z
    # tail[m] = sum of g over the offsets k >= m (both signs counted once each side).
    tail = 0.5 + g[0] / 2 - np.concatenate([[0.0], np.cumsum(g)])
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    w = g[np.abs(i - j)]
    if n == 1:
        return np.ones((1, 1))
    w[:, 0] = tail[np.arange(n)]  # offsets k >= i land on index 0 or before it
    w[:, n - 1] = tail[n - 1 - np.arange(n)]
    return w


def ref_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """x (N, H, W) smoothed along H and W (float64)."""
    if sigma == 0:
        return x.astype(np.float64)
    wh = gaussian_weights(x.shape[1], sigma)
    ww = gaussian_weights(x.shape[2], sigma)
    return np.einsum("ij,njk,lk->nil", wh, x.astype(np.float64), ww)


def test_reference_is_scipy_with_edge_extension():
    ndimage = pytest.importorskip("scipy.ndimage")
    x = RNG.uniform(-1, 1, (2, 9, 23))
    for sigma in (0.4, 1.7, 6.0):
        want = ndimage.gaussian_filter(x, sigma, mode="nearest", truncate=60.0, axes=(1, 2))
        np.testing.assert_allclose(ref_smooth(x, sigma), want, rtol=0, atol=1e-12)


def planes(h: int, w: int) -> np.ndarray:
    """Uniform noise (the elastic fields' input), impulses at a corner, an edge and the
    centre, a step and a ramp: (6, h, w) float32."""
    x = np.zeros((6, h, w), np.float32)
    x[0] = RNG.uniform(-1, 1, (h, w))
    x[1, -1, -1] = 1
    x[2, h // 2, 0] = 1
    x[3, h // 2, w // 2] = 1
    x[4, :, w // 2 :] = 1
    x[5] = np.linspace(-3, 5, h * w).reshape(h, w)
    return x


SHAPES = [(1, 1), (1, 7), (5, 1), (2, 3), (16, 16), (28, 28), (37, 64), (3, 300)]


@pytest.mark.parametrize("sigma", SIGMAS)
def test_gaussian_smooth_is_a_true_gaussian_with_edge_extension(sigma):
    for h, w in SHAPES:
        x = planes(h, w)
        out = sa.gaussian_smooth(x, sigma)
        ref = ref_smooth(x, sigma)
        err = np.abs(out - ref).max(axis=(1, 2))
        scale = np.abs(ref).max(axis=(1, 2))
        assert (err <= 1e-3 * scale).all(), (sigma, h, w, err / scale)


def test_gaussian_smooth_at_the_edge_of_a_line():
    # An impulse at the end of a line, sigma 4: the mirrored input's value at index 0.
    x = np.zeros((1, 1, 16), np.float32)
    x[0, 0, -1] = 1
    out = sa.gaussian_smooth(x, 4.0)
    mirrored = sa.gaussian_smooth(x[..., ::-1].copy(), 4.0)[0, 0]
    np.testing.assert_allclose(out[0, 0, ::-1], mirrored, rtol=1e-6)
    assert abs(out[0, 0, -1] - ref_smooth(x, 4.0)[0, 0, -1]) < 1e-4
    assert abs(out[0, 0, -1] - 0.5499) < 1e-3


@pytest.mark.parametrize("sigma", [0.0, 0.7, 3.0, 50.0])
def test_gaussian_smooth_keeps_constants_and_mass(sigma):
    flat = sa.gaussian_smooth(np.full((2, 20, 31), 2.5, np.float32), sigma)
    np.testing.assert_allclose(flat, 2.5, rtol=1e-4)
    impulse = np.zeros((1, 401, 401), np.float32)
    impulse[0, 200, 200] = 1
    np.testing.assert_allclose(sa.gaussian_smooth(impulse, min(sigma, 40)).sum(), 1.0, rtol=1e-4)


def test_gaussian_smooth_zero_is_a_copy_and_sigma_is_bounded():
    x = RNG.standard_normal((2, 6, 7)).astype(np.float32)
    np.testing.assert_array_equal(sa.gaussian_smooth(x, 0.0), x)
    for bad in (-1.0, 2e6, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sigma"):
            sa.gaussian_smooth(x, bad)


@pytest.mark.parametrize("sigma", [0.0, 1.0, 3.0, 40.0])
def test_gaussian_smooth_cuda_equals_cpu(device, sigma):
    if device != "cuda":
        pytest.skip("compares the CUDA twin with the CPU")
    x = RNG.uniform(-1, 1, (5, 33, 19)).astype(np.float32)
    gpu = to_host(sa.gaussian_smooth(to_device(x, device), sigma))
    np.testing.assert_array_equal(gpu, sa.gaussian_smooth(x, sigma))


# ---- elastic fields -----------------------------------------------------------------------


def test_elastic_is_displacement_by_its_fields(device):
    x = to_device(images(n=5, h=14, w=15, c=3, layout="NCHW", dtype=np.float32), device)
    steps = [
        sa.HorizontalFlip(0.0),
        sa.ElasticDistortion(5.0, 2.0, interpolation="bicubic", border="reflect"),
    ]
    out = sa.Compose(steps, seed=11, layout="NCHW")(x, sample_offset=40)
    disp = sa.elastic_displacement(
        5, 14, 15, 5.0, 2.0, seed=11, sample_offset=40, step_index=1, device=device
    )
    ref = sa.displace(x, disp, "bicubic", "reflect", layout="NCHW")
    np.testing.assert_array_equal(to_host(out), to_host(ref))
    assert np.abs(to_host(disp)).max() > 0.1


def test_elastic_fields_are_smoothed_uniform_noise():
    raw = sa.elastic_displacement(4, 30, 40, 1.0, 0.0, seed=2)
    assert raw.min() >= -1 and raw.max() < 1
    assert abs(raw.mean()) < 0.02 and abs(raw.std() - 1 / np.sqrt(3)) < 0.01
    for sigma in (0.3, 1.5, 4.0):
        smooth = sa.elastic_displacement(4, 30, 40, 1.0, sigma, seed=2)
        expect = sa.gaussian_smooth(raw.reshape(8, 30, 40), sigma).reshape(4, 2, 30, 40)
        np.testing.assert_array_equal(smooth, expect)
    scaled = sa.elastic_displacement(4, 30, 40, 34.0, 4.0, seed=2)
    np.testing.assert_allclose(
        scaled, 34.0 * sa.elastic_displacement(4, 30, 40, 1.0, 4.0, seed=2), rtol=1e-6
    )


def test_elastic_cost_does_not_grow_with_sigma():
    import time

    x = images(n=8, h=96, w=96, c=1)

    def cost(sigma):
        aug = sa.Compose([sa.ElasticDistortion(10.0, sigma)])
        aug(x)
        best = np.inf
        for _ in range(5):
            t0 = time.perf_counter()
            aug(x)
            best = min(best, time.perf_counter() - t0)
        return best

    assert cost(30.0) < 2.0 * cost(1.0)
