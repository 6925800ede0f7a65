"""Ensemble: weighted soft or hard voting over trained classifiers, and its .npz file."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import _core
from .._state_file import load_state, save_state
from ..nn import Module, Parameter
from ..random import Generator
from ._common import (
    Array,
    _check_int,
    _check_labels,
    _check_voting,
    _num_classes_check,
    _softmax,
    _to_numpy,
)

ENSEMBLE_KIND = "ensemble"


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
