"""Fused losses: the weighted mean loss and its input gradient in one native pass.

Every function takes arrays with the batch on axis 0 (N > 0 samples), float32 or float64,
NumPy on the CPU or CuPy on the GPU, and returns a `LossResult`:

* ``loss``: a 0-d array of the input's dtype on the input's device,
  ``sum_i w_i l_i / sum_i w_i`` (the plain mean over samples without ``sample_weight``);
* ``grad``: d(loss)/d(input), same shape as the input (None when ``need_grad=False``);
* ``per_sample``: the unweighted per-sample losses ``l_i``, shape (N,) (None unless
  ``per_sample=True``).

``sample_weight`` is an optional (N,) array of the input's dtype with values >= 0 and a
positive sum (checked for CPU arrays; on the GPU a zero sum gives NaN). A sample with weight 0
does not count. Sums over the batch run in float64 in a fixed order, so results do not
depend on the thread count. Invalid arguments raise ValueError with "[op]" in the message;
the native front-ends make every check of shapes, dtypes, devices and ranges.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .. import _core
from .._array import array_module, require_array

Array = Any  # numpy.ndarray or cupy.ndarray

#: Label-smoothing conventions of `cross_entropy`: the lecture's (the default) and PyTorch's.
CONVENTIONS = ("lecture", "uniform")


class LossResult(NamedTuple):
    """Result of a fused loss: the mean loss, and optionally its gradient and per-sample losses."""

    loss: Array
    grad: Array | None
    per_sample: Array | None


def _outputs(
    x: Array, need_grad: bool, per_sample: bool
) -> tuple[Array, Array | None, Array | None]:
    xp = array_module(x)
    loss = xp.empty((), dtype=x.dtype)
    grad = xp.empty(x.shape, dtype=x.dtype) if need_grad else None
    ps = xp.empty((x.shape[0] if x.ndim else 0,), dtype=x.dtype) if per_sample else None
    return loss, grad, ps


def _weight(sample_weight: Array | None, op: str) -> Array | None:
    if sample_weight is None:
        return None
    return require_array(sample_weight, "sample_weight", op)


def _real(value: Any, name: str, op: str) -> float:
    """value as a float for the native call (which checks its range)."""
    if not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise ValueError(f"[{op}] argument '{name}' must be a real number, got {value!r}")


def cross_entropy(
    logits: Array,
    target: Array,
    *,
    label_smoothing: float = 0.0,
    convention: str = "lecture",
    sample_weight: Array | None = None,
    need_grad: bool = True,
    per_sample: bool = False,
) -> LossResult:
    """Softmax cross-entropy of logits (N, K) against class indices target (N,).

    The per-sample loss is ``-sum_k q_k log softmax(logits)_k`` with q the label-smoothed
    one-hot target, smoothing eps = ``label_smoothing`` in [0, 1) (default 0: plain
    cross-entropy). ``convention`` (default ``"lecture"``) picks the smoothed target:

    * ``"lecture"``: true class 1 - eps, every other class eps / (K - 1) (needs K >= 2
      when eps > 0);
    * ``"uniform"``: true class 1 - eps + eps / K, others eps / K (PyTorch's
      ``label_smoothing``).

    Any other convention is a ValueError. ``target`` is int64 or int32 with values in
    [0, K); a ValueError names the first row outside it on either device (on the GPU this
    check costs one 8-byte device-to-host copy per call, which waits for the kernels, and
    the outputs have been written when it is raised). The gradient is
    ``(softmax - q) * w_i / sum(w)``.
    """
    op = "cross_entropy"
    require_array(logits, "logits", op)
    require_array(target, "target", op)
    eps = _real(label_smoothing, "label_smoothing", op)
    if not isinstance(convention, str):
        raise ValueError(
            f"[{op}] argument 'convention' must be 'lecture' or 'uniform', got {convention!r}"
        )
    weight = _weight(sample_weight, op)
    loss, grad, ps = _outputs(logits, need_grad, per_sample)
    _core.cross_entropy(logits, target, weight, loss, grad, ps, eps, convention)
    return LossResult(loss, grad, ps)


def mse_loss(
    pred: Array,
    target: Array,
    *,
    sample_weight: Array | None = None,
    need_grad: bool = True,
    per_sample: bool = False,
) -> LossResult:
    """Mean squared error of pred against target (same shape (N, ...), dtype and device).

    The per-sample loss is the mean of (pred - target)^2 over the sample's elements, so
    without weights the loss equals the mean over all elements. The gradient is taken with
    respect to pred.
    """
    op = "mse_loss"
    require_array(pred, "pred", op)
    require_array(target, "target", op)
    weight = _weight(sample_weight, op)
    loss, grad, ps = _outputs(pred, need_grad, per_sample)
    _core.mse_loss(pred, target, weight, loss, grad, ps)
    return LossResult(loss, grad, ps)


def bce_with_logits(
    logits: Array,
    target: Array,
    *,
    sample_weight: Array | None = None,
    need_grad: bool = True,
    per_sample: bool = False,
) -> LossResult:
    """Binary cross-entropy on logits against targets in [0, 1] (same shape (N, ...)).

    Elementwise ``max(x, 0) - x t + log1p(exp(-|x|))``, finite for any finite logit; the
    per-sample loss is its mean over the sample's elements. The gradient is
    ``(sigmoid(x) - t) / elements_per_sample * w_i / sum(w)``.
    """
    op = "bce_with_logits"
    require_array(logits, "logits", op)
    require_array(target, "target", op)
    weight = _weight(sample_weight, op)
    loss, grad, ps = _outputs(logits, need_grad, per_sample)
    _core.bce_with_logits(logits, target, weight, loss, grad, ps)
    return LossResult(loss, grad, ps)


def kl_div_softened(
    student_logits: Array,
    teacher_logits: Array,
    temperature: float = 1.0,
    *,
    scale_t2: bool = True,
    sample_weight: Array | None = None,
    need_grad: bool = True,
    per_sample: bool = False,
) -> LossResult:
    """Distillation loss KL(softmax(teacher / T) || softmax(student / T)), both (N, K).

    ``temperature`` T > 0 (default 1.0) softens both distributions. With ``scale_t2``
    (default True, Hinton et al. 2015) the loss is multiplied by T^2 so that its gradient
    keeps the scale of a hard-label loss. The gradient, for the student only, is
    ``(T if scale_t2 else 1 / T) * (softmax(student / T) - softmax(teacher / T)) * w_i / sum(w)``.
    """
    op = "kl_div_softened"
    require_array(student_logits, "student_logits", op)
    require_array(teacher_logits, "teacher_logits", op)
    t = _real(temperature, "temperature", op)
    weight = _weight(sample_weight, op)
    loss, grad, ps = _outputs(student_logits, need_grad, per_sample)
    _core.kl_div_softened(student_logits, teacher_logits, t, weight, loss, grad, ps, bool(scale_t2))
    return LossResult(loss, grad, ps)
