"""Programs the distributed tests run under mpiexec (and alone, as the single-process oracle).

    python test_distributed_worker.py SCENARIO OUT [options]

Not a test module of its own (it defines no tests); the test_distributed*.py files launch it.
Every scenario trains the same small network on the same synthetic data with dropout (a
Dropout layer and Linear's fused dropout) and augmentation (random crop and cutout of 6x6
images), so that each sample's draws must follow its row of the global batch.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import numpy as np

import seisoku as sei
from seisoku import augment as sa
from seisoku import nn
from seisoku.train import Callback, Checkpoint, EarlyStopping, Trainer

SIDE = 6


def data(dtype: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, (n + 60, SIDE * SIDE)).astype(np.float32)
    w = rng.normal(0, 1, (SIDE * SIDE, 4))
    y = (x @ w).argmax(axis=1).astype(np.int64)
    return x[:n].astype(dtype), y[:n], x[n:].astype(dtype), y[n:]


def model(dtype: str, hidden: int = 24) -> nn.Module:
    sei.manual_seed(3)
    return nn.Sequential(
        nn.Linear(SIDE * SIDE, hidden, activation="relu", dropout=0.3, dtype=dtype),
        nn.Dropout(0.2),
        nn.Linear(hidden, 16, activation="tanh", dtype=dtype),
        nn.Linear(16, 4, dtype=dtype),
    )


def augmentation(dtype: str, rows: bool = True):
    hook = sa.Compose(
        [sa.RandomCrop(SIDE, padding=1), sa.Cutout(1, 2, p=0.5)], seed=11, layout="NCHW"
    ).trainer_hook(image_shape=(1, SIDE, SIDE))

    def run(x, step, labels=None, first_row=0):
        first_row = first_row if rows else 0
        out = hook(np.ascontiguousarray(x, dtype=np.float32), step, labels, first_row=first_row)
        return out.astype(dtype)

    return run


class Fault(Callback):
    """Misbehaves on one rank at one step: raise, hang (stop sending) or SIGKILL itself."""

    def __init__(self, kind: str, rank: int, step: int) -> None:
        self.kind, self.rank, self.step = kind, rank, step

    def on_batch_end(self, trainer, step, logs):
        if trainer.parallel.rank != self.rank or step != self.step:
            return
        if self.kind == "raise":
            raise RuntimeError(f"injected failure at step {step}")
        if self.kind == "hang":
            time.sleep(3600)
        if self.kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)


class Probe(nn.Module):
    """The identity, noting when its backward runs and how many reductions are in flight."""

    def __init__(self, name: str, events: list) -> None:
        super().__init__()
        self.name, self.events = name, events

    def forward(self, x):
        return x

    def backward(self, grad, need_input_grad=True):
        self.events.append((self.name, len(self.dp._requests)))
        return grad


class Half(nn.Module):
    """A float16 parameter (no shared-memory reduction for it)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(np.zeros(4, np.float16))

    def forward(self, x):
        return x

    def backward(self, grad, need_input_grad=True):
        return grad


