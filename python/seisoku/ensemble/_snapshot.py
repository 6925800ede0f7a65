"""Snapshot ensembles: members taken at the ends of the cycles of a cyclic cosine schedule."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..callbacks import LRSchedule
from ..nn import Loss, Module
from ..optim.lr_scheduler import CosineAnnealingLR
from ..train import Trainer, clone_model
from ._common import Array, _check_int, _check_labels, _check_voting, _MemberProgress
from ._members import _Base
from ._voting import Ensemble


class SnapshotEnsemble(_Base):
    """Snapshot ensembles (Huang et al. 2017, "Snapshot Ensembles: Train 1, get M for free"):
    one training run of `model` under a cyclic cosine learning rate, with a copy of the model
    taken at the end of every cycle as a member.

    Cycle c runs `epochs_per_cycle` epochs of Trainer.fit (shuffling seed drawn from
    numpy.random.default_rng([seed, c])) while a CosineAnnealingLR, stepped after every
    optimizer step, takes each group's learning rate from its base value down towards
    `eta_min`: lr(t) = eta_min + (base - eta_min) (1 + cos(pi t / T)) / 2 for the cycle's step t
    of T. The optimizer's own state (e.g. momentum) carries over between cycles.

    Args:
        model, loss, optimizer: the one network to train and how (the optimizer needs
            param_groups, as seisoku.optim's optimizers have).
        n_cycles: cycles, hence members (default 5).
        epochs_per_cycle: epochs per cycle (default 10).
        batch_size: samples per step (default 32).
        eta_min: the learning rate at the end of each cycle (default 0).
        seed: seed of the shuffling seeds (default 0).
        voting: 'soft' (default) or 'hard', see Ensemble.
        progress: one tqdm bar over the cycles when tqdm is installed (default True).
        fit_kwargs: more keyword arguments for every Trainer.fit.

    After fit: ensemble_, members_ (independent copies, in evaluation mode), histories_.
    """

    def __init__(
        self,
        model: Module,
        loss: Loss,
        optimizer: Any,
        n_cycles: int = 5,
        *,
        epochs_per_cycle: int = 10,
        batch_size: int = 32,
        eta_min: float = 0.0,
        seed: int = 0,
        voting: str = "soft",
        progress: bool = True,
        fit_kwargs: dict[str, Any] | None = None,
    ) -> None:
        op = "SnapshotEnsemble"
        if not isinstance(model, Module):
            raise ValueError(f"[{op}] argument 'model' must be a seisoku.nn.Module, got {model!r}")
        if not hasattr(optimizer, "param_groups"):
            raise ValueError(
                f"[{op}] argument 'optimizer' must have param_groups, got "
                f"{type(optimizer).__name__}"
            )
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.n_cycles = _check_int(n_cycles, "n_cycles", op)
        self.epochs_per_cycle = _check_int(epochs_per_cycle, "epochs_per_cycle", op)
        self.batch_size = _check_int(batch_size, "batch_size", op)
        self.seed = _check_int(seed, "seed", op, minimum=0)
        if not (isinstance(eta_min, (int, float)) and math.isfinite(eta_min) and eta_min >= 0):
            raise ValueError(f"[{op}] argument 'eta_min' must be finite and >= 0, got {eta_min!r}")
        self.eta_min = float(eta_min)
        self.voting = _check_voting(voting, op)
        self.progress = bool(progress)
        self.fit_kwargs = dict(fit_kwargs or {})
        self.ensemble_: Ensemble | None = None  # type: ignore[assignment]

    def fit(self, x: Array, y: Array) -> SnapshotEnsemble:
        """Run the cycles on (x, y) and build ensemble_ from the snapshots; returns self."""
        _check_labels(x, y, "SnapshotEnsemble.fit")
        steps = self.epochs_per_cycle * -(-x.shape[0] // self.batch_size)
        self.members_, self.histories_ = [], []
        bar = _MemberProgress(self.progress, self.n_cycles, "snapshots")
        try:
            for c in range(self.n_cycles):
                schedule = CosineAnnealingLR(self.optimizer, T_max=steps, eta_min=self.eta_min)
                trainer = Trainer(
                    self.model, self.loss, self.optimizer, [LRSchedule(schedule, "step")], False
                )
                seed = int(np.random.default_rng([self.seed, c]).integers(0, 2**31 - 1))
                self.histories_.append(
                    trainer.fit(
                        x,
                        y,
                        epochs=self.epochs_per_cycle,
                        batch_size=self.batch_size,
                        seed=seed,
                        **self.fit_kwargs,
                    )
                )
                snapshot = clone_model(self.model)
                snapshot.eval()
                self.members_.append(snapshot)
                bar.update()
        finally:
            bar.close()
        self.ensemble_ = Ensemble(self.members_, voting=self.voting)
        return self
