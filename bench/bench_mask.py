"""Dropout and Gaussian noise (10M float32) against the copy bound and torch, on the CPU.

Figures, each thread for thread (1 thread on each side) and for the whole machine (both sides
on every core), each side timed in a process of its own (see _timing), alternating rounds:
* dropout forward, p = 0.5: seisoku.nn.functional.dropout against torch's native dropout
  (what torch.nn.functional.dropout runs), both writing into preallocated outputs
  (torch.ops.aten.native_dropout.out also writes its mask) and both allocating
  (torch.nn.functional.dropout allocates its output and its mask; seisoku stores no mask);
* dropout backward: seisoku draws the mask again from (seed, offset); torch reads the mask it
  stored (native_dropout_backward), preallocated and allocating;
* Gaussian noise x + N(0, 0.5^2): seisoku.nn.functional.gaussian_noise against
  torch.normal(x, 0.5) (one op), preallocated and allocating;
* against the copy bound: each preallocated seisoku time beside the time of copying the same
  array into a preallocated one at the same threads, the best of numpy.copyto (which is
  single-threaded) and torch's copy_ (target for dropout: at most 1.3x the copy).

Checked first, in this process: the dropout mask against the documented definition
(seisoku/mask.hpp: uint16 number i of the Philox4x32-10 stream, kept iff below
65536 - round(65536 p)) computed with an independent NumPy Philox, the kept values, the
backward's mask, the noise against seisoku.Generator.normal, and torch's dropout (rate and
scale). Each timing process checks its op's output once more before timing it.

    python bench/bench_mask.py [--quick] [--json PATH]
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (
    CPU_WARMUP_S,
    Figure,
    Job,
    Worker,
    check_close,
    check_true,
    installed_version,
    machine_note,
    make_parser,
    report,
    skip,
    thread_counts,
    threads_label,
    time_pair_isolated,
    write_json,
)

P, STD, SEED = 0.5, 0.5, 1234
N = 10_000_000
OPS = ("dropout fwd", "dropout bwd", "noise")
_U32 = np.uint64(0xFFFFFFFF)


def numpy_philox(seed: int, offset: int, blocks: np.ndarray) -> np.ndarray:
    """Philox4x32-10 in NumPy: the (len(blocks), 4) uint32 words of the stream (seed, offset)."""
    b = blocks.astype(np.uint64)
    c0, c1 = b & _U32, b >> np.uint64(32)
    c2 = np.full_like(b, offset & 0xFFFFFFFF)
    c3 = np.full_like(b, offset >> 32)
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0
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


def keep_mask(n: int, p: float, seed: int, offset: int) -> np.ndarray:
    """The documented dropout mask (seisoku/mask.hpp)."""
    words = numpy_philox(seed, offset, np.arange((n + 7) // 8)).reshape(-1)
    halves = np.stack([words & 0xFFFF, words >> 16], axis=-1).reshape(-1)[:n]
    x = p * 65536.0
    dropped = int(np.floor(x)) + (1 if x - np.floor(x) >= 0.5 else 0)
    return halves < 65536 - dropped


def inputs(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.random(n, dtype=np.float32) + 0.5, rng.random(n, dtype=np.float32) - 0.5


# -- the job factories: each builds one side's op in its own process, checked -------------


def seisoku_op(op: str, alloc: bool, n: int) -> Callable[[], Any]:
    """seisoku's op; the stream offset advances every call (a fresh mask each time)."""
    from seisoku.nn import functional as F  # noqa: N812

    x, g = inputs(n)
    out = np.empty_like(x)
    step = {"k": 0}

    def fresh() -> int:
        step["k"] += 1
        return step["k"]

    dst = {} if alloc else {"out": out}
    if op == "noise":
        fn = lambda: F.gaussian_noise(x, STD, SEED, fresh(), **dst)  # noqa: E731
    else:
        src = x if op == "dropout fwd" else g
        fn = lambda: F.dropout(src, P, SEED, fresh(), **dst)  # noqa: E731
    y = fn()
    check_true(bool(np.isfinite(y).all()), f"{op} (seisoku)", "non-finite values")
    if op != "noise":
        kept = (y != 0).mean()
        check_true(abs(kept - 0.5) < 6 * np.sqrt(0.25 / n), f"{op} (seisoku)", f"keep rate {kept}")
    return fn


def torch_op(op: str, alloc: bool, n: int) -> Callable[[], Any]:
    """torch's op, the same work as seisoku_op's."""
    import torch

    xa, ga = inputs(n)
    x, g = torch.from_numpy(xa), torch.from_numpy(ga)
    out = torch.empty_like(x)
    mask = torch.empty(n, dtype=torch.bool)
    aten = torch.ops.aten
    aten.native_dropout.out(x, P, True, out0=out, out1=mask)
    scale = 1.0 / (1.0 - P)
    if op == "dropout fwd":
        if alloc:
            fn = lambda: torch.nn.functional.dropout(x, P, training=True)  # noqa: E731
        else:
            fn = lambda: aten.native_dropout.out(x, P, True, out0=out, out1=mask)  # noqa: E731
    elif op == "dropout bwd":
        if alloc:
            fn = lambda: aten.native_dropout_backward(g, mask, scale)  # noqa: E731
        else:
            fn = lambda: aten.native_dropout_backward.out(g, mask, scale, out=out)  # noqa: E731
    elif alloc:
        fn = lambda: torch.normal(x, STD)  # noqa: E731
    else:
        fn = lambda: torch.normal(x, STD, out=out)  # noqa: E731
    y = fn()
    y = y[0] if isinstance(y, tuple) else y
    check_true(bool(torch.isfinite(y).all()), f"{op} (torch)", "non-finite values")
    return fn


