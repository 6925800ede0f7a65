"""Synchronous data parallel training: DataParallel.

Every rank holds a replica of the model; each step every rank runs forward and backward on
its rows of the global batch, the gradients are summed across ranks while the backward pass
continues, and every rank applies the same optimizer step to the same parameters.

Gradients. The gradient of the global-batch mean loss is sum_r (b_r / B) g_r, where g_r is
the gradient of rank r's mean loss over its b_r rows (sample weights: W_r / W). backward()
multiplies the loss gradient it is given by that fraction, so the sum over ranks of the
parameter gradients is the global one, also for unequal last shards.

Buckets. The parameter gradients live in flat buffers (buckets of about bucket_mb MB, one
dtype each), in the order backward produces them: the last layer's first. Each Parameter's
.grad is a view of its bucket, so backward writes straight into it. For a Sequential, the
layers' backward runs one at a time, last first; as soon as every parameter of a bucket has
its gradient, that bucket's non-blocking Iallreduce starts, and the remaining layers'
backward runs while it is in flight (each layer boundary also tests the requests in flight,
which is what moves MPI's progress along). Other models run their whole backward, then
reduce every bucket.

Reduction. reduction='auto' (default) is 'shared' when every rank runs on one machine and
the gradients are in host memory, else 'allreduce'.
* 'shared': the buckets live in one MPI shared-memory window of the node (MPI-3
  MPI_Win_allocate_shared), so backward writes each rank's gradients where every rank of the
  node can read them. When a bucket is complete on every rank (a non-blocking barrier),
  rank r sums slice r of the bucket over the ranks, in rank order 0, 1, ..., N-1, and writes
  the sum into slice r of every rank's bucket; a last barrier ends the step's reduction. No
  message copies: each rank reads and writes each gradient value of its slice once per rank,
  and the sums are bitwise reproducible (rank order) for any MPI.
* 'allreduce': MPI_Iallreduce(SUM) per bucket, for ranks on several machines. MPICH picks its
  algorithm from the communicator size and the message size only, so a given (ranks,
  bucket layout) always adds in the same order, and every rank gets the same bits (each
  partial sum is formed once and sent, or formed by two ranks from the same two operands,
  which IEEE addition gives identically): runs are reproducible and replicas never drift.
  The MPI standard does not promise this; 'ordered' does not rely on it.
* 'ordered': each bucket is gathered from every rank (Iallgather) and summed in rank order
  by every rank, at N times the memory and traffic of a bucket, on any set of machines.

Start. Wrapping checks that every rank has the same parameters (names, shapes, dtypes),
then broadcasts rank 0's parameter values, random-generator positions and (when given) the
optimizer state, so every replica starts from the same state.

Faults. Every wait has a deadline (timeout: default $SEISOKU_MPI_TIMEOUT seconds, else
300 s): a rank that died or stopped sending makes the others raise TimeoutError. With
abort_on_error (default) an uncaught exception on any rank prints its traceback prefixed by
the rank and aborts the whole job (comm.Abort), so no rank waits for ever.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._array import array_module, is_cuda_array
from ..nn import Module, Sequential
from ..random import Generator, default_generator
from ._comm import (
    DEFAULT_TIMEOUT_S,
    get_comm,
    install_abort_handler,
    mpi,
    shard_bounds,
    wait_all,
)
from ._device import DeviceReducer

REDUCTIONS = ("auto", "shared", "allreduce", "ordered")
SHARED_DTYPES = (np.float32, np.float64)
ALIGN = 64  # bytes: each bucket and each rank's slice of it starts on its own cache line


class _Bucket:
    """Flat gradient memory of some parameters of one dtype, and its reduction in flight."""

    def __init__(
        self, params: list[Any], ready: int, xp: Any, peers: list[Any] | None = None, rank: int = 0
    ) -> None:
        self.params = params
        self.ready = ready  # layer index after whose backward every gradient here is final
        self.dtype = params[0].dtype
        sizes = [int(np.prod(p.shape)) for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.parts: list[Any] = []  # 'shared': this rank's slice of every rank's bucket
        self.scratch: Any = None  # 'shared' with more than 2 ranks: the slice's running sum
        if peers is None:
            self.buffer = xp.zeros(int(self.offsets[-1]), dtype=self.dtype)
        else:  # every rank's bucket in the node's shared window, peers[q] being rank q's
            self.buffer = peers[rank]
            self.buffer[...] = 0
            per_line = ALIGN // np.dtype(self.dtype).itemsize
            lines = -(-self.buffer.size // per_line)
            first, last = shard_bounds(lines, rank, len(peers))
            lo, hi = (min(k * per_line, self.buffer.size) for k in (first, last))
            self.parts = [v[lo:hi] for v in peers]
            if len(peers) > 2:
                self.scratch = np.empty(hi - lo, dtype=self.dtype)
        self.views = [
            self.buffer[self.offsets[i] : self.offsets[i + 1]].reshape(p.shape)
            for i, p in enumerate(params)
        ]
        self.gathered: Any = None  # (ranks, n) for the ordered reduction
        self.bound = self._bind()

    def _bind(self) -> bool:
        """Make each parameter's gradient a view of the buffer (its current value kept);
        False when the binding does not hold (then gradients are copied in and out)."""
        for p, view in zip(self.params, self.views):
            view[...] = p.grad
            p.grad = view
        return all(_shares(p.grad, self.buffer) for p in self.params)

    @property
    def nbytes(self) -> int:
        return int(self.buffer.nbytes)


def _shares(a: Any, b: Any) -> bool:
    if is_cuda_array(a):
        return array_module(a).shares_memory(a, b)
    return bool(np.shares_memory(a, b))


def _env_timeout() -> float:
    text = os.environ.get("SEISOKU_MPI_TIMEOUT", "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"SEISOKU_MPI_TIMEOUT must be a number of seconds > 0, got {text!r}")
    return value


def _check_float(value: Any, name: str, low: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > low:
        raise ValueError(
            f"[DataParallel] argument '{name}' must be a number > {low}, got {value!r}"
        )
    return float(value)


class DataParallel:
    """Synchronous data parallel training of `module` over the ranks of `comm`.

    Args:
        module: the model (a seisoku.nn Module; a Sequential gets its layers' backward one at
            a time, so gradient reduction overlaps the backward pass).
        comm: mpi4py communicator (default MPI.COMM_WORLD); any sub-communicator works.
        bucket_mb: gradient bucket size in MB (10^6 bytes, default 25); a parameter larger
            than that gets a bucket of its own.
        reduction: 'auto' (default: 'shared' when every rank is on one machine and the
            parameters are in host memory, else 'allreduce'), 'shared' (sums in the node's
            MPI shared memory, in rank order), 'allreduce' (MPI_Iallreduce) or 'ordered'
            (gather and sum in rank order: bitwise reproducible whatever MPI's algorithm; N
            times the traffic); see the module documentation.
        timeout: seconds any wait for the other ranks may take before TimeoutError
            (default: the environment variable SEISOKU_MPI_TIMEOUT, else 300).
        optimizer: when given, its state is broadcast from rank 0 too (see
            broadcast_optimizer).
        abort_on_error: install the hook that aborts the whole job on an uncaught exception
            (default True; only with more than one rank).
        transport: how device (CuPy) gradient buckets travel: 'mpi' (CUDA-aware MPI),
            'staged' (through pinned host buffers), 'nccl' (cupy.cuda.nccl) or 'auto'
            (default: 'mpi' when MPI is CUDA-aware, else 'staged'; NumPy models take the
            plain path, 'host'). See seisoku.distributed._device.

    Use, per step (seisoku.train.Trainer(parallel=...) does all of this):

        dp.begin_batch(start, end, rows)      # this rank's rows [start, end) of a batch
        model.zero_grad()
        out = model.forward(x_shard)
        loss(out, y_shard)
        dp.backward(loss.backward())          # scaled, reduced: global-batch mean gradient
        optimizer.step()
    """

    def __init__(
        self,
        module: Module,
        comm: Any = None,
        bucket_mb: float = 25.0,
        *,
        reduction: str = "auto",
        timeout: float | None = None,
        optimizer: Any = None,
        abort_on_error: bool = True,
        transport: str = "auto",
    ) -> None:
        if not isinstance(module, Module):
            raise ValueError(
                f"[DataParallel] argument 'module' must be a seisoku.nn.Module, got "
                f"{type(module).__name__}"
            )
        self.bucket_bytes = int(_check_float(bucket_mb, "bucket_mb", 0.0) * 1e6)
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"[DataParallel] argument 'reduction' must be one of {', '.join(REDUCTIONS)}, "
                f"got {reduction!r}"
            )
        self.reduction = reduction
        if timeout is None:
            timeout = _env_timeout()
        self.timeout = _check_float(timeout, "timeout", 0.0)
        self.comm = get_comm(comm)
        self.rank = int(self.comm.Get_rank())
        self.size = int(self.comm.Get_size())
        self.module = module
        self._params = [p for _, p in module.named_parameters()]
        if abort_on_error and self.size > 1:
            install_abort_handler(self.comm)
        self._check_same_model()
        self._check_layers()
        self._device = DeviceReducer(
            transport, self._params, self.comm, reduction, self._wait, self.timeout
        )
        self.transport = self._device.name
        self.broadcast_parameters()
        self.broadcast_generators()
        if optimizer is not None:
            self.broadcast_optimizer(optimizer)
        self._layers: list[Module] | None = (
            list(module.layers) if isinstance(module, Sequential) else None
        )
        self._rowed = [m for _, m in module.named_modules() if hasattr(m, "first_row")]
        self._window: Any = None
        self.buckets = self._make_buckets()
        self._device.attach(self.buckets)
        self._requests: list[Any] = []
        self._unreduced: list[tuple[_Bucket, Any]] = []  # 'shared': (bucket, its barrier)
        self._open = False  # 'shared': a step's reduction begun, its last barrier to come
        self._launched: list[bool] = [False] * len(self.buckets)
        self.factor = 1.0
        self.first_row = 0

    # -- start ---------------------------------------------------------------------------
    def _wait(self, requests: Sequence[Any], what: str) -> None:
        wait_all(requests, self.timeout, what, self.comm)

    def _signature(self) -> list[tuple[str, tuple[int, ...], str]]:
        return [(n, tuple(p.shape), str(p.dtype)) for n, p in self.module.named_parameters()]

    def _check_same_model(self) -> None:
        """ValueError on every rank when the ranks' models differ (names, shapes, dtypes)."""
        sig = self._signature()
        digest = np.array([zlib.crc32(repr(sig).encode()), len(sig)], dtype=np.int64)
        every = np.zeros((self.size, 2), dtype=np.int64)
        self._wait([self.comm.Iallgather(digest, every)], "the model check at wrap time")
        if (every == every[0]).all():
            return
        sigs = self.comm.allgather(sig)
        for r, other in enumerate(sigs):
            if other == sigs[0]:
                continue
            ours = {n: (s, d) for n, s, d in sigs[0]}
            theirs = {n: (s, d) for n, s, d in other}
            for name in [*ours, *theirs]:
                if ours.get(name) != theirs.get(name):
                    raise ValueError(
                        f"[DataParallel] the model on rank {r} differs from rank 0's: parameter "
                        f"'{name}' is {_describe(theirs.get(name))} on rank {r} and "
                        f"{_describe(ours.get(name))} on rank 0 (every rank must build the same "
                        "model)"
                    )
            raise ValueError(
                f"[DataParallel] the model on rank {r} differs from rank 0's in parameter order"
            )

    def _check_layers(self) -> None:
        if self.size == 1:
            return
        for name, m in self.module.named_modules():
            if type(m).__name__ == "GaussianNoise" and getattr(m, "std", 0.0) > 0:
                raise ValueError(
                    f"[DataParallel] layer '{name or type(m).__name__}' (GaussianNoise) draws its "
                    "noise by element of the local batch, not by row of the global batch, so "
                    "its draws would depend on the number of ranks; use Dropout, or "
                    "augmentation noise (seisoku.augment.GaussianNoise) on the inputs"
                )

    def broadcast_parameters(self) -> None:
        """Overwrite every rank's parameter values with rank 0's."""
        if self.size == 1 or self._device.broadcast(self._params):
            return
        reqs = []
        for p in self._params:
            reqs.append(self.comm.Ibcast(p.value, root=0))
        self._wait(reqs, "the parameter broadcast")

    def _generators(self) -> list[Generator]:
        gens, seen = [default_generator()], {id(default_generator())}
        for _, m in self.module.named_modules():
            g = getattr(m, "generator", None)
            if isinstance(g, Generator) and id(g) not in seen:
                seen.add(id(g))
                gens.append(g)
        return gens

    def broadcast_generators(self) -> None:
        """Give every random generator of the model (and the process-wide one) rank 0's seed
        and offset, so masks drawn on every rank come from the same stream positions."""
        if self.size == 1:
            return
        gens = self._generators()
        state = np.array([[g.seed, g.offset] for g in gens], dtype=np.uint64).reshape(-1, 2)
        self._wait([self.comm.Ibcast(state, root=0)], "the generator broadcast")
        for g, (seed, offset) in zip(gens, state):
            g.load_state_dict({"seed": int(seed), "offset": int(offset)})

    def broadcast_optimizer(self, optimizer: Any) -> None:
        """Give every rank's optimizer rank 0's state (step counts, moment buffers and
        hyper-parameters; pickled once at start, never on the training path)."""
        if self.size == 1 or not callable(getattr(optimizer, "state_dict", None)):
            return
        state = optimizer.state_dict() if self.rank == 0 else None
        state = self.comm.bcast(state, root=0)
        if self.rank != 0:
            optimizer.load_state_dict(state)

    # -- buckets -------------------------------------------------------------------------
    def _make_buckets(self) -> list[_Bucket]:
        ready: dict[int, int] = {}
        order: list[Any] = []
        if self._layers is not None:
            for i in range(len(self._layers) - 1, -1, -1):
                for _, p in self._layers[i].named_parameters():
                    if id(p) not in ready:
                        order.append(p)
                    ready[id(p)] = i  # shared: final after its first use (smallest index)
        for p in reversed(self._params):  # parameters outside the layers
            if id(p) not in ready:
                ready[id(p)] = -1
                order.append(p)
        groups: list[list[Any]] = []
        nbytes = 0
        for p in order:
            size = int(np.prod(p.shape)) * np.dtype(p.dtype).itemsize
            if not groups or p.dtype != groups[-1][0].dtype or nbytes + size > self.bucket_bytes:
                groups.append([])
                nbytes = 0
            groups[-1].append(p)
            nbytes += size
        self.reduction = self._resolve(self.reduction, order)
        peers = self._shared_window(groups) if self.reduction == "shared" else None
        return [
            self._bucket(group, ready, None if peers is None else peers[i])
            for i, group in enumerate(groups)
        ]

    def _resolve(self, reduction: str, params: list[Any]) -> str:
        """The reduction 'auto' stands for here; ValueError when 'shared' cannot be had."""
        if reduction not in ("auto", "shared"):
            return reduction
        why = ""
        if any(is_cuda_array(p.value) for p in params):
            why = "the parameters are in GPU memory"
        elif any(np.dtype(p.dtype) not in SHARED_DTYPES for p in params):
            why = "some parameters are neither float32 nor float64"
        elif self.size > 1 and not self._one_node():
            why = "the ranks run on more than one machine"
        if not why:
            return "shared" if self.size > 1 else "allreduce"
        if reduction == "shared":
            raise ValueError(f"[DataParallel] argument 'reduction' is 'shared', but {why}")
        return "allreduce"

    def _one_node(self) -> bool:
        node = self.comm.Split_type(mpi().COMM_TYPE_SHARED)
        try:
            return int(node.Get_size()) == self.size
        finally:
            node.Free()

    def _shared_window(self, groups: list[list[Any]]) -> list[list[Any]]:
        """One MPI shared-memory window holding every rank's buckets; for each bucket, the
        arrays of every rank's copy (index = rank)."""
        lib = mpi()
        offsets, total = [], 0
        for group in groups:
            offsets.append(total)
            nbytes = sum(int(np.prod(p.shape)) for p in group) * np.dtype(group[0].dtype).itemsize
            total += -(-nbytes // ALIGN) * ALIGN
        info = lib.Info.Create()
        info.Set("alloc_shared_noncontig", "true")  # each rank's part on its own pages
        try:
            self._window = lib.Win.Allocate_shared(max(total, ALIGN), 1, info, self.comm)
        finally:
            info.Free()
        self._window.Lock_all(lib.MODE_NOCHECK)  # the epoch in which Sync() orders memory
        memory = [
            np.frombuffer(self._window.Shared_query(q)[0], dtype=np.uint8, count=total)
            for q in range(self.size)
        ]
        out = []
        for group, start in zip(groups, offsets):
            n = sum(int(np.prod(p.shape)) for p in group)
            dtype = np.dtype(group[0].dtype)
            out.append([m[start : start + n * dtype.itemsize].view(dtype) for m in memory])
        return out

    def _bucket(self, params: list[Any], ready: dict[int, int], peers: Any = None) -> _Bucket:
        xp = array_module(params[0].value)
        b = _Bucket(params, min(ready[id(p)] for p in params), xp, peers, self.rank)
        if self.reduction == "ordered" and self.size > 1 and not self._device.active:
            b.gathered = xp.empty((self.size, b.buffer.size), dtype=b.dtype)
        return b

    def close(self) -> None:
        """Release the shared-memory window of reduction 'shared' (collective: every rank
        calls it; the gradients become private copies, reduced with MPI_Iallreduce from
        then on). Idempotent; MPI_Finalize releases a window still open."""
        if self._window is None:
            return
        for b in self.buckets:
            private = b.buffer.copy()
            b.buffer, b.parts, b.scratch = private, [], None
            b.views = [
                private[b.offsets[i] : b.offsets[i + 1]].reshape(p.shape)
                for i, p in enumerate(b.params)
            ]
            for p, view in zip(b.params, b.views):
                p.grad = view
        self.reduction = "allreduce"
        window, self._window = self._window, None
        window.Unlock_all()
        window.Free()

    # -- one step ------------------------------------------------------------------------
    def begin_batch(self, start: int, end: int, rows: int, fraction: float | None = None) -> None:
        """Announce this rank's part of the next global batch: rows [start, end) of `rows`.

        Layers with per-row draws (Dropout, Linear's dropout) are told their first row, and
        backward() will scale the loss gradient by `fraction`, this rank's share of the global
        loss: (end - start) / rows by default; with sample weights, the shard's weight sum
        over the batch's.
        """
        if not 0 <= start <= end <= rows or rows < 1:
            raise ValueError(
                f"[DataParallel] begin_batch needs 0 <= start <= end <= rows and rows >= 1, got "
                f"start={start}, end={end}, rows={rows}"
            )
        self.factor = (end - start) / rows if fraction is None else float(fraction)
        self.first_row = int(start)
        for m in self._rowed:
            m.first_row = self.first_row

    def backward(self, grad: Any, need_input_grad: bool = False, wait: bool = True) -> Any:
        """Backward of the loss gradient `grad` (of this rank's mean loss) through the model,
        scaled to this rank's share of the global-batch mean, with each gradient bucket's
        reduction started as soon as it is complete. With wait (default True) returns once
        every parameter gradient is the global one (else call synchronize() before the
        optimizer step). Returns the input gradient (None unless need_input_grad)."""
        if self.factor == 0.0:  # no weight here (a 0/0 loss gradient would be NaN)
            grad = array_module(grad).zeros_like(grad)
        elif self.factor != 1.0:
            grad = grad * self.factor
        self._requests, self._unreduced = [], []
        self._launched = [False] * len(self.buckets)
        if self._layers is not None:
            g = grad
            for i in range(len(self._layers) - 1, -1, -1):
                g = self._layers[i].backward(g, need_input_grad or i > 0)
                self._launch_ready(i)
            result = g if need_input_grad else None
        else:
            result = self.module.backward(grad, need_input_grad)
        self._launch_ready(-1)
        if wait:
            self.synchronize()
        return result

    def reduce_gradients(self) -> None:
        """Sum the gradients now in the buckets across ranks (no scaling): for gradients
        produced some other way than backward()."""
        self._requests, self._unreduced = [], []
        self._launched = [False] * len(self.buckets)
        self._launch_ready(-1)
        self.synchronize()

    def _launch_ready(self, layer: int) -> None:
        for k, b in enumerate(self.buckets):
            if not self._launched[k] and b.ready >= layer:
                self._launch(b)
                self._launched[k] = True
        self._device.progress()
        if self._unreduced:  # 'shared': sum the buckets complete on every rank by now
            while self._unreduced and self._unreduced[0][1].Test():
                self._reduce_shared(self._unreduced.pop(0)[0])
        elif self._requests:
            mpi().Request.Testall(self._requests)  # moves the reductions in flight along

    def _launch(self, b: _Bucket) -> None:
        for p, view in zip(b.params, b.views):
            g = p.grad  # a gradient still marked zero is cleared to zeros by this read
            if not b.bound:
                view[...] = g
        if self.size == 1:
            return
        if self._device.active:  # device buckets: the chosen transport
            self._device.launch(b)
            return
        lib = mpi()
        if self._window is not None:  # done once every rank has written this bucket
            req = self.comm.Ibarrier()
            self._unreduced.append((b, req))
            self._open = True
        elif b.gathered is None:
            req = self.comm.Iallreduce(lib.IN_PLACE, b.buffer, lib.SUM)
        else:
            req = self.comm.Iallgather(b.buffer, b.gathered)
        self._requests.append(req)

    def synchronize(self) -> None:
        """Wait (with the deadline) for every reduction started; then every parameter
        gradient holds the global-batch gradient."""
        self._device.finish()
        self._wait(self._requests, "the gradient reduction")
        self._requests = []
        if self._open:
            self._open = False
            for b, _ in self._unreduced:
                self._reduce_shared(b)
            self._unreduced = []
            # every rank's slices are written before any rank reads its bucket or the next
            # backward writes into it
            self._wait([self.comm.Ibarrier()], "the gradient reduction")
            self._window.Sync()
        for b in self.buckets:
            if b.gathered is not None:
                total = b.gathered[0].copy()
                for r in range(1, self.size):
                    total += b.gathered[r]
                b.buffer[...] = total
            if not b.bound:
                for p, view in zip(b.params, b.views):
                    p.grad[...] = view

    def _reduce_shared(self, b: _Bucket) -> None:
        """Slice `rank` of bucket b summed over the ranks in rank order, written into every
        rank's bucket (the others' slices are theirs to sum)."""
        self._window.Sync()  # the other ranks' writes before their barrier are visible
        parts = b.parts
        if not parts or parts[0].size == 0:
            return
        if len(parts) == 2:  # a + b = b + a exactly: sum into this rank's copy, then copy
            own = parts[self.rank]
            np.add(parts[0], parts[1], out=own)
            parts[1 - self.rank][...] = own
            return
        acc = b.scratch
        np.add(parts[0], parts[1], out=acc)
        for part in parts[2:]:
            np.add(acc, part, out=acc)
        for part in parts:
            part[...] = acc

    # -- small collectives for the training loop -----------------------------------------
    def allreduce_sum(self, values: Sequence[float]) -> np.ndarray:
        """Elementwise sum over ranks of a few float64 numbers (blocking, with the deadline)."""
        buf = np.array(values, dtype=np.float64)
        if self.size == 1:
            return buf
        out = np.empty_like(buf)
        self._wait([self.comm.Iallreduce(buf, out, mpi().SUM)], "a metric reduction")
        return out

    def allgather(self, values: Sequence[float]) -> np.ndarray:
        """(ranks, len(values)) float64: every rank's values, in rank order (blocking, with
        the deadline)."""
        buf = np.array(values, dtype=np.float64)
        out = np.empty((self.size, buf.size), dtype=np.float64)
        if self.size == 1:
            out[0] = buf
            return out
        self._wait([self.comm.Iallgather(buf, out)], "a small gather")
        return out

    def start_sum(self, values: Sequence[float]) -> _PendingSum:
        """allreduce_sum started now, finished by .result() (overlaps the backward pass)."""
        return _PendingSum(self, np.array(values, dtype=np.float64))

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is True on some rank (stop decisions)."""
        return bool(self.allreduce_sum([1.0 if flag else 0.0])[0] > 0)

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's obj on every rank (pickled; for setup and checkpoints, not per step)."""
        if self.size == 1:
            return obj
        return self.comm.bcast(obj, root=0)

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the rank that shows progress, logs and writes files)."""
        return self.rank == 0

    def __repr__(self) -> str:
        mb = sum(b.nbytes for b in self.buckets) / 1e6
        return (
            f"DataParallel(rank={self.rank}, size={self.size}, buckets={len(self.buckets)}, "
            f"gradient_mb={mb:.3f}, reduction={self.reduction!r})"
        )


class _PendingSum:
    def __init__(self, dp: DataParallel, values: np.ndarray) -> None:
        self.dp, self.values = dp, values
        self.out = values if dp.size == 1 else np.empty_like(values)
        self.request = None if dp.size == 1 else dp.comm.Iallreduce(values, self.out, mpi().SUM)

    def result(self) -> np.ndarray:
        if self.request is not None:
            self.dp._wait([self.request], "a metric reduction")
            self.request = None
        return self.out


def _describe(entry: Any) -> str:
    if entry is None:
        return "missing"
    shape, dtype = entry
    return f"{dtype} of shape {tuple(shape)}"
