"""GEMM: seisoku.gemm against numpy.matmul and torch.matmul (CPU) or cupy.matmul (--device
cuda), in GFLOP/s.

Square products, then deep-learning shapes: an MNIST MLP's layers (128x784 @ 784x800,
128x800 @ 800x10), the same with the weight stored (out, in) and multiplied transposed
(trans_b=True against a @ b.T), and the weight gradient dY.T @ x (trans_a=True against
a.T @ b). float32 throughout, float64 for the squares (--quick: 256 only). Figures are named
`gemm DTYPE MxNxK [shape]`. All sides write into preallocated outputs; transposed operands
are views, which every library hands to its BLAS as a transpose flag. GFLOP/s = 2*M*N*K /
median time.

On the CPU every product is given thread for thread (1 thread each) and for the whole
machine (N = the cores this process may use), each side in a process of its own (see
_timing) and checked there against a float64 product before it is timed:
  seisoku:  seisoku.set_num_threads(n); its OpenBLAS runs single-threaded on tiles that
            seisoku's threads share out.
  numpy:    NumPy's own OpenBLAS (scipy-openblas64), OPENBLAS_NUM_THREADS=n in its process.
  torch:    torch.matmul(out=) on zero-copy tensors, torch.set_num_threads(n) (its BLAS is
            MKL in the PyPI CPU wheels for x86).

seisoku and NumPy both use OpenBLAS, but separate copies. Where OPENBLAS_CORETYPE or
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
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (
    CPU_WARMUP_S,
    Figure,
    Job,
    Worker,
    check_close,
    machine_note,
    make_parser,
    report,
    require_cuda,
    sync_for,
    thread_counts,
    threads_label,
    time_fn,
    time_pair_isolated,
    torch_version,
    write_json,
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


DL_SHAPES = (
    Case(128, 800, 784, label="mlp fc1 x@W"),
    Case(128, 10, 800, label="mlp fc2 x@W"),
    Case(128, 800, 784, trans_b=True, label="linear x@W.T"),
    Case(128, 10, 800, trans_b=True, label="linear x@W.T"),
    Case(800, 784, 128, trans_a=True, label="weight grad dY.T@x"),
)


def cases(quick: bool) -> list[tuple[str, Case]]:
    """(dtype, case): float32 squares and deep-learning shapes, then float64 squares."""
    if quick:
        f32 = [Case(256, 256, 256), DL_SHAPES[0], DL_SHAPES[2], DL_SHAPES[4]]
        return [("float32", c) for c in f32] + [("float64", Case(256, 256, 256))]
    squares = [Case(s, s, s) for s in (256, 512, 1024, 2048)]
    return [("float32", c) for c in [*squares, *DL_SHAPES]] + [("float64", c) for c in squares]


def case_name(dtype: str, case: Case) -> str:
    name = f"gemm {'f32' if dtype == 'float32' else 'f64'} {case.m}x{case.n}x{case.k}"
    return f"{name} {case.label}" if case.label else name


def gemm_tolerance(dtype: np.dtype, k: int) -> tuple[float, float]:
    """(rtol, atol) for two length-k dot products of standard normals to agree.

    Rounding errors grow at most like k*eps times |a||b|; entries are about sqrt(k) in
    size, so atol = k*eps*sqrt(k) covers cancellation with a wide margin over the typical
    error while any wrong element (off by O(sqrt(k))) still fails.
    """
    rtol = 4.0 * k * float(np.finfo(dtype).eps)
    return rtol, rtol * float(np.sqrt(k))


def operands(case: Case, dtype: str, xp: Any = np) -> tuple[Any, Any, np.ndarray]:
    """(a, b, float64 reference of op(a) @ op(b)), a and b as stored, from a fixed seed."""
    rng = np.random.default_rng(1234)
    a_shape = (case.k, case.m) if case.trans_a else (case.m, case.k)
    b_shape = (case.n, case.k) if case.trans_b else (case.k, case.n)
    a = rng.standard_normal(a_shape, dtype=np.dtype(dtype))
    b = rng.standard_normal(b_shape, dtype=np.dtype(dtype))
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = (a64.T if case.trans_a else a64) @ (b64.T if case.trans_b else b64)
    return xp.asarray(a), xp.asarray(b), ref


def checked(fn: Callable[[], Any], out: Any, ref: np.ndarray, dtype: str, case: Case, who: str):
    """fn after one call whose output matched the float64 reference."""
    fn()
    rtol, atol = gemm_tolerance(np.dtype(dtype), case.k)
    check_close(out, ref, rtol, atol, f"{case_name(dtype, case)} ({who})")
    return fn


# -- the job factories: one side's product, built and checked in its own process ----------


def seisoku_gemm(case: dict[str, Any], dtype: str, xp: Any = np) -> Callable[[], Any]:
    """seisoku.gemm into a preallocated output."""
    import seisoku

    c = Case(**case)
    a, b, ref = operands(c, dtype, xp)
    out = xp.empty((c.m, c.n), dtype=dtype)
    fn = lambda: seisoku.gemm(a, b, out, trans_a=c.trans_a, trans_b=c.trans_b)  # noqa: E731
    return checked(fn, out, ref, dtype, c, "seisoku")


def matmul_gemm(
    case: dict[str, Any], dtype: str, xp: Any = np, matmul: Any = None, who: str = "numpy"
) -> Callable[[], Any]:
    """xp.matmul (NumPy's by default) of the operands' views into a preallocated output."""
    c = Case(**case)
    a, b, ref = operands(c, dtype, xp)
    a_op, b_op = (a.T if c.trans_a else a), (b.T if c.trans_b else b)
    out = xp.empty((c.m, c.n), dtype=dtype)
    mm = xp.matmul if matmul is None else matmul
    return checked(lambda: mm(a_op, b_op, out=out), out, ref, dtype, c, who)


def torch_gemm(case: dict[str, Any], dtype: str) -> Callable[[], Any]:
    """torch.matmul of zero-copy tensors (transposes as views) into a preallocated output."""
    import torch

    c = Case(**case)
    a, b, ref = operands(c, dtype)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    a_op, b_op = (ta.T if c.trans_a else ta), (tb.T if c.trans_b else tb)
    out = torch.empty((c.m, c.n), dtype=getattr(torch, dtype))
    return checked(lambda: torch.matmul(a_op, b_op, out=out), out, ref, dtype, c, "torch")


# -- CPU ----------------------------------------------------------------------------------


def blas_lines() -> list[str]:
    """Which BLAS (and CPU core kernels) NumPy and seisoku use, one line each."""
    import seisoku

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
                    f"{lib.get('version')}, core {lib.get('architecture', '?')} "
                    f"({os.path.basename(path)})"
                )
    info = seisoku.build_info()
    version = [*info.get("blas_config", "").split(), "", ""][1]
    lines.append(
        f"seisoku {seisoku.__version__} BLAS: {info['blas']} {version}, "
        f"core {info['blas_core']}, single-threaded on seisoku's threads"
    )
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if var in os.environ:
            lines.append(f"note: {var}={os.environ[var]} is set")
    return lines


def run_cpu(quick: bool, timing: dict[str, Any]) -> list[Figure]:
    for line in blas_lines():
        print(line, flush=True)
    torch_name = torch_version()
    if torch_name is None:
        print("torch is not installed: its figures are skipped (pip install torch)", flush=True)
    counts = thread_counts()
    print(
        "threads: " + " and ".join(threads_label(t) for t in counts) + " on each side; "
        "each side in a process of its own",
        flush=True,
    )
    ours_worker = Worker()
    numpy_workers = {t: Worker({"OPENBLAS_NUM_THREADS": str(t)}) for t in counts}
    torch_worker = Worker() if torch_name else None
    figures = []
    try:
        for dtype, case in cases(quick):
            kw = {"case": asdict(case), "dtype": dtype}
            flop = 2.0 * case.m * case.n * case.k
            for threads in counts:
                ours = Job("bench_gemm", "seisoku_gemm", kw, threads, ("seisoku",))
                peers = [
                    (
                        "numpy.matmul",
                        Job("bench_gemm", "matmul_gemm", kw, threads),
                        numpy_workers[threads],
                    )
                ]
                if torch_worker is not None:
                    job = Job("bench_gemm", "torch_gemm", kw, threads, ("torch",))
                    peers.append((f"{torch_name} matmul", job, torch_worker))
                for peer_name, peer, worker in peers:
                    t_ours, t_peer = time_pair_isolated(
                        ours, peer, ours_worker=ours_worker, peer_worker=worker, **timing
                    )
                    worker.forget(peer)
                    fig = Figure(
                        case_name(dtype, case),
                        flop / t_ours / 1e9,
                        flop / t_peer / 1e9,
                        peer_name,
                        "GFLOP/s",
                        threads=threads,
                    )
                    report([fig])
                    figures.append(fig)
                ours_worker.forget(ours)
    finally:
        for w in [ours_worker, *numpy_workers.values(), torch_worker]:
            if w is not None:
                w.close()
    return figures


# -- GPU: one process ---------------------------------------------------------------------


def run_cuda(quick: bool, timing: dict[str, Any]) -> list[Figure]:
    import seisoku

    cupy = require_cuda()
    seisoku.cuda.load_cublas()
    print(f"device: {seisoku.cuda.get_device_name(0)}; cupy {cupy.__version__}", flush=True)
    figures = []
    for dtype, case in cases(quick):
        ours = seisoku_gemm(asdict(case), dtype, cupy)
        peer = matmul_gemm(asdict(case), dtype, cupy, cupy.matmul, "cupy")
        flop = 2.0 * case.m * case.n * case.k
        t_ours = time_fn(ours, **timing)
        t_peer = time_fn(peer, **timing)
        name = case_name(dtype, case) + " cuda"
        fig = Figure(name, flop / t_ours / 1e9, flop / t_peer / 1e9, "cupy.matmul", "GFLOP/s")
        report([fig])
        figures.append(fig)
    return figures


def main() -> None:
    """Parse the options, print the BLAS in use, run every case and report."""
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    note = machine_note()
    if note:
        print(note, flush=True)
    timing: dict[str, Any] = {
        "warmup": 2 if args.quick else 3,
        "repeats": 3 if args.quick else 10,
        "min_time_s": 0.05 if args.quick else 0.5,
        "warmup_s": 0.1 if args.quick else CPU_WARMUP_S,
    }
    if args.device == "cuda":
        figures = run_cuda(args.quick, {**timing, "sync": sync_for("cuda")})
    else:
        figures = run_cpu(args.quick, {**timing, "rounds": 2 if args.quick else 3})
    if args.json:
        write_json(figures, args.json)


if __name__ == "__main__":
    main()
