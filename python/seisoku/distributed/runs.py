"""Recipe runs of ``seisoku train --parallel async`` and ``--parallel pipeline``.

Both take a :class:`seisoku.recipes.Recipe` (the digits recipe of ``seisoku train``), train it
over MPI and return, on rank 0, the same ``(summary, history, model)`` as
:func:`seisoku.recipes.run` (None on the other ranks), so rank 0 prints the same table.

* :func:`run_async`: parameter server on rank 0, workers on the others (:func:`train_async`),
  the recipe's augmentation on the workers and its learning-rate schedule stepped per epoch on
  the server; no early stopping (the server sees no epoch boundary common to all workers), so the
  parameters at the end are kept.
* :func:`run_pipeline`: the recipe's Sequential split over the ranks (:class:`Pipeline`), the
  Trainer's batch order (``default_rng([seed, epoch]).permutation``), augmentation on stage 0,
  each stage's own optimizer and schedule; after every epoch rank 0 gathers the parameters and
  evaluates the validation set, with the recipe's early stopping (patience on the validation
  loss, best parameters restored).

Not available in these modes (ValueError): distillation, pruning, quantized evaluation,
retraining on all data and CUDA.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import numpy as np

from .. import nn, recipes
from ..random import manual_seed
from ..train import History
from . import _p2p
from .async_ps import train_async
from .pipeline import Pipeline


class _Params:
    """What build_optimizer needs of a model: parameters()."""

    def __init__(self, params: list[Any]) -> None:
        self._params = params

    def parameters(self) -> list[Any]:
        return self._params


def _check(recipe: Any, mode: str) -> None:
    unsupported = [
        ("distill_from", "--distill-from", recipe.distill_from),
        ("prune", "--prune", recipe.prune),
        ("quantize", "--quantize", recipe.quantize != "none"),
        ("retrain_on_all", "--retrain-on-all", recipe.retrain_on_all),
        ("device", "--device cuda", recipe.device != "cpu"),
    ]
    bad = [flag for _, flag, on in unsupported if on]
    if bad:
        raise ValueError(f"[{mode}] --parallel {mode} does not support {', '.join(bad)}")


def _scores(model: Any, loss: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    training = model.training
    model.eval()
    out = np.concatenate([model.forward(x[i : i + 1024]) for i in range(0, len(x), 1024)])
    if training:
        model.train()
    return {
        "loss": float(loss(out, y)),
        "accuracy": float(np.mean(np.argmax(out, axis=1) == y)),
    }


def _summary(
    recipe: Any, model: Any, loss: Any, sets: dict, history: History, seconds: float
) -> dict[str, Any]:
    s = {k: _scores(model, loss, *xy) for k, xy in sets.items()}
    return {
        "train_accuracy": s["train"]["accuracy"],
        "val_accuracy": s["val"]["accuracy"],
        "test_accuracy": s["test"]["accuracy"],
        "train_loss": s["train"]["loss"],
        "val_loss": s["val"]["loss"],
        "test_loss": s["test"]["loss"],
        "gap": s["train"]["accuracy"] - s["test"]["accuracy"],
        "best_epoch": None if history.best_epoch is None else history.best_epoch + 1,
        "best_step": history.best_step,
        "epochs_run": len(history.epochs),
        "retrained_steps": None,
        "stop_reason": history.stop_reason,
        "seconds": seconds,
        "recipe": recipe.to_dict(),
    }


def _epoch_schedule(recipe: Any, opt: Any) -> Any:
    sched = recipes._schedule(recipe, opt, recipe.epochs, "epoch", 1)
    return None if sched is None else sched.scheduler


def run_async(
    recipe: Any,
    *,
    staleness: int | None = None,
    comm: Any = None,
    timeout: float | None = None,
) -> tuple[dict[str, Any], History, Any] | None:
    """Train the recipe with the asynchronous parameter server (staleness bound, None: none)."""
    _check(recipe, "async")
    comm = _p2p.world(comm, "async")
    timeout = _p2p.check_timeout(timeout, "async")
    sets = recipes._split_digits(recipe)
    manual_seed(recipe.seed)
    model = recipes.build_model(recipe)
    loss = nn.CrossEntropyLoss(recipe.label_smoothing)
    start = time.perf_counter()
    result = train_async(
        model,
        loss,
        lambda ps: recipes.build_optimizer(recipe, _Params(ps)),
        *sets["train"],
        batch_size=recipe.batch_size,
        epochs=recipe.epochs,
        staleness=staleness,
        seed=recipe.seed,
        comm=comm,
        timeout=timeout,
        augment=recipes._augmentation(recipe),
        scheduler=lambda opt: _epoch_schedule(recipe, opt),
    )
    if result is None:
        return None
    history = History()
    for e in result.history:
        history.epochs.append({"epoch": e["epoch"], "loss": e["loss"], "accuracy": e["accuracy"]})
    summary = _summary(recipe, model, loss, sets, history, time.perf_counter() - start)
    summary["parallel"] = {
        "mode": "async",
        "workers": comm.Get_size() - 1,
        "staleness_bound": staleness,
        "max_staleness": result.max_staleness,
        "updates": result.updates,
    }
    return summary, history, model


def run_pipeline(
    recipe: Any,
    *,
    micro_batches: int = 4,
    schedule: str = "1f1b",
    split: Any = "balanced",
    comm: Any = None,
    timeout: float | None = None,
) -> tuple[dict[str, Any], History, Any] | None:
    """Train the recipe's model split into pipeline stages, one per rank."""
    _check(recipe, "pipeline")
    comm = _p2p.world(comm, "pipeline")
    timeout = _p2p.check_timeout(timeout, "pipeline")
    sets = recipes._split_digits(recipe)
    manual_seed(recipe.seed)
    model = recipes.build_model(recipe)
    loss = nn.CrossEntropyLoss(recipe.label_smoothing)
    schedules: list[Any] = []

    def make_optimizer(params: list[Any]) -> Any:
        opt = recipes.build_optimizer(recipe, _Params(params))
        schedules.append(_epoch_schedule(recipe, opt))
        return opt

    pipe = Pipeline(
        model,
        loss,
        make_optimizer,
        split=split,
        micro_batches=micro_batches,
        schedule=schedule,
        comm=comm,
        timeout=timeout,
    )
    x, y = sets["train"]
    hook = recipes._augmentation(recipe)
    rank, last = pipe.rank, pipe.stages - 1
    history, best, best_loss, waited, steps = History(), None, math.inf, 0, 0
    start = time.perf_counter()
    for epoch in range(recipe.epochs):
        t0 = time.perf_counter()
        order = np.random.default_rng([recipe.seed, epoch]).permutation(len(x))
        sums = np.zeros(3)
        for b in range(0, len(x), recipe.batch_size):
            idx = order[b : b + recipe.batch_size]
            xb = x[idx] if rank == 0 else None
            if hook is not None and rank == 0:
                xb = hook(xb, steps, y[idx])
            r = pipe.train_step(xb, y[idx])
            steps += 1
            if r is not None:
                sums += (r["loss"] * r["count"], r["correct"], r["count"])
        for s in schedules:
            if s is not None:
                s.step()
        sums = pipe.comm.bcast(sums, root=last)
        pipe.gather_state(root=0)
        stop = False
        if rank == 0:
            val = _scores(model, loss, *sets["val"])
            record = {
                "epoch": float(epoch),
                "step": float(steps),
                "loss": float(sums[0] / sums[2]),
                "accuracy": float(sums[1] / sums[2]),
                "val_loss": val["loss"],
                "val_accuracy": val["accuracy"],
                "time_s": time.perf_counter() - t0,
            }
            history.epochs.append(record)
            if recipe.patience:
                if val["loss"] < best_loss:
                    best, best_loss, waited = model.state_dict(), val["loss"], 0
                    history.best_epoch, history.best_step = epoch, steps
                else:
                    waited += 1
                    stop = waited >= recipe.patience
                    if stop:
                        history.stopped_early = True
                        history.stop_reason = (
                            f"val_loss did not improve for {recipe.patience} epochs"
                        )
        if pipe.comm.bcast(stop, root=0):
            break
    seconds = time.perf_counter() - start
    if rank != 0:
        return None
    if best is not None:
        model.load_state_dict(copy.deepcopy(best))
    summary = _summary(recipe, model, loss, sets, history, seconds)
    summary["parallel"] = {
        "mode": "pipeline",
        "stages": pipe.stages,
        "split": list(pipe.split or []),
        "micro_batches": micro_batches,
        "schedule": schedule,
    }
    return summary, history, model


