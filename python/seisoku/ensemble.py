"""Ensembles: model averaging and voting, bagging, and multi-class AdaBoost (SAMME).

* `Ensemble` combines trained classifiers (seisoku.nn modules that map inputs (N, ...) to
  logits (N, K)): soft voting averages the members' softmax probabilities, hard voting counts
  their argmax votes, both with optional member weights. `disagreement` measures how often
  members differ. `save` / `load` write the whole ensemble, architecture and parameters, to
  one .npz archive (no pickle).
* `Bagging` trains each member on a bootstrap resample (or a subsample) of the training set
  with seisoku.train.Trainer, in parallel threads, and reports the out-of-bag accuracy.
* `AdaBoost` is SAMME (Zhu, Zou, Rosset and Hastie 2009, "Multi-class AdaBoost"): member m
  is trained with per-sample loss weights w (not by resampling), and its vote weight is
  alpha_m = log((1 - err_m) / err_m) + log(K - 1).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from . import _core
from ._array import array_module, is_cuda_array
from ._state_file import load_state, save_state
from .callbacks import LRSchedule
from .nn import Loss, Module, Parameter
from .optim.lr_scheduler import CosineAnnealingLR
from .random import Generator
from .train import History, Trainer, clone_model

Array = Any
#: build_member(seed) -> (model, loss, optimizer): a fresh, untrained member.
MemberFactory = Callable[[int], tuple[Module, Loss, Any]]

ENSEMBLE_KIND = "ensemble"
VOTINGS = ("soft", "hard")


def _to_numpy(a: Array) -> np.ndarray:
    return np.asarray(a.get() if is_cuda_array(a) else a)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _check_voting(voting: Any, op: str) -> str:
    if voting not in VOTINGS:
        raise ValueError(f"[{op}] argument 'voting' must be 'soft' or 'hard', got {voting!r}")
    return str(voting)


def _check_int(value: Any, name: str, op: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"[{op}] argument '{name}' must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_labels(x: Array, y: Array, op: str) -> np.ndarray:
    """y as int64 NumPy labels >= 0 matching x's sample count."""
    if not hasattr(x, "shape") or len(x.shape) < 1 or x.shape[0] == 0:
        raise ValueError(f"[{op}] argument 'x' must be an array of >= 1 samples, got {x!r:.80}")
    labels = _to_numpy(y)
    if labels.shape != (x.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(
            f"[{op}] argument 'y' must be integer class labels of shape ({x.shape[0]},), "
            f"got {labels.dtype}{labels.shape}"
        )
    if labels.min() < 0:
        raise ValueError(f"[{op}] argument 'y' must hold labels >= 0, got {int(labels.min())}")
    return labels.astype(np.int64)


def _num_classes_check(outputs: list[np.ndarray]) -> None:
    ks = [o.shape[1] if o.ndim == 2 else None for o in outputs]
    if any(k is None for k in ks) or len(set(ks)) != 1:
        shapes = [tuple(o.shape) for o in outputs]
        raise ValueError(
            f"[Ensemble] argument 'members' must all output logits (N, K) with one class count "
            f"K, got output shapes {shapes}"
        )


class Ensemble:
    """Weighted soft or hard voting over trained classifiers.

    Args:
        members: the classifiers (>= 1): seisoku.nn modules, or any callable mapping inputs
            (N, ...) to logits (N, K); every member must give the same K. Modules run in
            evaluation mode (their mode is put back afterwards).
        weights: one finite weight >= 0 per member, with a positive sum (default None: all
            equal). Only ratios matter.
        voting: 'soft' (default): the weighted mean of the members' softmax probabilities;
            'hard': the weighted share of members whose argmax is each class. SAMME's
            combination, argmax_k sum_m alpha_m [member m predicts k], is hard voting with
            weights alpha.
        batch_size: samples per forward call in prediction (default 1024).
    """

    def __init__(
        self,
        members: Sequence[Module | Callable[[Array], Array]],
        weights: Sequence[float] | np.ndarray | None = None,
        voting: str = "soft",
        batch_size: int = 1024,
    ) -> None:
        members = list(members) if isinstance(members, (list, tuple)) else members
        if not isinstance(members, list) or len(members) == 0:
            raise ValueError(
                f"[Ensemble] argument 'members' must be a non-empty list of classifiers, got "
                f"{members!r:.80}"
            )
        for i, m in enumerate(members):
            if not callable(m):
                raise ValueError(
                    f"[Ensemble] argument 'members' item {i} must be a seisoku.nn.Module or "
                    f"callable, got {type(m).__name__}"
                )
        self.members = members
        self.weights = self._check_weights(weights, len(members))
        self.voting = _check_voting(voting, "Ensemble")
        self.batch_size = _check_int(batch_size, "batch_size", "Ensemble")

    @staticmethod
    def _check_weights(weights: Any, n: int) -> np.ndarray:
        if weights is None:
            return np.full(n, 1.0 / n)
        try:
            w = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError):
            w = None
        if w is None or w.shape != (n,):
            raise ValueError(
                f"[Ensemble] argument 'weights' must hold one number per member ({n}), got "
                f"{weights!r}"
            )
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(
                f"[Ensemble] argument 'weights' must be finite, >= 0 and have a positive sum, "
                f"got {w.tolist()}"
            )
        return w / w.sum()

    def __len__(self) -> int:
        return len(self.members)

    def _logits(self, member: Any, x: Array) -> np.ndarray:
        outs = []
        was_training = getattr(member, "training", None)
        if was_training is not None:
            member.eval()
        try:
            for i in range(0, x.shape[0], self.batch_size):
                outs.append(_to_numpy(member(x[i : i + self.batch_size])).copy())
        finally:
            if was_training is not None:
                member.train(was_training)
        return np.concatenate(outs)

    def member_logits(self, x: Array) -> np.ndarray:
        """Every member's logits, stacked: (M, N, K) float64 NumPy."""
        if not hasattr(x, "shape") or len(x.shape) < 1 or x.shape[0] == 0:
            raise ValueError(
                f"[Ensemble] argument 'x' must be an array of >= 1 samples, got {x!r:.80}"
            )
        outs = [self._logits(m, x) for m in self.members]
        _num_classes_check(outs)
        return np.stack(outs).astype(np.float64)

    def member_votes(self, x: Array) -> np.ndarray:
        """Every member's vote (M, N, K): its softmax probabilities (soft voting) or the
        one-hot of its argmax (hard voting)."""
        logits = self.member_logits(x)
        if self.voting == "soft":
            return np.stack([_softmax(z) for z in logits])
        return np.eye(logits.shape[2])[logits.argmax(axis=2)]

    def predict_proba(self, x: Array) -> np.ndarray:
        """Combined class probabilities (N, K), float64, rows summing to 1: with soft voting
        the weighted mean of the members' softmax outputs, with hard voting the weighted
        share of votes per class."""
        return np.tensordot(self.weights, self.member_votes(x), axes=1)

    def predict(self, x: Array) -> np.ndarray:
        """The class (int64, (N,)) with the largest combined probability; ties go to the
        lowest class index."""
        return self.predict_proba(x).argmax(axis=1).astype(np.int64)

    def score(self, x: Array, y: Array) -> float:
        """Accuracy of predict(x) against labels y (a fraction in [0, 1])."""
        labels = _check_labels(x, y, "Ensemble.score")
        return float((self.predict(x) == labels).mean())

    def disagreement(self, x: Array) -> dict[str, float]:
        """How much the members differ on x (unweighted), as a dict of:

        * 'pairwise': the mean, over member pairs and samples, of [argmax differs], in [0, 1]
          (0 for one member);
        * 'variance': the variance of the members' softmax probabilities across members,
          averaged over samples and summed over classes (0 when all agree exactly).
        """
        logits = self.member_logits(x)
        pred = logits.argmax(axis=2)
        m = pred.shape[0]
        pairs = [(pred[i] != pred[j]).mean() for i in range(m) for j in range(i + 1, m)]
        probs = np.stack([_softmax(z) for z in logits])
        return {
            "pairwise": float(np.mean(pairs)) if pairs else 0.0,
            "variance": float(probs.var(axis=0).sum(axis=1).mean()),
        }

    # -- files -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the ensemble (voting, weights, each member's architecture and parameters)
        to one .npz archive, atomically and without pickle. Members must be modules built
        from seisoku.nn's native classes (Python subclasses cannot be rebuilt: ValueError)."""
        encoded = []
        for i, m in enumerate(self.members):
            if not isinstance(m, Module):
                raise ValueError(
                    f"[Ensemble.save] member {i} is a {type(m).__name__}, not a seisoku.nn.Module"
                )
            encoded.append(_encode_member(m, f"members[{i}]"))
        state = {"voting": self.voting, "weights": self.weights, "members": encoded}
        save_state(path, {**state, "batch_size": self.batch_size}, ENSEMBLE_KIND)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Ensemble:
        """Read an ensemble written by save(); a missing, corrupt or foreign file is a
        ValueError naming the path. Members are on the CPU, in evaluation mode."""
        state = load_state(path, ENSEMBLE_KIND)
        try:
            members = [_decode_member(tree) for tree in state["members"]]
            ens = cls(members, state["weights"], state["voting"], int(state["batch_size"]))
        except (KeyError, TypeError, IndexError, ValueError, AttributeError) as e:
            raise ValueError(f"{os.fspath(path)} is not a readable seisoku ensemble: {e}") from e
        for m in members:
            m.eval()
        return ens


