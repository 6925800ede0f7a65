"""Pruned layers: seisoku's SparseLinear (CSR) against its own dense Linear and against torch, on
the CPU, and a physically shrunk MLP (structured pruning) against the dense one.

Figures, each thread for thread (1 thread on each side) and for the whole machine (both sides
on every core), each side timed in a process of its own (see _timing), alternating rounds, in
microseconds per call:

* "Linear IxO batch B S%": y = x @ W.T of one layer (I -> O = 784 -> 800 and 800 -> 800,
  batch B = 1, 64, 128) whose weight is magnitude-pruned to S = 90% and 95% zeros (the same
  weights on every side, no bias, evaluation mode, outputs allocated on every side):
  - seisoku.sparse.SparseLinear.from_dense(layer) against the dense seisoku.nn.Linear holding
    the pruned weight (peer "seisoku float32": what the pruned model runs without conversion);
  - the same against torch.sparse.mm on the weight in CSR (W.to_sparse_csr() @ x.T, peer
    "torch") and against torch's dense torch.nn.functional.linear (peer "torch dense").
* "Linear 4096x4096 batch B S%" (B = 1, 64; S = 90%, 95%): the large layer against the dense
  seisoku Linear only.
* crossover: at 800 -> 800 and batch 1 and 64, the sparse layer against the dense one at 50%,
  60%, 70% and 80% zeros (1 thread); the lowest sparsity where the sparse layer is faster is
  printed.
* "Linear 800x800 batch 128 S% train step": forward and backward (input and weight
  gradients) of the sparse layer against the dense Linear on the pruned weight (seisoku only).
* "MLP 784-800-800-10 batch 128, R% units removed": inference of seisoku.nn.mlp (ReLU)
  after structured_prune(amount=R) and shrink (the hidden layers physically smaller) against
  the dense model; the speedup to expect is the ratio of their multiply-adds (printed).

Each timing process checks its path against a float64 NumPy product on the same weights
before timing it.

    python bench/bench_sparse.py [--quick] [--json PATH]
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (
    CPU_WARMUP_S,
    Figure,
    Job,
    Worker,
    check_close,
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

SHAPES = ((784, 800), (800, 800))
BATCHES = (1, 64, 128)
SPARSITIES = (0.9, 0.95)
CROSSOVER = (0.5, 0.6, 0.7, 0.8)
MLP = (784, 800, 800, 10)
REMOVED = (0.5, 0.75)
RTOL = 1e-4  # float32 sums of at most 800 terms against float64


def operands(inp: int, out: int, batch: int, sparsity: float) -> tuple[np.ndarray, np.ndarray]:
    """(x (batch, inp), w (out, inp)) float32 with exactly round(sparsity * size) of w's
    smallest magnitudes zero; fixed seeds."""
    rng = np.random.default_rng(1234)
    w = (rng.standard_normal((out, inp)) / np.sqrt(inp)).astype(np.float32)
    k = round(sparsity * w.size)
    w.ravel()[np.argsort(np.abs(w).ravel(), kind="stable")[:k]] = 0
    x = rng.standard_normal((batch, inp)).astype(np.float32)
    return x, w


def reference(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) @ w.astype(np.float64).T


def mac_ratio(kept: list[int]) -> float:
    """Multiply-adds of the dense MLP over those of one with `kept` units per layer."""
    macs = lambda sizes: sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))  # noqa: E731
    return macs(MLP) / macs(kept)


def _name(inp: int, out: int, batch: int, sparsity: float) -> str:
    return f"Linear {inp}x{out} batch {batch} {round(100 * sparsity)}%"


# -- the job factories: one side's call, built and checked in its own process -------------


def seisoku_linear(
    inp: int, out: int, batch: int, sparsity: float, sparse: bool, train: bool = False
) -> Callable[[], Any]:
    """The dense seisoku.nn.Linear on the pruned weight, or its SparseLinear conversion; the
    forward (evaluation mode), or forward and backward (train=True)."""
    from seisoku import nn
    from seisoku.sparse import SparseLinear

    x, w = operands(inp, out, batch, sparsity)
    dense = nn.Linear(inp, out, bias=False)
    dense.weight.value[...] = w
    layer = SparseLinear.from_dense(dense) if sparse else dense
    layer.train(train)
    who = f"{_name(inp, out, batch, sparsity)} seisoku {'sparse' if sparse else 'dense'}"
    check_close(layer(x), reference(x, w), RTOL, RTOL, who)
    if not train:
        return lambda: layer(x)
    g = np.random.default_rng(5).standard_normal((batch, out)).astype(np.float32)
    layer.zero_grad()
    layer(x)
    check_close(layer.backward(g), g.astype(np.float64) @ w, RTOL, RTOL, who + " backward")

    def step() -> None:
        layer.zero_grad()
        layer(x)
        layer.backward(g)

    return step


def torch_linear(
    inp: int, out: int, batch: int, sparsity: float, sparse: bool
) -> Callable[[], Any]:
    """torch.sparse.mm(W_csr, x.T) (the output's transpose, returned as a view), or the dense
    torch.nn.functional.linear(x, W)."""
    import torch

    x, w = operands(inp, out, batch, sparsity)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    if sparse:
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            csr = tw.to_sparse_csr()
        fn = lambda: torch.sparse.mm(csr, tx.t()).t()  # noqa: E731
    else:
        fn = lambda: torch.nn.functional.linear(tx, tw)  # noqa: E731
    with torch.no_grad():
        check_close(fn(), reference(x, w), RTOL, RTOL, f"{_name(inp, out, batch, sparsity)} torch")
    return torch.no_grad()(fn)


def seisoku_mlp(removed: float, batch: int = 128) -> Callable[[], Any]:
    """Inference of mlp 784-800-800-10 (ReLU): dense (removed 0), else after structured_prune
    of that fraction of the hidden units and shrink."""
    import seisoku as sei
    from seisoku import nn
    from seisoku.prune import shrink, structured_prune

    model = nn.mlp(MLP, generator=sei.Generator(0))
    if removed > 0:
        structured_prune(model, removed)
        model = shrink(model)
    model.eval()
    x = np.random.default_rng(6).standard_normal((batch, MLP[0])).astype(np.float32)
    h = x.astype(np.float64)
    layers = [m for m in model if isinstance(m, nn.Linear)]
    for i, layer in enumerate(layers):
        h = h @ np.asarray(layer.weight.value, np.float64).T + np.asarray(layer.bias.value)
        h = np.maximum(h, 0) if i + 1 < len(layers) else h
    check_close(model(x), h, RTOL, RTOL, f"MLP removed {removed}")
    return lambda: model(x)


# -- the run ------------------------------------------------------------------------------


def main() -> None:
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    if args.device != "cpu":
        raise SystemExit("bench_sparse.py measures the CPU kernels (--device cpu)")
    torch_version = installed_version("torch")
    if torch_version is None:
        skip("torch is not installed (pip install torch)")
    note = machine_note()
    if note:
        print(note, flush=True)
    import seisoku

    print(
        f"seisoku {seisoku.__version__}, torch {torch_version}; float32; each side in a process "
        "of its own",
        flush=True,
    )
    timing: dict[str, Any] = {
        "warmup": 1 if args.quick else 3,
        "repeats": 3 if args.quick else 15,
        "warmup_s": 0.05 if args.quick else CPU_WARMUP_S,
        "min_time_s": 0.02 if args.quick else 0.2,
        "rounds": 1 if args.quick else 3,
    }
    shapes = SHAPES[1:] if args.quick else SHAPES
    batches = (1, 128) if args.quick else BATCHES
    sparsities = SPARSITIES[1:] if args.quick else SPARSITIES
    figures: list[Figure] = []
    workers = {"seisoku": Worker(), "dense": Worker(), "torch": Worker()}

    def add(name: str, ours: float, peer: float, peer_name: str, threads: int) -> None:
        fig = Figure(name, ours * 1e6, peer * 1e6, peer_name, "us", threads=threads)
        figures.append(fig)
        report([fig])

    try:
        for threads in thread_counts():
            print(f"-- {threads_label(threads)}", flush=True)

            def job(factory: str, side: str, threads: int = threads, **kw: Any) -> Job:
                libraries = ("torch",) if side == "torch" else ("seisoku",)
                return Job("bench_sparse", factory, kw, threads, libraries)

            def pair(ours: Job, peer: Job, peer_side: str) -> tuple[float, float]:
                return time_pair_isolated(
                    ours,
                    peer,
                    ours_worker=workers["seisoku"],
                    peer_worker=workers[peer_side],
                    **timing,
                )

            for inp, out in shapes:
                for batch in batches:
                    for s in sparsities:
                        kw = dict(inp=inp, out=out, batch=batch, sparsity=s)
                        name = _name(inp, out, batch, s)
                        ours = job("seisoku_linear", "seisoku", sparse=True, **kw)
                        dense = job("seisoku_linear", "seisoku", sparse=False, **kw)
                        peers = (
                            ("seisoku float32", "dense", dense),
                            ("torch", "torch", job("torch_linear", "torch", sparse=True, **kw)),
                            (
                                "torch dense",
                                "torch",
                                job("torch_linear", "torch", sparse=False, **kw),
                            ),
                        )
                        for peer_name, side, peer in peers:
                            t_ours, t_peer = pair(ours, peer, side)
                            add(name, t_ours, t_peer, peer_name, threads)
            for batch in (1, 64):
                for s in sparsities:
                    kw = dict(inp=4096, out=4096, batch=batch, sparsity=s)
                    t_ours, t_peer = pair(
                        job("seisoku_linear", "seisoku", sparse=True, **kw),
                        job("seisoku_linear", "seisoku", sparse=False, **kw),
                        "dense",
                    )
                    add(_name(4096, 4096, batch, s), t_ours, t_peer, "seisoku float32", threads)
            if threads == 1 and not args.quick:
                for batch in (1, 64):
                    faster = []
                    for s in CROSSOVER:
                        kw = dict(inp=800, out=800, batch=batch, sparsity=s)
                        t_ours, t_peer = pair(
                            job("seisoku_linear", "seisoku", sparse=True, **kw),
                            job("seisoku_linear", "seisoku", sparse=False, **kw),
                            "dense",
                        )
                        add(_name(800, 800, batch, s), t_ours, t_peer, "seisoku float32", threads)
                        if t_ours < t_peer:
                            faster.append(s)
                    where = f"from {min(faster):.0%} zeros" if faster else "above 80% zeros"
                    print(f"   crossover, 800x800 batch {batch}: sparse faster {where}", flush=True)
            for s in sparsities:
                kw = dict(inp=800, out=800, batch=128, sparsity=s, train=True)
                t_ours, t_peer = pair(
                    job("seisoku_linear", "seisoku", sparse=True, **kw),
                    job("seisoku_linear", "seisoku", sparse=False, **kw),
                    "dense",
                )
                name = f"{_name(800, 800, 128, s)} train step"
                add(name, t_ours, t_peer, "seisoku float32", threads)
            for removed in REMOVED[:1] if args.quick else REMOVED:
                t_ours, t_peer = pair(
                    job("seisoku_mlp", "seisoku", removed=removed),
                    job("seisoku_mlp", "seisoku", removed=0.0),
                    "dense",
                )
                name = f"MLP 784-800-800-10 batch 128, {round(100 * removed)}% units removed"
                add(name, t_ours, t_peer, "seisoku float32", threads)
                kept = [MLP[0], *(round(h * (1 - removed)) for h in MLP[1:-1]), MLP[-1]]
                print(
                    f"   ({removed:.0%} of the hidden units removed: {mac_ratio(kept):.2f}x fewer "
                    "multiply-adds, the speedup to expect)",
                    flush=True,
                )
    finally:
        for w in workers.values():
            w.close()
    if args.json:
        write_json(figures, args.json)


if __name__ == "__main__":
    main()
