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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["train", "fault", "mismatch"])
    ap.add_argument("out")
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--n", type=int, default=290)
    ap.add_argument("--batch", type=int, default=30)
    ap.add_argument("--single", action="store_true", help="no MPI: the plain Trainer")
    ap.add_argument("--reduction", default="allreduce")
    ap.add_argument("--bucket-mb", type=float, default=0.002)
    ap.add_argument("--weights", action="store_true")
    ap.add_argument("--early", action="store_true")
    ap.add_argument("--checkpoint")
    ap.add_argument("--resume")
    ap.add_argument("--fault", default="raise")
    ap.add_argument("--fault-rank", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--ignore-rows", action="store_true", help="shards draw as rows 0..")
    a = ap.parse_args()
    sei.set_num_threads(1)

    x, y, xv, yv = data(a.dtype, a.n)
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
    parallel = None
    if not a.single:
        from seisoku.distributed import DataParallel

        parallel = DataParallel(
            net, bucket_mb=a.bucket_mb, reduction=a.reduction, timeout=a.timeout, optimizer=opt
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
        np.savez(a.out, **state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
