"""Training loop with callbacks: Trainer, History, early stopping, checkpoints, and the
lecture's "retrain on all data for the number of steps found" (retrain_on_all).

Trainer.fit runs mini-batch training of a seisoku.nn model with a loss object and an
optimizer (anything with step(); seisoku.optim's optimizers, or a plain update function),
evaluates on validation data, and records per epoch the train / validation loss and
accuracy, the generalization gap (validation loss - training loss), the learning rate and
the time. Training is a pure function of its inputs and the seed: shuffling depends only
on (seed, epoch), augmentation is called with the global step, and masks come from Philox
generators whose offsets are part of a checkpoint, so a run stopped by Ctrl-C and resumed
from its checkpoint ends with the same parameters, bit for bit, as one never stopped.

Under MPI, Trainer(..., parallel=seisoku.distributed.DataParallel(model)) trains data
parallel (see seisoku.distributed); set_default_parallel(factory) makes every Trainer built
afterwards parallel, so code that builds Trainers runs unchanged under mpirun.
"""

from __future__ import annotations

import copy
import csv
import inspect
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._array import array_module, is_cuda_array
from ._state_file import atomic_write, load_state, save_state
from .callbacks import (
    Callback,
    Checkpoint,
    CSVLogger,
    EarlyStopping,
    JSONLogger,
    LRSchedule,
)
from .nn import CrossEntropyLoss, Loss, Module
from .random import Generator, default_generator

Array = Any

CHECKPOINT_KIND = "checkpoint"

# factory(model, optimizer) -> parallel object for Trainers built without `parallel`.
_default_parallel: list[Callable[[Module, Any], Any] | None] = [None]


def set_default_parallel(
    factory: Callable[[Module, Any], Any] | None,
) -> Callable[[Module, Any], Any] | None:
    """Every Trainer built afterwards without `parallel` gets parallel=factory(model,
    optimizer) (e.g. lambda m, o: seisoku.distributed.DataParallel(m, optimizer=o)); None
    turns that off. Returns the factory in place before."""
    if factory is not None and not callable(factory):
        raise ValueError(f"factory must be callable(model, optimizer) or None, got {factory!r}")
    previous = _default_parallel[0]
    _default_parallel[0] = factory
    return previous


