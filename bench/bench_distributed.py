"""Synchronous data parallel training: seisoku.distributed.DataParallel against PyTorch
DistributedDataParallel (gloo backend), both launched with mpiexec by this script.

Model: MLP 784-800-800-10 (ReLU), float32, cross-entropy, SGD with momentum 0.9; a step is
forward, loss, backward, gradient all-reduce (25 MB buckets on both sides, the gradients
being views of the buckets on both: torch's gradient_as_bucket_view=True) and the update, on
preallocated synthetic data, one thread per rank on each side.

Checked first: 3 steps on 2 ranks (global batch 2b) against one process with batch 2b: the
parameters must agree (float32, 1e-5). Then, alternating launches of each side (best
round kept):
* step throughput at 2 ranks, global batch 2b (steps/s; target >= 1.5x torch DDP);
* "... weak-scaling efficiency 1→2 ranks": step time at 1 rank with batch b over step time at
  2 ranks with b per rank (fraction; target >= 0.9), torch DDP's beside it;
* all-reduce bandwidth of our gradient reduction (DataParallel.reduce_gradients on the MLP's
  gradient buckets: bytes / time), with the default reduction (on one machine: 'shared',
  sums in MPI shared memory) and with reduction='allreduce' (MPI_Iallreduce, the path
  across machines), against a bare mpi4py Allreduce(IN_PLACE) of a buffer of the same bytes
  in the same processes (GB/s; target: within 10%);
* the rows of bench_model_parallel.py: on 2 ranks (a core per stage) each pipeline
  schedule's measured idle fraction of the busiest stage against the GPipe bubble
  (p-1)/(m+p-1) (fixed-time stages and real layers); on 4 ranks the asynchronous parameter
  server's digits accuracy against the synchronous run.

    python bench/bench_distributed.py [--quick] [--json PATH]

Needs mpi4py with mpiexec (pip install 'seisoku[mpi]') and torch; skips without them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (
    Figure,
    check_close,
    installed_version,
    launch_environ,
    make_parser,
    report,
    skip,
)

SIZES = (784, 800, 800, 10)
MODEL = "MLP 784-800-800-10"
LR, MOMENTUM = 0.01, 0.9
BUCKET_MB = 25.0
SCRIPT = os.path.abspath(__file__)


def _data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((rows, SIZES[0]), dtype=np.float32),
        rng.integers(0, SIZES[-1], rows).astype(np.int64),
    )


def _init(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """The same starting weights and biases for both sides (Kaiming-uniform-like)."""
    rng = np.random.default_rng(seed)
    out = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)
        b = rng.uniform(-bound, bound, fan_out).astype(np.float32)
        out.append((w, b))
    return out


# -- the sides, each run inside mpiexec ---------------------------------------------------


def _ours(local: int, seed: int, reduction: str = "auto") -> tuple[Any, Any, Any, Any]:
    import seisoku as sei
    from seisoku.distributed import DataParallel

    sei.set_num_threads(1)
    layers = []
    for i, (w, b) in enumerate(_init()):
        act = "relu" if i < len(SIZES) - 2 else None
        lin = sei.nn.Linear(w.shape[1], w.shape[0], activation=act)
        lin.weight.value[...] = w
        lin.bias.value[...] = b
        layers.append(lin)
    model = sei.nn.Sequential(*layers)
    opt = sei.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    dp = DataParallel(model, bucket_mb=BUCKET_MB, optimizer=opt, reduction=reduction)
    loss = sei.nn.CrossEntropyLoss(0.0)
    x, y = _data(local * dp.size, seed)
    start = dp.rank * local
    xs, ys = np.ascontiguousarray(x[start : start + local]), y[start : start + local]

    def step() -> None:
        dp.begin_batch(start, start + local, local * dp.size)
        model.zero_grad()
        loss(model.forward(xs), ys)
        dp.backward(loss.backward())
        opt.step()

    params = lambda: [p.value.copy() for p in model.parameters()]  # noqa: E731
    return step, params, dp.comm, dp


def _torch(local: int, seed: int) -> tuple[Any, Any, Any, Any]:
    import torch
    import torch.distributed as tdist

    torch.set_num_threads(1)
    rank, size = int(os.environ["PMI_RANK"]), int(os.environ["PMI_SIZE"])
    tdist.init_process_group("gloo", rank=rank, world_size=size)
    mods: list[Any] = []
    for i, (w, b) in enumerate(_init()):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        mods.append(lin)
        if i < len(SIZES) - 2:
            mods.append(torch.nn.ReLU())
    model = torch.nn.parallel.DistributedDataParallel(
        torch.nn.Sequential(*mods), bucket_cap_mb=BUCKET_MB, gradient_as_bucket_view=True
    )
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    lossf = torch.nn.CrossEntropyLoss()
    x, y = _data(local * size, seed)
    start = rank * local
    xs = torch.from_numpy(np.ascontiguousarray(x[start : start + local]))
    ys = torch.from_numpy(y[start : start + local])

    def step() -> None:
        opt.zero_grad(set_to_none=False)
        lossf(model(xs), ys).backward()
        opt.step()

    params = lambda: [p.detach().numpy().copy() for p in model.parameters()]  # noqa: E731
    return step, params, None, None


def _role(args: Any) -> None:
    """Inside mpiexec: build one side, run it, rank 0 prints one JSON line."""
    side, local, steps = args.role, args.local, args.steps
    if side == "check":
        step, params, comm, _ = _ours(local, 1)
        for _ in range(3):
            step()
        if comm.Get_rank() == 0:
            np.savez(args.out, *params())
        return
    if side == "bandwidth":
        _bandwidth(args)
        return
    if side == "model_parallel":
        _model_parallel(args)
        return
    step, _, comm, _ = (_ours if side == "ours" else _torch)(local, 2)
    rank = int(os.environ.get("PMI_RANK", "0"))
    for _ in range(3):
        step()
    best = float("inf")
    for _ in range(args.rounds):
        _barrier(side, comm)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - t0) / steps)
    if rank == 0:
        print(json.dumps({"step_s": best}), flush=True)


def _model_parallel(args: Any) -> None:
    """Inside mpiexec: the pipeline (idle fraction vs the GPipe bubble) and asynchronous
    (digits accuracy vs synchronous) rows of bench_model_parallel; rank 0 prints them."""
    import bench_model_parallel as mp
    from mpi4py import MPI

    comm, quick = MPI.COMM_WORLD, args.rounds <= 1
    steps = 2 if quick else 5
    rows = []
    if comm.Get_size() <= (os.cpu_count() or 1):  # stages of real layers need a core each
        rows += mp.fixed_time_rows(comm, steps=steps) + mp.pipeline_rows(comm, steps=steps)
    w = comm.Get_size() - 1
    if w >= 2:  # a bound below the number of workers: some asynchrony
        rows += mp.async_rows(
            comm, seeds=1 if quick else 5, epochs=5 if quick else 15, bounds=(w - 1, None)
        )
    if comm.Get_rank() == 0:
        print(json.dumps({"rows": rows}), flush=True)


def _barrier(side: str, comm: Any) -> None:
    if side == "ours":
        comm.Barrier()
    else:
        import torch.distributed as tdist

        tdist.barrier()


def _bandwidth(args: Any) -> None:
    from mpi4py import MPI

    _, _, comm, shared = _ours(args.local, 3)
    _, _, _, mpi_path = _ours(args.local, 3, reduction="allreduce")
    nbytes = sum(b.nbytes for b in shared.buckets)
    bare = np.ones(nbytes // 4, dtype=np.float32)

    def reset() -> None:  # keep the values finite (sums of ones grow by x2 per call)
        for b in [*shared.buckets, *mpi_path.buckets]:
            b.buffer[...] = 1.0
        bare[...] = 1.0

    sides = {
        "shared": shared.reduce_gradients,
        "allreduce": mpi_path.reduce_gradients,
        "peer": lambda: comm.Allreduce(MPI.IN_PLACE, bare, MPI.SUM),
    }
    best = dict.fromkeys(sides, float("inf"))
    reset()
    for _ in range(args.rounds):
        for name, fn in sides.items():
            fn()
            comm.Barrier()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / args.steps)
            reset()
    if comm.Get_rank() == 0:
        print(json.dumps({"bytes": nbytes, **{f"{k}_s": v for k, v in best.items()}}))


# -- the driver ---------------------------------------------------------------------------


def _launch(ranks: int, role: str, **opts: Any) -> dict[str, Any]:
    env = dict(launch_environ(), OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    env["MASTER_PORT"] = str(29500 + os.getpid() % 1000)
    cmd = [
        shutil.which("mpiexec") or "mpiexec",
        "-n",
        str(ranks),
        sys.executable,
        SCRIPT,
        "--role",
        role,
    ]
    for k, v in opts.items():
        cmd += [f"--{k}", str(v)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if p.returncode != 0:
        raise SystemExit(
            f"bench_distributed: {' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
        )
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def _check(local: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        two, one = os.path.join(tmp, "two.npz"), os.path.join(tmp, "one.npz")
        _launch(2, "check", local=local, out=two)
        _launch(1, "check", local=2 * local, out=one)
        with np.load(two) as a, np.load(one) as b:
            for k in a.files:
                check_close(
                    a[k],
                    b[k],
                    rtol=1e-5,
                    atol=1e-5,
                    what=f"DataParallel on 2 ranks vs 1 process, parameter {k}",
                )


def main() -> None:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--role", help=argparse_hidden())
    parser.add_argument("--local", type=int, default=128, help="rows per rank (default 128)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", help=argparse_hidden())
    args = parser.parse_args()
    if args.role:
        _role(args)
        return
    if shutil.which("mpiexec") is None or installed_version("mpi4py") is None:
        skip("needs mpi4py and mpiexec (pip install 'seisoku[mpi]')")
    if installed_version("torch") is None:
        skip("needs torch for the torch DDP peer")
    if args.quick:
        args.steps, args.rounds = 5, 1  # the same sizes, fewer repeats
    b = args.local
    _check(b)
    print(
        f"check: DataParallel on 2 ranks = 1 process after 3 steps (global batch {2 * b})",
        flush=True,
    )
    times: dict[tuple[str, int], float] = {}
    for _ in range(args.rounds):  # alternating launches, best round of each
        for side in ("ours", "torch"):
            for ranks in (2, 1):
                got = _launch(ranks, side, local=b, steps=args.steps, rounds=2)["step_s"]
                key = (side, ranks)
                times[key] = min(times.get(key, float("inf")), got)
    bw = _launch(2, "bandwidth", local=b, steps=args.steps, rounds=args.rounds)
    figures = [
        Figure(
            f"{MODEL} sync data parallel step throughput, 2 ranks, global batch {2 * b}",
            1.0 / times["ours", 2],
            1.0 / times["torch", 2],
            "torch DDP",
            "steps/s",
            threads=1,
        ),
        Figure(
            f"{MODEL} weak-scaling efficiency 1→2 ranks, batch {b} per rank",
            times["ours", 1] / times["ours", 2],
            times["torch", 1] / times["torch", 2],
            "torch DDP",
            "fraction",
            higher_is_better=True,
            threads=1,
        ),
        Figure(
            f"gradient all-reduce bandwidth, 2 ranks, {bw['bytes'] / 1e6:.1f} MB",
            bw["bytes"] / bw["shared_s"] / 1e9,
            bw["bytes"] / bw["peer_s"] / 1e9,
            "mpi4py Allreduce",
            "GB/s",
            threads=1,
        ),
        Figure(
            f"gradient all-reduce bandwidth, reduction='allreduce', 2 ranks, "
            f"{bw['bytes'] / 1e6:.1f} MB",
            bw["bytes"] / bw["allreduce_s"] / 1e9,
            bw["bytes"] / bw["peer_s"] / 1e9,
            "mpi4py Allreduce",
            "GB/s",
            threads=1,
        ),
    ]
    mp_rows = []
    for ranks in (2, 4):  # pipeline on one core per stage; the parameter server on 4 ranks
        mp_rows += _launch(ranks, "model_parallel", rounds=args.rounds).get("rows", [])
    for row in mp_rows:
        figures.append(
            Figure(
                row["name"],
                row["ours"],
                row["peer"],
                row["peer_name"],
                row["unit"],
                higher_is_better="accuracy" in row["name"],
                threads=1,
            )
        )
    report(figures, args.json)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
