"""Random fills: seisoku.Generator against NumPy, PyTorch and (--device cuda) CuPy.

uniform, normal and bernoulli (float32; bernoulli also uint8) into a preallocated array
of 10M elements (--quick: 1M), in Mvalues/s. Each op is checked first (uniform in [0, 1)
with mean 1/2, normal with mean 0 and std 1, bernoulli 0/1 with rate p), then timed; one
line per (op, peer).

Peers on the CPU: numpy.random.Generator over Philox and over PCG64 (default_rng), with
`out=` (bernoulli as `rng.random(dtype=float32) < p` stored into the output), and, when
PyTorch is importable, `tensor.uniform_() / normal_() / bernoulli_(p)` on a preallocated
tensor with torch.set_num_threads set to seisoku's thread count. NumPy's generators run
on one thread; seisoku and PyTorch use all of theirs (printed at startup). On the GPU:
cupy.random.Generator(Philox4x3210) with `out=`, cupy.random.RandomState over cuRAND's
Philox (which allocates its result), and PyTorch's CUDA generator when torch.cuda works.

    python bench/bench_random.py [--quick] [--json PATH] [--device cpu|cuda]
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import seisoku
from _timing import (
    CPU_WARMUP_S,
    Figure,
    check_true,
    machine_note,
    make_parser,
    report,
    require_cuda,
    sync_for,
    time_fn,
    to_host,
)

SEED = 20240607
P = 0.9  # bernoulli probability: a dropout keep-probability
OPS = (
    ("uniform", "float32"),
    ("normal", "float32"),
    ("bernoulli", "float32"),
    ("bernoulli", "uint8"),
)
SHORT = {"float32": "f32", "uint8": "u8"}

Peer = tuple[str, Callable[[], Any]]


def check_draw(op: str, x: Any, what: str) -> None:
    """Exit unless x looks like a draw of `op`: range, mean, std or rate within 6 sigma."""
    v = to_host(x).ravel()
    n = v.size
    if op == "uniform":
        check_true(
            bool(v.min() >= 0.0 and v.max() < 1.0),
            what,
            f"values outside [0, 1): min {v.min()!r}, max {v.max()!r}",
        )
        mean = float(v.mean(dtype=np.float64))
        tol = 6 * math.sqrt(1 / 12 / n)
        check_true(abs(mean - 0.5) <= tol, what, f"mean {mean:.6f}, expected 0.5 +- {tol:.2g}")
    elif op == "normal":
        check_true(bool(np.isfinite(v).all()), what, "non-finite values")
        mean = float(v.mean(dtype=np.float64))
        std = float(v.std(dtype=np.float64))
        tol_mean, tol_std = 6 / math.sqrt(n), 6 / math.sqrt(2 * n)
        check_true(abs(mean) <= tol_mean, what, f"mean {mean:.6f}, expected 0 +- {tol_mean:.2g}")
        check_true(abs(std - 1) <= tol_std, what, f"std {std:.6f}, expected 1 +- {tol_std:.2g}")
    else:
        ones = int(np.count_nonzero(v == 1))
        check_true(ones + int(np.count_nonzero(v == 0)) == n, what, "values other than 0 and 1")
        rate, tol = ones / n, 6 * math.sqrt(P * (1 - P) / n)
        check_true(
            abs(rate - P) <= tol, what, f"rate of ones {rate:.6f}, expected {P} +- {tol:.2g}"
        )


def ours_fn(op: str, out: Any) -> Callable[[], Any]:
    """seisoku's fill of `out` for `op`, on a fixed seed."""
    gen = seisoku.Generator(SEED)
    if op == "uniform":
        return lambda: gen.uniform(out=out)
    if op == "normal":
        return lambda: gen.normal(out=out)
    return lambda: gen.bernoulli(p=P, out=out)


def numpy_fill(op: str, rng: np.random.Generator, out: np.ndarray) -> Callable[[], Any]:
    """NumPy's fill of `out` for `op` from `rng` (bernoulli compares a float32 draw to p)."""
    n = out.size

    def uniform() -> Any:
        return rng.random(out=out, dtype=np.float32)

    def normal() -> Any:
        return rng.standard_normal(out=out, dtype=np.float32)

    def bernoulli() -> Any:
        return np.less(rng.random(n, dtype=np.float32), P, out=out)

    return {"uniform": uniform, "normal": normal}.get(op, bernoulli)


