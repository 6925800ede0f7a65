"""Random fills: seisoku.Generator against NumPy and PyTorch (CPU) or CuPy (--device cuda).

uniform, normal and bernoulli (float32; bernoulli also uint8) into a preallocated array
of 10M elements (--quick: 1M), in Mvalues/s. Every fill is checked in the process that
times it, before it is timed (uniform in [0, 1) with mean 1/2, normal with mean 0 and std
1, bernoulli 0/1 with rate p); one line per (op, threads, peer).

On the CPU each side runs in a process of its own (see _timing), and every op is given
thread for thread and for the whole machine (N = the cores this process may use):

  1 thread:  seisoku on 1 thread against numpy.random.Generator over Philox (the algorithm
             seisoku uses) and over PCG64 (default_rng), and against torch's CPU generator
             with torch.set_num_threads(1).
  N threads: seisoku on N threads against NumPy's documented multithreaded generation
             (NumPy's Generator is single-threaded): N PCG64 generators from
             SeedSequence.spawn filling one slice each of the output in a pool of N threads
             (NumPy releases the GIL while it fills), and against torch's generator with
             torch.set_num_threads(N), which splits some fills over its threads and not
             others: it is timed as it comes.

NumPy fills with out=; its bernoulli is a float32 draw into a preallocated scratch array
compared to p into the output. torch fills a preallocated tensor in place (uniform_,
normal_, bernoulli_(p)). On the GPU, in one process: cupy.random.Generator(Philox4x3210)
with out=, cupy.random.RandomState over cuRAND's Philox (which allocates its result), and
PyTorch's CUDA generator when torch.cuda works.

    python bench/bench_random.py [--quick] [--json PATH] [--device cpu|cuda]
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (
    CPU_WARMUP_S,
    Figure,
    Job,
    Worker,
    check_true,
    machine_note,
    make_parser,
    report,
    require_cuda,
    sync_for,
    thread_counts,
    threads_label,
    time_fn,
    time_pair_isolated,
    to_host,
    torch_version,
    write_json,
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


def figure_name(op: str, dtype: str, n: int) -> str:
    return f"{op} {SHORT[dtype]} {n // 1_000_000}M"


def checked(fn: Callable[[], Any], op: str, out: Any, what: str) -> Callable[[], Any]:
    """fn after one call whose output passed check_draw."""
    fn()
    check_draw(op, out, what)
    return fn


# -- the job factories: each builds one side's fill in its own process, checked -----------


def seisoku_fill(op: str, dtype: str, n: int, out: Any = None) -> Callable[[], Any]:
    """seisoku's fill of a preallocated array (NumPy, or `out`), on a fixed seed."""
    import seisoku

    out = np.empty(n, dtype) if out is None else out
    gen = seisoku.Generator(SEED)
    if op == "uniform":
        fn = lambda: gen.uniform(out=out)  # noqa: E731
    elif op == "normal":
        fn = lambda: gen.normal(out=out)  # noqa: E731
    else:
        fn = lambda: gen.bernoulli(p=P, out=out)  # noqa: E731
    return checked(fn, op, out, f"{figure_name(op, dtype, n)} (seisoku)")


def _numpy_part(op: str, rng: np.random.Generator, out: np.ndarray, scratch: np.ndarray) -> None:
    """NumPy's fill of `out` for `op` from `rng` (bernoulli: a float32 draw compared to p)."""
    if op == "uniform":
        rng.random(out=out, dtype=np.float32)
    elif op == "normal":
        rng.standard_normal(out=out, dtype=np.float32)
    else:
        rng.random(out=scratch, dtype=np.float32)
        np.less(scratch, P, out=out)


def numpy_fill(op: str, dtype: str, n: int, bit_generator: str) -> Callable[[], Any]:
    """numpy.random.Generator over `bit_generator` (Philox or PCG64) on one thread."""
    rng = np.random.Generator(getattr(np.random, bit_generator)(SEED))
    out = np.empty(n, dtype)
    scratch = np.empty(n if op == "bernoulli" else 0, np.float32)
    fn = lambda: _numpy_part(op, rng, out, scratch)  # noqa: E731
    return checked(fn, op, out, f"{figure_name(op, dtype, n)} (numpy {bit_generator})")