def _as_mode(args: Any, run: Any, comm: Any, train: Any) -> int:
    """Run `seisoku train` (run(args)) with recipes.run replaced by `train(recipe)`: every rank
    trains, rank 0's summary and history are shared, so run(args) prints and writes them."""
    if getattr(args, "resume", None):
        raise ValueError(f"--parallel {args.parallel} cannot --resume (it writes no checkpoints)")
    original = recipes.run

    def parallel_run(recipe: Any, progress: bool = True, **_: Any) -> Any:
        got = train(recipe)
        shared = comm.bcast(None if got is None else got[:2], root=0)
        return shared[0], shared[1], (got[2] if got is not None else None)

    recipes.run = parallel_run
    try:
        return run(args)
    finally:
        recipes.run = original


def async_mode(args: Any, run: Any, comm: Any) -> int:
    """`seisoku train --parallel async [--staleness K]`: the recipe on the parameter server."""
    staleness = getattr(args, "staleness", None)
    return _as_mode(args, run, comm, lambda r: run_async(r, staleness=staleness, comm=comm))


def pipeline_mode(args: Any, run: Any, comm: Any) -> int:
    """`seisoku train --parallel pipeline [--micro-batches M] [--pipeline-schedule S]
    [--split balanced|I,J,...]`: the recipe's model split over the ranks."""
    split: Any = getattr(args, "split", None) or "balanced"
    if split != "balanced":
        try:
            split = [int(v) for v in split.split(",")]
        except ValueError:
            raise ValueError(
                f"--split must be 'balanced' or comma-separated layer indices, got {split!r}"
            ) from None
    options = {
        "micro_batches": getattr(args, "micro_batches", None) or 4,
        "schedule": getattr(args, "pipeline_schedule", None) or "1f1b",
        "split": split,
    }
    return _as_mode(args, run, comm, lambda r: run_pipeline(r, comm=comm, **options))
