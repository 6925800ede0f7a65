"""scikit-learn estimators over seisoku: MLPClassifier and MLPRegressor.

They follow scikit-learn's conventions (parameters stored as given in __init__, fitted
attributes ending in '_', validation through sklearn.utils) and pass
sklearn.utils.estimator_checks.check_estimator, so they work in Pipeline, GridSearchCV,
BaggingClassifier and the rest. One check depends on the BLAS: a sample's float32 outputs
can differ in the last bit with the batch it is predicted in on CPUs whose OpenBLAS kernels
sum a row of a small product in an order that depends on the batch, which
check_methods_subset_invariance's 1e-7 tolerance does not allow.

Training runs seisoku.train.Trainer with seisoku's fused regularized optimizers; the network
is an MLP of fused Linear layers (seisoku.nn.mlp) with its own Philox generator seeded from
random_state, so a fit is reproducible and never touches the process-wide generator.
scikit-learn is needed (pip install scikit-learn).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import (
        _check_sample_weight,
        check_is_fitted,
        column_or_1d,
        validate_data,
    )
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "seisoku.estimators needs scikit-learn >= 1.6: pip install scikit-learn"
    ) from e

from . import nn
from .callbacks import EarlyStopping
from .random import Generator
from .train import History, Trainer

Array = Any

SOLVERS = ("adam", "sgd")


def _check_params(est: _BaseMLP) -> tuple[int, ...]:
    sizes = est.hidden_layer_sizes
    sizes = (sizes,) if isinstance(sizes, (int, np.integer)) else sizes
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise ValueError(
            f"hidden_layer_sizes must be an int or a sequence of ints, got {sizes!r}"
        ) from None
    if not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in sizes
    ):
        raise ValueError(
            f"hidden_layer_sizes must be positive ints, got {est.hidden_layer_sizes!r}"
        )
    if est.solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {est.solver!r}")
    if est.device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {est.device!r}")
    for name in ("max_iter", "n_iter_no_change"):
        v = getattr(est, name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    bs = est.batch_size
    if bs != "auto" and (isinstance(bs, bool) or not isinstance(bs, (int, np.integer)) or bs < 1):
        raise ValueError(f"batch_size must be 'auto' or an int >= 1, got {bs!r}")
    if not (
        isinstance(est.validation_fraction, (int, float)) and 0.0 < est.validation_fraction < 1.0
    ):
        raise ValueError(f"validation_fraction must be in (0, 1), got {est.validation_fraction!r}")
    for name in ("l1", "l2", "tol", "input_noise"):
        v = getattr(est, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < np.inf:
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    v = est.max_norm
    if v is not None and (
        isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < np.inf
    ):
        raise ValueError(f"max_norm must be None (off) or a finite number > 0, got {v!r}")
    if not (isinstance(est.learning_rate_init, (int, float)) and est.learning_rate_init > 0):
        raise ValueError(f"learning_rate_init must be > 0, got {est.learning_rate_init!r}")
    if est.augment is not None and not callable(est.augment):
        raise ValueError(f"augment must be None or a callable(x_batch, step), got {est.augment!r}")
    return tuple(int(s) for s in sizes)


class _BaseMLP(BaseEstimator):
    """Shared fit / forward of the two estimators (see MLPClassifier for the parameters)."""

    _classifier = False

    def __init__(
        self,
        hidden_layer_sizes: Sequence[int] = (100,),
        activation: str = "relu",
        *,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        input_noise: float = 0.0,
        l1: float = 0.0,
        l2: float = 1e-4,
        max_norm: float | None = None,
        augment: Callable[[Array, int], Array] | None = None,
        solver: str = "adam",
        learning_rate_init: float = 1e-3,
        momentum: float = 0.9,
        batch_size: int | str = "auto",
        max_iter: int = 200,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        random_state: Any = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.input_noise = input_noise
        self.l1 = l1
        self.l2 = l2
        self.max_norm = max_norm
        self.augment = augment
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.momentum = momentum
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # -- hooks of the two estimators -----------------------------------------------------
    def _targets(self, y: np.ndarray) -> tuple[np.ndarray, int]:
        raise NotImplementedError

    def _loss(self, n_outputs: int) -> nn.Loss:
        raise NotImplementedError

    # -- fitting -------------------------------------------------------------------------
    def _to_device(self, a: np.ndarray) -> Array:
        if self.device == "cpu":
            return a
        from ._array import device_module

        return device_module("cuda").asarray(a)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _BaseMLP:
        """Train on X (n_samples, n_features) and y; sample_weight (n_samples,) weighs each
        sample's loss (zero-weight samples are left out). Returns self."""
        sizes = _check_params(self)
        X, y = validate_data(
            self,
            X,
            y,
            dtype=np.float32,
            order="C",
            y_numeric=not self._classifier,
            multi_output=not self._classifier,
        )
        X = np.array(X, dtype=np.float32, order="C", copy=True)
        targets, n_out = self._targets(y)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=np.float32, ensure_non_negative=True
            )
            keep = sample_weight > 0  # sklearn's check refuses negative and all-zero weights
            if not keep.all():
                X, targets, sample_weight = X[keep], targets[keep], sample_weight[keep]
            if np.all(sample_weight == sample_weight[0]):
                sample_weight = None  # equal weights are the plain mean
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        gen = Generator(seed)
        model = nn.mlp(
            [X.shape[1], *sizes, n_out],
            activation=self.activation,
            dropout=self.dropout,
            input_dropout=self.input_dropout,
            input_noise=self.input_noise,
            device=self.device,
            generator=gen,
        )
        opt = self._optimizer(model)
        validation = None
        if self.early_stopping:
            X, targets, sample_weight, validation = self._hold_out(X, targets, sample_weight, seed)
            stopper = EarlyStopping("val_loss", self.n_iter_no_change, min_delta=self.tol)
        else:
            stopper = EarlyStopping(
                "loss", self.n_iter_no_change, min_delta=self.tol, restore_best=False
            )
        trainer = Trainer(model, self._loss(n_out), opt, [stopper], progress=bool(self.verbose))
        n = X.shape[0]
        batch = min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)
        history = trainer.fit(
            self._to_device(X),
            self._to_device(targets),
            validation_data=validation,
            epochs=int(self.max_iter),
            batch_size=batch,
            augment=self.augment,
            sample_weight=None if sample_weight is None else self._to_device(sample_weight),
            seed=seed,
        )
        if history.stop_reason.startswith(("training loss became", "non-finite")):
            raise ValueError(
                f"{type(self).__name__}: training diverged ({history.stop_reason}); lower "
                f"learning_rate_init (now {self.learning_rate_init})"
            )
        model.release_buffers()
        self.model_ = model
        self.history_: History = history
        self.n_iter_ = len(history.epochs)
        self.loss_curve_ = history.column("loss")
        self.best_epoch_ = history.best_epoch
        self.n_outputs_ = n_out
        return self

    def _optimizer(self, model: nn.Module) -> Any:
        from . import optim

        reg = {"l1": self.l1, "l2": self.l2, "max_norm": self.max_norm}
        if self.solver == "sgd":
            return optim.SGD(
                model.parameters(), lr=self.learning_rate_init, momentum=self.momentum, **reg
            )
        return optim.Adam(model.parameters(), lr=self.learning_rate_init, **reg)

    def _hold_out(
        self, X: np.ndarray, t: np.ndarray, w: np.ndarray | None, seed: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[Array, Array]]:
        if X.shape[0] < 2:
            raise ValueError(
                f"early_stopping needs at least 2 samples to hold out validation data, got "
                f"{X.shape[0]}"
            )
        idx = np.arange(X.shape[0])
        stratify = t if self._classifier and np.bincount(t).min() >= 2 else None
        try:
            fit_idx, val_idx = train_test_split(
                idx, test_size=self.validation_fraction, random_state=seed, stratify=stratify
            )
        except ValueError:  # too few samples per class for a stratified split
            fit_idx, val_idx = train_test_split(
                idx, test_size=self.validation_fraction, random_state=seed
            )
        val = (self._to_device(X[val_idx]), self._to_device(t[val_idx]))
        return X[fit_idx], t[fit_idx], None if w is None else w[fit_idx], val

    # -- prediction ----------------------------------------------------------------------
    def _forward(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=np.float32, order="C")
        X = np.array(X, dtype=np.float32, order="C", copy=True)
        model = self.model_
        model.eval()
        outs = []
        for i in range(0, X.shape[0], 4096):
            out = model.forward(self._to_device(X[i : i + 4096]))
            outs.append(np.array(out.get() if hasattr(out, "get") else out, copy=True))
        model.release_buffers()
        if not outs:
            return np.zeros((0, self.n_outputs_), dtype=np.float32)
        return np.concatenate(outs)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A regularized multi-layer perceptron classifier (softmax cross-entropy).

    Args:
        hidden_layer_sizes: sizes of the hidden layers (default (100,)).
        activation: 'relu' (default), 'leaky_relu', 'tanh' or 'sigmoid'.
        dropout: probability of dropping a hidden unit in training (default 0).
        input_dropout: probability of dropping an input feature (default 0).
        input_noise: std of Gaussian noise added to the inputs in training (default 0).
        l1, l2: L1 (proximal) and coupled L2 penalties on the weights (defaults 0, 1e-4;
            biases are not penalized).
        max_norm: per-unit max-norm bound on the incoming weights (default None: off).
        label_smoothing: epsilon of the lecture's convention (true class 1 - eps, others
            eps / (K - 1)); default 0.
        augment: None or a callable(x_batch, step) returning an augmented batch (training).
        solver: 'adam' (default) or 'sgd' (with momentum).
        learning_rate_init: learning rate (default 1e-3).
        momentum: SGD momentum (default 0.9).
        batch_size: samples per step, or 'auto' (default) for min(200, n_samples).
        max_iter: maximum number of epochs (default 200).
        early_stopping: hold out validation_fraction of the data (stratified) and stop when
            its loss has not improved by tol for n_iter_no_change epochs, keeping the best
            parameters (default False: stop on the training loss instead).
        validation_fraction: held-out fraction for early stopping (default 0.1).
        n_iter_no_change: patience in epochs (default 10).
        tol: smallest loss improvement that counts (default 1e-4).
        random_state: None, an int or a RandomState; seeds initialisation, shuffling,
            dropout masks and the validation split.
        device: 'cpu' (default) or 'cuda' (CuPy; inputs and outputs stay NumPy).
        verbose: show a progress bar (default False).

    Attributes after fit: classes_, n_features_in_, model_ (the seisoku.nn network),
    history_ (seisoku.train.History), n_iter_ (epochs run), loss_curve_, best_epoch_.
    """

    _classifier = True

    def __init__(
        self,
        hidden_layer_sizes: Sequence[int] = (100,),
        activation: str = "relu",
        *,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        input_noise: float = 0.0,
        l1: float = 0.0,
        l2: float = 1e-4,
        max_norm: float | None = None,
        label_smoothing: float = 0.0,
        augment: Callable[[Array, int], Array] | None = None,
        solver: str = "adam",
        learning_rate_init: float = 1e-3,
        momentum: float = 0.9,
        batch_size: int | str = "auto",
        max_iter: int = 200,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        random_state: Any = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        super().__init__(
            hidden_layer_sizes,
            activation,
            dropout=dropout,
            input_dropout=input_dropout,
            input_noise=input_noise,
            l1=l1,
            l2=l2,
            max_norm=max_norm,
            augment=augment,
            solver=solver,
            learning_rate_init=learning_rate_init,
            momentum=momentum,
            batch_size=batch_size,
            max_iter=max_iter,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            tol=tol,
            random_state=random_state,
            device=device,
            verbose=verbose,
        )
        self.label_smoothing = label_smoothing

    def _targets(self, y: np.ndarray) -> tuple[np.ndarray, int]:
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"MLPClassifier needs samples of at least 2 classes in y, got 1 class "
                f"({self.classes_[0]!r})"
            )
        return encoded.astype(np.int64), len(self.classes_)

    def _loss(self, n_outputs: int) -> nn.Loss:
        return nn.CrossEntropyLoss(label_smoothing=self.label_smoothing)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in the order of classes_."""
        z = self._forward(X).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log of predict_proba, computed stably."""
        z = self._forward(X).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample."""
        scores = self._forward(X)
        return self.classes_[scores.argmax(axis=1)]


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A regularized multi-layer perceptron regressor (mean squared error); y may have
    several outputs (n_samples, n_outputs). Parameters and attributes as MLPClassifier's,
    without label_smoothing and classes_."""

    def _targets(self, y: np.ndarray) -> tuple[np.ndarray, int]:
        y = np.asarray(y, dtype=np.float32)
        self._y_1d = y.ndim == 1
        t = y.reshape(-1, 1) if y.ndim == 1 else y
        return np.ascontiguousarray(t), t.shape[1]

    def _loss(self, n_outputs: int) -> nn.Loss:
        return nn.MSELoss()

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets: (n_samples,) when fitted on a 1-D y, else (n_samples, n_outputs)."""
        out = self._forward(X).astype(np.float64)
        return out.ravel() if self._y_1d else out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


from .ensemble._estimator import BaggingMLPClassifier  # noqa: E402, F401  (needs MLPClassifier)
from .semi_estimator import SemiSupervisedClassifier  # noqa: E402  (re-export)

__all__ = ["MLPClassifier", "MLPRegressor", "SemiSupervisedClassifier"]
