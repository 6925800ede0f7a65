"""dropconnect_gaussian (seisoku.nn.functional), the Gaussian inference of DropConnect: against a
NumPy reference built from the documented normals of the Philox stream, against a Monte Carlo
over real DropConnect masks, thread counts, bad arguments, and the CUDA twin against the CPU."""

from __future__ import annotations

import numpy as np
import pytest

import seisoku as sei
from conftest import to_device
from reference import ACT_IDS, ACTS, FLOATS, act_ref, assert_twin, num_threads, rand, snap
from seisoku import nn
from seisoku.nn import functional as nnf


def reference(mean, var, name, slope, samples, seed, offset):
    """The documented draws: element i uses normals i * samples ... of the stream (seed, offset)
    in the layout of Generator.normal; the mean of act over them, in float64."""
    dtype = mean.dtype.name
    e = sei.Generator(seed, offset=offset).normal((mean.size * samples,), dtype=dtype)
    e = e.astype(np.float64).reshape(mean.size, samples)
    u = mean.reshape(-1, 1).astype(np.float64) + np.sqrt(var.reshape(-1, 1).astype(np.float64)) * e
    return act_ref(u, name, slope).mean(axis=1).reshape(mean.shape)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("name", "slope"), ACTS, ids=ACT_IDS)
@pytest.mark.parametrize("samples", [1, 3, 64])
def test_matches_the_reference_over_the_documented_draws(name, slope, samples, dtype):
    mean = rand((7, 9), dtype, seed=1)
    var = np.abs(rand((7, 9), dtype, seed=2))
    out = nnf.dropconnect_gaussian(mean, var, name, slope, samples, seed=5, offset=11)
    ref = reference(mean, var, name, slope, samples, 5, 11)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    # Another stream gives other draws; zero variance gives act(mean) exactly.
    if samples > 1:
        assert not np.allclose(
            out, nnf.dropconnect_gaussian(mean, var, name, slope, samples, 6, 11)
        )
    flat = nnf.dropconnect_gaussian(mean, np.zeros_like(var), name, slope, samples)
    np.testing.assert_allclose(flat, act_ref(mean, name, slope), rtol=tol, atol=tol)


def test_approximates_dropconnect_masks_better_than_the_mean_weights():
    # The moment-matched Gaussian against 20k real masks, through a tanh (Wan et al. 2013).
    p, keep = 0.5, 0.5
    x = rand((6, 30), np.float64, seed=3)
    w = rand((4, 30), np.float64, seed=4) / np.sqrt(30)
    masks = sei.Generator(9).bernoulli((20000, 4, 30), p=keep, dtype="float64")
    monte_carlo = np.tanh(np.einsum("nk,sok->sno", x, masks * w)).mean(axis=0)
    mean = keep * (x @ w.T)
    var = keep * (1 - keep) * ((x * x) @ (w * w).T)
    gaussian = nnf.dropconnect_gaussian(mean, var, "tanh", samples=2000, seed=1)
    error = np.abs(gaussian - monte_carlo).max()
    assert error < 0.03
    assert error < 0.5 * np.abs(np.tanh(mean) - monte_carlo).max()
    layer = nn.DropConnect(
        30, 4, p=p, bias=False, activation="tanh", inference="gaussian", dtype="float64"
    )
    layer.weight.value[...] = w
    layer.samples = 2000
    assert np.abs(layer.eval()(x) - monte_carlo).max() < 0.03


@pytest.mark.parametrize("dtype", FLOATS)
def test_bits_do_not_depend_on_threads(dtype):
    mean, var = rand(20001, dtype, seed=7), np.abs(rand(20001, dtype, seed=8))
    with num_threads(1):
        one = nnf.dropconnect_gaussian(mean, var, "sigmoid", samples=5, seed=3, offset=4)
    with num_threads(2):
        two = nnf.dropconnect_gaussian(mean, var, "sigmoid", samples=5, seed=3, offset=4)
    np.testing.assert_array_equal(one, two)


def test_bad_arguments():
    mean, var = rand((3, 4), np.float32), np.ones((3, 4), np.float32)
    cases = [
        (
            lambda: nnf.dropconnect_gaussian(mean, var, samples=0),
            "argument 'samples' must be an int >= 1",
        ),
        (
            lambda: nnf.dropconnect_gaussian(mean, var, "gelu"),
            "argument 'activation' must be one of",
        ),
        (lambda: nnf.dropconnect_gaussian(mean, var[:2]), "must have the same shape"),
        (lambda: nnf.dropconnect_gaussian(mean, var.astype(np.float64)), "same dtype"),
        (lambda: nnf.dropconnect_gaussian(mean.astype(np.int32), var), "must have dtype float32"),
        (lambda: nnf.dropconnect_gaussian(mean, var, seed=-1), "argument 'seed' must be an int in"),
        (lambda: nnf.dropconnect_gaussian(mean, var, out=var), "must not overlap"),
        (lambda: nnf.dropconnect_gaussian(mean.tolist(), var), "must be a NumPy or CuPy array"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=r"\[dropconnect_gaussian\].*" + message):
            call()


def test_device_matches_cpu(device):
    def run(d):
        out = []
        for dtype in FLOATS:
            mean, var = rand((300, 257), dtype, seed=10), np.abs(rand((300, 257), dtype, seed=11))
            for name, slope in ACTS:
                y = nnf.dropconnect_gaussian(
                    d(mean), d(var), name, slope, samples=7, seed=2, offset=9
                )
                out.append((snap(y), name in ("identity", "relu", "leaky_relu")))
        return out

    assert_twin(run(lambda a: to_device(a, device)), run(lambda a: a))
