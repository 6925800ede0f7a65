"""Asynchronous data parallel and pipeline figures, run under MPI:

    python bench/bench_model_parallel.py [--quick] [--json PATH] [--ranks 4]

(started outside MPI it runs itself under ``mpiexec -n RANKS``; it skips without MPI)

* ``async digits accuracy``: test accuracy on scikit-learn's digits after the same epochs with the
  parameter server unbounded (staleness None) against the synchronous run (staleness 0, which
  equals one process on the same batch order; checked first against that process). Mean over
  seeds; ratio = ours / peer.
* ``pipeline <schedule> idle of the busiest stage``: the idle fraction of a step (measured by
  ``idle_fractions``: 1 - busy / makespan, communication counted as idle) of the stage that
  sets the pace, beside the GPipe bubble (p - 1) / (m + p - 1); the other stages' extra idle is
  the split's imbalance (printed with the mean over the stages). The pipelined step is first
  checked against the full-batch step of one process. ratio = bubble / measured. Stages of
  real layers need a core each: run it with as many ranks as cores.

Each rank runs on one thread (the ranks share the cores). Rows print on rank 0 only.
`pipeline_rows` and `async_rows` are what bench_distributed.py can call.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from typing import Any

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _row(name: str, ours: float, peer: float, peer_name: str, unit: str, ratio: float) -> dict:
    return {
        "name": name,
        "ours": ours,
        "peer": peer,
        "peer_name": peer_name,
        "unit": unit,
        "ratio": ratio,
        "threads": 1,
    }


def _digits(seed: int = 0) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(0.8 * len(x))
    tr, te = order[:cut], order[cut:]
    return x[tr], y[tr].astype(np.int64), x[te], y[te].astype(np.int64)


def _digits_model(seed: int) -> Any:
    import seisoku as sei

    return sei.nn.mlp([64, 128, 10], generator=sei.random.Generator(seed))


def async_rows(comm: Any, seeds: int = 5, epochs: int = 15, bounds: tuple = (None,)) -> list[dict]:
    """Asynchronous (each staleness bound in `bounds`; None: no bound) vs synchronous (k=0) test
    accuracy on digits, mean over `seeds`; rows on rank 0."""
    import seisoku as sei
    from seisoku.distributed.async_ps import shard_batches, train_async

    x, y, xt, yt = _digits()

    def opt(ps: list) -> Any:
        return sei.optim.SGD(ps, lr=0.05, momentum=0.9)

    bounds = tuple(k for k in bounds if k != 0)  # 0 is the synchronous peer itself
    acc: dict[Any, list[float]] = {k: [] for k in (0, *bounds)}
    stale: dict[Any, list[int]] = {k: [] for k in bounds}
    for seed in range(seeds):
        for k in (0, *bounds):
            model = _digits_model(seed)
            res = train_async(
                model, sei.nn.CrossEntropyLoss(), opt, x, y,
                batch_size=32, epochs=epochs, staleness=k, seed=seed,
            )  # fmt: skip
            if comm.Get_rank() != 0:
                continue
            model.eval()
            acc[k].append(100.0 * float(np.mean(np.argmax(model.forward(xt), 1) == yt)))
            if k != 0:
                stale[k].append(res.max_staleness)
            elif seed == 0:  # check: k = 0 is one process on the documented batch order
                ref = _digits_model(seed)
                o, loss = opt(ref.parameters()), sei.nn.CrossEntropyLoss()
                w = comm.Get_size() - 1
                queues = {
                    r: [b for e in range(epochs) for b in shard_batches(len(x), w, r, 32, e, seed)]
                    for r in range(1, w + 1)
                }
                while any(queues.values()):
                    for r in range(1, w + 1):
                        if queues[r]:
                            idx = queues[r].pop(0)
                            ref.zero_grad()
                            loss(ref.forward(x[idx]), y[idx])
                            ref.backward(loss.backward(), need_input_grad=False)
                            o.step()
                a, b = model.state_dict(), ref.state_dict()
                if any(not np.array_equal(a[n], b[n]) for n in a):
                    raise SystemExit("async_rows: k = 0 differs from the one-process run")
    if comm.Get_rank() != 0:
        return []
    peer, rows = float(np.mean(acc[0])), []
    print(f"  per seed: synchronous {[round(a, 2) for a in acc[0]]}", flush=True)
    for k in bounds:
        ours = float(np.mean(acc[k]))
        print(f"  per seed: staleness bound {k} {[round(a, 2) for a in acc[k]]}", flush=True)
        name = (
            f"async digits accuracy (bound {k}, {comm.Get_size() - 1} workers, {epochs} epochs, "
            f"{seeds} seeds, max staleness {max(stale[k])})"
        )
        rows.append(_row(name, ours, peer, "synchronous (staleness 0)", "%", ours / peer))
    return rows


def _fixed_time_layer(forward_s: float, backward_s: float) -> Any:
    """An identity layer whose forward and backward take fixed times (sleeps): a stage cost the
    load of a shared machine does not change, so the schedule's own idle time shows."""
    import seisoku as sei

    class FixedTime(sei.nn.Module):
        def forward(self, x: Any) -> Any:
            time.sleep(forward_s)
            return x

        def backward(self, grad: Any, need_input_grad: bool = True) -> Any:
            time.sleep(backward_s)
            return grad

    return FixedTime()


