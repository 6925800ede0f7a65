"""Shared references of the op tests: NumPy forms of the activations, finite differences,
the documented dropout mask, and the comparison of a CUDA twin with its CPU oracle."""

from __future__ import annotations

import contextlib

import numpy as np

import seisoku as sei
from conftest import to_device, to_host

FLOATS = [np.float32, np.float64]
ACTS = [
    ("identity", 0.01),
    ("relu", 0.01),
    ("leaky_relu", 0.1),
    ("leaky_relu", 0.0),
    ("tanh", 0.01),
    ("sigmoid", 0.01),
]
ACT_IDS = [f"{a}-{s}" if a == "leaky_relu" else a for a, s in ACTS]


def rand(shape, dtype=np.float64, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def away_from_zero(shape, dtype=np.float64, seed=0, margin=0.1):
    """Normal values pushed at least `margin` away from 0 (away from the kinks of relu)."""
    x = rand(shape, np.float64, seed)
    return (x + np.where(x >= 0, margin, -margin)).astype(dtype)


def grad_tol(dtype) -> float:
    """Tolerance of a gradient against a float64 finite difference."""
    return 2e-5 if np.dtype(dtype) == np.float32 else 1e-7


def fd_grad(f, x, h=1e-6):
    """Central finite differences of the scalar f at x, in float64."""
    x = np.array(x, dtype=np.float64)
    g = np.empty_like(x)
    xf, gf = x.reshape(-1), g.reshape(-1)
    for i in range(xf.size):
        old = xf[i]
        xf[i] = old + h
        up = f(x)
        xf[i] = old - h
        down = f(x)
        xf[i] = old
        gf[i] = (up - down) / (2 * h)
    return g


def assert_grad(actual, expected, dtype):
    t = grad_tol(dtype)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=t, atol=t * scale)


@contextlib.contextmanager
def num_threads(n: int):
    old = sei.get_num_threads()
    sei.set_num_threads(n)
    try:
        yield
    finally:
        sei.set_num_threads(old)


# -- an independent Philox4x32-10 and the documented dropout mask ----------------------

_U32 = np.uint64(0xFFFFFFFF)


def numpy_philox(seed: int, offset: int, blocks) -> np.ndarray:
    """Philox4x32-10 (Salmon et al., SC 2011) in NumPy: the (len(blocks), 4) uint32 words of
    the blocks of the stream (seed, offset); counter (block lo, block hi, offset lo, offset hi),
    key (seed lo, seed hi)."""
    b = np.asarray(blocks, dtype=np.uint64)
    c0, c1 = b & _U32, b >> np.uint64(32)
    c2 = np.full_like(b, offset & 0xFFFFFFFF)
    c3 = np.full_like(b, offset >> 32)
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0  # 32 x 32 -> 64 bits: exact in uint64
        p1 = np.uint64(0xCD9E8D57) * c2
        c0, c1, c2, c3 = (
            (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0),
            p1 & _U32,
            (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1),
            p0 & _U32,
        )
        k0 = (k0 + 0x9E3779B9) & 0xFFFFFFFF
        k1 = (k1 + 0xBB67AE85) & 0xFFFFFFFF
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)


def keep_bound(p: float) -> int:
    """K = 65536 - round(65536 p), halves rounded up (seisoku/mask.hpp)."""
    x = p * 65536.0
    d = int(np.floor(x))
    return 65536 - (d + 1 if x - d >= 0.5 else d)


def dropout_keep_mask(n: int, p: float, seed: int, offset: int) -> np.ndarray:
    """The documented dropout mask: element i takes uint16 number i of the stream's words read
    as little-endian uint16 pairs (8 per block) and is kept iff it is below keep_bound(p)."""
    words = numpy_philox(seed, offset, np.arange((n + 7) // 8)).reshape(-1)
    halves = np.stack([words & 0xFFFF, words >> 16], axis=-1).reshape(-1)[:n]
    return halves < keep_bound(p)


def act_ref(x, name, slope=0.01):
    """NumPy activation in float64 (sigmoid in its overflow-free form)."""
    x = np.asarray(x, np.float64)
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "leaky_relu":
        return np.where(x > 0, x, x * slope)
    if name == "tanh":
        return np.tanh(x)
    if name == "sigmoid":
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return x.copy()


def torch_act(torch, name, slope):
    fn = torch.nn.functional
    return {
        "identity": lambda t: t,
        "relu": fn.relu,
        "leaky_relu": lambda t: fn.leaky_relu(t, negative_slope=slope),
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
    }[name]


def softmax_ref(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def snap(a) -> np.ndarray:
    """A host copy of a (to_host alone returns a NumPy array itself, which a later in-place
    op would change)."""
    return np.array(to_host(a))


def assert_twin(got, ref) -> None:
    """A CUDA twin's [(result, exact?)] against its CPU oracle's: bit for bit where exact,
    else within 64 ulps of the largest magnitude."""
    assert len(got) == len(ref)
    for (a, exact), (r, _) in zip(got, ref):
        assert a.dtype == r.dtype and a.shape == r.shape
        if exact:
            np.testing.assert_array_equal(a.view(np.uint8), r.view(np.uint8))
        else:
            t = 64 * float(np.finfo(r.dtype).eps)
            scale = max(1.0, float(np.abs(r).max()))
            np.testing.assert_allclose(a, r, rtol=t, atol=t * scale)


# -- optimizer tests: parameters and gradients -------------------------------------------

SHAPES = [(7, 5), (3, 4, 2, 2), (6,), (33, 70)]


def make_params(device: str = "cpu", dtype=np.float32, seed: int = 0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    ps = []
    for i, s in enumerate(shapes):
        p = sei.nn.Parameter(to_device(rng.standard_normal(s).astype(dtype), device), name=f"p{i}")
        ps.append(p)
    return ps


def grads_for(step: int, shapes=SHAPES, dtype=np.float32, seed: int = 1):
    rng = np.random.default_rng(seed * 1000 + step)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def set_grads(ps, gs, device: str = "cpu") -> None:
    for p, g in zip(ps, gs):
        p.grad[...] = to_device(g, device)
