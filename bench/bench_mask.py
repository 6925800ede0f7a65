"""Dropout and Gaussian noise (10M float32) against the copy bound and torch, on the CPU.

Figures, each at 1 thread (thread for thread) and at all threads (the whole machine):
* dropout forward, p = 0.5: seisoku.nn.functional.dropout against torch's native dropout
  (what torch.nn.functional.dropout runs), both writing into preallocated outputs
  (torch.ops.aten.native_dropout.out, which also writes its mask) and both allocating
  (torch.nn.functional.dropout allocates its output and its mask);
* dropout backward: seisoku draws the mask again from (seed, offset) (nothing stored); torch
  reads the mask it stored (native_dropout_backward), preallocated and allocating;
* Gaussian noise x + N(0, 0.5^2): seisoku.nn.functional.gaussian_noise against
  torch.normal(x, 0.5) (one op), preallocated and allocating;
* the copy bound: the time of copying the same array into a preallocated one, the best of
  numpy.copyto (one thread) and torch's copy_ at the same threads; each seisoku time is also
  reported against it (target for dropout: at most 1.3x).
seisoku and torch alternate for three rounds and each keeps its best (a shared machine's slow
spell then hits both); the whole-machine preallocated figures are also measured with each side
alone in a process of its own (no settings of one library can help or hurt the other).

Before timing, the dropout mask is checked against the documented definition
(seisoku/mask.hpp: uint16 number i of the Philox4x32-10 stream, kept iff below
65536 - round(65536 p)) computed with an independent NumPy Philox, the kept values and the
backward mask are checked, and the noise against seisoku.Generator.normal.

    python bench/bench_mask.py [--quick] [--json PATH] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (
    CPU_WARMUP_S,
    Figure,
    check_close,
    check_true,
    machine_note,
    make_parser,
    report,
    time_fn,
    time_pair,
)

P, STD, SEED = 0.5, 0.5, 1234
_U32 = np.uint64(0xFFFFFFFF)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo ('unknown CPU' elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


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
    halves = words.view(np.uint16) if sys.byteorder == "little" else None
    if halves is None:
        halves = np.stack([words & 0xFFFF, words >> 16], axis=-1).reshape(-1)
    x = p * 65536.0
    dropped = int(np.floor(x)) + (1 if x - np.floor(x) >= 0.5 else 0)
    return halves[:n] < 65536 - dropped


# ---- the timed operations of each side (built lazily: a side alone imports only its library) ----


def ours_ops(n: int) -> dict[str, Callable[[], Any]]:
    """name -> callable of seisoku's side; the offset advances every call (a fresh mask)."""
    from seisoku.nn import functional as F  # noqa: N812

    rng = np.random.default_rng(3)
    x = rng.random(n, dtype=np.float32) + 0.5
    g = rng.random(n, dtype=np.float32) - 0.5
    out = np.empty_like(x)
    step = {"k": 0}

    def fresh() -> int:
        step["k"] += 1
        return step["k"]

    return {
        "copy": lambda: np.copyto(out, x),
        "dropout fwd": lambda: F.dropout(x, P, SEED, fresh(), out=out),
        "dropout fwd alloc": lambda: F.dropout(x, P, SEED, fresh()),
        "dropout bwd": lambda: F.dropout(g, P, SEED, fresh(), out=out),
        "dropout bwd alloc": lambda: F.dropout(g, P, SEED, fresh()),
        "noise": lambda: F.gaussian_noise(x, STD, SEED, fresh(), out=out),
        "noise alloc": lambda: F.gaussian_noise(x, STD, SEED, fresh()),
    }


def torch_ops(n: int) -> dict[str, Callable[[], Any]]:
    """name -> callable of torch's side, the same work as ours_ops."""
    import torch

    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.random(n, dtype=np.float32) + 0.5)
    g = torch.from_numpy(rng.random(n, dtype=np.float32) - 0.5)
    out = torch.empty_like(x)
    mask = torch.empty(n, dtype=torch.bool)
    torch.ops.aten.native_dropout.out(x, P, True, out0=out, out1=mask)
    scale = 1.0 / (1.0 - P)
    aten = torch.ops.aten
    return {
        "copy": lambda: out.copy_(x),
        "dropout fwd": lambda: aten.native_dropout.out(x, P, True, out0=out, out1=mask),
        "dropout fwd alloc": lambda: torch.nn.functional.dropout(x, P, training=True),
        "dropout bwd": lambda: aten.native_dropout_backward.out(g, mask, scale, out=out),
        "dropout bwd alloc": lambda: aten.native_dropout_backward(g, mask, scale),
        "noise": lambda: torch.normal(x, STD, out=out),
        "noise alloc": lambda: torch.normal(x, STD),
    }


