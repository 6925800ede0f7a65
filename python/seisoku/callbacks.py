"""Callbacks of seisoku.train.Trainer: the hook base class, early stopping, checkpoints,
learning-rate schedules and history logs.

Callbacks run in the order of their `order` attribute (default 0), ties in the order given:
Checkpoint has order 100, so that a checkpoint holds every other callback's update of the
same epoch or step; a callback of your own that must run after checkpoints takes a larger
order. A callback that keeps state across epochs (EarlyStopping, LRSchedule, ...) returns it
from state_dict() so that a resumed run continues exactly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .train import Trainer

UNITS = ("epoch", "step")


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _unit(value: Any) -> str:
    if value not in UNITS:
        raise ValueError(f"unit must be 'epoch' or 'step', got {value!r}")
    return value


class Callback:
    """Hooks called by Trainer.fit. Set trainer.stop_training = True to stop after the
    current step (from on_batch_end) or epoch (from on_epoch_end).

    Hook order in one fit: on_train_begin, then per epoch on_epoch_begin, on_batch_end
    after every optimizer step, on_epoch_end; on_interrupt when Ctrl-C (SIGINT) stops
    training between two steps; on_train_end last (not after an interrupt). Among callbacks,
    smaller `order` runs first (default 0; ties keep the order given).
    """

    order: int = 0

    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first epoch (also when resuming, before the saved state is loaded)."""

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        """Before the first step of an epoch (epoch counts from 0)."""

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        """After each optimizer step; step counts steps from 1 over the whole run, logs holds
        the batch's 'loss' and 'size'."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        """After each epoch; logs is the epoch's record, already in trainer.history."""

    def on_interrupt(self, trainer: Trainer) -> None:
        """After Ctrl-C, at a step boundary, before fit raises KeyboardInterrupt."""

    def on_train_end(self, trainer: Trainer) -> None:
        """After the last epoch, early stop or divergence."""

    def state_dict(self) -> dict[str, Any]:
        """State to carry across a checkpoint (JSON-like values and NumPy arrays)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict() returned."""