def fixed_time_rows(
    comm: Any, micro_batches: int = 8, steps: int = 3, forward_s: float = 0.02
) -> list[dict]:
    """Idle fraction of each schedule with equal fixed-time stages (`forward_s` forward, twice
    that backward, per micro-batch) beside the GPipe bubble; rows on rank 0."""
    import seisoku as sei
    from seisoku.distributed.pipeline import Pipeline, idle_fractions

    p, rows = comm.Get_size(), []
    for schedule in ("gpipe", "1f1b"):
        layers = [_fixed_time_layer(forward_s, 2 * forward_s) for _ in range(p)]
        pipe = Pipeline(
            sei.nn.Sequential(*layers), sei.nn.MSELoss(), split=list(range(1, p)),
            micro_batches=micro_batches, schedule=schedule,
        )  # fmt: skip
        x = np.zeros((8 * micro_batches, 4))
        pipe.train_step(x, x)
        r = idle_fractions(pipe, x, x, steps=steps)
        if comm.Get_rank() == 0:
            idle = [round(100 * f, 1) for f in r["idle"]]
            print(f"  {schedule} fixed-time stages: idle per stage {idle} %")
            ours, peer = 100 * r["mean_idle"], 100 * r["bubble"]
            rows.append(
                _row(
                    f"pipeline {schedule} idle, fixed-time stages (p={p}, m={micro_batches}, "
                    f"{1e3 * forward_s:g}+{2e3 * forward_s:g} ms)",
                    ours,
                    peer,
                    "GPipe bubble (p-1)/(m+p-1)",
                    "%",
                    peer / ours,
                )
            )
    return rows