def numpy_pool_fill(op: str, dtype: str, n: int, threads: int) -> Callable[[], Any]:
    """`threads` PCG64 generators from SeedSequence.spawn, each filling its slice of the
    output in a pool of `threads` threads (NumPy's multithreaded generation)."""
    rngs = [
        np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(SEED).spawn(threads)
    ]
    out = np.empty(n, dtype)
    scratch = np.empty(n if op == "bernoulli" else 0, np.float32)
    cuts = [n * i // threads // 64 * 64 for i in range(threads)] + [n]
    parts = [
        (
            rngs[i],
            out[cuts[i] : cuts[i + 1]],
            scratch[cuts[i] : cuts[i + 1]] if scratch.size else scratch,
        )
        for i in range(threads)
    ]
    pool = ThreadPoolExecutor(threads)

    def fn() -> None:
        for f in [pool.submit(_numpy_part, op, *part) for part in parts]:
            f.result()

    return checked(fn, op, out, f"{figure_name(op, dtype, n)} (numpy pool)")


def torch_fill(op: str, dtype: str, n: int, device: str = "cpu") -> Callable[[], Any]:
    """PyTorch's in-place fill of a preallocated tensor with its own generator."""
    import torch

    gen = torch.Generator(device=device).manual_seed(SEED)
    t = torch.empty(n, dtype=getattr(torch, dtype), device=device)
    if op == "uniform":
        fn = lambda: t.uniform_(generator=gen)  # noqa: E731
    elif op == "normal":
        fn = lambda: t.normal_(generator=gen)  # noqa: E731
    else:
        fn = lambda: t.bernoulli_(P, generator=gen)  # noqa: E731
    return checked(fn, op, t, f"{figure_name(op, dtype, n)} (torch)")


# -- CPU: each side in its own process, thread for thread and whole machine ---------------


def cpu_peers(
    op: str, dtype: str, n: int, threads: int, torch_name: str | None
) -> list[tuple[str, Job]]:
    """(peer name, job) of every peer of one op at a thread count."""
    kw = {"op": op, "dtype": dtype, "n": n}
    if threads == 1:
        peers = [
            (f"numpy {bg}", Job("bench_random", "numpy_fill", {**kw, "bit_generator": bg}, threads))
            for bg in ("Philox", "PCG64")
        ]
    else:
        pool = Job("bench_random", "numpy_pool_fill", {**kw, "threads": threads}, threads)
        peers = [(f"numpy PCG64 x{threads} thread pool", pool)]
    if torch_name:
        peers.append((torch_name, Job("bench_random", "torch_fill", kw, threads, ("torch",))))
    return peers


def run_cpu(n: int, timing: dict[str, Any]) -> list[Figure]:
    torch_name = torch_version()
    if torch_name is None:
        print("torch is not installed: its figures are skipped (pip install torch)", flush=True)
    counts = thread_counts()
    print(
        "threads: " + " and ".join(threads_label(t) for t in counts) + " on each side; "
        "each side in a process of its own",
        flush=True,
    )
    figures = []
    workers = {"seisoku": Worker(), "numpy": Worker(), "torch": Worker() if torch_name else None}
    try:
        for op, dtype in OPS:
            for threads in counts:
                ours = Job(
                    "bench_random",
                    "seisoku_fill",
                    {"op": op, "dtype": dtype, "n": n},
                    threads,
                    ("seisoku",),
                )
                for peer_name, peer in cpu_peers(op, dtype, n, threads, torch_name):
                    side = "torch" if peer.libraries == ("torch",) else "numpy"
                    t_ours, t_peer = time_pair_isolated(
                        ours,
                        peer,
                        ours_worker=workers["seisoku"],
                        peer_worker=workers[side],
                        **timing,
                    )
                    workers[side].forget(peer)
                    fig = Figure(
                        figure_name(op, dtype, n),
                        n / t_ours / 1e6,
                        n / t_peer / 1e6,
                        peer_name,
                        "Mvalues/s",
                        threads=threads,
                    )
                    report([fig])
                    figures.append(fig)
                workers["seisoku"].forget(ours)
    finally:
        for w in workers.values():
            if w is not None:
                w.close()
    return figures


# -- GPU: one process --------------------------------------------------------------------


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


def run_cuda(n: int, timing: dict[str, Any]) -> list[Figure]:
    import seisoku

    cupy = require_cuda()
    print(f"device: {seisoku.cuda.get_device_name(0)}; cupy {cupy.__version__}", flush=True)
    torch_cuda = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch_cuda = torch.cuda.is_available()
    figures = []
    for op, dtype in OPS:
        name = figure_name(op, dtype, n) + " cuda"
        ours = seisoku_fill(op, dtype, n, out=cupy.empty(n, dtype=dtype))
        peers = cupy_peers(op, dtype, n)
        for peer_name, fn in peers:
            check_draw(op, fn(), f"{name} ({peer_name})")
        if torch_cuda:
            peers.append((torch_version() or "torch", torch_fill(op, dtype, n, "cuda")))
        t_ours = time_fn(ours, **timing)
        for peer_name, fn in peers:
            t_peer = time_fn(fn, **timing)
            fig = Figure(name, n / t_ours / 1e6, n / t_peer / 1e6, peer_name, "Mvalues/s")
            report([fig])
            figures.append(fig)
    return figures


def main() -> None:
    """Parse the options, then check and time every (op, threads, peer); report Mvalues/s."""
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    n = 1_000_000 if args.quick else 10_000_000
    note = machine_note()
    if note:
        print(note, flush=True)
    timing: dict[str, Any] = {
        "warmup": 1 if args.quick else 2,
        "repeats": 3 if args.quick else 10,
        "min_time_s": 0.05 if args.quick else 0.5,
        "warmup_s": 0.1 if args.quick else CPU_WARMUP_S,
    }
    if args.device == "cuda":
        figures = run_cuda(n, {**timing, "sync": sync_for("cuda")})
    else:
        figures = run_cpu(n, {**timing, "rounds": 2 if args.quick else 3})
    if args.json:
        write_json(figures, args.json)


if __name__ == "__main__":
    main()
