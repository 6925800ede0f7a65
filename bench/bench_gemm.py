"""GEMM: seisoku.gemm against numpy.matmul (CPU) or cupy.matmul (--device cuda), in GFLOP/s.

Square float32 and float64 products, then deep-learning shapes: an MNIST MLP's layers
(128x784 @ 784x800, 128x800 @ 800x10), the same with the weight stored (out, in) and
multiplied transposed (trans_b=True against a @ b.T), and the weight gradient dY.T @ x
(trans_a=True against a.T @ b). Figures are named `gemm DTYPE MxNxK [shape]`. Each
product is checked against the peer's before either is timed; both write into
preallocated outputs. GFLOP/s = 2*M*N*K / median time.

Both BLAS here are OpenBLAS, but separate copies: NumPy bundles its own (scipy-openblas64)
and seisoku links scipy-openblas32. On machines where OPENBLAS_CORETYPE or
OPENBLAS_L2_SIZE are set in the environment (pinning a kernel set), a fair BLAS-bound
comparison needs them unset, for both libraries alike:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/bench_gemm.py

The BLAS core each library picked is printed at startup (NumPy's only when threadpoolctl
is installed).

    python bench/bench_gemm.py [--quick] [--json PATH] [--device cpu|cuda]
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import seisoku
from _timing import (
    CPU_WARMUP_S,
    Figure,
    check_close,
    machine_note,
    make_parser,
    report,
    require_cuda,
    sync_for,
    time_fn,
)


@dataclass(frozen=True)
class Case:
    """out (m, n) = op(a) @ op(b) with inner dimension k; a is (k, m) when trans_a."""

    m: int
    n: int
    k: int
    trans_a: bool = False
    trans_b: bool = False
    label: str = ""


def cases(quick: bool) -> list[Case]:
    """Square sizes, then the deep-learning shapes."""
    squares = (128, 256) if quick else (256, 512, 1024, 2048)
    return [Case(s, s, s) for s in squares] + [
        Case(128, 800, 784, label="mlp fc1 x@W"),
        Case(128, 10, 800, label="mlp fc2 x@W"),
        Case(128, 800, 784, trans_b=True, label="linear x@W.T"),
        Case(128, 10, 800, trans_b=True, label="linear x@W.T"),
        Case(800, 784, 128, trans_a=True, label="weight grad dY.T@x"),
    ]


def blas_lines() -> list[str]:
    """Which BLAS (and CPU core kernels) NumPy and seisoku use, one line each."""
    lines = []
    try:
        import threadpoolctl
    except ImportError:
        threadpoolctl = None
    if threadpoolctl is not None:
        for lib in threadpoolctl.threadpool_info():
            path = str(lib.get("filepath", ""))
            if lib.get("user_api") == "blas" and ("numpy" in path or "openblas64" in path):
                lines.append(
                    f"numpy {np.__version__} BLAS: {lib.get('internal_api')} "
                    f"{lib.get('version')}, core {lib.get('architecture', '?')}, "
                    f"threads {lib.get('num_threads')} ({os.path.basename(path)})"
                )
    info = seisoku._core.build_info()
    version = [*info.get("blas_config", "").split(), "", ""][1]
    lines.append(
        f"seisoku {seisoku.__version__} BLAS: {info['blas']} {version}, "
        f"core {info['blas_core']}, threads {info['blas_threads']}; "
        f"seisoku's own kernels: threads {seisoku.get_num_threads()}"
    )
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if var in os.environ:
            lines.append(f"note: {var}={os.environ[var]} is set")
    return lines


def gemm_tolerance(dtype: np.dtype, k: int) -> tuple[float, float]:
    """(rtol, atol) for two length-k dot products of standard normals to agree.

    Rounding errors grow at most like k*eps times |a||b|; entries are about sqrt(k) in
    size, so atol = k*eps*sqrt(k) covers cancellation with a wide margin over the typical
    error while any wrong element (off by O(sqrt(k))) still fails.
    """
    rtol = 4.0 * k * float(np.finfo(dtype).eps)
    return rtol, rtol * float(np.sqrt(k))


def run_case(
    case: Case,
    dtype: np.dtype,
    xp: Any,
    peer: Callable[..., Any],
    peer_name: str,
    sync: Callable[[], Any] | None,
    quick: bool,
) -> Figure:
    """Check, then time seisoku.gemm and the peer on one case; GFLOP/s."""
    rng = np.random.default_rng(1234)
    a_shape = (case.k, case.m) if case.trans_a else (case.m, case.k)
    b_shape = (case.n, case.k) if case.trans_b else (case.k, case.n)
    a = xp.asarray(rng.standard_normal(a_shape, dtype=dtype))
    b = xp.asarray(rng.standard_normal(b_shape, dtype=dtype))
    a_op = a.T if case.trans_a else a
    b_op = b.T if case.trans_b else b
    ours_out = xp.empty((case.m, case.n), dtype=dtype)
    peer_out = xp.empty((case.m, case.n), dtype=dtype)

    def ours() -> None:
        seisoku.gemm(a, b, ours_out, trans_a=case.trans_a, trans_b=case.trans_b)

    def theirs() -> None:
        peer(a_op, b_op, out=peer_out)

    name = f"gemm {'f32' if dtype == np.float32 else 'f64'} {case.m}x{case.n}x{case.k}"
    if case.label:
        name += f" {case.label}"
    ours()
    theirs()
    if sync is not None:
        sync()
    rtol, atol = gemm_tolerance(dtype, case.k)
    check_close(ours_out, peer_out, rtol, atol, f"{name} (against {peer_name})")

    flop = 2.0 * case.m * case.n * case.k
    kw: dict[str, Any] = {
        "warmup": 2 if quick else 3,
        "repeats": 3 if quick else 10,
        "min_time_s": 0.05 if quick else 0.5,
        "warmup_s": 0.1 if quick else CPU_WARMUP_S,
        "sync": sync,
    }
    t_ours = time_fn(ours, **kw)
    t_peer = time_fn(theirs, **kw)
    return Figure(name, flop / t_ours / 1e9, flop / t_peer / 1e9, peer_name, "GFLOP/s")


def main() -> None:
    """Parse the options, print the BLAS in use, run every case and report."""
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    note = machine_note()
    if note:
        print(note, flush=True)
    if args.device == "cuda":
        cupy = require_cuda()
        xp: Any = cupy
        peer, peer_name = cupy.matmul, "cupy.matmul"
        seisoku.cuda.load_cublas()
        print(f"device: {seisoku.cuda.get_device_name(0)}; cupy {cupy.__version__}", flush=True)
    else:
        xp = np
        peer, peer_name = np.matmul, "numpy.matmul"
        for line in blas_lines():
            print(line, flush=True)
    sync = sync_for(args.device)

    figures = [
        run_case(case, np.dtype(dt), xp, peer, peer_name, sync, args.quick)
        for dt in (np.float32, np.float64)
        for case in cases(args.quick)
    ]
    report(figures, args.json)


if __name__ == "__main__":
    main()