def api() -> int:
    """Argument checks, bucket layout and the order of bucket launches within backward."""
    import pytest

    from seisoku.distributed import DataParallel, get_comm, rank, size

    model = nn.Sequential(nn.Linear(3, 4))
    for kwargs, match in [
        ({"bucket_mb": 0}, "bucket_mb"),
        ({"reduction": "mean"}, "reduction"),
        ({"timeout": -1}, "timeout"),
    ]:
        with pytest.raises(ValueError, match=match):
            DataParallel(model, **kwargs)
    with pytest.raises(ValueError, match="module"):
        DataParallel("model")
    os.environ["SEISOKU_MPI_TIMEOUT"] = "soon"
    with pytest.raises(ValueError, match="SEISOKU_MPI_TIMEOUT must be a number"):
        DataParallel(model)
    os.environ["SEISOKU_MPI_TIMEOUT"] = "7.5"
    assert DataParallel(model).timeout == 7.5
    del os.environ["SEISOKU_MPI_TIMEOUT"]
    with pytest.raises(ValueError, match="comm"):
        get_comm("world")
    events: list = []
    p1, p2 = Probe("probe1", events), Probe("probe3", events)
    sei.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), p1, nn.Linear(5, 4), p2, nn.Linear(4, 3))
    dp = DataParallel(net, bucket_mb=1e-6)  # one bucket per parameter
    p1.dp = p2.dp = dp
    assert len(dp.buckets) == 6 and all(b.bound for b in dp.buckets)
    assert [b.ready for b in dp.buckets] == [4, 4, 2, 2, 0, 0]  # last layer's first
    for b in dp.buckets:
        for p, view in zip(b.params, b.views):
            assert np.shares_memory(p.grad, b.buffer) and p.grad.shape == view.shape
    with pytest.raises(ValueError, match="begin_batch"):
        dp.begin_batch(3, 2, 4)
    launched = []
    launch = dp._launch
    dp._launch = lambda b: (launched.append(b.ready), events.append(("launch", b.ready)), launch(b))
    x = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
    dp.begin_batch(0, 8, 8)
    net.zero_grad()
    out = net.forward(x)
    dp.backward(np.ones_like(out))
    names = [e[0] if e[0] != "launch" else f"launch{e[1]}" for e in events]
    expected = ["launch4", "launch4", "probe3", "launch2", "launch2", "probe1"]
    assert names == [*expected, "launch0", "launch0"], names
    if size() > 1:  # the last layer's reductions are in flight while the others run backward
        assert events[2][1] == 2 and events[5][1] == 4, events
    if size() > 1:
        dp.close()  # the shared window released: gradients are private, reduction MPI's
        assert dp.reduction == "allreduce" and dp._window is None
        for b in dp.buckets:
            for p in b.params:
                assert np.shares_memory(p.grad, b.buffer)
        dp.close()  # idempotent
        out = net.forward(x)
        dp.backward(np.ones_like(out))
        shared = DataParallel(net, reduction="shared")
        assert shared.reduction == "shared"
        shared.close()
    else:
        assert dp.reduction == "allreduce"  # nothing to share with one rank
    f16 = Half()
    if size() > 1:
        with pytest.raises(ValueError, match="'reduction' is 'shared', but some parameters"):
            DataParallel(f16, reduction="shared")
    assert DataParallel(f16).reduction == "allreduce"  # 'auto' falls back
    print(f"ok {rank()}", flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["train", "fault", "mismatch", "api", "baddata"])
    ap.add_argument("out")
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--n", type=int, default=290)
    ap.add_argument("--batch", type=int, default=30)
    ap.add_argument("--single", action="store_true", help="no MPI: the plain Trainer")
    ap.add_argument("--reduction", default="auto")
    ap.add_argument("--bucket-mb", type=float, default=0.002)
    ap.add_argument("--weights", action="store_true")
    ap.add_argument("--early", action="store_true")
    ap.add_argument("--checkpoint")
    ap.add_argument("--resume")
    ap.add_argument("--fault", default="raise")
    ap.add_argument("--fault-rank", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=None)
    ap.add_argument("--ignore-rows", action="store_true", help="shards draw as rows 0..")
    ap.add_argument("--split", action="store_true", help="two sub-communicators (rank % 2)")
    a = ap.parse_args()
    sei.set_num_threads(1)

    if a.scenario == "api":
        return api()
    x, y, xv, yv = data(a.dtype, a.n)
    if a.scenario == "baddata":
        from seisoku.distributed import rank

        if rank() == 1:
            x[0] += 1.0  # a row the fingerprint samples (the first)
    net = model(a.dtype)
    if a.scenario == "mismatch":
        from seisoku.distributed import rank

        net = model(a.dtype, hidden=24 + rank())
    opt = sei.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, l2=1e-3)
    callbacks: list[Callback] = []
    if a.early:
        callbacks.append(EarlyStopping("val_loss", patience=1, min_delta=1e-3))
    if a.checkpoint:
        callbacks.append(Checkpoint(a.checkpoint, every=1, at_end=False))
    if a.scenario == "fault":
        callbacks.append(Fault(a.fault, a.fault_rank, 3))
    parallel, out = None, a.out
    if not a.single:
        from seisoku.distributed import DataParallel, get_comm

        comm = get_comm()
        if a.split:  # each half of the ranks trains on its own
            color = comm.Get_rank() % 2
            comm = comm.Split(color, comm.Get_rank())
            out = out.replace(".npz", f"-{color}.npz")
        parallel = DataParallel(
            net, comm, a.bucket_mb, reduction=a.reduction, timeout=a.timeout, optimizer=opt
        )
        if a.ignore_rows:
            parallel._rowed = []
    trainer = Trainer(net, nn.CrossEntropyLoss(0.1), opt, callbacks, False, parallel=parallel)
    weights = None
    if a.weights:
        weights = np.random.default_rng(5).uniform(0.2, 2.0, a.n)
    history = trainer.fit(
        x,
        y,
        validation_data=(xv, yv),
        epochs=a.epochs,
        batch_size=a.batch,
        augment=augmentation(a.dtype, not a.ignore_rows),
        sample_weight=weights,
        seed=4,
        max_steps=a.steps,
        resume=a.resume,
    )
    if trainer.is_main:
        state = {f"p_{k}": v for k, v in net.state_dict().items()}
        state["val_loss"] = np.array(history.column("val_loss"))
        state["loss"] = np.array(history.column("loss"))
        state["steps"] = np.array(trainer.steps)
        state["best_step"] = np.array(-1 if history.best_step is None else history.best_step)
        state["reduction"] = np.array("" if parallel is None else parallel.reduction)
        np.savez(out, **state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
