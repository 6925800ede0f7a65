"""Sparse layers from pruned ones: a pruned Linear kept as compressed sparse rows.

After pruning (seisoku.prune.magnitude_prune, PruneSchedule) most weights of a Linear are exactly
zero, but its dense product still multiplies them all. :func:`to_sparse` replaces every Linear
of a model whose weight is at least ``min_sparsity`` zeros by a :class:`SparseLinear` holding the
nonzero weights only (CSR): its forward and backward multiply those only (own CPU kernels with
OpenMP and AVX2 / AVX-512, and CUDA twins), several times faster than dense at 90-95% zeros
(``python bench/bench_sparse.py``). Its parameters are the stored values and the bias, so
fine-tuning keeps the pattern without masks. :func:`to_dense` converts back.

Example::

    masks = sei.prune.magnitude_prune(model, 0.95)
    fast = sei.sparse.to_sparse(model)            # a new Sequential; `model` is unchanged
    y = fast(x)                                   # equals model(x) up to rounding
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from . import _core, nn
from ._array import array_module

SparseLinear = _core.nn.SparseLinear


def _check_model(model: Any, op: str) -> None:
    if not isinstance(model, (nn.Linear, SparseLinear, nn.Sequential)):
        raise ValueError(
            f"[{op}] argument 'model' must be a seisoku.nn.Linear, SparseLinear or Sequential "
            f"(nested Sequentials included), got {model!r}"
        )


def _sparsity(layer: nn.Linear) -> float:
    w = layer.weight.value
    return 1.0 - int(array_module(w).count_nonzero(w)) / w.size


def _shared(model: nn.Module) -> set[int]:
    """ids of the Parameters that more than one layer of the model uses."""
    counts: dict[int, int] = {}
    held = []  # keeps the Parameters alive while their ids are compared

    def visit(m: nn.Module) -> None:
        if isinstance(m, nn.Sequential):
            for layer in m:
                visit(layer)
            return
        for _, p in m.named_parameters():
            held.append(p)
            counts[id(p)] = counts.get(id(p), 0) + 1

    visit(model)
    return {i for i, c in counts.items() if c > 1}


def _convert(model: nn.Module, convert: Any) -> nn.Module:
    if isinstance(model, nn.Sequential):
        new = nn.Sequential(*[_convert(layer, convert) for layer in model])
        new._set_training(model.training)
        return new
    return convert(model)


def to_sparse(model: nn.Module, min_sparsity: float = 0.5) -> nn.Module:
    """A copy of `model` in which every Linear whose weight has at least the fraction
    `min_sparsity` of exactly-zero entries is a SparseLinear (its nonzero weights in CSR, a copy
    of its bias, the same activation, dropout, mode and device).

    Args:
        model: a seisoku.nn.Linear or Sequential (nested Sequentials are kept as they are).
        min_sparsity: fraction in [0, 1] of zero weights from which a Linear is converted
            (default 0.5: below about half zeros the dense product is faster). Linears whose
            weight another layer shares (TiedLinear) stay dense.

    Returns the new model; `model` is unchanged. Raises ValueError when no Linear qualifies
    (naming the sparsities seen) or a weight to convert holds NaN or Inf.
    """
    op = "to_sparse"
    _check_model(model, op)
    if (
        isinstance(min_sparsity, (bool, np.bool_))
        or not isinstance(min_sparsity, (int, float, np.integer, np.floating))
        or not 0.0 <= float(min_sparsity) <= 1.0
    ):
        raise ValueError(
            f"[{op}] argument 'min_sparsity' must be a number in [0, 1], got {min_sparsity!r}"
        )
    model = copy.deepcopy(model)
    shared = _shared(model)
    seen: list[str] = []
    converted = 0

    def convert(layer: nn.Module) -> nn.Module:
        nonlocal converted
        if type(layer) is not nn.Linear:
            return layer
        s = _sparsity(layer)
        seen.append(f"{s:.3f}")
        if s < min_sparsity or id(layer.weight) in shared:
            return layer
        converted += 1
        return SparseLinear.from_dense(layer)

    new = _convert(model, convert)
    if converted == 0:
        raise ValueError(
            f"[{op}] argument 'model' has no Linear layer (not shared) whose weight is at least "
            f"{float(min_sparsity):g} zeros (sparsities of its Linear layers: {seen or 'none'}); "
            "prune it first (seisoku.prune.magnitude_prune) or lower min_sparsity"
        )
    return new


def to_dense(model: nn.Module) -> nn.Module:
    """A copy of `model` in which every SparseLinear is the equivalent dense Linear (zeros where
    pruned); `model` is a SparseLinear, Linear or Sequential, and is unchanged."""
    _check_model(model, "to_dense")
    return _convert(
        copy.deepcopy(model), lambda m: m.to_dense() if isinstance(m, SparseLinear) else m
    )


__all__ = ["SparseLinear", "to_dense", "to_sparse"]