def copy_op(library: str, n: int) -> Callable[[], Any]:
    """A copy of the same array into a preallocated one: numpy.copyto or torch's copy_."""
    x, _ = inputs(n)
    if library == "numpy":
        out = np.empty_like(x)
        fn = lambda: np.copyto(out, x)  # noqa: E731
        fn()
        check_true(bool(np.array_equal(out, x)), "copy (numpy)", "not a copy")
        return fn
    import torch

    tx = torch.from_numpy(x)
    tout = torch.empty_like(tx)
    fn = lambda: tout.copy_(tx)  # noqa: E731
    fn()
    check_true(bool(torch.equal(tout, tx)), "copy (torch)", "not a copy")
    return fn


# -- the check of the very paths timed, against the documented mask ------------------------


def check(n: int) -> None:
    import torch

    import seisoku
    from seisoku.nn import functional as F  # noqa: N812

    x, g = inputs(n)
    out = np.empty_like(x)
    F.dropout(x, P, SEED, 77, out=out)
    kept = keep_mask(n, P, SEED, 77)
    check_true(np.array_equal(out != 0, kept), "dropout fwd", "mask is not the documented one")
    check_close(out[kept], x[kept] * np.float32(2.0), 0.0, 0.0, "dropout fwd kept values")
    back = F.dropout(g, P, SEED, 77)
    check_true(np.array_equal(back != 0, kept & (g != 0)), "dropout bwd", "not the forward mask")
    check_close(back[kept], g[kept] * np.float32(2.0), 0.0, 0.0, "dropout bwd kept values")
    noise = seisoku.Generator(SEED, offset=78).normal(n, std=STD, dtype="float32")
    F.gaussian_noise(x, STD, SEED, 78, out=out)
    eps = float(np.finfo(np.float32).eps)
    check_close(out, x + noise, 2 * eps, 2 * eps, "gaussian noise")
    tx = torch.from_numpy(x)
    ty, tmask = torch.ops.aten.native_dropout(tx, P, True)
    rate = float(tmask.float().mean())
    check_true(abs(rate - 0.5) < 6 * np.sqrt(0.25 / n), "torch dropout", f"keep rate {rate}")
    check_close(ty.numpy()[tmask.numpy()], 2 * x[tmask.numpy()], 0.0, 0.0, "torch dropout")


# -- figures -------------------------------------------------------------------------------


def main() -> None:
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    if args.device != "cpu":
        raise SystemExit("bench_mask.py compares against PyTorch on the CPU only (--device cpu)")
    torch_version = installed_version("torch")
    if torch_version is None:
        skip("torch is not installed (pip install torch)")
    note = machine_note()
    if note:
        print(note, flush=True)
    import seisoku
    from seisoku import _core

    features = dict(_core.build_info())["cpu_features"]
    print(
        f"seisoku {seisoku.__version__} (CPU features compiled: {features}), torch "
        f"{torch_version}; {N} float32 values; each side in a process of its own",
        flush=True,
    )
    check(N)
    timing: dict[str, Any] = {
        "warmup": 1 if args.quick else 3,
        "repeats": 3 if args.quick else 15,
        "warmup_s": 0.05 if args.quick else CPU_WARMUP_S,
        "rounds": 1 if args.quick else 3,
    }
    figures: list[Figure] = []
    lines: list[str] = []
    workers = {"seisoku": Worker(), "torch": Worker(), "numpy": Worker()}
    try:
        for threads in thread_counts():
            tag = threads_label(threads)

            def job(side: str, factory: str, threads: int = threads, **kw: Any) -> Job:
                libraries = {"seisoku": ("seisoku",), "torch": ("torch",), "numpy": ()}[side]
                return Job("bench_mask", factory, {**kw, "n": N}, threads, libraries)

            t_np, t_torch_copy = time_pair_isolated(
                job("numpy", "copy_op", library="numpy"),
                job("torch", "copy_op", library="torch"),
                ours_worker=workers["numpy"],
                peer_worker=workers["torch"],
                **timing,
            )
            copy = min(t_np, t_torch_copy)
            lines.append(
                f"copy bound, {tag}: numpy.copyto {t_np * 1e3:.2f} ms, torch copy_ "
                f"{t_torch_copy * 1e3:.2f} ms"
            )
            print(lines[-1], flush=True)
            for op in OPS:
                ways = ((False, "preallocated"), (True, "both allocating"))
                for alloc, how in ways[:1] if args.quick and threads == 1 else ways:
                    ours = job("seisoku", "seisoku_op", op=op, alloc=alloc)
                    peer = job("torch", "torch_op", op=op, alloc=alloc)
                    t_ours, t_peer = time_pair_isolated(
                        ours,
                        peer,
                        ours_worker=workers["seisoku"],
                        peer_worker=workers["torch"],
                        **timing,
                    )
                    workers["seisoku"].forget(ours)
                    workers["torch"].forget(peer)
                    name = f"{op} {N // 1_000_000}M f32, {how}"
                    fig = Figure(name, t_ours * 1e3, t_peer * 1e3, "torch", "ms", threads=threads)
                    report([fig])
                    figures.append(fig)
                    if alloc:
                        continue
                    fig = Figure(
                        f"{name}, against the copy",
                        t_ours * 1e3,
                        copy * 1e3,
                        "copy",
                        "ms",
                        threads=threads,
                    )
                    report([fig])
                    figures.append(fig)
                    target = " (target <= 1.3x)" if op.startswith("dropout") else ""
                    lines.append(f"{name}, {tag}: {t_ours / copy:.2f}x the copy{target}")
    finally:
        for w in workers.values():
            w.close()
    for line in lines:
        print(line)
    if args.json:
        write_json(figures, args.json)


if __name__ == "__main__":
    main()
