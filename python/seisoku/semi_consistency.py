"""Consistency regularization: the network should give the same answer for two augmentations
of one unlabeled image.

Two losses on the unlabeled rows, beside the cross-entropy of the labeled ones:

* FixMatch (Sohn et al. 2020, "FixMatch: Simplifying Semi-Supervised Learning with Consistency
  and Confidence"): the class q_j = argmax f(weak(x_j)) predicted for a weakly augmented view
  (no gradient) is the target of a strongly augmented view, where its confidence
  max softmax f(weak(x_j)) >= threshold:

      L = (1/B) sum_labeled CE(f(weak(x_i)), y_i)
          + lambda(t) (1/(mu B)) sum_unlabeled 1[conf_j >= threshold] CE(f(strong(x_j)), q_j)

  Sohn et al. use threshold 0.95, lambda = 1 and mu = 7 unlabeled rows per labeled row.
* The Pi-model (Laine and Aila 2017, "Temporal Ensembling for Semi-Supervised Learning"): two
  stochastic views of x_j (augmentation and the network's own dropout or noise) and the mean
  squared difference of their softmax outputs, gradient through both,

      L = (1/B) sum_labeled CE + lambda(t) (1/(mu B)) sum_unlabeled ||p(v1_j) - p(v2_j)||^2.

lambda(t) is seisoku.semi.ramp_weight over epochs (alpha_f, t1, t2).

Batches: every optimizer step draws B labeled rows and mu * B unlabeled rows (mu configurable)
as FixMatch does. The Trainer's rows are groups of indices, one labeled row and mu unlabeled ones
(an epoch covers every unlabeled row once, the labeled rows cycling); the trainer's augment hook
turns a batch of groups into the network's input [labeled views; unlabeled views] and tells the
loss how the batch is made. So callbacks, validation data, early stopping, checkpoints and an
exact resume work as in any Trainer.fit.

Label-aware augmentation (seisoku.augment's label_map) follows the same rules here as in
supervised training: a labeled row's target is the label its transforms leave. An unlabeled row
takes as its label the model's guess (FixMatch: the weak view's pseudo-label, for the strong view's
rules; Pi-model: the argmax on the clean row, for both views): a transform that would skip that
class is not applied, one that relabels it changes the strong view's target (FixMatch), and a
Pi-model row whose two views end with different labels has no like-for-like pair and is left out
of the consistency term. FixMatch draws the weak view of unlabeled rows without labels, so keep
the weak pipeline free of label-changing transforms when there are unlabeled rows (fit raises
a ValueError otherwise).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._array import array_module, require_array
from .augment import Compose
from .callbacks import Callback
from .nn import Loss, Module
from .nn.functional import cross_entropy
from .semi import (
    DEFAULT_THRESHOLD,
    UNLABELED,
    _check_schedule,
    _check_threshold,
    check_labels,
    ramp_weight,
)
from .semi_ema import WeightEMA, check_decay
from .train import History, Trainer

Array = Any

METHODS = ("fixmatch", "pi")
#: FixMatch's ratio of unlabeled to labeled rows in a batch.
DEFAULT_MU = 7
_SECTION = 1 << 22  # sample-offset stride between the views of one step
_STEP = 1 << 25  # sample-offset stride between steps


def _softmax(z: Array) -> Array:
    xp = array_module(z)
    e = xp.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class _Batch:
    """How the hook built the batch the loss sees next: n labeled rows first, then the
    unlabeled views."""

    labels: Array  # (n,) targets of the labeled rows (after relabelling)
    n_unlabeled: int
    targets: Array | None = None  # fixmatch: (n_u,) pseudo-labels of the strong views
    mask: Array | None = None  # (n_u,) float weights 0/1 of the unlabeled rows


class ConsistencyLoss(Loss):
    """Cross-entropy on labeled rows plus lambda(epoch) times the FixMatch or Pi-model term on
    the unlabeled rows of a batch built by ConsistencyTrainer (see the module docstring).

    Args:
        method: 'fixmatch' (default) or 'pi'.
        alpha_f, t1, t2: the ramp of lambda over epochs (seisoku.semi.ramp_weight; defaults:
            fixmatch 1, 0, 0 (constant 1, Sohn et al.); pi 1, 0, 20: on the digits a final
            weight of 3 or more over these probabilities loses accuracy, 50 collapses).
        label_smoothing: of the labeled rows' cross-entropy (default 0).

    Outside a training step (evaluate), it is the plain cross-entropy of (pred, target).
    After a training forward, `last_stats` holds labeled, unlabeled, selected (rows in the
    consistency term), alpha, consistency (the unweighted term) and correct (labeled rows
    classified right).
    """

    classification = True

    def __init__(
        self,
        method: str = "fixmatch",
        *,
        alpha_f: float | None = None,
        t1: int | None = None,
        t2: int | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        op = type(self).__name__
        if method not in METHODS:
            raise ValueError(f"[{op}] argument 'method' must be one of {METHODS}, got {method!r}")
        defaults = (1.0, 0, 0) if method == "fixmatch" else (1.0, 0, 20)
        self.method = method
        self.alpha_f, self.t1, self.t2 = _check_schedule(
            defaults[0] if alpha_f is None else alpha_f,
            defaults[1] if t1 is None else t1,
            defaults[2] if t2 is None else t2,
            op,
        )
        ls = label_smoothing
        if isinstance(ls, bool) or not isinstance(ls, numbers.Real) or not 0.0 <= ls < 1.0:
            raise ValueError(f"[{op}] argument 'label_smoothing' must be in [0, 1), got {ls!r}")
        self.label_smoothing = float(ls)
        self.epoch = 0
        self.pending: _Batch | None = None
        self.last_stats: dict[str, float] = {}
        self._grad: Array | None = None

    def _config(self) -> tuple[tuple, dict[str, Any]]:
        return (self.method,), {
            "alpha_f": self.alpha_f,
            "t1": self.t1,
            "t2": self.t2,
            "label_smoothing": self.label_smoothing,
        }

    @property
    def alpha(self) -> float:
        """lambda at the current epoch."""
        return ramp_weight(self.epoch, self.alpha_f, self.t1, self.t2)

    def forward(self, pred: Array, target: Array, sample_weight: Array | None = None) -> Array:
        """The loss of logits pred against target (see the class docstring); its gradient is
        kept for backward()."""
        op = type(self).__name__
        require_array(pred, "pred", op)
        batch, self.pending = self.pending, None
        if batch is None:  # evaluation: plain cross-entropy
            res = cross_entropy(
                pred, target, label_smoothing=self.label_smoothing, sample_weight=sample_weight
            )
            self._grad = res.grad
            return res.loss
        if sample_weight is not None:
            raise ValueError(f"[{op}] argument 'sample_weight' is not supported, got an array")
        xp = array_module(pred)
        n, n_u = int(batch.labels.shape[0]), batch.n_unlabeled
        views = 1 if self.method == "fixmatch" else 2
        if pred.shape[0] != n + views * n_u:
            raise ValueError(
                f"[{op}] argument 'pred' must have {n + views * n_u} rows (the batch the hook "
                f"built), got {pred.shape[0]}"
            )
        grad = xp.zeros_like(pred)
        res = cross_entropy(pred[:n], batch.labels, label_smoothing=self.label_smoothing)
        total = float(res.loss)
        grad[:n] = res.grad
        alpha = self.alpha
        consistency, selected = 0.0, 0.0
        if n_u and batch.mask is not None:
            mask = batch.mask
            selected = float(mask.sum())
            if self.method == "fixmatch":
                if selected > 0:
                    w = (mask / n_u).astype(pred.dtype)
                    # cross_entropy with weights w is sum w l / sum w; undo the division.
                    r = cross_entropy(pred[n:], batch.targets, sample_weight=w)
                    scale = float(w.sum())
                    consistency = float(r.loss) * scale
                    grad[n:] = r.grad * pred.dtype.type(scale * alpha)
            else:
                z1, z2 = pred[n : n + n_u].astype(xp.float64), pred[n + n_u :].astype(xp.float64)
                p, q = _softmax(z1), _softmax(z2)
                d = (p - q) * mask[:, None]
                consistency = float((d * (p - q)).sum()) / n_u
                # d||p - q||^2 / dz1 = J_p^T 2 d with J_p = diag(p) - p p^T (and -d for z2).
                g1 = 2.0 * (p * d - p * (p * d).sum(axis=1, keepdims=True)) / n_u
                g2 = -2.0 * (q * d - q * (q * d).sum(axis=1, keepdims=True)) / n_u
                grad[n : n + n_u] = (alpha * g1).astype(pred.dtype)
                grad[n + n_u :] = (alpha * g2).astype(pred.dtype)
            total += alpha * consistency
        self._grad = grad
        self.last_stats = {
            "labeled": float(n),
            "unlabeled": float(n_u),
            "selected": selected,
            "alpha": alpha,
            "consistency": consistency,
            "correct": float((pred[:n].argmax(axis=1) == batch.labels).sum()),
        }
        return xp.asarray(total, dtype=pred.dtype)

    def backward(self) -> Array:
        """d(loss)/d(pred) of the last forward (pseudo-labels and masks held constant)."""
        if self._grad is None:
            raise ValueError(f"[{type(self).__name__}] backward() needs a forward() first")
        return self._grad


def _check_pipeline(value: Any, name: str, op: str) -> Compose | None:
    if value is None or isinstance(value, Compose):
        return value
    raise ValueError(
        f"[{op}] argument '{name}' must be a seisoku.augment.Compose or None, got {value!r}"
    )


def _has_rules(pipeline: Compose | None) -> bool:
    return pipeline is not None and any(t.label_map or t.skip_labels for t in pipeline.transforms)


class ConsistencyTrainer(Trainer):
    """A seisoku.train.Trainer for FixMatch or the Pi-model on labeled and unlabeled rows
    (label -1); see the module docstring.

    Args:
        model: a classifier giving logits (N, K).
        optimizer: over the model's parameters.
        method: 'fixmatch' (default) or 'pi'.
        weak: augmentation of the labeled rows and FixMatch's weak view (a Compose, or None:
            no augmentation).
        strong: FixMatch's strong view and the Pi-model's two views (None: `weak`).
        threshold: FixMatch's confidence threshold in (0, 1] (default 0.95).
        mu: unlabeled rows per labeled row in a batch, an int >= 1 (default 7).
        image_shape: the shape of one image, e.g. (1, 8, 8), when rows are flat (default None:
            rows are images already).
        alpha_f, t1, t2, label_smoothing: as for ConsistencyLoss.
        ema_decay: None (default) or d in [0, 1): keep an exponential moving average of the
            parameters over the optimizer steps (seisoku.semi_ema.WeightEMA, appended to the
            callbacks and kept in checkpoints) that replaces them when fit ends, so evaluate
            and predict use it (FixMatch evaluates an EMA with d = 0.999). Pseudo-labels
            during the fit come from the raw parameters. The callback is `self.ema`.
        distribution_alignment: FixMatch: 0 (default, off) or N >= 1, ReMixMatch's
            distribution alignment (Berthelot et al. 2020, who average N = 128 batches): the
            weak views' class probabilities p are multiplied by the labeled rows' class
            frequencies over the mean of p over the last N steps' unlabeled rows, then
            renormalized, before the argmax and the threshold. The history is kept in
            checkpoints.
        callbacks, progress: as for Trainer.

    fit(x, y, **kw): y holds -1 for unlabeled rows; batch_size counts labeled rows (each step
    also takes mu * batch_size unlabeled ones); other keywords go to Trainer.fit (validation
    data must be fully labeled; sample_weight and validation_split are not supported). With
    no unlabeled row it is supervised training whose augmentation may relabel (label_map).
    """

    def __init__(
        self,
        model: Module,
        optimizer: Any,
        *,
        method: str = "fixmatch",
        weak: Compose | None = None,
        strong: Compose | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        mu: int = DEFAULT_MU,
        image_shape: Sequence[int] | None = None,
        alpha_f: float | None = None,
        t1: int | None = None,
        t2: int | None = None,
        label_smoothing: float = 0.0,
        ema_decay: float | None = None,
        distribution_alignment: int = 0,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
    ) -> None:
        op = type(self).__name__
        loss = ConsistencyLoss(
            method, alpha_f=alpha_f, t1=t1, t2=t2, label_smoothing=label_smoothing
        )
        self.ema = None if ema_decay is None else WeightEMA(check_decay(ema_decay, op, "ema_decay"))
        callbacks = [*callbacks, *([self.ema] if self.ema is not None else [])]
        super().__init__(model, loss, optimizer, callbacks=callbacks, progress=progress)
        self.threshold = _check_threshold(threshold, op)
        if isinstance(mu, bool) or not isinstance(mu, (int, np.integer)) or mu < 1:
            raise ValueError(f"[{op}] argument 'mu' must be an int >= 1, got {mu!r}")
        self.mu = int(mu)
        da = distribution_alignment
        if isinstance(da, bool) or not isinstance(da, (int, np.integer)) or da < 0:
            raise ValueError(
                f"[{op}] argument 'distribution_alignment' must be an int >= 0, got {da!r}"
            )
        self.distribution_alignment = int(da)
        self._prior: Array | None = None  # labeled class frequencies (K,)
        self._means: list[Array] = []  # mean weak-view probabilities of the last steps
        self.weak = _check_pipeline(weak, "weak", op)
        self.strong = _check_pipeline(strong, "strong", op) or self.weak
        if image_shape is not None:
            image_shape = tuple(int(v) for v in image_shape)
        self.image_shape = image_shape
        self._data: tuple[Array, Array] | None = None

    def _run_epoch(self, *args: Any, **kwargs: Any) -> None:
        self.loss.epoch = self.epoch
        super()._run_epoch(*args, **kwargs)

    def _correct(self, out: Array, y: Array) -> float:  # type: ignore[override]
        if out.shape[0] != y.shape[0]:  # a training batch: the loss counted its labeled rows
            return self.loss.last_stats.get("correct", 0.0)
        return float((out.argmax(axis=1) == y).sum())

    # -- augmentation of one batch ---------------------------------------------------------
    def _apply(
        self, pipe: Compose | None, x: Array, labels: Array | None, offset: int
    ) -> tuple[Array, Array | None]:
        """x through the pipeline (flat rows reshaped to images and back), with the labels
        after it when labels are given."""
        if pipe is None or x.shape[0] == 0:
            return x, labels
        flat = self.image_shape is not None and x.ndim == 2
        xi = x.reshape((x.shape[0], *self.image_shape)) if flat else x
        if labels is not None:
            out, labels = pipe(xi, labels=labels, sample_offset=offset, return_labels=True)
        else:
            out = pipe(xi, sample_offset=offset)
        out = out.copy()  # a Compose reuses its result buffers
        return (out.reshape((x.shape[0], -1)) if flat else out), labels

    def _guess(self, x: Array) -> tuple[Array, Array]:
        """(argmax, confidence) of the model in evaluation mode (no generator draws)."""
        p = _softmax(self.predict(x).astype(np.float64))
        return p.argmax(axis=1), p.max(axis=1)

    def _align(self, p: Array) -> Array:
        """Distribution alignment of the probabilities p (n_u, K) of one step's weak views:
        p * prior / mean(p over the last N steps), rows renormalized."""
        xp = array_module(p)
        self._means.append(p.mean(axis=0))
        del self._means[: -self.distribution_alignment]
        q = p * (self._prior / xp.stack(self._means).mean(axis=0))
        return q / q.sum(axis=1, keepdims=True)

    def state_dict(self) -> dict[str, Any]:
        """Trainer.state_dict plus the distribution-alignment history."""
        state = super().state_dict()
        means = [np.asarray(_host(m)) for m in self._means]
        state["alignment"] = {"means": np.stack(means) if means else np.zeros((0, 0))}
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        super()._load_state(state)
        xp = np if self._data is None else array_module(self._data[0])
        saved = state.get("alignment", {}).get("means", ())  # none in older checkpoints
        self._means = [xp.asarray(m) for m in saved]

    def _hook(self, groups: Array, step: int) -> Array:
        xs, ys = self._data  # type: ignore[misc]
        xp = array_module(xs)
        base = int(step) * _STEP
        lab, unl = groups[:, 0], groups[:, 1:].reshape(-1)
        yl = ys[lab]
        xl, new = self._apply(self.weak, xs[lab], yl if _has_rules(self.weak) else None, base)
        yl = yl if new is None else new
        n_u = int(unl.shape[0])
        batch = _Batch(labels=yl, n_unlabeled=n_u)
        parts = [xl]
        if n_u:
            xu = xs[unl]
            if self.loss.method == "fixmatch":
                xw, _ = self._apply(self.weak, xu, None, base + _SECTION)
                if self.distribution_alignment:
                    p = self._align(_softmax(self.predict(xw).astype(np.float64)))
                    pseudo, conf = p.argmax(axis=1), p.max(axis=1)
                else:
                    pseudo, conf = self._guess(xw)
                rules = _has_rules(self.strong)
                xs_, target = self._apply(
                    self.strong, xu, pseudo if rules else None, base + 2 * _SECTION
                )
                batch.targets = pseudo if target is None else target
                batch.mask = (conf >= self.threshold).astype(xp.float64)
                parts.append(xs_)
            else:
                rules = _has_rules(self.strong)
                guess = self._guess(xu)[0] if rules else None
                v1, g1 = self._apply(self.strong, xu, guess, base + _SECTION)
                v2, g2 = self._apply(self.strong, xu, guess, base + 2 * _SECTION)
                same = xp.ones(n_u, dtype=bool) if guess is None else g1 == g2
                batch.mask = same.astype(xp.float64)
                parts += [v1, v2]
        self.loss.pending = batch
        return xp.concatenate(parts)

    def fit(  # type: ignore[override]
        self,
        x: Array,
        y: Array,
        *,
        sample_weight: Array | None = None,
        validation_split: float = 0.0,
        augment: Any = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> History:
        """Train on x (N, ...) with labels y (N,), -1 marking unlabeled rows, and return the
        History; batch_size (Trainer.fit's keyword) counts labeled rows per step."""
        op = f"{type(self).__name__}.fit"
        if sample_weight is not None or validation_split or augment is not None:
            raise ValueError(
                f"[{op}] sample_weight, validation_split and augment are not supported (give "
                f"validation_data; the augmentation is the trainer's weak/strong), got "
                f"sample_weight={type(sample_weight).__name__}, validation_split="
                f"{validation_split!r}, augment={augment!r}"
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
        for name, pipe in (("weak", self.weak), ("strong", self.strong)):
            check_label_map(pipe, classes, f"{type(self).__name__}", name)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"[{op}] argument 'seed' must be an int >= 0, got {seed!r}")
        host_y = np.asarray(_host(y))
        relabels = self.weak is not None and self.weak.relabels
        if self.loss.method == "fixmatch" and relabels and (host_y == UNLABELED).any():
            raise ValueError(
                f"[{type(self).__name__}] argument 'weak' must not relabel samples with method "
                "'fixmatch' and unlabeled rows (their weak views are drawn before their "
                "pseudo-labels exist); put label-changing transforms in 'strong'"
            )
        groups = make_groups(host_y, self.mu, int(seed))
        xp = array_module(x)
        self._data = (x, y.astype(xp.int64))
        counts = np.bincount(host_y[host_y != UNLABELED], minlength=classes).astype(np.float64)
        self._prior = xp.asarray(counts / counts.sum())
        self._means = []
        gx = xp.asarray(groups)
        gy = self._data[1][gx[:, 0]]
        try:
            return super().fit(gx, gy, augment=self._hook, seed=seed, **kwargs)
        finally:
            self.loss.pending = None


def _host(a: Array) -> np.ndarray:
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def make_groups(y: np.ndarray, mu: int, seed: int) -> np.ndarray:
    """The index groups (M, 1 + mu) of ConsistencyTrainer: column 0 a labeled row (cycling
    through a permutation of them), columns 1.. every unlabeled row once (a permutation,
    wrapped to fill the last group); M = ceil(unlabeled / mu), or the labeled count (one
    column) when no row is unlabeled."""
    rng = np.random.default_rng([seed, 0x5E31])
    lab = rng.permutation(np.flatnonzero(y != UNLABELED))
    unl = rng.permutation(np.flatnonzero(y == UNLABELED))
    if unl.size == 0:
        return lab[:, None].astype(np.int64)
    m = -(-unl.size // mu)
    u = np.resize(unl, m * mu).reshape(m, mu)
    lcol = np.resize(lab, m)
    return np.concatenate([lcol[:, None], u], axis=1).astype(np.int64)


def check_label_map(pipe: Compose | None, classes: int, owner: str, name: str) -> None:
    """ValueError unless every label in the label_maps and skip_labels of pipe's transforms is
    a class in [0, classes) (an unknown class is a typo that would silently do nothing)."""
    if pipe is None:
        return
    for t in pipe.transforms:
        for k, v in t.label_map.items():
            for label in (k, v):
                if label != "skip" and not 0 <= int(label) < classes:
                    raise ValueError(
                        f"[{owner}] argument '{name}' has {type(t).__name__} label_map entry "
                        f"{{{k}: {v!r}}}; labels must be classes in [0, {classes}), got {label}"
                    )


__all__ = [
    "DEFAULT_MU",
    "METHODS",
    "ConsistencyLoss",
    "ConsistencyTrainer",
    "check_label_map",
    "make_groups",
]
