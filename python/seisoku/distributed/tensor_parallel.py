"""Tensor-parallel Linear layers: one Linear's weight split over the ranks of a communicator.

With ``y = x @ W.T + b`` and ``W`` of shape (out, in):

* :class:`ColumnParallelLinear` splits the outputs: rank ``r`` holds rows ``W[o_r]`` and ``b[o_r]``
  (``numpy.array_split`` sizes) and computes ``y[:, o_r]`` (activation fused); with
  ``gather_output`` (default) an Allgatherv assembles the full ``y`` on every rank. Backward takes
  its columns of the output gradient and sums the partial input gradients with an Allreduce.
* :class:`RowParallelLinear` splits the inputs: rank ``r`` holds columns ``W[:, i_r]`` and computes
  the partial product ``x[:, i_r] @ W[:, i_r].T``; an Allreduce sums the partial products and the
  (replicated) bias is added once. Backward gives each rank its input-gradient columns, gathered
  to the full input gradient unless ``input_is_parallel``.

A ColumnParallelLinear(gather_output=False) followed by a RowParallelLinear(input_is_parallel=True)
is the Megatron-LM MLP block (Shoeybi et al. 2019): one Allreduce forward, one backward. Both are
Modules (forward/backward on NumPy arrays) and work inside a Sequential; every rank builds the
same layer (same generator state), as the dense Linear of the same arguments would be built, and
keeps its part, so the pair of forward and backward equals the dense layer's to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from . import _p2p

Array = Any


def _parts(size: int, ranks: int) -> list[tuple[int, int]]:
    cuts = np.cumsum([0] + [size // ranks + (1 if r < size % ranks else 0) for r in range(ranks)])
    return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]


def _dense(in_features, out_features, bias, activation, dtype, generator, what) -> Any:
    for name, v in (("in_features", in_features), ("out_features", out_features)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"[{what}] argument '{name}' must be an integer >= 1, got {v!r}")
    return _core.nn.Linear(
        int(in_features),
        int(out_features),
        bias,
        activation=activation,
        dtype=dtype,
        generator=generator,
    )


def _gather_columns(comm: Any, local: np.ndarray, parts: list[tuple[int, int]]) -> np.ndarray:
    """Concatenate every rank's (n, c_r) block along axis 1 (an Allgatherv of the blocks)."""
    n = local.shape[0]
    counts = [n * (b - a) for a, b in parts]
    flat = np.empty(sum(counts), dtype=local.dtype)
    comm.Allgatherv(np.ascontiguousarray(local), [flat, counts])
    blocks, at = [], 0
    for (a, b), c in zip(parts, counts):
        blocks.append(flat[at : at + c].reshape(n, b - a))
        at += c
    return np.concatenate(blocks, axis=1)


class ColumnParallelLinear(_core.nn.Module):
    """Linear(in_features, out_features) with the outputs split over the ranks of `comm`.

    Args:
        in_features, out_features: sizes of the dense layer (weight (out_features, in_features)).
        bias: learn a bias (default True).
        activation: None (default), 'relu', 'leaky_relu', 'tanh' or 'sigmoid', fused per part.
        gather_output: return the full (n, out_features) output (default True); False returns this
            rank's columns (feed them to RowParallelLinear(input_is_parallel=True)).
        comm: mpi4py communicator (default MPI.COMM_WORLD; one rank is the dense layer).
        dtype, generator: as for Linear; every rank must pass the same generator state.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        activation: str | None = None,
        gather_output: bool = True,
        comm: Any = None,
        dtype: Any = "float32",
        generator: Any = None,
    ) -> None:
        dense = _dense(
            in_features, out_features, bias, activation, dtype, generator, "column_parallel_linear"
        )
        self._build(dense, gather_output, comm)

    @classmethod
    def from_dense(
        cls, linear: Any, *, gather_output: bool = True, comm: Any = None
    ) -> ColumnParallelLinear:
        """This rank's part of an existing Linear (identical on every rank); values copied."""
        obj = cls.__new__(cls)
        obj._build(linear, gather_output, comm)
        return obj

    def _build(self, dense: Any, gather_output: bool, comm: Any) -> None:
        _core.nn.Module.__init__(self)
        self.comm = _p2p.world(comm, "column_parallel_linear", minimum=1)
        args, kw = dense._config()
        in_f, out_f = args
        if kw.get("dropout", 0.0):
            raise ValueError("[column_parallel_linear] a Linear with dropout cannot be split")
        ranks = self.comm.Get_size()
        if out_f < ranks:
            raise ValueError(
                f"[column_parallel_linear] argument 'out_features' must be >= the {ranks} ranks, "
                f"got {out_f}"
            )
        self.parts = _parts(out_f, ranks)
        a, b = self.parts[self.comm.Get_rank()]
        w = np.array(dense.weight.value[a:b], copy=True)
        has_bias = dense.bias is not None
        self.local = _core.nn.Linear(
            in_f,
            b - a,
            _core.nn.Parameter(np.array(dense.bias.value[a:b], copy=True)) if has_bias else False,
            activation=kw.get("activation"),
            slope=kw.get("slope", 0.01),
            weight=_core.nn.Parameter(w),
        )
        self.in_features, self.out_features = in_f, out_f
        self.gather_output = bool(gather_output)
        self.columns = (a, b)

    def forward(self, x: Array) -> Array:
        """The output (n, out_features), or this rank's columns without gather_output."""
        y = self.local.forward(x)
        return _gather_columns(self.comm, y, self.parts) if self.gather_output else y

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        """Adds this rank's weight and bias gradients; the full input gradient (Allreduce)."""
        a, b = self.columns
        g = np.ascontiguousarray(grad[:, a:b]) if self.gather_output else grad
        gx = self.local.backward(g, need_input_grad=need_input_grad)
        if not need_input_grad:
            return None
        gx = np.ascontiguousarray(gx)
        self.comm.Allreduce(_p2p.mpi("column_parallel_linear").IN_PLACE, gx)
        return gx

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, columns={self.columns}"


