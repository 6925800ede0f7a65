"""Training loop with callbacks: Trainer, History, EarlyStopping.

Trainer.fit runs mini-batch training of a seisoku.nn model with a loss object and an
optimizer (anything with step(); seisoku.optim's optimizers, or a plain update function),
evaluates on validation data, and records per-epoch train / validation loss and accuracy,
the generalization gap (validation loss - training loss) and the time.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._array import array_module, is_cuda_array
from .nn.loss import CrossEntropyLoss, Loss
from .nn.module import Module

Array = Any


@dataclass
class History:
    """Per-epoch records (dicts with epoch, loss, accuracy, val_loss, val_accuracy, gap,
    time_s), plus the epoch whose parameters were kept by early stopping."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    stop_reason: str = ""

    def column(self, key: str) -> list[float]:
        return [e.get(key, math.nan) for e in self.epochs]


class Callback:
    """Hooks called by Trainer.fit; set trainer.stop_training = True to stop."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first epoch."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        """After each epoch (logs: the epoch's record)."""

    def on_train_end(self, trainer: Trainer) -> None:
        """After the last epoch."""


class EarlyStopping(Callback):
    """Stop when the monitored value stops improving (the lecture's early stopping).

    Args:
        monitor: a key of the epoch record (default 'val_loss').
        patience: evaluations without improvement before stopping (default 5).
        min_delta: smallest change that counts as an improvement (default 0).
        mode: 'min', 'max' or 'auto' (max for accuracy-like keys; default 'auto').
        baseline: stop if the value has not beaten this after `patience` evaluations.
        restore_best: put back the parameters of the best evaluation at the end (default True).
        period: evaluate every `period` epochs (default 1).
        stop_on_nonfinite: stop as soon as the monitored value is NaN or infinite (default True).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best: bool = True,
        period: int = 1,
        stop_on_nonfinite: bool = True,
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an int >= 1, got {patience!r}")
        if isinstance(period, bool) or not isinstance(period, int) or period < 1:
            raise ValueError(f"period must be an int >= 1, got {period!r}")
        if not (isinstance(min_delta, (int, float)) and min_delta >= 0):
            raise ValueError(f"min_delta must be a number >= 0, got {min_delta!r}")
        if mode not in ("min", "max", "auto"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.mode, self.baseline, self.restore_best = mode, baseline, restore_best
        self.period, self.stop_on_nonfinite = period, stop_on_nonfinite
        self.reset()

    def reset(self) -> None:
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, np.ndarray] | None = None
        self.waited = 0
        self.stopped_epoch: int | None = None

    def _improved(self, value: float) -> bool:
        reference = self.best if self.best is not None else self.baseline
        if reference is None:
            return True
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def update(self, epoch: int, value: float, state: Callable[[], dict[str, np.ndarray]]) -> bool:
        """Record one evaluation; returns True when training should stop."""
        if not math.isfinite(value):
            if self.stop_on_nonfinite:
                self.stopped_epoch = epoch
                return True
            self.waited += 1
        elif self._improved(value):
            self.best, self.best_epoch, self.waited = value, epoch, 0
            if self.restore_best:
                self.best_state = state()
        else:
            self.waited += 1
        if self.waited >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_begin(self, trainer: Trainer) -> None:
        self.reset()
        if self.restore_best:  # what to go back to if no evaluation is ever finite
            self.best_state = trainer.model.state_dict()

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if (epoch + 1) % self.period:
            return
        if self.monitor not in logs:
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r}, which the epoch records lack "
                f"(have {sorted(logs)}); give validation data or monitor 'loss'"
            )
        if self.update(epoch, float(logs[self.monitor]), trainer.model.state_dict):
            trainer.stop_training = True
            value = logs[self.monitor]
            trainer.history.stop_reason = (
                f"{self.monitor} is {value}"
                if not math.isfinite(value)
                else f"no improvement of {self.monitor} for {self.patience} evaluations"
            )

    def on_train_end(self, trainer: Trainer) -> None:
        trainer.history.best_epoch = self.best_epoch
        if self.restore_best and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)


class Trainer:
    """Mini-batch training of a model with a loss and an optimizer.

    Args:
        model: a seisoku.nn Module.
        loss: a seisoku.nn Loss object (e.g. CrossEntropyLoss(label_smoothing=0.1)).
        optimizer: an object with step() that updates model.parameters() from their .grad.
        callbacks: Callback objects (EarlyStopping, ...).
        progress: show a tqdm progress bar per epoch when tqdm is installed (default True).
    """

    def __init__(
        self,
        model: Module,
        loss: Loss,
        optimizer: Any,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
    ) -> None:
        if not isinstance(model, Module):
            raise ValueError(f"model must be a seisoku.nn.Module, got {type(model).__name__}")
        if not isinstance(loss, Loss):
            raise ValueError(f"loss must be a seisoku.nn.Loss, got {type(loss).__name__}")
        if not callable(getattr(optimizer, "step", None)):
            raise ValueError("optimizer must have a step() method")
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.callbacks = list(callbacks)
        self.progress = progress
        self.stop_training = False
        self.history = History()
        self.steps = 0

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def _check_data(x: Array, y: Array, what: str) -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{what}: X has {x.shape[0]} samples but y has {y.shape[0]}")
        if x.shape[0] == 0:
            raise ValueError(f"{what}: no samples")
        xp = array_module(x)
        if x.dtype.kind == "f" and not bool(xp.isfinite(x).all()):
            raise ValueError(f"{what}: X contains NaN or infinite values")

    def _classification(self) -> bool:
        return isinstance(self.loss, CrossEntropyLoss)

    def _accuracy(self, out: Array, y: Array) -> float:
        return float((out.argmax(axis=1) == y).mean())

    def predict(self, x: Array, batch_size: int = 1024) -> Array:
        """Model outputs in evaluation mode, by batches."""
        self.model.eval()
        xp = array_module(x)
        outs = [self.model.forward(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        return xp.concatenate([o.copy() for o in outs])

    def evaluate(self, x: Array, y: Array, batch_size: int = 1024) -> dict[str, float]:
        """Mean loss (and accuracy for classification) in evaluation mode."""
        self._check_data(x, y, "evaluate")
        out = self.predict(x, batch_size)
        result = {"loss": float(self.loss(out, y))}
        if self._classification():
            result["accuracy"] = self._accuracy(out, y)
        return result

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
        initial_epoch: int = 0,
    ) -> History:
        """Train for up to `epochs` epochs and return the History.

        augment(x_batch, step) may return a transformed copy of a batch (training only).
        validation_split holds out that fraction of (x, y) (its tail) when no
        validation_data is given. Shuffling depends only on (seed, epoch).
        """
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self._check_data(x, y, "fit")
        if validation_data is None and validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split!r}")
            cut = x.shape[0] - max(1, round(x.shape[0] * validation_split))
            x, validation_data, y = x[:cut], (x[cut:], y[cut:]), y[:cut]
        if validation_data is not None:
            self._check_data(*validation_data, "validation_data")
        xp = array_module(x)
        n = x.shape[0]
        self.stop_training = False
        if initial_epoch == 0:
            self.history = History()
        for cb in self.callbacks:
            cb.on_train_begin(self)
        bar = _Progress(self.progress, epochs, initial_epoch)
        for epoch in range(initial_epoch, epochs):
            start = time.perf_counter()
            order = np.random.default_rng([seed, epoch]).permutation(n)
            if is_cuda_array(x):
                order = xp.asarray(order)
            self.model.train()
            total, correct, penalty = 0.0, 0.0, 0.0
            for i in range(0, n, batch_size):
                idx = order[i : i + batch_size]
                xb, yb = x[idx], y[idx]
                if augment is not None:
                    xb = augment(xb, self.steps)
                wb = sample_weight[idx] if sample_weight is not None else None
                self.model.zero_grad()
                out = self.model.forward(xb)
                batch_loss = float(self.loss(out, yb, wb))
                self.model.backward(self.loss.backward(), need_input_grad=False)
                penalty = self.model.apply_penalties()
                self.optimizer.step()
                self.steps += 1
                total += batch_loss * len(idx)
                if self._classification():
                    correct += self._accuracy(out, yb) * len(idx)
                if not math.isfinite(batch_loss):
                    break
            logs = {"epoch": float(epoch), "loss": total / n, "penalty": float(penalty)}
            if self._classification():
                logs["accuracy"] = correct / n
            if validation_data is not None and math.isfinite(logs["loss"]):
                val = self.evaluate(*validation_data)
                logs.update({f"val_{k}": v for k, v in val.items()})
                logs["gap"] = logs["val_loss"] - logs["loss"]
            elif validation_data is not None:
                logs["val_loss"] = logs["loss"]  # non-finite: nothing worth evaluating
            logs["time_s"] = time.perf_counter() - start
            self.history.epochs.append(logs)
            if not math.isfinite(logs["loss"]):
                self.stop_training = True
                self.history.stop_reason = f"training loss became {logs['loss']} in epoch {epoch}"
            for cb in self.callbacks:
                cb.on_epoch_end(self, epoch, logs)
            bar.update(logs)
            if self.stop_training:
                self.history.stopped_early = True
                break
        bar.close()
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history


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


def clone_model(model: Module) -> Module:
    """An independent copy of a model (parameters copied)."""
    return copy.deepcopy(model)
