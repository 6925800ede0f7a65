"""BaggingMLPClassifier: a bagged ensemble of seisoku MLPClassifiers as one scikit-learn
estimator (re-exported by seisoku.estimators; needs scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ..estimators import MLPClassifier
from ._common import _MemberProgress
from ._members import BACKENDS, _can_fork, run_jobs


class BaggingMLPClassifier(ClassifierMixin, BaseEstimator):
    """Bootstrap aggregating of seisoku MLPClassifiers: each member is fitted on a resample of
    the training set, and predict_proba averages the members' probabilities (soft voting) or
    their votes (hard voting).

    Args:
        estimator: the member to clone (default None: MLPClassifier(hidden_layer_sizes=(64,),
            max_iter=100)); each clone gets random_state drawn from this estimator's.
        n_estimators: members (default 5).
        max_samples: fraction of the samples drawn for each member, in (0, 1] (default 1.0).
        bootstrap: draw with replacement (default True).
        voting: 'soft' (default) or 'hard'.
        n_jobs: members fitted at once (default 1).
        backend: 'auto' (default: forked worker processes where the platform can fork),
            'process' or 'thread'; see seisoku.ensemble.Bagging.
        random_state: None, an int or a RandomState; seeds the resamples and the members.

    A member whose resample lacks a class gives that class probability 0; its columns are
    aligned with classes_ by the member's own classes_. sample_weight is passed on to each
    member for the samples it drew.

    Attributes after fit: classes_, n_features_in_, estimators_ (the fitted members),
    estimators_samples_ (each member's drawn indices).
    """

    def __init__(
        self,
        estimator: Any = None,
        n_estimators: int = 5,
        *,
        max_samples: float = 1.0,
        bootstrap: bool = True,
        voting: str = "soft",
        n_jobs: int = 1,
        backend: str = "auto",
        random_state: Any = None,
    ) -> None:
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.bootstrap = bootstrap
        self.voting = voting
        self.n_jobs = n_jobs
        self.backend = backend
        self.random_state = random_state

    def _check_params(self) -> None:
        for name in ("n_estimators", "n_jobs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(
                    f"[BaggingMLPClassifier] argument '{name}' must be an int >= 1, got {v!r}"
                )
        m = self.max_samples
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 < m <= 1:
            raise ValueError(
                f"[BaggingMLPClassifier] argument 'max_samples' must be in (0, 1], got {m!r}"
            )
        if self.voting not in ("soft", "hard"):
            raise ValueError(
                "[BaggingMLPClassifier] argument 'voting' must be 'soft' or 'hard', got "
                f"{self.voting!r}"
            )
        if self.backend not in BACKENDS:
            raise ValueError(
                f"[BaggingMLPClassifier] argument 'backend' must be one of {BACKENDS}, got "
                f"{self.backend!r}"
            )
        if self.estimator is not None and not hasattr(self.estimator, "fit"):
            raise ValueError(
                "[BaggingMLPClassifier] argument 'estimator' must be None or a classifier "
                f"with fit, got {self.estimator!r}"
            )

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BaggingMLPClassifier:
        """Fit every member on its resample of (X, y); returns self."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float32, order="C")
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(
                f"BaggingMLPClassifier needs samples of at least 2 classes in y, got 1 class "
                f"({self.classes_[0]!r})"
            )
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=np.float32, ensure_non_negative=True
            )
        rng = check_random_state(self.random_state)
        n = X.shape[0]
        size = max(1, round(float(self.max_samples) * n))
        base = self.estimator
        if base is None:
            base = MLPClassifier(hidden_layer_sizes=(64,), max_iter=100)
        plans = []
        for _ in range(int(self.n_estimators)):
            seed = int(rng.randint(0, 2**31 - 1))
            if self.bootstrap:
                idx = rng.randint(0, n, size)
            else:
                idx = np.sort(rng.choice(n, size, replace=False))
            plans.append((seed, self._with_two_classes(idx, y, rng)))

        def job(m: int) -> Any:
            seed, idx = plans[m]
            member = clone(base).set_params(random_state=seed)
            weights = None if sample_weight is None else sample_weight[idx]
            return member.fit(X[idx], y[idx], sample_weight=weights)

        backend = self.backend
        if backend == "auto":
            backend = "process" if _can_fork() else "thread"
        self.estimators_ = run_jobs(
            job, len(plans), int(self.n_jobs), backend, _MemberProgress(False, 0, "")
        )
        self.estimators_samples_ = [idx for _, idx in plans]
        return self

    @staticmethod
    def _with_two_classes(idx: np.ndarray, y: np.ndarray, rng: Any) -> np.ndarray:
        """idx, with one index swapped for a sample of another class when the resample holds
        a single class (a member needs two)."""
        if np.unique(y[idx]).size >= 2:
            return idx
        other = np.flatnonzero(y != y[idx[0]])
        idx = idx.copy()
        idx[-1] = other[rng.randint(0, other.size)]
        return idx

    def _member_votes(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        X = validate_data(self, X, reset=False, dtype=np.float32, order="C")
        votes = np.zeros((len(self.estimators_), X.shape[0], len(self.classes_)))
        for i, est in enumerate(self.estimators_):
            cols = np.searchsorted(self.classes_, est.classes_)
            if self.voting == "soft":
                votes[i][:, cols] = est.predict_proba(X)
            else:
                pred = np.searchsorted(self.classes_, est.predict(X))
                votes[i][np.arange(X.shape[0]), pred] = 1.0
        return votes

    def predict_proba(self, X: Any) -> np.ndarray:
        """Mean of the members' probabilities (soft) or vote shares (hard), (n_samples,
        n_classes), columns in the order of classes_."""
        return self._member_votes(X).mean(axis=0)

    def predict(self, X: Any) -> np.ndarray:
        """The class with the largest combined probability (ties: the first in classes_)."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def member_scores(self, X: Any, y: Any) -> Sequence[float]:
        """Each member's accuracy on (X, y)."""
        check_is_fitted(self, "estimators_")
        return [float(est.score(X, y)) for est in self.estimators_]


__all__ = ["BaggingMLPClassifier"]
