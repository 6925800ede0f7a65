"""An exponential moving average (EMA) of a model's parameters, kept during training and used
for evaluation and prediction afterwards (Polyak averaging; FixMatch, Sohn et al. 2020,
evaluates an EMA of the weights with decay 0.999).

After every optimizer step t (counting from 1 in a fit),

    e_t = d e_{t-1} + (1 - d) w_t,     e_0 = w_0 (the parameters when the fit begins),

computed in float64 for every parameter. `WeightEMA` is a seisoku.callbacks.Callback, so any
seisoku.train.Trainer can keep one (`callbacks=[WeightEMA(0.99)]`); its state (the averages and
the step count) goes into checkpoints, so a resumed fit continues the same average bit for bit.
At the end of a fit the averages replace the parameters (apply_at_end=True, the default): the
trainer's evaluate and predict then use them. The raw parameters of the last step stay in
`raw` (NumPy arrays by parameter name) and `restore_raw(model)` puts them back.

Validation during the fit (validation_data, early stopping) sees the raw parameters.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._array import array_module, is_cuda_array
from .callbacks import Callback

Array = Any

#: FixMatch's EMA decay (Sohn et al. 2020).
DEFAULT_EMA_DECAY = 0.999


def check_decay(decay: Any, op: str, name: str = "decay") -> float:
    """decay as a float in [0, 1), else ValueError naming `name`."""
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0.0 <= decay < 1.0:
        raise ValueError(f"[{op}] argument '{name}' must be a number in [0, 1), got {decay!r}")
    return float(decay)


def _host(a: Array) -> np.ndarray:
    return a.get() if is_cuda_array(a) else np.asarray(a)


class WeightEMA(Callback):
    """Keep an exponential moving average of the model's parameters over the optimizer steps
    of a fit (see the module docstring).

    Args:
        decay: d in [0, 1) (default 0.999, FixMatch's); the average spans about 1 / (1 - d)
            steps, so short fits want a smaller one (0.99 for a few thousand steps).
        apply_at_end: copy the averages into the parameters when the fit ends (default True).

    Attributes:
        averages: {parameter name: float64 array} (None before a fit).
        updates: optimizer steps averaged so far in this fit.
        raw: the parameters replaced at the end of the fit (NumPy, by name), or None.
    """

    def __init__(self, decay: float = DEFAULT_EMA_DECAY, *, apply_at_end: bool = True) -> None:
        self.decay = check_decay(decay, type(self).__name__)
        self.apply_at_end = bool(apply_at_end)
        self.averages: dict[str, Array] | None = None
        self.updates = 0
        self.raw: dict[str, np.ndarray] | None = None

    def on_train_begin(self, trainer: Any) -> None:
        """Start the averages at the current parameters (a resume then loads its state)."""
        self.averages = {
            name: array_module(p.value).asarray(p.value, dtype=np.float64).copy()
            for name, p in trainer.model.named_parameters()
        }
        self.updates = 0
        self.raw = None

    def on_batch_end(self, trainer: Any, step: int, logs: dict[str, float]) -> None:
        """e = d e + (1 - d) w for every parameter w."""
        assert self.averages is not None
        d = self.decay
        for name, p in trainer.model.named_parameters():
            e = self.averages[name]
            e *= d
            e += (1.0 - d) * p.value.astype(np.float64)
        self.updates += 1

    def on_train_end(self, trainer: Any) -> None:
        if self.apply_at_end:
            self.apply(trainer.model)

    def apply(self, model: Any) -> None:
        """Copy the averages into model's parameters (cast to their dtypes), keeping the
        replaced values in `raw`."""
        if self.averages is None:
            raise ValueError(f"[{type(self).__name__}] apply() needs a fit first")
        params = dict(model.named_parameters())
        if set(params) != set(self.averages):
            raise ValueError(
                f"[{type(self).__name__}] argument 'model' must have the parameters "
                f"{sorted(self.averages)}, got {sorted(params)}"
            )
        self.raw = model.state_dict()
        for name, p in params.items():
            p.value[...] = self.averages[name].astype(p.value.dtype)

    def restore_raw(self, model: Any) -> None:
        """Put back the parameters that apply() replaced."""
        if self.raw is None:
            raise ValueError(f"[{type(self).__name__}] restore_raw() needs apply() first")
        model.load_state_dict(self.raw)

    def state_dict(self) -> dict[str, Any]:
        avg = None if self.averages is None else {k: _host(v) for k, v in self.averages.items()}
        return {"decay": self.decay, "updates": self.updates, "averages": avg}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if float(state["decay"]) != self.decay:
            raise ValueError(
                f"[{type(self).__name__}] the checkpoint was written with decay "
                f"{state['decay']}, this callback has {self.decay}"
            )
        self.updates = int(state["updates"])
        saved = state["averages"]
        if saved is None:
            self.averages = None
            return
        like = self.averages or {}
        self.averages = {
            k: (array_module(like[k]) if k in like else np).asarray(v, dtype=np.float64).copy()
            for k, v in saved.items()
        }


__all__ = ["DEFAULT_EMA_DECAY", "WeightEMA", "check_decay"]
