"""What the ensemble modules share: array helpers and argument checks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .._array import is_cuda_array
from ..nn import Loss, Module

Array = Any
#: build_member(seed) -> (model, loss, optimizer): a fresh, untrained member.
MemberFactory = Callable[[int], tuple[Module, Loss, Any]]

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