def _json_float(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class History:
    """What one fit recorded.

    epochs: one dict per epoch with epoch, step (optimizer steps so far), loss, accuracy
    (classification), penalty, val_loss, val_accuracy, gap (val_loss - loss), lr and
    time_s (seconds). best_epoch / best_step: where early stopping found the best
    evaluation (None without early stopping); stop_reason says why training ended early.
    """

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_step: int | None = None
    stopped_early: bool = False
    stop_reason: str = ""

    def column(self, key: str) -> list[float]:
        """One key over the epochs (NaN where an epoch lacks it)."""
        return [e.get(key, math.nan) for e in self.epochs]

    def keys(self) -> list[str]:
        """Every key of the epoch records, in the order first seen."""
        seen: dict[str, None] = {}
        for e in self.epochs:
            seen.update(dict.fromkeys(e))
        return list(seen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": [dict(e) for e in self.epochs],
            "best_epoch": self.best_epoch,
            "best_step": self.best_step,
            "stopped_early": self.stopped_early,
            "stop_reason": self.stop_reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        return cls(
            epochs=[{k: (math.nan if v is None else v) for k, v in e.items()} for e in d["epochs"]],
            best_epoch=d["best_epoch"],
            best_step=d["best_step"],
            stopped_early=bool(d["stopped_early"]),
            stop_reason=str(d["stop_reason"]),
        )

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write the epoch records as CSV (header: every key seen), atomically."""
        with atomic_write(path, "w") as f:
            writer = csv.DictWriter(f, fieldnames=self.keys())
            writer.writeheader()
            writer.writerows(self.epochs)

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write to_dict() as strict JSON (non-finite numbers as null), atomically."""
        d = self.to_dict()
        d["epochs"] = [{k: _json_float(v) for k, v in e.items()} for e in d["epochs"]]
        with atomic_write(path, "w") as f:
            json.dump(d, f, indent=2, allow_nan=False)


class _Interrupt:
    """While active (main thread only), the first SIGINT sets trainer._interrupted so that
    fit stops at the next step boundary; a second one raises KeyboardInterrupt at once.
    The handler in place before (default_int_handler, SIG_IGN, a program's own) is put back
    on exit; one installed outside Python (getsignal gives None) could not be, so then SIGINT
    is left alone."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.installed = False
        self.previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.trainer._interrupted:
            raise KeyboardInterrupt
        self.trainer._interrupted = True

    def __enter__(self) -> _Interrupt:
        main = threading.current_thread() is threading.main_thread()
        if main and signal.getsignal(signal.SIGINT) is not None:
            try:
                self.previous = signal.signal(signal.SIGINT, self._handler)
                self.installed = True
            except ValueError:  # no signals in this interpreter
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self.previous)


def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _with_labels(
    augment: Callable[..., Array] | None, sharded: bool = False
) -> Callable[[Array, int, Array, int], Array] | None:
    """augment as a callable (x_batch, step, labels, first_row): labels are passed on when
    augment takes a third positional parameter or a `labels` keyword, first_row (the row of
    the global batch that x_batch's row 0 is) when it takes a `first_row` keyword. With
    sharded (data parallel) an augment without first_row is a ValueError: its draws would
    depend on the number of ranks."""
    if augment is None:
        return None
    try:
        params = dict(inspect.signature(augment).parameters)
    except (TypeError, ValueError):  # builtins without a signature: (x, step) only
        params = {}
    if "first_row" in params:
        if "labels" in params:
            return lambda xb, step, yb, row: augment(xb, step, labels=yb, first_row=row)
        return lambda xb, step, yb, row: augment(xb, step, yb, first_row=row)
    if sharded:
        raise ValueError(
            "augment must take a first_row keyword under data parallel training (the row of "
            "the global batch its batch starts at, to key its draws, as "
            "seisoku.augment.Compose.trainer_hook() does), got "
            f"{getattr(augment, '__name__', augment)!r}"
        )
    positional = [
        p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if "labels" in params:
        return lambda xb, step, yb, row: augment(xb, step, labels=yb)
    if len(positional) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in params.values()):
        return lambda xb, step, yb, row: augment(xb, step, yb)
    return lambda xb, step, yb, row: augment(xb, step)


class Trainer:
    """Mini-batch training of a model with a loss and an optimizer.

    Args:
        model: a seisoku.nn Module.
        loss: a seisoku.nn Loss object (e.g. CrossEntropyLoss(label_smoothing=0.1)). A loss
            with a bind_inputs(x) method (seisoku.distill.DistillationLoss) is given the
            inputs of the outputs it sees next: each training batch after augmentation, and
            the inputs of evaluate(); one whose `classification` is True gets accuracy
            recorded, as CrossEntropyLoss does.
        optimizer: an object with step() that updates model.parameters() from their .grad;
            with state_dict() / load_state_dict() its state goes into checkpoints.
        callbacks: Callback objects (EarlyStopping, Checkpoint, LRSchedule, CSVLogger, ...).
        progress: show a tqdm progress bar over the epochs when tqdm is installed
            (default True; under data parallel, on rank 0 only).
        parallel: a seisoku.distributed.DataParallel wrapping `model` for data parallel
            training over MPI (default None: this process alone, unless
            set_default_parallel gave a factory). Then batch_size is the global batch, every
            rank gets the same history, and only rank 0 writes checkpoints and logs.
    """

    def __init__(
        self,
        model: Module,
        loss: Loss,
        optimizer: Any,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
        parallel: Any = None,
    ) -> None:
        if not isinstance(model, Module):
            raise ValueError(f"model must be a seisoku.nn.Module, got {type(model).__name__}")
        if not isinstance(loss, Loss):
            raise ValueError(f"loss must be a seisoku.nn.Loss, got {type(loss).__name__}")
        if not callable(getattr(optimizer, "step", None)):
            raise ValueError("optimizer must have a step() method")
        callbacks = list(callbacks)
        for i, cb in enumerate(callbacks):
            if not isinstance(cb, Callback):
                raise ValueError(f"callbacks[{i}] must be a Callback, got {type(cb).__name__}")
        self.model, self.loss, self.optimizer = model, loss, optimizer
        if parallel is None and _default_parallel[0] is not None:
            parallel = _default_parallel[0](model, optimizer)
        if parallel is not None and getattr(parallel, "module", None) is not model:
            raise ValueError(
                "parallel must wrap this trainer's model (e.g. "
                f"seisoku.distributed.DataParallel(model)), got {parallel!r}"
            )
        self.parallel = parallel
        # By their order attribute (stable): checkpoints after the callbacks they save.
        self.callbacks = sorted(callbacks, key=lambda c: c.order)
        self.progress = progress
        self.stop_training = False
        self.history = History()
        self.validation_data: tuple[Array, Array] | None = None
        self.metadata: dict[str, Any] = {}  # saved in checkpoints as is (JSON-like values)
        self._reset_position()

    def _reset_position(self) -> None:
        self.epoch = 0  # the epoch being run (or next to run)
        self.steps = 0  # optimizer steps done
        self._batch = 0  # next batch of the current epoch
        self._partial = self._empty_partial()
        self._finished = False
        self._interrupted = False
        self._fit_key: dict[str, int] = {}

    @staticmethod
    def _empty_partial() -> dict[str, float]:
        return {"loss": 0.0, "correct": 0.0, "count": 0.0, "penalty": 0.0, "seconds": 0.0}

    @property
    def is_main(self) -> bool:
        """Whether this process shows progress and writes files (rank 0 under MPI)."""
        return self.parallel is None or bool(self.parallel.is_main)

    @property
    def _sharded(self) -> bool:
        return self.parallel is not None and self.parallel.size > 1

    def interrupt(self) -> None:
        """Ask fit to stop at the next step boundary as Ctrl-C does: callbacks get
        on_interrupt (a Checkpoint writes), then fit raises KeyboardInterrupt."""
        self._interrupted = True

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def _check_data(x: Array, y: Array, what: str) -> None:
        if not hasattr(x, "shape") or not hasattr(y, "shape"):
            raise ValueError(f"{what}: X and y must be NumPy or CuPy arrays")
        if x.ndim < 1 or y.ndim < 1:
            raise ValueError(f"{what}: X and y need a sample axis, got shapes {x.shape}, {y.shape}")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{what}: X has {x.shape[0]} samples but y has {y.shape[0]}")
        if x.shape[0] == 0:
            raise ValueError(f"{what}: no samples")
        xp = array_module(x)
        if x.dtype.kind == "f" and not bool(xp.isfinite(x).all()):
            raise ValueError(f"{what}: X contains NaN or infinite values")

    def _classification(self) -> bool:
        return (
            isinstance(self.loss, CrossEntropyLoss)
            or getattr(self.loss, "classification", False) is True
        )

    def _bind_inputs(self, x: Array) -> None:
        bind = getattr(self.loss, "bind_inputs", None)
        if callable(bind):
            bind(x)

    @staticmethod
    def _correct(out: Array, y: Array) -> float:
        return float((out.argmax(axis=1) == y).sum())

    def predict(self, x: Array, batch_size: int = 1024) -> Array:
        """Model outputs in evaluation mode, by batches of batch_size (default 1024); the
        model's train/eval mode is put back afterwards."""
        _check_int(batch_size, "batch_size")
        was_training = self.model.training
        self.model.eval()
        try:
            xp = array_module(x)
            outs = [
                self.model.forward(x[i : i + batch_size]).copy()
                for i in range(0, x.shape[0], batch_size)
            ]
        finally:
            self.model.train(was_training)
        return xp.concatenate(outs)

    def evaluate(self, x: Array, y: Array, batch_size: int = 1024) -> dict[str, float]:
        """Mean loss (and accuracy for classification) in evaluation mode. Under data
        parallel each rank evaluates a contiguous slice and the sums are reduced, so every
        rank gets the same numbers."""
        self._check_data(x, y, "evaluate")
        if self._sharded:
            from .distributed._trainer import evaluate_sharded

            return evaluate_sharded(self, x, y, batch_size)
        out = self.predict(x, batch_size)
        self._bind_inputs(x)
        result = {"loss": float(self.loss(out, y))}
        if self._classification():
            result["accuracy"] = self._correct(out, y) / x.shape[0]
        return result

    # -- state ---------------------------------------------------------------------------
    def _generators(self) -> list[Generator]:
        gens, seen = [default_generator()], {id(default_generator())}
        for _, m in self.model.named_modules():
            g = getattr(m, "generator", None)
            if isinstance(g, Generator) and id(g) not in seen:
                seen.add(id(g))
                gens.append(g)
        return gens

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed fit needs: parameters, optimizer state, random generator
        offsets, position (epoch, step, batch), history and callback states."""
        opt_state = (
            self.optimizer.state_dict()
            if callable(getattr(self.optimizer, "state_dict", None))
            else None
        )
        return {
            "model": self.model.state_dict(),
            "optimizer": opt_state,
            "generators": [g.state_dict() for g in self._generators()],
            "position": {
                "epoch": self.epoch,
                "steps": self.steps,
                "batch": self._batch,
                "partial": dict(self._partial),
                "finished": self._finished,
                "stop_training": self.stop_training,
            },
            "fit": dict(self._fit_key),
            "history": self.history.to_dict(),
            "callbacks": [
                {"type": type(cb).__name__, "state": cb.state_dict()} for cb in self.callbacks
            ],
            "metadata": dict(self.metadata),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state_dict() into this trainer's model, optimizer, callbacks and
        generators; a state that does not fit them is a ValueError."""
        try:
            self._load_state(state)
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(f"[load_checkpoint] the checkpoint is incomplete: missing {e}") from e

    def _load_state(self, state: dict[str, Any]) -> None:
        saved_cbs = state["callbacks"]
        if [c["type"] for c in saved_cbs] != [type(c).__name__ for c in self.callbacks]:
            raise ValueError(
                "[load_checkpoint] the checkpoint was written with callbacks "
                f"{[c['type'] for c in saved_cbs]}, this trainer has "
                f"{[type(c).__name__ for c in self.callbacks]}"
            )
        gens = self._generators()
        if len(state["generators"]) != len(gens):
            raise ValueError(
                f"[load_checkpoint] the checkpoint holds {len(state['generators'])} random "
                f"generators, the model uses {len(gens)}"
            )
        self.model.load_state_dict(state["model"])
        if state["optimizer"] is not None:
            if not callable(getattr(self.optimizer, "load_state_dict", None)):
                raise ValueError("[load_checkpoint] the optimizer has no load_state_dict()")
            self.optimizer.load_state_dict(state["optimizer"])
        for cb, saved in zip(self.callbacks, saved_cbs):
            cb.load_state_dict(saved["state"])
        for g, saved in zip(gens, state["generators"]):
            g.load_state_dict({"seed": int(saved["seed"]), "offset": int(saved["offset"])})
        pos = state["position"]
        self.epoch, self.steps, self._batch = (
            int(pos["epoch"]),
            int(pos["steps"]),
            int(pos["batch"]),
        )
        self._partial = {k: float(pos["partial"][k]) for k in self._empty_partial()}
        self._finished = bool(pos["finished"])
        self.stop_training = bool(pos["stop_training"])
        self._fit_key = {k: int(v) for k, v in state["fit"].items()}
        self.history = History.from_dict(state["history"])
        self.metadata = dict(state.get("metadata", {}))

    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Write state_dict() atomically as an .npz archive (no pickle). Under data parallel
        rank 0 writes (the state is the same on every rank, and independent of the number
        of ranks); the others do nothing."""
        if self.is_main:
            save_state(path, self.state_dict(), CHECKPOINT_KIND)

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Read a checkpoint written by save_checkpoint (or a Checkpoint callback); a missing,
        corrupt or mismatched file is a ValueError that names it. Under data parallel rank 0
        reads it and every rank gets its content (written with any number of ranks)."""
        try:
            if self._sharded:
                from .distributed._trainer import load_from_rank0

                self.load_state_dict(load_from_rank0(self, path, CHECKPOINT_KIND))
            else:
                self.load_state_dict(load_state(path, CHECKPOINT_KIND))
        except ValueError as e:
            msg = str(e)
            raise ValueError(msg if os.fspath(path) in msg else f"{os.fspath(path)}: {msg}") from e

    # -- training ----------------------------------------------------------------------
    def fit(
        self,
        x: Array,
        y: Array,
        *,
        validation_data: tuple[Array, Array] | None = None,
        validation_split: float = 0.0,
        epochs: int = 10,
        batch_size: int = 32,
        augment: Callable[[Array, int], Array] | None = None,
        sample_weight: Array | None = None,
        seed: int = 0,
        max_steps: int | None = None,
        resume: str | os.PathLike[str] | None = None,
    ) -> History:
        """Train for up to `epochs` epochs (or `max_steps` optimizer steps) and return the
        History.

        Args:
            x, y: training inputs (N, ...) and targets (N, ...), NumPy or CuPy.
            validation_data: (X_val, y_val) evaluated after every epoch (default None).
            validation_split: without validation_data, hold out this fraction of (x, y),
                its tail, for validation (default 0: none).
            epochs: epochs to run, counting from 0 also when resuming (default 10).
            batch_size: samples per step (default 32; the last batch may be smaller).
            augment: augment(x_batch, step) returns a transformed batch (training only);
                step is the global step, so a seeded augmentation resumes exactly. A
                callable with a third parameter (or one named `labels`) also gets the
                batch's labels, for label-aware transforms (e.g.
                seisoku.augment.Compose.trainer_hook() with skip_labels).
            sample_weight: per-sample loss weights (N,), >= 0 (default None: all equal).
            seed: shuffling seed; the order of epoch e depends only on (seed, e).
            max_steps: stop after this many optimizer steps in all (default None).
            resume: a checkpoint file to continue from (written by a Checkpoint callback
                or save_checkpoint in a fit with the same data size, batch_size and seed).

        A non-finite training loss stops training before the step that would apply it,
        with history.stop_reason saying so. Ctrl-C (SIGINT) stops at the next step boundary:
        callbacks get on_interrupt (a Checkpoint writes), then KeyboardInterrupt is raised.
        """
        epochs = _check_int(epochs, "epochs")
        batch_size = _check_int(batch_size, "batch_size")
        if max_steps is not None:
            max_steps = _check_int(max_steps, "max_steps")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if augment is not None and not callable(augment):
            raise ValueError(f"augment must be a callable(x_batch, step), got {augment!r}")
        augment = _with_labels(augment, self._sharded)
        self._check_data(x, y, "fit")
        if sample_weight is not None:
            sample_weight = self._check_weights(sample_weight, x.shape[0])
        if validation_data is None and validation_split:
            if (
                isinstance(validation_split, bool)
                or not isinstance(validation_split, (int, float))
                or not 0.0 < validation_split < 1.0
            ):
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split!r}")
            cut = x.shape[0] - max(1, round(x.shape[0] * validation_split))
            if cut < 1:
                raise ValueError(
                    f"validation_split={validation_split} leaves no training samples of "
                    f"{x.shape[0]}"
                )
            x, validation_data, y = x[:cut], (x[cut:], y[cut:]), y[:cut]
            if sample_weight is not None:
                sample_weight = sample_weight[:cut]
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (X_val, y_val)")
            self._check_data(*validation_data, "validation_data")
        self.validation_data = validation_data
        fit_key = {"samples": int(x.shape[0]), "batch_size": batch_size, "seed": int(seed)}
        if self._sharded:  # the same data on every rank, a row per rank in every batch
            from .distributed._trainer import check_fit

            check_fit(self.parallel, x, y, batch_size)

        self.stop_training = False
        self._interrupted = False
        for cb in self.callbacks:
            cb.on_train_begin(self)
        if resume is not None:
            self.load_checkpoint(resume)
            if self.history.stop_reason.startswith("interrupted"):
                self.history.stop_reason = ""
            if self._fit_key != fit_key:
                raise ValueError(
                    f"resume: the checkpoint {os.fspath(resume)} was written by a fit with "
                    f"{self._fit_key}, this fit has {fit_key}"
                )
        else:
            self._reset_position()
            self.history = History()
        self._fit_key = fit_key
        if self._finished:
            for cb in self.callbacks:
                cb.on_train_end(self)
            return self.history

        bar = _Progress(self.progress and self.is_main, epochs, min(self.epoch, epochs))
        try:
            with _Interrupt(self):
                while self.epoch < epochs and not self.stop_training:
                    self._run_epoch(
                        x, y, validation_data, batch_size, augment, sample_weight, seed, max_steps
                    )
                    bar.update(self.history.epochs[-1])
                    if max_steps is not None and self.steps >= max_steps:
                        if not self.stop_training:
                            self.history.stop_reason = f"reached max_steps={max_steps}"
                        break
        finally:
            bar.close()
        if self.stop_training:
            self.history.stopped_early = True
        self._finished = True
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    @staticmethod
    def _check_weights(w: Array, n: int) -> Array:
        if not hasattr(w, "shape") or tuple(w.shape) != (n,):
            shape = getattr(w, "shape", type(w).__name__)
            raise ValueError(f"sample_weight must be an array of shape ({n},), got {shape}")
        xp = array_module(w)
        if not bool(xp.isfinite(w).all()) or bool((w < 0).any()):
            raise ValueError("sample_weight must be finite and >= 0")
        return w

    def _run_epoch(
        self,
        x: Array,
        y: Array,
        validation_data: tuple[Array, Array] | None,
        batch_size: int,
        augment: Callable[[Array, int], Array] | None,
        sample_weight: Array | None,
        seed: int,
        max_steps: int | None,
    ) -> None:
        epoch, n = self.epoch, x.shape[0]
        if self._batch == 0:
            for cb in self.callbacks:
                cb.on_epoch_begin(self, epoch)
        start = time.perf_counter()
        order = np.random.default_rng([seed, epoch]).permutation(n)
        if is_cuda_array(x):
            order = array_module(x).asarray(order)
        part = self._partial
        self.model.train()
        par = self.parallel if self._sharded else None
        for b in range(self._batch, -(-n // batch_size)):
            idx = order[b * batch_size : (b + 1) * batch_size]
            start, local = 0, idx
            if par is not None:
                from .distributed._trainer import shard_batch

                start, local = shard_batch(par, idx, sample_weight)
            xb, yb = x[local], y[local]
            if augment is not None:
                xb = augment(xb, self.steps, yb, start)
            self._bind_inputs(xb)
            wb = sample_weight[local] if sample_weight is not None else None
            self.model.zero_grad()
            out = self.model.forward(xb)
            batch_loss = float(self.loss(out, yb, wb))
            if par is not None:  # backward, reduced gradients, the global loss and correct
                from .distributed._trainer import backward_step

                batch_loss, correct = backward_step(self, out, yb, batch_loss)
            if not math.isfinite(batch_loss):
                self._diverge(f"training loss became {batch_loss} at step {self.steps + 1}")
                break
            if par is None:
                self.model.backward(self.loss.backward(), need_input_grad=False)
            part["penalty"] = float(self.model.apply_penalties())
            try:
                self.optimizer.step()
            except ValueError as e:
                if "non-finite" not in str(e):
                    raise
                self._diverge(f"non-finite gradient at step {self.steps + 1}: {e}")
                break
            self.steps += 1
            self._batch = b + 1
            size = len(idx)
            part["loss"] += batch_loss * size
            part["count"] += size
            if self._classification():
                part["correct"] += correct if par is not None else self._correct(out, yb)
            for cb in self.callbacks:
                cb.on_batch_end(self, self.steps, {"loss": batch_loss, "size": float(size)})
            if par is not None:  # a stop or Ctrl-C on any rank stops every rank here
                flags = par.allreduce_sum([float(self.stop_training), float(self._interrupted)])
                self.stop_training, self._interrupted = bool(flags[0]), bool(flags[1])
            if self._interrupted:
                part["seconds"] += time.perf_counter() - start
                self.history.stop_reason = f"interrupted at step {self.steps}"
                for cb in self.callbacks:
                    cb.on_interrupt(self)
                raise KeyboardInterrupt
            if self.stop_training or (max_steps is not None and self.steps >= max_steps):
                break
        self._end_epoch(epoch, validation_data, start)

    def _diverge(self, reason: str) -> None:
        self.stop_training = True
        self.history.stop_reason = reason
        self._partial["loss"] = math.nan
        self._partial["count"] = max(self._partial["count"], 1.0)

    def _end_epoch(
        self, epoch: int, validation_data: tuple[Array, Array] | None, start: float
    ) -> None:
        part = self._partial
        count = max(part["count"], 1.0)
        logs: dict[str, float] = {
            "epoch": float(epoch),
            "step": float(self.steps),
            "loss": part["loss"] / count,
        }
        if self._classification():
            logs["accuracy"] = part["correct"] / count
        penalty = part["penalty"]
        if callable(getattr(self.optimizer, "penalty", None)):
            penalty += float(self.optimizer.penalty())
        logs["penalty"] = penalty
        finite = math.isfinite(logs["loss"])
        if validation_data is not None and finite:
            val = self.evaluate(*validation_data)
            logs.update({f"val_{k}": v for k, v in val.items()})
            logs["gap"] = logs["val_loss"] - logs["loss"]
        elif validation_data is not None:
            logs["val_loss"] = logs["loss"]  # non-finite: nothing worth evaluating
        groups = getattr(self.optimizer, "param_groups", None)
        if groups:
            logs["lr"] = float(groups[0]["lr"])
        logs["time_s"] = part["seconds"] + time.perf_counter() - start
        self.history.epochs.append(logs)
        self.epoch, self._batch, self._partial = epoch + 1, 0, self._empty_partial()
        for cb in self.callbacks:
            cb.on_epoch_end(self, epoch, logs)


class _Progress:
    """A tqdm bar over epochs when available and wanted; otherwise silent."""

    def __init__(self, enabled: bool, epochs: int, initial: int) -> None:
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=epochs, initial=initial, unit="epoch", leave=False)

    def update(self, logs: dict[str, float]) -> None:
        if self.bar is None:
            return
        shown = {
            k: f"{v:.4f}" for k, v in logs.items() if k in ("loss", "val_loss", "val_accuracy")
        }
        self.bar.set_postfix(shown)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def retrain_on_all(
    build: Callable[[], Trainer],
    x: Array,
    y: Array,
    validation_data: tuple[Array, Array],
    *,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 32,
    augment: Callable[[Array, int], Array] | None = None,
    seed: int = 0,
) -> Trainer:
    """The lecture's second early-stopping procedure: retrain on all the data.

    Early stopping on (x, y) with validation_data found the best number of optimizer steps
    (history.best_step); this trains a fresh model, from build() (a new Trainer with a
    newly initialised model and optimizer and no validation-based callbacks), on the
    training and validation data together for exactly `steps` optimizer steps, or for
    `epochs` epochs (the procedure's other variant). Give one of the two. Returns the
    trained Trainer.
    """
    if (steps is None) == (epochs is None):
        raise ValueError(
            f"give exactly one of steps and epochs, got steps={steps}, epochs={epochs}"
        )
    if steps is not None:
        steps = _check_int(steps, "steps")
    if epochs is not None:
        epochs = _check_int(epochs, "epochs")
    batch_size = _check_int(batch_size, "batch_size")
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError("validation_data must be a pair (X_val, y_val)")
    xv, yv = validation_data
    Trainer._check_data(x, y, "retrain_on_all")
    Trainer._check_data(xv, yv, "retrain_on_all validation_data")
    xp = array_module(x)
    x_all, y_all = xp.concatenate([x, xv]), xp.concatenate([y, yv])
    trainer = build()
    if not isinstance(trainer, Trainer):
        raise ValueError(f"build() must return a Trainer, got {type(trainer).__name__}")
    if steps is not None:
        per_epoch = -(-x_all.shape[0] // batch_size)
        trainer.fit(
            x_all,
            y_all,
            epochs=-(-steps // per_epoch),
            batch_size=batch_size,
            augment=augment,
            seed=seed,
            max_steps=steps,
        )
    else:
        trainer.fit(x_all, y_all, epochs=epochs, batch_size=batch_size, augment=augment, seed=seed)
    return trainer


def clone_model(model: Module) -> Module:
    """An independent copy of a model (parameters copied)."""
    return copy.deepcopy(model)


__all__ = [
    "CSVLogger",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "History",
    "JSONLogger",
    "LRSchedule",
    "Trainer",
    "clone_model",
    "retrain_on_all",
    "set_default_parallel",
]