def pipeline_rows(
    comm: Any, micro_batches: int = 8, width: int = 1024, steps: int = 5
) -> list[dict]:
    """Measured idle fraction per schedule beside the GPipe bubble; rows on rank 0."""
    import seisoku as sei
    from seisoku.distributed.pipeline import Pipeline, idle_fractions

    p = comm.Get_size()
    rows = []
    for schedule in ("gpipe", "1f1b"):
        # check: a pipelined float64 step equals the full-batch step of one process
        g = sei.random.Generator(1)
        layers = [sei.nn.Linear(16, 16, activation="relu", dtype="float64", generator=g)]
        layers += [sei.nn.Linear(16, 16, dtype="float64", generator=g) for _ in range(2 * p - 1)]
        ref = sei.nn.Sequential(*[copy.deepcopy(m) for m in layers])
        xs = np.random.default_rng(0).normal(size=(24, 16))
        pipe = Pipeline(
            sei.nn.Sequential(*layers), sei.nn.MSELoss(), split=list(range(2, 2 * p, 2)),
            micro_batches=micro_batches, schedule=schedule,
        )  # fmt: skip
        pipe.train_step(xs, xs)
        ref.zero_grad()
        mse = sei.nn.MSELoss()
        mse(ref.forward(xs), xs)
        ref.backward(mse.backward())
        mine = {id(q): q for q in pipe.stage_params}
        for q, r in zip(sei.nn.Sequential(*layers).parameters(), ref.parameters()):
            if id(q) in mine and np.max(np.abs(q.grad - r.grad)) > 1e-12:
                raise SystemExit(f"pipeline_rows: {schedule} gradients differ from one process")
        # measure: equal stages of two width x width layers each
        g = sei.random.Generator(2)
        model = sei.nn.Sequential(
            *[sei.nn.Linear(width, width, activation="relu", generator=g) for _ in range(2 * p)]
        )
        pipe = Pipeline(
            model, sei.nn.MSELoss(), lambda ps: sei.optim.SGD(ps, lr=1e-4),
            split=list(range(2, 2 * p, 2)), micro_batches=micro_batches, schedule=schedule,
        )  # fmt: skip
        x = np.random.default_rng(1).normal(size=(64 * micro_batches, width)).astype(np.float32)
        pipe.train_step(x, x)  # warm-up
        r = idle_fractions(pipe, x, x, steps=steps)
        if comm.Get_rank() == 0:
            idle = [round(100 * f, 1) for f in r["idle"]]
            busy = [round(1e3 * b, 1) for b in r["busy_seconds"]]
            cpu = [round(1e3 * b, 1) for b in r["cpu_seconds"]]
            print(
                f"  {schedule}: split {r['split']}, idle per stage {idle} %, busy {busy} ms, "
                f"process CPU {cpu} ms, makespan {1e3 * r['makespan_seconds']:.1f} ms"
            )
            print(f"  {schedule}: mean idle over the stages {100 * r['mean_idle']:.1f} %")
            ours, peer = 100 * r["bottleneck_idle"], 100 * r["bubble"]
            rows.append(
                _row(
                    f"pipeline {schedule} idle of the busiest stage (p={p}, m={micro_batches})",
                    ours,
                    peer,
                    "GPipe bubble (p-1)/(m+p-1)",
                    "%",
                    peer / ours,
                )
            )
    return rows


def _launch(args: argparse.Namespace) -> None:
    """Outside MPI: run this file under mpiexec -n RANKS (or skip when MPI is missing)."""
    import importlib.util
    import shutil
    import subprocess

    from _timing import skip

    mpiexec = shutil.which("mpiexec")
    if mpiexec is None or importlib.util.find_spec("mpi4py") is None:
        skip("needs mpi4py and mpiexec (pip install mpich mpi4py)")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [mpiexec, "-n", str(args.ranks), sys.executable, os.path.abspath(__file__)]
    cmd += sys.argv[1:]
    raise SystemExit(subprocess.run(cmd, env=env, timeout=3600).returncode)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer seeds, epochs and steps")
    ap.add_argument("--json", help="write the rows as JSON to this path")
    ap.add_argument("--device", default="cpu", help="cpu only (taken for seisoku bench)")
    ap.add_argument(
        "--ranks", type=int, default=4, help="ranks when started outside MPI (default 4)"
    )
    args = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if not any(k in os.environ for k in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")):
        _launch(args)
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if comm.Get_size() < 2:
        raise SystemExit("run it with at least 2 ranks: mpiexec -n 4 python " + __file__)
    if comm.Get_rank() == 0:
        from _timing import cpu_line

        print(cpu_line(), f"| {comm.Get_size()} ranks, 1 thread each", flush=True)
    rows = fixed_time_rows(comm, steps=2 if args.quick else 5)
    rows += pipeline_rows(comm, steps=2 if args.quick else 5)
    w = comm.Get_size() - 1
    rows += async_rows(
        comm, seeds=1 if args.quick else 5, epochs=5 if args.quick else 15, bounds=(w - 1, None)
    )
    if comm.Get_rank() == 0:
        for r in rows:
            print(
                f"{r['name']} [1 thread]: ours {r['ours']:.2f} {r['unit']}, "
                f"peer {r['peer']:.2f} {r['unit']} ({r['peer_name']}), ratio {r['ratio']:.3f}"
            )
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