class RowParallelLinear(_core.nn.Module):
    """Linear(in_features, out_features) with the inputs split over the ranks of `comm`.

    Args:
        in_features, out_features: sizes of the dense layer (weight (out_features, in_features)).
        bias: learn a bias (default True), replicated on every rank and added after the sum.
        input_is_parallel: the input is already this rank's columns (n, in_part), as
            ColumnParallelLinear(gather_output=False) gives; default False (the full input).
        comm: mpi4py communicator (default MPI.COMM_WORLD).
        dtype, generator: as for Linear; every rank must pass the same generator state.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        input_is_parallel: bool = False,
        comm: Any = None,
        dtype: Any = "float32",
        generator: Any = None,
    ) -> None:
        dense = _dense(
            in_features, out_features, bias, None, dtype, generator, "row_parallel_linear"
        )
        self._build(dense, input_is_parallel, comm)

    @classmethod
    def from_dense(
        cls, linear: Any, *, input_is_parallel: bool = False, comm: Any = None
    ) -> RowParallelLinear:
        """This rank's part of an existing Linear without activation (identical on every rank)."""
        obj = cls.__new__(cls)
        obj._build(linear, input_is_parallel, comm)
        return obj

    def _build(self, dense: Any, input_is_parallel: bool, comm: Any) -> None:
        _core.nn.Module.__init__(self)
        self.comm = _p2p.world(comm, "row_parallel_linear", minimum=1)
        args, kw = dense._config()
        in_f, out_f = args
        if kw.get("activation") is not None or kw.get("dropout", 0.0):
            raise ValueError(
                "[row_parallel_linear] the Linear must have no activation and no dropout (they "
                f"act on the summed output), got activation={kw.get('activation')!r}"
            )
        ranks = self.comm.Get_size()
        if in_f < ranks:
            raise ValueError(
                f"[row_parallel_linear] argument 'in_features' must be >= the {ranks} ranks, "
                f"got {in_f}"
            )
        self.parts = _parts(in_f, ranks)
        a, b = self.parts[self.comm.Get_rank()]
        w = np.array(dense.weight.value[:, a:b], copy=True)
        self.local = _core.nn.Linear(b - a, out_f, False, weight=_core.nn.Parameter(w))
        if dense.bias is not None:
            self.bias = _core.nn.Parameter(np.array(dense.bias.value, copy=True))
        self.has_bias = dense.bias is not None
        self.in_features, self.out_features = in_f, out_f
        self.input_is_parallel = bool(input_is_parallel)
        self.rows = (a, b)

    def forward(self, x: Array) -> Array:
        """The full output (n, out_features) on every rank: partial products summed."""
        a, b = self.rows
        xl = x if self.input_is_parallel else np.ascontiguousarray(x[:, a:b])
        y = np.array(self.local.forward(xl), copy=True)
        self.comm.Allreduce(_p2p.mpi("row_parallel_linear").IN_PLACE, y)
        if self.has_bias:
            y += self.bias.value
        return y

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        """Adds this rank's weight gradient and the bias gradient; the input gradient (this
        rank's columns with input_is_parallel, else gathered to the full input)."""
        grad = np.ascontiguousarray(grad)
        if self.has_bias:
            self.bias.grad[...] += grad.sum(axis=0)
        gx = self.local.backward(grad, need_input_grad=need_input_grad)
        if not need_input_grad:
            return None
        if self.input_is_parallel:
            return gx
        return _gather_columns(self.comm, np.ascontiguousarray(gx), self.parts)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, rows={self.rows}"
