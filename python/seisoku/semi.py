"""Semi-supervised learning: unlabeled data helps learn P(y | x) through pseudo-labels.

Pseudo-labelling (Lee 2013, "Pseudo-Label: The Simple and Efficient Semi-Supervised Learning
Method for Deep Neural Networks") trains on labeled and unlabeled rows at once. An unlabeled
row takes as its target the class the network itself predicts for it (the argmax of its
outputs, recomputed at every update); the loss on a batch with n labeled rows and n' unlabeled
ones is

    L = (1/n) sum_labeled CE(f(x_i), y_i) + alpha(t) * (1/n') sum_unlabeled m_j CE(f(x_j), y'_j)

with y'_j = argmax f(x_j) and m_j = 1 when the predicted probability of y'_j is at least
`threshold`, else 0 (the confidence mask of later work, e.g. Sohn et al. 2020, "FixMatch";
Lee's method is threshold -> 0, which the open interval leaves out: use a tiny threshold).
The pseudo-label is a constant of the gradient: dL/df = (softmax - onehot) scaled per row.

alpha(t) ramps up over epochs t = 0, 1, ... (Lee, equation 16):

    alpha(t) = 0                                   t < T1
    alpha(t) = alpha_f * (t - T1) / (T2 - T1)      T1 <= t < T2
    alpha(t) = alpha_f                             t >= T2

so the first T1 epochs are the supervised phase and the unlabeled term grows as the network's
own predictions become worth trusting. Lee used alpha_f = 3, T1 = 100 and T2 = 600 epochs on
MNIST; seisoku's defaults keep alpha_f = 3 and scale the epochs down to T1 = 10, T2 = 30 for
the short runs of small data sets.

Unlabeled rows are marked with the label -1, as in scikit-learn's semi-supervised estimators.
`PseudoLabelLoss` is a seisoku.nn.Loss and `PseudoLabeler` is a seisoku.train.Trainer with
that loss that sets the loss's epoch before every epoch, so callbacks, validation, early
stopping and checkpoints work as in any fit. Its fit repeats the labeled rows so that they
are about `labeled_fraction` of each epoch (default 0.5): every mini-batch then draws both
labeled and unlabeled rows, as in Lee's mixed mini-batches, even with few labels.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._array import array_module, require_array
from .callbacks import Callback
from .nn import Loss, Module
from .nn.functional import cross_entropy
from .train import History, Trainer

Array = Any  # numpy.ndarray or cupy.ndarray

#: Label of an unlabeled row (scikit-learn's convention).
UNLABELED = -1
#: Default confidence threshold for a pseudo-label (FixMatch's value, Sohn et al. 2020).
DEFAULT_THRESHOLD = 0.95
#: Lee (2013)'s final weight of the unlabeled term.
DEFAULT_ALPHA_F = 3.0
#: Epoch where the unlabeled term starts to count (Lee: 100 on MNIST).
DEFAULT_T1 = 10
#: Epoch where it reaches alpha_f (Lee: 600 on MNIST).
DEFAULT_T2 = 30


def _real(value: Any, name: str, op: str) -> float:
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    raise ValueError(f"[{op}] argument '{name}' must be a real number, got {value!r}")


def _check_threshold(value: Any, op: str) -> float:
    t = _real(value, "threshold", op)
    if not 0.0 < t <= 1.0:  # False for NaN too
        raise ValueError(f"[{op}] argument 'threshold' must be in (0, 1], got {value!r}")
    return t


def _check_epoch_int(value: Any, name: str, op: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"[{op}] argument '{name}' must be an int >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"[{op}] argument '{name}' must be an int >= 0, got {value!r}")
    return int(value)


def _check_schedule(alpha_f: Any, t1: Any, t2: Any, op: str) -> tuple[float, int, int]:
    a = _real(alpha_f, "alpha_f", op)
    if not (math.isfinite(a) and a >= 0.0):
        raise ValueError(f"[{op}] argument 'alpha_f' must be a finite number >= 0, got {alpha_f!r}")
    t1 = _check_epoch_int(t1, "t1", op)
    t2 = _check_epoch_int(t2, "t2", op)
    if t2 < t1:
        raise ValueError(f"[{op}] argument 't2' must be >= t1 = {t1}, got {t2!r}")
    return a, t1, t2


def ramp_weight(
    epoch: float,
    alpha_f: float = DEFAULT_ALPHA_F,
    t1: int = DEFAULT_T1,
    t2: int = DEFAULT_T2,
) -> float:
    """Lee's weight alpha(t) of the unlabeled term at epoch t (>= 0): 0 before t1, linear
    from 0 at t1 to alpha_f at t2, alpha_f from t2 on (defaults alpha_f 3, t1 10, t2 30;
    t1 == t2 is a step at t1)."""
    op = "ramp_weight"
    t = _real(epoch, "epoch", op)
    if not (math.isfinite(t) and t >= 0.0):
        raise ValueError(f"[{op}] argument 'epoch' must be a finite number >= 0, got {epoch!r}")
    a, t1, t2 = _check_schedule(alpha_f, t1, t2, op)
    if t < t1:
        return 0.0
    if t >= t2:
        return a
    return a * (t - t1) / (t2 - t1)


def select_pseudo_labels(
    logits: Array, threshold: float = DEFAULT_THRESHOLD
) -> tuple[Array, Array]:
    """The pseudo-labels of logits (N, K): (argmax (N,) int64, mask (N,) bool), the mask true
    where the softmax probability of the argmax is >= threshold in (0, 1] (default 0.95)."""
    op = "select_pseudo_labels"
    require_array(logits, "logits", op)
    threshold = _check_threshold(threshold, op)
    if logits.ndim != 2 or logits.shape[1] < 1:
        raise ValueError(f"[{op}] argument 'logits' must have shape (N, K), got {logits.shape}")
    xp = array_module(logits)
    z = logits.astype(xp.float64)
    labels = z.argmax(axis=1)
    top = z.max(axis=1, keepdims=True)
    # p(argmax) = 1 / sum_k exp(z_k - max): its threshold test without dividing.
    confidence = 1.0 / xp.exp(z - top).sum(axis=1)
    return labels.astype(xp.int64), confidence >= threshold


class PseudoLabelLoss(Loss):
    """Lee's pseudo-label loss: cross-entropy on labeled rows plus alpha(epoch) times the
    cross-entropy of confident unlabeled rows (target -1) against their own argmax; see the
    module docstring for the formula.

    Args:
        threshold: minimum softmax probability in (0, 1] of a pseudo-label (default 0.95).
        alpha_f, t1, t2: the ramp-up of the unlabeled weight over epochs (defaults 3.0, 10, 30;
            see ramp_weight).

    Set `epoch` (PseudoLabeler does, before every epoch) to move along the ramp. After a
    forward, `last_stats` holds the batch's counts: labeled, unlabeled, selected, alpha.
    """

    classification = True  # Trainer records accuracy (unlabeled rows never count as correct)

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        *,
        alpha_f: float = DEFAULT_ALPHA_F,
        t1: int = DEFAULT_T1,
        t2: int = DEFAULT_T2,
    ) -> None:
        super().__init__()
        op = type(self).__name__
        self.threshold = _check_threshold(threshold, op)
        self.alpha_f, self.t1, self.t2 = _check_schedule(alpha_f, t1, t2, op)
        self.epoch = 0
        self.last_stats: dict[str, float] = {}
        self._grad: Array | None = None

    def _config(self) -> tuple[tuple, dict[str, Any]]:
        return (), {
            "threshold": self.threshold,
            "alpha_f": self.alpha_f,
            "t1": self.t1,
            "t2": self.t2,
        }

    @property
    def alpha(self) -> float:
        """The unlabeled term's weight at the current epoch."""
        return ramp_weight(self.epoch, self.alpha_f, self.t1, self.t2)

    def forward(self, pred: Array, target: Array, sample_weight: Array | None = None) -> Array:
        """The loss of logits pred (N, K) against target (N,) with -1 for unlabeled rows, as
        a 0-d array of pred's dtype; its gradient is kept for backward(). With sample_weight
        (N,), each group's mean becomes a weighted mean."""
        op = type(self).__name__
        require_array(pred, "pred", op)
        require_array(target, "target", op)
        if pred.ndim != 2 or target.shape != (pred.shape[0],):
            raise ValueError(
                f"[{op}] arguments 'pred' (N, K) and 'target' (N,) must agree, got "
                f"{pred.shape} and {target.shape}"
            )
        xp = array_module(pred)
        k = pred.shape[1]
        target = target.astype(xp.int64)
        bad = (target < UNLABELED) | (target >= k)
        if bool(bad.any()):
            i = int(xp.flatnonzero(bad)[0])
            raise ValueError(
                f"[{op}] argument 'target' must hold labels in [-1, {k}), got {int(target[i])} "
                f"at row {i}"
            )
        unl = target == UNLABELED
        pseudo, confident = select_pseudo_labels(pred, self.threshold)
        full = xp.where(unl, pseudo, target)
        sw = (
            xp.ones(pred.shape[0], dtype=xp.float64)
            if sample_weight is None
            else require_array(sample_weight, "sample_weight", op).astype(xp.float64)
        )
        lab_sum = float(sw[~unl].sum())
        unl_sum = float(sw[unl].sum())
        alpha = self.alpha
        w = xp.zeros(pred.shape[0], dtype=xp.float64)
        if lab_sum > 0:
            w[~unl] = sw[~unl] / lab_sum
        if alpha > 0 and unl_sum > 0:
            w[unl] = xp.where(confident[unl], sw[unl] * (alpha / unl_sum), 0.0)
        total = float(w.sum())
        self.last_stats = {
            "labeled": float((~unl).sum()),
            "unlabeled": float(unl.sum()),
            "selected": float((unl & confident).sum()),
            "alpha": alpha,
        }
        if total <= 0.0:
            self._grad = xp.zeros_like(pred)
            return xp.zeros((), dtype=pred.dtype)
        # The native loss is sum w l / sum w with gradient (softmax - onehot) w / sum w.
        res = cross_entropy(pred, full, sample_weight=(w / total).astype(pred.dtype))
        self._grad = res.grad * pred.dtype.type(total)
        return xp.asarray(float(res.loss) * total, dtype=pred.dtype)

    def backward(self) -> Array:
        """d(loss)/d(pred) of the last forward (the pseudo-labels held constant)."""
        if self._grad is None:
            raise ValueError(f"[{type(self).__name__}] backward() needs a forward() first")
        return self._grad