class EarlyStopping(Callback):
    """Stop when the monitored value stops improving (the lecture's early stopping).

    Every `period` epochs (unit 'epoch') or optimizer steps (unit 'step') the monitored
    value is compared with the best so far; after `patience` evaluations without
    improvement training stops, and the parameters of the best evaluation are put back.
    best_step (optimizer steps done at the best evaluation) is the count to retrain with
    (seisoku.train.retrain_on_all).

    Args:
        monitor: a key of the epoch record, e.g. 'val_loss' (default), 'val_accuracy',
            'loss'. With unit 'step', 'val_*' keys come from evaluating the validation data.
        patience: evaluations without improvement before stopping (default 5).
        min_delta: smallest change that counts as an improvement (default 0).
        mode: 'min', 'max' or 'auto' (max for accuracy-like keys; default 'auto').
        baseline: a value to beat; until it is beaten no evaluation counts as the best, and
            training stops after `patience` evaluations that do not beat it (default None).
        restore_best: put back the parameters of the best evaluation at the end (default True).
        period: evaluate every `period` epochs or steps (default 1).
        unit: 'epoch' (default) or 'step'.
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
        unit: str = "epoch",
        stop_on_nonfinite: bool = True,
    ) -> None:
        _positive_int(patience, "patience")
        _positive_int(period, "period")
        if (
            isinstance(min_delta, bool)
            or not isinstance(min_delta, (int, float))
            or not 0 <= min_delta < math.inf
        ):
            raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        if mode not in ("min", "max", "auto"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
        if baseline is not None and not (
            isinstance(baseline, (int, float)) and not isinstance(baseline, bool)
        ):
            raise ValueError(f"baseline must be a number or None, got {baseline!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.mode, self.baseline, self.restore_best = mode, baseline, bool(restore_best)
        self.period, self.unit = period, _unit(unit)
        self.stop_on_nonfinite = bool(stop_on_nonfinite)
        self.reset()

    def reset(self) -> None:
        """Forget every evaluation."""
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_step: int | None = None
        self.best_state: dict[str, np.ndarray] | None = None
        self.waited = 0
        self.evaluations = 0
        self.stopped_epoch: int | None = None

    def _improved(self, value: float) -> bool:
        reference = self.best if self.best is not None else self.baseline
        if reference is None:
            return True
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def update(
        self,
        epoch: int,
        value: float,
        state: Callable[[], dict[str, np.ndarray]],
        step: int | None = None,
    ) -> bool:
        """Record one evaluation (state() gives the parameters to keep if it is the best);
        returns True when training should stop."""
        self.evaluations += 1
        if not math.isfinite(value):
            if self.stop_on_nonfinite:
                self.stopped_epoch = epoch
                return True
            self.waited += 1
        elif self._improved(value):
            self.best, self.best_epoch, self.best_step, self.waited = value, epoch, step, 0
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

    def _evaluate(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r}, which the records lack "
                f"(have {sorted(logs)}); give validation data or monitor 'loss'"
            )
        value = float(logs[self.monitor])
        stop = self.update(epoch, value, trainer.model.state_dict, getattr(trainer, "steps", None))
        trainer.history.best_epoch, trainer.history.best_step = self.best_epoch, self.best_step
        if stop:
            trainer.stop_training = True
            if not trainer.history.stop_reason:  # keep the trainer's own (divergence) reason
                trainer.history.stop_reason = (
                    f"{self.monitor} is {value}"
                    if not math.isfinite(value)
                    else f"no improvement of {self.monitor} for {self.patience} evaluations"
                )

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        if self.unit != "step" or step % self.period:
            return
        record = dict(logs)
        if self.monitor.startswith("val_"):
            if trainer.validation_data is None:
                raise ValueError(
                    f"EarlyStopping monitors {self.monitor!r} but fit got no validation data"
                )
            result = trainer.evaluate(*trainer.validation_data)
            record.update({f"val_{k}": v for k, v in result.items()})
        self._evaluate(trainer, trainer.epoch, record)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.unit != "epoch" or (epoch + 1) % self.period:
            return
        self._evaluate(trainer, epoch, logs)

    def on_train_end(self, trainer: Trainer) -> None:
        trainer.history.best_epoch = self.best_epoch
        trainer.history.best_step = self.best_step
        if self.restore_best and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        keys = ("best", "best_epoch", "best_step", "waited", "evaluations", "stopped_epoch")
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        out["best_state"] = self.best_state
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in ("best", "best_epoch", "best_step", "waited", "evaluations", "stopped_epoch"):
            setattr(self, k, state[k])
        self.best_state = state["best_state"]


class Checkpoint(Callback):
    """Save the whole training state (Trainer.save_checkpoint) atomically to `path`.

    Runs after the other callbacks (order 100), so its file holds their updates.

    It writes every `every` epochs or steps (unit), when Ctrl-C interrupts training, and
    at the end of training; Trainer.fit(resume=path) continues from it with the same result
    as a run that was never stopped.

    Args:
        path: the checkpoint file (.npz archive; its folder must exist).
        every: period of regular writes (default 1), or None for none.
        unit: 'epoch' (default) or 'step'.
        at_end: also write when training ends (default True).
    """

    order = 100

    def __init__(
        self,
        path: str | os.PathLike[str],
        every: int | None = 1,
        unit: str = "epoch",
        at_end: bool = True,
    ) -> None:
        self.path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise ValueError(f"path: folder {folder} of the checkpoint does not exist")
        self.every = None if every is None else _positive_int(every, "every")
        self.unit = _unit(unit)
        self.at_end = bool(at_end)
        self.writes = 0

    def _write(self, trainer: Trainer) -> None:
        trainer.save_checkpoint(self.path)
        self.writes += 1

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        if self.unit == "step" and self.every and step % self.every == 0:
            self._write(trainer)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.unit == "epoch" and self.every and (epoch + 1) % self.every == 0:
            self._write(trainer)

    def on_interrupt(self, trainer: Trainer) -> None:
        self._write(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        if self.at_end:
            self._write(trainer)


class LRSchedule(Callback):
    """Step a seisoku.optim.lr_scheduler schedule after every epoch (unit 'epoch', default)
    or every optimizer step (unit 'step'); its position is saved in checkpoints. The
    learning rate of each epoch appears in the epoch record as 'lr'."""

    def __init__(self, scheduler: Any, unit: str = "epoch") -> None:
        if not callable(getattr(scheduler, "step", None)) or not hasattr(scheduler, "state_dict"):
            raise ValueError(
                f"scheduler must be a seisoku.optim.lr_scheduler schedule, got "
                f"{type(scheduler).__name__}"
            )
        self.scheduler = scheduler
        self.unit = _unit(unit)

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        if self.unit == "step":
            self.scheduler.step()

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.unit == "epoch":
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state["scheduler"])


class _HistoryLogger(Callback):
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise ValueError(f"path: folder {folder} of the log does not exist")

    def _write(self, trainer: Trainer) -> None:
        raise NotImplementedError

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if trainer.is_main:  # data parallel: rank 0 writes
            self._write(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        if trainer.is_main:
            self._write(trainer)


class CSVLogger(_HistoryLogger):
    """Rewrite `path` atomically after every epoch with the history so far: a header of
    every key seen, one row per epoch (History.to_csv)."""

    def _write(self, trainer: Trainer) -> None:
        trainer.history.to_csv(self.path)


class JSONLogger(_HistoryLogger):
    """Rewrite `path` atomically after every epoch with the history so far, epochs and the
    early-stopping outcome (History.to_json)."""

    def _write(self, trainer: Trainer) -> None:
        trainer.history.to_json(self.path)


__all__ = ["CSVLogger", "Callback", "Checkpoint", "EarlyStopping", "JSONLogger", "LRSchedule"]
