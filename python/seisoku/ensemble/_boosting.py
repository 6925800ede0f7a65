"""Multi-class AdaBoost (SAMME) with neural-network members trained through per-sample loss
weights."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._array import array_module, is_cuda_array
from ..nn import Module
from ._common import (
    Array,
    MemberFactory,
    _check_common,
    _check_factory,
    _check_int,
    _check_labels,
    _check_voting,
    _MemberProgress,
)
from ._members import _Base
from ._voting import Ensemble


def samme_step(
    sample_weight: np.ndarray, miss: np.ndarray, n_classes: int
) -> tuple[float, float, np.ndarray]:
    """One SAMME round: (err, alpha, new weights) from the weights w a member was trained
    with and its mistakes miss[i] = [pred_i != y_i].

    err = sum(w * miss) / sum(w); alpha = log((1 - err) / err) + log(K - 1); the new weights
    are w * exp(alpha * miss), normalized to sum 1. err is clipped below at 1e-10 for alpha, so
    a member without mistakes gets a large, finite alpha. The caller stops when
    err >= 1 - 1/K (the member is no better than chance).
    """
    k = _check_int(n_classes, "n_classes", "samme_step", minimum=2)
    w = np.asarray(sample_weight, dtype=np.float64)
    wrong = np.asarray(miss, dtype=bool)
    if w.ndim != 1 or wrong.shape != w.shape:
        raise ValueError(
            f"[samme_step] arguments 'sample_weight' and 'miss' must be 1-d of one length, got "
            f"shapes {w.shape} and {wrong.shape}"
        )
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("[samme_step] argument 'sample_weight' must be finite, >= 0, sum > 0")
    err = float((w * wrong).sum() / w.sum())
    e = max(err, 1e-10)
    alpha = math.log((1.0 - e) / e) + math.log(k - 1)
    new = w * np.exp(alpha * wrong)
    return err, alpha, new / new.sum()


class AdaBoost(_Base):
    """Multi-class AdaBoost, SAMME (Zhu et al. 2009), with neural-network members trained
    through per-sample loss weights.

    Starting from w_i = 1/N, member m is trained by Trainer.fit with
    sample_weight = N * w (mean 1) and its loss wrapped in PerSampleWeightLoss, so that a
    mini-batch's loss is sum_i w_i l_i / |B|: over an epoch the member descends the weighted
    objective sum_i w_i l_i, and a batch of heavily weighted samples makes a larger step than
    one of lightly weighted samples (seisoku's losses alone would divide each batch by its
    own total weight, making every batch's step the same size), then evaluated on the
    training set: err_m, alpha_m and the next w come from `samme_step`.
    Boosting stops early when err_m >= 1 - 1/K, to 1e-12 (that member is dropped; if it is
    the first, it is kept with alpha 1 so that the ensemble is not empty) or when err_m == 0
    (kept).

    Args:
        build_member: build_member(s_m) -> (model, loss, optimizer), a fresh member; s_m is
            drawn from numpy.random.default_rng([seed, m]) and is also the shuffling seed.
        n_members: most members to train (default 10).
        epochs, batch_size: passed to Trainer.fit (defaults 10 and 32).
        seed: the ensemble's seed (default 0).
        voting: 'hard' (default): SAMME's combination argmax_k sum_m alpha_m [h_m(x) = k];
            'soft': the alpha-weighted mean of the members' softmax probabilities.
        progress: one tqdm bar over the members when tqdm is installed (default True).
        fit_kwargs: more keyword arguments for every Trainer.fit.
        per_sample_weights: wrap each member's loss in PerSampleWeightLoss (default True);
            False keeps the loss's own per-batch weighted mean.

    After fit: ensemble_ (weights alpha), members_, alphas_, errors_ (err_m of every trained
    member, the dropped one included), sample_weights_ ((M, N): the normalized w each kept
    member was trained with), histories_, n_classes_, stop_reason_.
    """

    def __init__(
        self,
        build_member: MemberFactory,
        n_members: int = 10,
        *,
        epochs: int = 10,
        batch_size: int = 32,
        seed: int = 0,
        voting: str = "hard",
        progress: bool = True,
        fit_kwargs: dict[str, Any] | None = None,
        per_sample_weights: bool = True,
    ) -> None:
        op = "AdaBoost"
        _check_factory(build_member, op)
        self.n_members, self.epochs, self.batch_size, self.seed = _check_common(
            n_members, epochs, batch_size, seed, op
        )
        self.build_member = build_member
        self.voting = _check_voting(voting, op)
        self.progress = bool(progress)
        self.per_sample_weights = bool(per_sample_weights)
        self.fit_kwargs = dict(fit_kwargs or {})
        self.ensemble_: Ensemble | None = None  # type: ignore[assignment]

    def fit(self, x: Array, y: Array) -> AdaBoost:
        """Boost members on (x, y) and build ensemble_; returns self."""
        labels = _check_labels(x, y, "AdaBoost.fit")
        n = x.shape[0]
        w = np.full(n, 1.0 / n)
        members: list[Module] = []
        self.alphas_, self.errors_, self.histories_ = [], [], []
        weights_used: list[np.ndarray] = []
        self.stop_reason_ = f"trained n_members={self.n_members}"
        bar = _MemberProgress(self.progress, self.n_members, "boosting")
        try:
            for m in range(self.n_members):
                member_seed = int(np.random.default_rng([self.seed, m]).integers(0, 2**31 - 1))
                sw = (w * n).astype(x.dtype if x.dtype.kind == "f" else np.float32)
                if is_cuda_array(x):
                    sw = array_module(x).asarray(sw)
                model, history = self._train(m, member_seed, x, y, sw, self.per_sample_weights)
                bar.update()
                logits = Ensemble([model])._logits(model, x)
                k = logits.shape[1]
                if k < 2 or labels.max() >= k:
                    raise ValueError(
                        f"[AdaBoost] members must output K >= 2 logits covering the labels, got "
                        f"K={k} for labels up to {int(labels.max())}"
                    )
                self.n_classes_ = k
                miss = logits.argmax(axis=1) != labels
                err, alpha, new_w = samme_step(w, miss, k)
                self.errors_.append(err)
                if err >= 1.0 - 1.0 / k - 1e-12:  # no better than chance (to rounding)
                    self.stop_reason_ = f"member {m} has error {err:.4f} >= 1 - 1/K"
                    if not members:
                        members, self.alphas_ = [model], [1.0]
                        weights_used.append(w.copy())
                        self.histories_.append(history)
                    break
                members.append(model)
                self.alphas_.append(alpha)
                weights_used.append(w.copy())
                self.histories_.append(history)
                if err == 0.0:
                    self.stop_reason_ = f"member {m} has no training error"
                    break
                w = new_w
        finally:
            bar.close()
        self.members_ = members
        self.sample_weights_ = np.stack(weights_used)
        self.ensemble_ = Ensemble(members, weights=self.alphas_, voting=self.voting)
        return self