# -- architecture encoding: each module as its class name and constructor arguments ------------
class _Tables:
    """Parameters and generators of one member, each stored once (sharing survives)."""

    def __init__(self) -> None:
        self.params: list[dict[str, Any]] = []
        self.gens: list[dict[str, int]] = []
        self._ids: dict[int, int] = {}
        self._alive: list[Any] = []  # keeps ids unique (and pybind11 wrappers shared)

    def param(self, p: Parameter) -> dict[str, int]:
        if id(p) not in self._ids:
            self._alive.append(p)
            value = np.array(_to_numpy(p.value), copy=True)
            self.params.append({"value": value, "name": p.name, "regularize": p.regularize})
            self._ids[id(p)] = len(self.params) - 1
        return {"__parameter__": self._ids[id(p)]}

    def gen(self, g: Generator) -> dict[str, int]:
        if id(g) not in self._ids:
            self._alive.append(g)
            self.gens.append(dict(g.state_dict()))
            self._ids[id(g)] = len(self.gens) - 1
        return {"__generator__": self._ids[id(g)]}


def _encode(value: Any, tables: _Tables, where: str) -> Any:
    if isinstance(value, Module):
        return {"__module__": _encode_module(value, tables, where)}
    if isinstance(value, Parameter):
        return tables.param(value)
    if isinstance(value, Generator):
        return tables.gen(value)
    if isinstance(value, (list, tuple)):
        return [_encode(v, tables, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _encode(v, tables, f"{where}.{k}") for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"[Ensemble.save] {where}: cannot store a {type(value).__name__}")


def _encode_member(m: Module, where: str) -> dict[str, Any]:
    tables = _Tables()
    node = _encode_module(m, tables, where)
    node["parameters"] = tables.params
    node["generators"] = tables.gens
    return node


def _encode_module(m: Module, tables: _Tables, where: str) -> dict[str, Any]:
    if type(m).__module__ != "seisoku._core.nn":
        raise ValueError(
            f"[Ensemble.save] {where} is a {type(m).__name__}, not one of seisoku.nn's native "
            "classes; save its state with Module.save instead"
        )
    args, kwargs = m._config()
    return {
        "class": type(m).__name__,
        "args": _encode(list(args), tables, where),
        "kwargs": _encode(dict(kwargs), tables, where),
    }


def _decode(value: Any, params: list[Parameter], gens: list[Generator]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__module__"}:
            return _build(value["__module__"], params, gens)
        if set(value) == {"__parameter__"}:
            return params[value["__parameter__"]]
        if set(value) == {"__generator__"}:
            return gens[value["__generator__"]]
        return {k: _decode(v, params, gens) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, params, gens) for v in value]
    return value


def _build(node: dict[str, Any], params: list[Parameter], gens: list[Generator]) -> Module:
    cls = getattr(_core.nn, node["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise ValueError(f"unknown module class {node['class']!r}")
    args = _decode(node["args"], params, gens)
    kwargs = _decode(node["kwargs"], params, gens)
    return cls(*args, **kwargs)


def _decode_member(node: dict[str, Any]) -> Module:
    params = [
        Parameter(np.ascontiguousarray(p["value"]), str(p["name"]), bool(p["regularize"]))
        for p in node["parameters"]
    ]
    gens = [Generator(int(g["seed"]), int(g["offset"])) for g in node["generators"]]
    return _build(node, params, gens)


# -- training ensembles -------------------------------------------------------------------------
class _MemberProgress:
    """One tqdm bar over the members (thread-safe) when tqdm is installed and wanted."""

    def __init__(self, enabled: bool, total: int, desc: str) -> None:
        self.bar, self.lock = None, threading.Lock()
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, unit="member", desc=desc, leave=False)

    def update(self) -> None:
        if self.bar is not None:
            with self.lock:
                self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Base:
    """What Bagging and AdaBoost share once fitted: prediction through `ensemble_`."""

    ensemble_: Ensemble
    build_member: MemberFactory
    epochs: int
    batch_size: int
    fit_kwargs: dict[str, Any]

    def _train(
        self, m: int, member_seed: int, x: Array, y: Array, sample_weight: Array | None = None
    ) -> tuple[Module, History]:
        """Member m, built from build_member(member_seed) and trained with a Trainer."""
        result = self.build_member(member_seed)
        if not isinstance(result, tuple) or len(result) != 3:
            raise ValueError(
                f"[{type(self).__name__}] build_member must return (model, loss, optimizer), "
                f"got {type(result).__name__} for member {m}"
            )
        model, loss, optimizer = result
        history = Trainer(model, loss, optimizer, progress=False).fit(
            x, y, epochs=self.epochs, batch_size=self.batch_size, sample_weight=sample_weight,
            seed=member_seed, **self.fit_kwargs,
        )  # fmt: skip
        model.eval()
        return model, history

    def _fitted(self) -> Ensemble:
        if getattr(self, "ensemble_", None) is None:
            raise ValueError(f"[{type(self).__name__}] call fit(x, y) before predicting")
        return self.ensemble_

    def predict_proba(self, x: Array) -> np.ndarray:
        """The ensemble's combined class probabilities (N, K); see Ensemble.predict_proba."""
        return self._fitted().predict_proba(x)

    def predict(self, x: Array) -> np.ndarray:
        """The ensemble's predicted classes (N,) int64."""
        return self._fitted().predict(x)

    def score(self, x: Array, y: Array) -> float:
        """Accuracy of the ensemble on (x, y)."""
        return self._fitted().score(x, y)

    def disagreement(self, x: Array) -> dict[str, float]:
        """See Ensemble.disagreement."""
        return self._fitted().disagreement(x)


def _check_factory(build_member: Any, op: str) -> None:
    if not callable(build_member):
        raise ValueError(
            f"[{op}] argument 'build_member' must be a callable seed -> (model, loss, "
            f"optimizer), got {build_member!r}"
        )


def _check_common(
    n_members: Any, epochs: Any, batch_size: Any, seed: Any, op: str
) -> tuple[int, int, int, int]:
    return (
        _check_int(n_members, "n_members", op),
        _check_int(epochs, "epochs", op),
        _check_int(batch_size, "batch_size", op),
        _check_int(seed, "seed", op, minimum=0),
    )


class Bagging(_Base):
    """Bootstrap aggregating: members trained on resamples of the training set, combined by
    voting.

    Member m draws from ``numpy.random.default_rng([seed, m])``: first its own seed s_m (an
    int in [0, 2**31 - 1), passed to build_member and used as the Trainer's shuffling seed),
    then its sample of round(max_samples * N) indices, with replacement (bootstrap=True,
    default) or without. Each member is trained with seisoku.train.Trainer.

    Args:
        build_member: build_member(s_m) -> (model, loss, optimizer), a fresh member. Give
            every random layer a seisoku.Generator of its own seeded from s_m (e.g.
            ``nn.mlp(..., generator=seisoku.Generator(s_m))``): layers that fall back on the
            process-wide generator share it across threads, and results then depend on the
            thread schedule.
        n_members: number of members (default 5).
        max_samples: fraction of N drawn for each member, in (0, 1] (default 1.0).
        bootstrap: draw with replacement (default True).
        epochs, batch_size: passed to Trainer.fit (defaults 10 and 32).
        seed: the ensemble's seed (default 0).
        n_jobs: members trained at once, one per thread (default 1: one after another).
            The native forward and backward release the GIL, so threads overlap; while
            training, seisoku's kernel thread count is divided among the jobs (at least 1
            each) and restored afterwards. Results do not depend on n_jobs.
        voting: 'soft' (default) or 'hard', see Ensemble.
        progress: one tqdm bar over the members when tqdm is installed (default True).
        fit_kwargs: more keyword arguments for every Trainer.fit (e.g. augment).

    After fit: ensemble_ (an Ensemble), members_, histories_, indices_ (each member's drawn
    sample indices), oob_mask_ ((M, N) bool: sample n was not drawn for member m),
    oob_decision_function_ ((N, K) combined probabilities of the members for which each
    sample is out of bag; NaN rows for samples drawn by every member) and oob_score_ (the
    accuracy of those combined predictions over the samples with at least one out-of-bag
    member; NaN when there are none, e.g. bootstrap=False with max_samples=1).
    """

    def __init__(
        self,
        build_member: MemberFactory,
        n_members: int = 5,
        *,
        max_samples: float = 1.0,
        bootstrap: bool = True,
        epochs: int = 10,
        batch_size: int = 32,
        seed: int = 0,
        n_jobs: int = 1,
        voting: str = "soft",
        progress: bool = True,
        fit_kwargs: dict[str, Any] | None = None,
    ) -> None:
        op = "Bagging"
        _check_factory(build_member, op)
        self.n_members, self.epochs, self.batch_size, self.seed = _check_common(
            n_members, epochs, batch_size, seed, op
        )
        if (
            isinstance(max_samples, bool)
            or not isinstance(max_samples, (int, float, np.floating))
            or not 0.0 < max_samples <= 1.0
        ):
            raise ValueError(
                f"[{op}] argument 'max_samples' must be in (0, 1], got {max_samples!r}"
            )
        self.build_member = build_member
        self.max_samples = float(max_samples)
        self.bootstrap = bool(bootstrap)
        self.n_jobs = _check_int(n_jobs, "n_jobs", op)
        self.voting = _check_voting(voting, op)
        self.progress = bool(progress)
        self.fit_kwargs = dict(fit_kwargs or {})
        self.ensemble_: Ensemble | None = None  # type: ignore[assignment]

    def draw(self, n: int) -> list[tuple[int, np.ndarray]]:
        """(s_m, sample indices) of every member for a training set of n samples."""
        size = max(1, round(self.max_samples * n))
        out = []
        for m in range(self.n_members):
            rng = np.random.default_rng([self.seed, m])
            member_seed = int(rng.integers(0, 2**31 - 1))
            if self.bootstrap:
                idx = rng.integers(0, n, size)
            else:
                idx = np.sort(rng.choice(n, size, replace=False))
            out.append((member_seed, idx.astype(np.int64)))
        return out

    def fit(self, x: Array, y: Array) -> Bagging:
        """Train the members on their samples of (x, y) and build ensemble_; returns self."""
        labels = _check_labels(x, y, "Bagging.fit")
        n = x.shape[0]
        draws = self.draw(n)

        def job(m: int) -> tuple[Module, History]:
            member_seed, idx = draws[m]
            sel = array_module(x).asarray(idx) if is_cuda_array(x) else idx
            result = self._train(m, member_seed, x[sel], y[sel])
            bar.update()
            return result

        bar = _MemberProgress(self.progress, self.n_members, "bagging")
        threads = _core.get_num_threads()
        jobs = min(self.n_jobs, self.n_members)
        try:
            if jobs == 1:
                results = [job(m) for m in range(self.n_members)]
            else:
                _core.set_num_threads(max(1, threads // jobs))
                with ThreadPoolExecutor(max_workers=jobs) as pool:
                    results = list(pool.map(job, range(self.n_members)))
        finally:
            _core.set_num_threads(threads)
            bar.close()
        self.members_ = [r[0] for r in results]
        self.histories_ = [r[1] for r in results]
        self.indices_ = [d[1] for d in draws]
        self.ensemble_ = Ensemble(self.members_, voting=self.voting)
        self._out_of_bag(x, labels)
        return self

    def _out_of_bag(self, x: Array, labels: np.ndarray) -> None:
        n = x.shape[0]
        mask = np.ones((self.n_members, n), dtype=bool)
        for m, idx in enumerate(self.indices_):
            mask[m, idx] = False
        self.oob_mask_ = mask
        votes = self.ensemble_.member_votes(x)  # (M, N, K)
        total = (votes * mask[:, :, None]).sum(axis=0)
        count = mask.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.oob_decision_function_ = total / count[:, None]
        seen = count > 0
        if seen.any():
            pred = self.oob_decision_function_[seen].argmax(axis=1)
            self.oob_score_ = float((pred == labels[seen]).mean())
        else:
            self.oob_score_ = math.nan


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
    sample_weight = N * w (mean 1; the loss of each mini-batch is its w-weighted mean, so
    every mini-batch makes a full step whatever its total weight), then
    evaluated on the training set: err_m, alpha_m and the next w come from `samme_step`.
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
    ) -> None:
        op = "AdaBoost"
        _check_factory(build_member, op)
        self.n_members, self.epochs, self.batch_size, self.seed = _check_common(
            n_members, epochs, batch_size, seed, op
        )
        self.build_member = build_member
        self.voting = _check_voting(voting, op)
        self.progress = bool(progress)
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
                model, history = self._train(m, member_seed, x, y, sw)
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


class SnapshotEnsemble(_Base):
    """Snapshot ensembles (Huang et al. 2017, "Snapshot Ensembles: Train 1, get M for free"):
    one training run of `model` under a cyclic cosine learning rate, with a copy of the model
    taken at the end of every cycle as a member.

    Cycle c runs `epochs_per_cycle` epochs of Trainer.fit (shuffling seed drawn from
    numpy.random.default_rng([seed, c])) while a CosineAnnealingLR, stepped after every
    optimizer step, takes each group's learning rate from its base value down towards
    `eta_min`: lr(t) = eta_min + (base - eta_min) (1 + cos(pi t / T)) / 2 for the cycle's step t
    of T. The optimizer's own state (e.g. momentum) carries over between cycles.

    Args:
        model, loss, optimizer: the one network to train and how (the optimizer needs
            param_groups, as seisoku.optim's optimizers have).
        n_cycles: cycles, hence members (default 5).
        epochs_per_cycle: epochs per cycle (default 10).
        batch_size: samples per step (default 32).
        eta_min: the learning rate at the end of each cycle (default 0).
        seed: seed of the shuffling seeds (default 0).
        voting: 'soft' (default) or 'hard', see Ensemble.
        progress: one tqdm bar over the cycles when tqdm is installed (default True).
        fit_kwargs: more keyword arguments for every Trainer.fit.

    After fit: ensemble_, members_ (independent copies, in evaluation mode), histories_.
    """

    def __init__(
        self,
        model: Module,
        loss: Loss,
        optimizer: Any,
        n_cycles: int = 5,
        *,
        epochs_per_cycle: int = 10,
        batch_size: int = 32,
        eta_min: float = 0.0,
        seed: int = 0,
        voting: str = "soft",
        progress: bool = True,
        fit_kwargs: dict[str, Any] | None = None,
    ) -> None:
        op = "SnapshotEnsemble"
        if not isinstance(model, Module):
            raise ValueError(f"[{op}] argument 'model' must be a seisoku.nn.Module, got {model!r}")
        if not hasattr(optimizer, "param_groups"):
            raise ValueError(
                f"[{op}] argument 'optimizer' must have param_groups, got "
                f"{type(optimizer).__name__}"
            )
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.n_cycles = _check_int(n_cycles, "n_cycles", op)
        self.epochs_per_cycle = _check_int(epochs_per_cycle, "epochs_per_cycle", op)
        self.batch_size = _check_int(batch_size, "batch_size", op)
        self.seed = _check_int(seed, "seed", op, minimum=0)
        if not (isinstance(eta_min, (int, float)) and math.isfinite(eta_min) and eta_min >= 0):
            raise ValueError(f"[{op}] argument 'eta_min' must be finite and >= 0, got {eta_min!r}")
        self.eta_min = float(eta_min)
        self.voting = _check_voting(voting, op)
        self.progress = bool(progress)
        self.fit_kwargs = dict(fit_kwargs or {})
        self.ensemble_: Ensemble | None = None  # type: ignore[assignment]

    def fit(self, x: Array, y: Array) -> SnapshotEnsemble:
        """Run the cycles on (x, y) and build ensemble_ from the snapshots; returns self."""
        _check_labels(x, y, "SnapshotEnsemble.fit")
        steps = self.epochs_per_cycle * -(-x.shape[0] // self.batch_size)
        self.members_, self.histories_ = [], []
        bar = _MemberProgress(self.progress, self.n_cycles, "snapshots")
        try:
            for c in range(self.n_cycles):
                schedule = CosineAnnealingLR(self.optimizer, T_max=steps, eta_min=self.eta_min)
                trainer = Trainer(
                    self.model, self.loss, self.optimizer, [LRSchedule(schedule, "step")], False
                )
                seed = int(np.random.default_rng([self.seed, c]).integers(0, 2**31 - 1))
                self.histories_.append(
                    trainer.fit(
                        x,
                        y,
                        epochs=self.epochs_per_cycle,
                        batch_size=self.batch_size,
                        seed=seed,
                        **self.fit_kwargs,
                    )
                )
                snapshot = clone_model(self.model)
                snapshot.eval()
                self.members_.append(snapshot)
                bar.update()
        finally:
            bar.close()
        self.ensemble_ = Ensemble(self.members_, voting=self.voting)
        return self
