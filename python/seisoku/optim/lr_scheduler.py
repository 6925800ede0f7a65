"""Learning-rate schedules as small objects over an optimizer's parameter groups.

Each schedule is a closed form of its step count (``lr_at``), so that a schedule restored from
``state_dict()`` continues exactly. Call ``step()`` once per epoch (or per iteration, as you
define the unit); the constructor sets the learning rates of step 0. The base learning rate of a
group is its ``initial_lr`` key, set from ``lr`` the first time a schedule sees the group.
"""

from __future__ import annotations

import math
from typing import Any


class LRScheduler:
    """Base class: keeps ``last_epoch`` and writes ``lr_at(last_epoch)`` into the groups."""

    def __init__(self, optimizer: Any, last_epoch: int = -1) -> None:
        if not hasattr(optimizer, "param_groups"):
            raise ValueError(
                f"{type(self).__name__} needs an optimizer, got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.base_lrs = [float(g["initial_lr"]) for g in optimizer.param_groups]
        self.last_epoch = int(last_epoch)
        self._last_lr: list[float] = []
        self.step()

    def lr_at(self, epoch: int) -> list[float]:
        """Learning rate of every group at step `epoch` (>= 0)."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and set the groups' learning rates."""
        self.last_epoch += 1
        lrs = self.lr_at(self.last_epoch)
        for g, lr in zip(self.optimizer.param_groups, lrs):
            g["lr"] = lr
        self._last_lr = list(lrs)

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last step()."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (nested schedules as their own state_dict)."""
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            if k == "optimizer":
                continue
            out[k] = v.state_dict() if isinstance(v, LRScheduler) else v
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state_dict() and set the groups' learning rates to match it."""
        for k, v in state.items():
            current = self.__dict__.get(k)
            if isinstance(current, LRScheduler):
                current.load_state_dict(v)
            else:
                self.__dict__[k] = v
        if self.last_epoch >= 0:
            lrs = self.lr_at(self.last_epoch)
            for g, lr in zip(self.optimizer.param_groups, lrs):
                g["lr"] = lr
            self._last_lr = list(lrs)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size) (as torch's StepLR; gamma default 0.1)."""

    def __init__(
        self, optimizer: Any, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        self.step_size = _positive_int(step_size, "step_size")
        if not (math.isfinite(gamma) and gamma > 0):
            raise ValueError(f"gamma must be finite and > 0, got {gamma!r}")
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch: int) -> list[float]:
        return [b * self.gamma ** (epoch // self.step_size) for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2 (torch's closed
    form; past T_max the cosine goes on, as in torch). eta_min default 0."""

    def __init__(
        self,
        optimizer: Any,
        T_max: int,  # noqa: N803 (torch's name)
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.T_max = _positive_int(T_max, "T_max")
        if not (math.isfinite(eta_min) and eta_min >= 0):
            raise ValueError(f"eta_min must be finite and >= 0, got {eta_min!r}")
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch: int) -> list[float]:
        c = (1.0 + math.cos(math.pi * epoch / self.T_max)) / 2.0
        return [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs]


class LinearWarmup(LRScheduler):
    """Linear warm-up from start_factor * base_lr to base_lr over warmup_steps steps, then
    `after` (a schedule on the same optimizer, run from its own step 0) or the base rate.

    Without `after` this is torch's LinearLR(start_factor, end_factor=1, total_iters=warmup_steps);
    with it, SequentialLR([LinearLR, after], milestones=[warmup_steps]). start_factor default 0.1.
    Call only this object's step(), not after's.
    """

    def __init__(
        self,
        optimizer: Any,
        warmup_steps: int,
        start_factor: float = 0.1,
        after: LRScheduler | None = None,
        last_epoch: int = -1,
    ) -> None:
        self.warmup_steps = _positive_int(warmup_steps, "warmup_steps")
        if not (math.isfinite(start_factor) and 0 <= start_factor <= 1):
            raise ValueError(f"start_factor must be in [0, 1], got {start_factor!r}")
        if after is not None and after.optimizer is not optimizer:
            raise ValueError("LinearWarmup: `after` must schedule the same optimizer")
        self.start_factor = float(start_factor)
        self.after = after
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch: int) -> list[float]:
        if epoch >= self.warmup_steps:
            if self.after is None:
                return list(self.base_lrs)
            return self.after.lr_at(epoch - self.warmup_steps)
        f = self.start_factor + (1.0 - self.start_factor) * epoch / self.warmup_steps
        return [b * f for b in self.base_lrs]

    def step(self) -> None:
        super().step()
        if self.after is not None and self.last_epoch >= self.warmup_steps:
            self.after.last_epoch = self.last_epoch - self.warmup_steps
            self.after._last_lr = list(self._last_lr)


__all__ = ["CosineAnnealingLR", "LRScheduler", "LinearWarmup", "StepLR"]