def check_labels(y: Array, classes: int | None = None, op: str = "PseudoLabeler.fit") -> None:
    """ValueError unless y (N,) holds integer labels in [-1, classes) with at least one
    labeled row (classes None: any label >= -1)."""
    require_array(y, "y", op)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(
            f"[{op}] argument 'y' must be integer labels of shape (N,), got {y.dtype} {y.shape}"
        )
    hi = math.inf if classes is None else classes
    bad = (y < UNLABELED) | (y >= hi)
    if bool(bad.any()):
        i = int(array_module(y).flatnonzero(bad)[0])
        raise ValueError(
            f"[{op}] argument 'y' must hold labels in [-1, {classes}), got {int(y[i])} at row {i}"
        )
    if not bool((y != UNLABELED).any()):
        raise ValueError(
            f"[{op}] argument 'y' must have at least one labeled row (label != -1), got all "
            f"{y.shape[0]} rows unlabeled"
        )


class PseudoLabeler(Trainer):
    """A seisoku.train.Trainer that trains `model` with PseudoLabelLoss on labeled and
    unlabeled rows (label -1).

    Args:
        model: the seisoku.nn.Module to train (a classifier giving logits (N, K)).
        optimizer: over the model's parameters.
        threshold: minimum confidence in (0, 1] of a pseudo-label (default 0.95).
        alpha_f, t1, t2: the ramp of the unlabeled weight over epochs (defaults 3.0, 10, 30).
        callbacks, progress: as for Trainer.

    fit(x, y, labeled_fraction=0.5, **kw) takes Trainer.fit's keywords (validation_data,
    epochs, batch_size, augment, seed, ...; validation data must be fully labeled).
    """

    def __init__(
        self,
        model: Module,
        optimizer: Any,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        alpha_f: float = DEFAULT_ALPHA_F,
        t1: int = DEFAULT_T1,
        t2: int = DEFAULT_T2,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
    ) -> None:
        loss = PseudoLabelLoss(threshold, alpha_f=alpha_f, t1=t1, t2=t2)
        super().__init__(model, loss, optimizer, callbacks=callbacks, progress=progress)

    def _run_epoch(self, *args: Any, **kwargs: Any) -> None:
        self.loss.epoch = self.epoch
        super()._run_epoch(*args, **kwargs)

    def fit(  # type: ignore[override]
        self,
        x: Array,
        y: Array,
        *,
        labeled_fraction: float = 0.5,
        sample_weight: Array | None = None,
        validation_split: float = 0.0,
        **kwargs: Any,
    ) -> History:
        """Train on x (N, ...) with labels y (N,), -1 marking unlabeled rows, and return the
        History. The labeled rows are repeated (a whole number of times, at least once) so
        that they are about `labeled_fraction` in (0, 1) of the rows of an epoch (default
        0.5); an epoch therefore covers every unlabeled row once. Other keywords go to
        Trainer.fit (sample_weight and validation_split are not supported)."""
        op = "PseudoLabeler.fit"
        if sample_weight is not None or validation_split:
            raise ValueError(
                f"[{op}] sample_weight and validation_split are not supported; give "
                f"validation_data, got sample_weight={type(sample_weight).__name__}, "
                f"validation_split={validation_split!r}"
            )
        frac = _real(labeled_fraction, "labeled_fraction", op)
        if not 0.0 < frac < 1.0:
            raise ValueError(
                f"[{op}] argument 'labeled_fraction' must be in (0, 1), got {labeled_fraction!r}"
            )
        require_array(x, "x", op)
        check_labels(y, None, op)
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"[{op}] arguments 'x' and 'y' must have the same rows, got {x.shape[0]} and "
                f"{y.shape[0]}"
            )
        classes = int(self.predict(x[:1]).shape[1])
        check_labels(y, classes, op)
        xp = array_module(x)
        lab = xp.flatnonzero(y != UNLABELED)
        unl = xp.flatnonzero(y == UNLABELED)
        n_l, n_u = int(lab.shape[0]), int(unl.shape[0])
        repeat = max(1, round(frac * n_u / ((1.0 - frac) * n_l)))
        idx = xp.concatenate([xp.tile(lab, repeat), unl])
        return super().fit(x[idx], y[idx], **kwargs)


__all__ = [
    "DEFAULT_ALPHA_F",
    "DEFAULT_T1",
    "DEFAULT_T2",
    "DEFAULT_THRESHOLD",
    "UNLABELED",
    "PseudoLabelLoss",
    "PseudoLabeler",
    "check_labels",
    "ramp_weight",
    "select_pseudo_labels",
]