def numpy_peers(op: str, dtype: str, n: int) -> list[Peer]:
    """numpy.random.Generator over Philox and over PCG64, writing into a preallocated array."""
    return [
        (
            "numpy Philox",
            numpy_fill(op, np.random.Generator(np.random.Philox(SEED)), np.empty(n, dtype)),
        ),
        ("numpy PCG64", numpy_fill(op, np.random.default_rng(SEED), np.empty(n, dtype))),
    ]


def cupy_peers(op: str, dtype: str, n: int) -> list[Peer]:
    """cupy.random.Generator(Philox4x3210) with out=, and the cuRAND RandomState (allocates)."""
    import cupy

    gen = cupy.random.Generator(cupy.random.Philox4x3210(SEED))
    legacy = cupy.random.RandomState(SEED, method=cupy.cuda.curand.CURAND_RNG_PSEUDO_PHILOX4_32_10)
    out = cupy.empty(n, dtype=dtype)

    # size is passed along with out: CuPy's Generator.random fills out from a 0-d draw without it.
    def gen_fill() -> Any:
        if op == "uniform":
            return gen.random(n, dtype=cupy.float32, out=out)
        if op == "normal":
            return gen.standard_normal(n, dtype=cupy.float32, out=out)
        return cupy.less(gen.random(n, dtype=cupy.float32), P, out=out)

    def legacy_fill() -> Any:
        if op == "uniform":
            return legacy.random_sample(n, dtype=cupy.float32)
        if op == "normal":
            return legacy.standard_normal(n, dtype=cupy.float32)
        return cupy.less(legacy.random_sample(n, dtype=cupy.float32), P, out=out)

    return [
        ("cupy Generator(Philox4x3210)", gen_fill),
        ("cupy RandomState(cuRAND Philox)", legacy_fill),
    ]


def torch_peer(op: str, dtype: str, n: int, device: str) -> list[Peer]:
    """PyTorch's in-place fill of a preallocated tensor, when PyTorch can run on `device`."""
    if importlib.util.find_spec("torch") is None:
        return []
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        return []
    torch.set_num_threads(seisoku.get_num_threads())
    gen = torch.Generator(device=device).manual_seed(SEED)
    t = torch.empty(n, dtype=getattr(torch, dtype), device=device)

    def fill() -> Any:
        if op == "uniform":
            return t.uniform_(generator=gen)
        if op == "normal":
            return t.normal_(generator=gen)
        return t.bernoulli_(P, generator=gen)

    return [(f"torch {torch.__version__.split('+')[0]}", fill)]


def main() -> None:
    """Parse the options, then check and time every (op, peer); report Mvalues/s."""
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    n = 1_000_000 if args.quick else 10_000_000
    note = machine_note()
    if note:
        print(note, flush=True)
    if args.device == "cuda":
        cupy = require_cuda()
        xp: Any = cupy
        print(f"device: {seisoku.cuda.get_device_name(0)}; cupy {cupy.__version__}", flush=True)
    else:
        xp = np
        threads = seisoku.get_num_threads()
        torch_note = f", torch {threads}" if importlib.util.find_spec("torch") else ""
        print(f"threads: seisoku {threads}, numpy 1{torch_note}", flush=True)
    sync = sync_for(args.device)
    timing: dict[str, Any] = {
        "warmup": 1 if args.quick else 2,
        "repeats": 3 if args.quick else 10,
        "min_time_s": 0.05 if args.quick else 0.5,
        "warmup_s": 0.1 if args.quick else CPU_WARMUP_S,
        "sync": sync,
    }

    figures = []
    for op, dtype in OPS:
        name = f"{op} {SHORT[dtype]} {n // 1_000_000}M"
        out = xp.empty(n, dtype=dtype)
        ours = ours_fn(op, out)
        ours()
        check_draw(op, out, f"{name} (seisoku)")
        t_ours = time_fn(ours, **timing)
        if args.device == "cuda":
            peers = cupy_peers(op, dtype, n)
        else:
            peers = numpy_peers(op, dtype, n)
        peers += torch_peer(op, dtype, n, args.device)
        for peer_name, fn in peers:
            t_peer = time_fn(fn, **timing)
            figures.append(Figure(name, n / t_ours / 1e6, n / t_peer / 1e6, peer_name, "Mvalues/s"))
    report(figures, args.json)


if __name__ == "__main__":
    main()
