"""Loss objects for training loops: call with (prediction, target) to get the mean loss,
then backward() for its gradient with respect to the prediction (computed in the same
native pass)."""

from __future__ import annotations

from typing import Any

from . import _loss

Array = Any


class Loss:
    """Base of the loss objects: __call__ computes and keeps the gradient; backward() returns it."""

    def __init__(self) -> None:
        self._grad: Array | None = None

    def _compute(self, pred: Array, target: Array, sample_weight: Array | None) -> _loss.LossResult:
        raise NotImplementedError

    def __call__(self, pred: Array, target: Array, sample_weight: Array | None = None) -> Array:
        """The weighted mean loss as a 0-d array (float() it to log)."""
        result = self._compute(pred, target, sample_weight)
        self._grad = result.grad
        return result.loss

    def backward(self) -> Array:
        """d(loss)/d(prediction) of the last call."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before the loss")
        return self._grad


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits (N, K) with integer class targets (N,).

    Args:
        label_smoothing: epsilon in [0, 1) (default 0).
        convention: 'seed' (default; the lecture's: true class 1 - eps, every other class
            eps / (K - 1)) or 'uniform' (PyTorch's: true class 1 - eps + eps / K, others eps / K).
    """

    def __init__(self, label_smoothing: float = 0.0, convention: str = "seed") -> None:
        super().__init__()
        if convention not in _loss.CONVENTIONS:
            raise ValueError(f"convention must be 'seed' or 'uniform', got {convention!r}")
        if isinstance(label_smoothing, bool) or not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self.convention = convention

    def _compute(self, pred: Array, target: Array, sample_weight: Array | None) -> _loss.LossResult:
        return _loss.cross_entropy(
            pred,
            target,
            label_smoothing=self.label_smoothing,
            convention=self.convention,
            sample_weight=sample_weight,
        )


class MSELoss(Loss):
    """Mean squared error (per sample: the mean over its elements)."""

    def _compute(self, pred: Array, target: Array, sample_weight: Array | None) -> _loss.LossResult:
        return _loss.mse_loss(pred, target, sample_weight=sample_weight)


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits, targets in [0, 1]."""

    def _compute(self, pred: Array, target: Array, sample_weight: Array | None) -> _loss.LossResult:
        return _loss.bce_with_logits(pred, target, sample_weight=sample_weight)


class DistillationKLLoss(Loss):
    """KL(softmax(teacher / T) || softmax(student / T)), times T**2 when scale_t2 (default);
    call with (student_logits, teacher_logits)."""

    def __init__(self, temperature: float = 1.0, scale_t2: bool = True) -> None:
        super().__init__()
        if isinstance(temperature, bool) or not float(temperature) > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.scale_t2 = bool(scale_t2)

    def _compute(self, pred: Array, target: Array, sample_weight: Array | None) -> _loss.LossResult:
        return _loss.kl_div_softened(
            pred,
            target,
            self.temperature,
            scale_t2=self.scale_t2,
            sample_weight=sample_weight,
        )
