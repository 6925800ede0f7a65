"""SemiSupervisedClassifier: a scikit-learn classifier that learns from labeled and unlabeled
rows, the unlabeled ones marked y = -1 as in sklearn.semi_supervised.

    clf = SemiSupervisedClassifier(method="consistency", image_shape=(1, 8, 8))
    clf.fit(X, y_with_minus_ones).score(X_test, y_test)

Methods: 'pseudo' (Lee's pseudo-labels, seisoku.semi.PseudoLabeler), 'consistency' (FixMatch,
seisoku.semi_consistency.ConsistencyTrainer), 'self_training' (rounds of fit and confident
labeling, seisoku.semi_selftrain.self_training) and 'dae' (denoising-autoencoder pretraining
on every row, then the encoder and a new head fine-tuned on the labeled rows). The network is
an MLP, or with network='cnn' and image_shape a small CNN (two 3x3 convolutions and a max
pool). Augmentation, for 'consistency' (and the others when image_shape is given): weak,
random shifts of one pixel; strong, shifts, rotations of up to 30 degrees and a cutout of half
the side; without image_shape, Gaussian noise of input_noise and 2 * input_noise on the
features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("seisoku.semi_estimator needs scikit-learn: pip install scikit-learn") from e

from . import augment, nn, optim
from .callbacks import LRSchedule
from .optim import lr_scheduler
from .random import Generator, manual_seed
from .semi import UNLABELED, PseudoLabeler, _check_threshold
from .semi_consistency import ConsistencyTrainer, _softmax
from .semi_ema import check_decay
from .semi_selftrain import dae_classifier, pretrain_dae, self_training
from .train import Trainer

Array = Any

METHODS = ("pseudo", "consistency", "self_training", "dae")
NETWORKS = ("mlp", "cnn")


class SemiSupervisedClassifier(ClassifierMixin, BaseEstimator):
    """A seisoku network trained on labeled and unlabeled rows (y = -1); see the module
    docstring.

    Args:
        method: 'pseudo', 'consistency' (default), 'self_training' or 'dae'.
        network: 'mlp' (default) or 'cnn' (needs image_shape).
        hidden_layer_sizes: hidden Linear sizes (default (128,)).
        image_shape: (C, H, W) of the rows when they are images (default None: features).
        threshold: confidence in (0, 1] a pseudo-label needs (default 0.8).
        mu: consistency: unlabeled rows per labeled row in a batch (default 7).
        rounds: self_training: rounds (default 5).
        epochs: training epochs (default 100); batch_size: labeled rows per step for
            'consistency', rows per step otherwise (default 16).
        learning_rate_init: SGD (momentum 0.9) learning rate, cosine-annealed (default 0.03).
        alpha: L2 penalty (default 5e-4).
        dropout: on hidden units (default 0).
        input_noise: std of the feature noise views without image_shape (default 0.1).
        random_state: int seed (default 0).
        ema_decay: 'consistency': None (default) or d in [0, 1), predict with an exponential
            moving average of the parameters over the optimizer steps
            (ConsistencyTrainer's ema_decay).
        distribution_alignment: 'consistency': 0 (default, off) or the steps N of
            ReMixMatch's distribution alignment (ConsistencyTrainer's).
    """

    def __init__(
        self,
        method: str = "consistency",
        network: str = "mlp",
        hidden_layer_sizes: Sequence[int] = (128,),
        image_shape: Sequence[int] | None = None,
        threshold: float = 0.8,
        mu: int = 7,
        rounds: int = 5,
        epochs: int = 100,
        batch_size: int = 16,
        learning_rate_init: float = 0.03,
        alpha: float = 5e-4,
        dropout: float = 0.0,
        input_noise: float = 0.1,
        random_state: int = 0,
        ema_decay: float | None = None,
        distribution_alignment: int = 0,
    ) -> None:
        self.method = method
        self.network = network
        self.hidden_layer_sizes = hidden_layer_sizes
        self.image_shape = image_shape
        self.threshold = threshold
        self.mu = mu
        self.rounds = rounds
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.alpha = alpha
        self.dropout = dropout
        self.input_noise = input_noise
        self.random_state = random_state
        self.ema_decay = ema_decay
        self.distribution_alignment = distribution_alignment

    # -- parts ---------------------------------------------------------------------------
    def _check(self, n_features: int) -> tuple[int, ...] | None:
        op = "SemiSupervisedClassifier"
        if self.method not in METHODS:
            raise ValueError(
                f"[{op}] argument 'method' must be one of {METHODS}, got {self.method!r}"
            )
        if self.network not in NETWORKS:
            raise ValueError(
                f"[{op}] argument 'network' must be one of {NETWORKS}, got {self.network!r}"
            )
        _check_threshold(self.threshold, op)
        if self.ema_decay is not None:
            check_decay(self.ema_decay, op, "ema_decay")
        shape = None if self.image_shape is None else tuple(int(v) for v in self.image_shape)
        if shape is not None and (len(shape) != 3 or int(np.prod(shape)) != n_features):
            raise ValueError(
                f"[{op}] argument 'image_shape' must be (C, H, W) with C*H*W = {n_features} "
                f"features, got {self.image_shape!r}"
            )
        if self.network == "cnn" and shape is None:
            raise ValueError(f"[{op}] argument 'image_shape' must be given for network 'cnn'")
        if self.method == "dae" and self.network != "mlp":
            raise ValueError(f"[{op}] method 'dae' needs network 'mlp', got {self.network!r}")
        ints = (("mu", 1), ("rounds", 1), ("epochs", 1), ("batch_size", 1))
        for name, low in (*ints, ("distribution_alignment", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"[{op}] argument '{name}' must be an int >= {low}, got {v!r}")
        return shape

    def _model(self, n_in: int, k: int, shape: tuple[int, ...] | None) -> nn.Module:
        gen = Generator(self.random_state)
        sizes = list(self.hidden_layer_sizes)
        if self.network == "mlp":
            return nn.mlp([n_in, *sizes, k], dropout=self.dropout, generator=gen)
        manual_seed(self.random_state)
        c, h, w = shape  # type: ignore[misc]
        layers: list[Any] = [
            nn.Conv2d(c, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        ]
        width = 32 * (h // 2) * (w // 2)
        for s in sizes:
            layers.append(nn.Linear(width, s, activation="relu", dropout=self.dropout))
            width = s
        layers.append(nn.Linear(width, k))
        return nn.Sequential(*layers)

    def _pipelines(
        self, shape: tuple[int, ...] | None, n_in: int
    ) -> tuple[augment.Compose | None, augment.Compose, tuple[int, ...]]:
        seed = int(self.random_state)
        if shape is None:  # features: noise views on (N, 1, 1, D)
            s = float(self.input_noise)
            weak = augment.Compose([augment.GaussianNoise(s)], seed=seed, layout="NCHW")
            strong = augment.Compose([augment.GaussianNoise(2 * s)], seed=seed + 1, layout="NCHW")
            return weak, strong, (1, 1, n_in)
        _, h, w = shape
        shift = [augment.RandomCrop((h, w), padding=1)]
        weak = augment.Compose(shift, seed=seed, layout="NCHW")
        strong = augment.Compose(
            [*shift, augment.RandomRotation(30.0), augment.Cutout(1, max(1, min(h, w) // 2))],
            seed=seed + 1,
            layout="NCHW",
        )
        return weak, strong, shape

    def _optimizer(self, model: nn.Module, epochs: int) -> tuple[Any, list[Any]]:
        opt = optim.SGD(model.parameters(), lr=self.learning_rate_init, momentum=0.9, l2=self.alpha)
        return opt, [LRSchedule(lr_scheduler.CosineAnnealingLR(opt, epochs))]

    # -- scikit-learn API ------------------------------------------------------------------
    def fit(self, X: Array, y: Array) -> SemiSupervisedClassifier:
        """Fit on X (N, D) and y (N,), -1 marking unlabeled rows; returns self."""
        op = "SemiSupervisedClassifier.fit"
        X, y = validate_data(self, X, y, dtype=np.float32)
        y = column_or_1d(y)
        if y.dtype.kind not in "iu":
            raise ValueError(f"[{op}] argument 'y' must hold integer labels, got {y.dtype}")
        known = y != UNLABELED
        if not known.any():
            raise ValueError(
                f"[{op}] argument 'y' must have at least one labeled row (label != -1), got all "
                f"{y.shape[0]} rows unlabeled"
            )
        self.classes_ = np.unique(y[known])
        if (self.classes_ < 0).any():
            raise ValueError(
                f"[{op}] argument 'y' must hold labels >= 0 and -1 for unlabeled rows, got "
                f"{int(self.classes_.min())}"
            )
        yi = np.full(y.shape, UNLABELED, dtype=np.int64)
        yi[known] = np.searchsorted(self.classes_, y[known])
        X = np.ascontiguousarray(X)
        n_in, k = X.shape[1], len(self.classes_)
        shape = self._check(n_in)
        weak, strong, view_shape = self._pipelines(shape, n_in)
        xin = X if self.network == "mlp" else X.reshape((-1, *shape))  # type: ignore[misc]
        seed, epochs = int(self.random_state), int(self.epochs)
        hook_shape = view_shape if self.network == "mlp" else None
        hook = None
        if shape is not None:
            hook = weak.trainer_hook(image_shape=hook_shape) if weak is not None else None
        if self.method == "consistency":
            model = self._model(n_in, k, shape)
            opt, cbs = self._optimizer(model, epochs)
            trainer: Trainer = ConsistencyTrainer(
                model,
                opt,
                weak=weak,
                strong=strong,
                threshold=self.threshold,
                mu=int(self.mu),
                image_shape=hook_shape,
                ema_decay=self.ema_decay,
                distribution_alignment=self.distribution_alignment,
                callbacks=cbs,
                progress=False,
            )
            trainer.fit(xin, yi, epochs=epochs, batch_size=int(self.batch_size), seed=seed)
        elif self.method == "dae":
            ae = pretrain_dae(
                X, [n_in, *self.hidden_layer_sizes], noise_std=0.3, epochs=epochs, seed=seed
            )
            model = dae_classifier(ae, k, dropout=self.dropout, generator=Generator(seed))
            opt, cbs = self._optimizer(model, epochs)
            trainer = Trainer(model, nn.CrossEntropyLoss(), opt, cbs, progress=False)
            trainer.fit(
                X[known], yi[known], epochs=epochs, batch_size=int(self.batch_size), seed=seed
            )
        elif self.method == "pseudo":
            model = self._model(n_in, k, shape)
            opt, cbs = self._optimizer(model, epochs)
            trainer = PseudoLabeler(
                model,
                opt,
                threshold=self.threshold,
                t1=max(1, epochs // 10),
                t2=max(2, epochs * 4 // 10),
                callbacks=cbs,
                progress=False,
            )
            trainer.fit(
                xin, yi, epochs=epochs, batch_size=int(self.batch_size), augment=hook, seed=seed
            )
        else:

            def build() -> Trainer:
                m = self._model(n_in, k, shape)
                o, c = self._optimizer(m, epochs)
                return Trainer(m, nn.CrossEntropyLoss(), o, c, progress=False)

            result = self_training(
                build,
                xin,
                yi,
                rounds=int(self.rounds),
                threshold=self.threshold,
                epochs=epochs,
                batch_size=int(self.batch_size),
                augment=hook,
                seed=seed,
            )
            trainer = result.trainer
            self.labels_ = np.where(
                result.labels == UNLABELED, UNLABELED, self.classes_[np.maximum(result.labels, 0)]
            )
        self.trainer_ = trainer
        self.history_ = trainer.history
        return self

    def _logits(self, X: Array) -> np.ndarray:
        check_is_fitted(self, "trainer_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        X = np.ascontiguousarray(X)
        if self.network == "cnn":
            X = X.reshape((-1, *tuple(int(v) for v in self.image_shape)))  # type: ignore[union-attr]
        return self.trainer_.predict(X)

    def predict_proba(self, X: Array) -> np.ndarray:
        """Class probabilities (N, n_classes), columns in the order of classes_."""
        return np.asarray(_softmax(self._logits(X).astype(np.float64)))

    def predict(self, X: Array) -> np.ndarray:
        """The most probable class of every row."""
        return self.classes_[self._logits(X).argmax(axis=1)]


__all__ = ["METHODS", "SemiSupervisedClassifier"]