def set_threads(side: str, threads: int) -> None:
    if side == "ours":
        import seisoku

        seisoku.set_num_threads(threads)
    else:
        import torch

        torch.set_num_threads(threads)


def options(quick: bool) -> dict[str, Any]:
    """time_fn options; --quick: few calls (torch's dropout takes ~0.4 s per 10M values)."""
    if quick:
        return {"warmup": 1, "repeats": 3, "warmup_s": 0.05}
    return {"warmup": 3, "repeats": 15, "warmup_s": CPU_WARMUP_S}


def run_alone(side: str, op: str, threads: int, n: int, quick: bool) -> float:
    """Seconds of `op` timed in a fresh process that imports only `side`'s library."""
    cmd = [sys.executable, os.path.abspath(__file__), "--alone", side, "--op", op]
    cmd += ["--threads", str(threads), "--n", str(n)] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{side} alone ({op}) failed:\n{proc.stdout}\n{proc.stderr}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])


def alone_main(side: str, op: str, threads: int, n: int, quick: bool) -> None:
    set_threads(side, threads)
    fn = (ours_ops if side == "ours" else torch_ops)(n)[op]
    print(json.dumps({"seconds": time_fn(fn, **options(quick))}))


# ---- checks ----


def check(n: int) -> None:
    """The very paths timed, against the documented mask and the Generator's normals."""
    import torch

    import seisoku
    from seisoku.nn import functional as F  # noqa: N812

    x = np.random.default_rng(3).random(n, dtype=np.float32) + 0.5
    g = np.random.default_rng(4).random(n, dtype=np.float32) - 0.5
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


# ---- figures ----


def main() -> None:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="threads of the whole-machine figures")
    # Internal: time one side alone in this process (see run_alone).
    parser.add_argument("--alone", choices=("ours", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--op", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=10_000_000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.alone:
        alone_main(args.alone, args.op, args.threads or 1, args.n, args.quick)
        return
    if args.device != "cpu":
        raise SystemExit("bench_mask.py compares against PyTorch on the CPU only (--device cpu)")
    import torch

    import seisoku
    from seisoku import _core

    note = machine_note()
    if note:
        print(note, flush=True)
    n = args.n
    full = args.threads or os.cpu_count() or 1
    build = dict(_core.build_info())
    print(
        f"{cpu_name()}; seisoku {seisoku.__version__} (CPU features compiled: "
        f"{build['cpu_features']}), torch {torch.__version__}; {n} float32 values",
        flush=True,
    )
    check(n)
    ours, theirs = ours_ops(n), torch_ops(n)
    opts = {**options(args.quick), "rounds": 1 if args.quick else 3}
    figures: list[Figure] = []
    for threads in sorted({1, full}):
        set_threads("ours", threads)
        set_threads("torch", threads)
        tag = f"{threads} thread{'s' if threads > 1 else ''}"
        t_np, t_torch_copy = time_pair(ours["copy"], theirs["copy"], **opts)
        copy = min(t_np, t_torch_copy)
        print(
            f"copy bound, {tag}: numpy.copyto {t_np * 1e3:.2f} ms, torch copy_ "
            f"{t_torch_copy * 1e3:.2f} ms",
            flush=True,
        )
        for op in ("dropout fwd", "dropout bwd", "noise"):
            ways = (("", "preallocated"), (" alloc", "both allocating"))
            for suffix, how in ways[:1] if args.quick and threads != full else ways:
                t_ours, t_peer = time_pair(ours[op + suffix], theirs[op + suffix], **opts)
                name = f"{op} {n // 1_000_000}M f32, {how}, {tag}"
                figures.append(Figure(name, t_ours * 1e3, t_peer * 1e3, "torch", "ms"))
                if not suffix:
                    figures.append(
                        Figure(f"{name}, vs copy", t_ours * 1e3, copy * 1e3, "copy bound", "ms")
                    )
                    print(
                        f"{name}: {t_ours / copy:.2f}x the copy bound"
                        + (" (target <= 1.3x)" if op.startswith("dropout") else ""),
                        flush=True,
                    )
    tag = f"{full} thread{'s' if full > 1 else ''}"
    for op in ("dropout fwd",) if args.quick else ("dropout fwd", "dropout bwd", "noise"):
        t_ours = run_alone("ours", op, full, n, args.quick)
        t_peer = run_alone("torch", op, full, n, args.quick)
        name = f"{op} {n // 1_000_000}M f32, preallocated, {tag}, each side alone in a process"
        figures.append(Figure(name, t_ours * 1e3, t_peer * 1e3, "torch", "ms"))
    report(figures, args.json)


if __name__ == "__main__":
    main()
