"""Asynchronous data parallel training with a parameter server and a staleness bound.

Rank 0 is the server: it holds the model and the optimizer. Ranks 1..W are workers: each has its
own shard of every epoch's permutation (worker ``w`` takes positions ``w-1, w-1+W, ...`` of
``default_rng([seed, epoch]).permutation(n)``, cut into batches of ``batch_size``). A worker pulls
the parameters, computes the mean-loss gradient of its next batch and pushes it; the server
applies each gradient as it arrives with one optimizer step.

Versions and staleness, precisely: the server's version ``v`` counts the optimizer steps applied.
A gradient computed on version ``v_w`` and applied when the server is at version ``v`` has
staleness ``v - v_w``. With ``o`` gradients outstanding (pulled, not yet pushed), the oldest pulled
at version ``v_min``, the server hands out parameters only when ``o == 0`` or
``(v - v_min) + o <= k``; a worker asking otherwise waits. This keeps, for every outstanding
gradient, (steps applied since its pull) + (other gradients in flight) <= k, so every applied
gradient has staleness at most ``k``. ``staleness=None`` sets no bound (a worker never waits).

``k = 0``: one gradient is in flight at a time and the server serves the workers in strict rank
rotation (1, 2, ..., W, 1, ...; a worker whose batches are all done drops out). The run is then
exactly synchronous training of one process on the interleaved batch order -- batch 0 of worker 1,
batch 0 of worker 2, ..., batch 1 of worker 1, ... -- with every gradient taken at the current
parameters (the same arithmetic, hence the same parameters). ``k >= 1`` serves waiting workers in
rotation order starting after the last one served.

Messages are NumPy buffers (a float64 header, then the flat parameters or gradient): no pickling.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import _p2p

Array = Any
_HDR, _DATA, _PHDR, _PDATA = 101, 102, 103, 104
# header: kind, version, epoch, loss_sum, correct, count, wants_more
_PULL, _PUSH = 0.0, 1.0
_HLEN = 7


@dataclass
class AsyncResult:
    """What train_async returns on the server (rank 0): the applied updates and epoch metrics.

    Attributes:
        updates: optimizer steps applied (the final version).
        log: per update (worker rank, epoch, staleness).
        history: per epoch (by the epoch of the batches): mean training loss, accuracy, count.
        seconds: wall time of the run.
        max_staleness: the largest staleness applied (<= the bound).
    """

    updates: int = 0
    log: list[tuple[int, int, int]] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    max_staleness: int = 0


def shard_batches(
    n: int, workers: int, worker: int, batch_size: int, epoch: int, seed: int
) -> list[np.ndarray]:
    """The index batches worker `worker` (1..workers) trains on in `epoch`."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    shard = order[worker - 1 :: workers]
    return [shard[i : i + batch_size] for i in range(0, len(shard), batch_size)]


def _flat(params: list[Any], attr: str) -> np.ndarray:
    return np.concatenate([np.asarray(getattr(p, attr)).ravel() for p in params])


def _unflat(params: list[Any], flat: np.ndarray, attr: str) -> None:
    at = 0
    for p in params:
        target = getattr(p, attr)
        size = target.size
        target[...] = flat[at : at + size].reshape(target.shape)
        at += size


def _check(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(
            f"[async_ps] argument '{name}' must be an integer >= {minimum}, got {value!r}"
        )
    return int(value)


def train_async(
    model: Any,
    loss: Any,
    optimizer: Callable[[list[Any]], Any],
    x: Array,
    y: Array,
    *,
    batch_size: int = 32,
    epochs: int = 1,
    staleness: int | None = None,
    seed: int = 0,
    comm: Any = None,
    timeout: float | None = None,
    augment: Callable[[Array, int, Array], Array] | None = None,
    scheduler: Any = None,
) -> AsyncResult | None:
    """Train `model` asynchronously: rank 0 serves, the other ranks compute gradients.

    Call it on every rank with the same model (same initial parameters), loss, data and settings;
    `optimizer` maps a list of Parameters to an optimizer (used on the server only).

    Args:
        batch_size: samples per worker batch (default 32).
        epochs: passes over the data (default 1); each worker sees its 1/W shard of each epoch.
        staleness: the bound k on the staleness of an applied gradient (default None: no bound,
            never waiting); 0 gives synchronous training in rank rotation (see the module doc).
        seed: seed of the epoch permutations (default 0).
        comm: mpi4py communicator of at least 2 ranks (default MPI.COMM_WORLD).
        timeout: seconds any wait for another rank may take before TimeoutError
            (default None: $SEISOKU_MPI_TIMEOUT, else 300).
        augment: None, or a function (x_batch, step, y_batch) -> x_batch a worker applies to each
            of its batches (step: the worker's own batch count, from 0).
        scheduler: None, or a function from the server's optimizer to a learning-rate schedule
            (an object with step()), stepped once per epoch when the first gradient of a later
            epoch arrives (workers overlap epochs, so the switch is approximate).

    Returns:
        On rank 0 an AsyncResult (the model holds the trained parameters); None on workers.
    """
    comm = _p2p.world(comm, "async_ps")
    timeout = _p2p.check_timeout(timeout, "async_ps")
    workers = comm.Get_size() - 1
    batch_size = _check(batch_size, "batch_size", 1)
    epochs = _check(epochs, "epochs", 1)
    k = 2**62 if staleness is None else _check(staleness, "staleness", 0)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"[async_ps] arguments 'x' and 'y' must hold the same number (> 0) of samples, "
            f"got {len(x)} and {len(y)}"
        )
    params = model.parameters()
    dtypes = {np.dtype(p.dtype) for p in params}
    if len(dtypes) != 1:
        raise ValueError(
            f"[async_ps] the parameters must share one dtype, got {sorted(map(str, dtypes))}"
        )
    comm = _p2p.private(comm, timeout, "async_ps")
    try:
        if comm.Get_rank() == 0:
            return _serve(
                comm, model, optimizer, len(x), workers, batch_size, epochs, k, seed, timeout,
                scheduler,
            )  # fmt: skip
        _work(comm, model, loss, x, y, workers, batch_size, epochs, seed, timeout, augment)
        return None
    finally:
        comm.Free()


def _plan(
    n: int, workers: int, w: int, batch_size: int, epochs: int, seed: int
) -> list[tuple[int, np.ndarray]]:
    return [
        (e, idx) for e in range(epochs) for idx in shard_batches(n, workers, w, batch_size, e, seed)
    ]


def _serve(
    comm, model, make_optimizer, n, workers, batch_size, epochs, k, seed, timeout, scheduler
) -> AsyncResult:
    params = model.parameters()
    opt = make_optimizer(params)
    schedule = scheduler(opt) if scheduler is not None else None
    epoch_now = 0
    remaining = {
        w: len(_plan(n, workers, w, batch_size, epochs, seed)) for w in range(1, workers + 1)
    }
    done_pushes = {w: 0 for w in remaining}
    total = dict(remaining)
    pending: set[int] = set()
    outstanding: dict[int, int] = {}
    sends: list[Any] = []
    metrics: dict[int, list[float]] = {}
    result = AsyncResult()
    hdr = np.empty(_HLEN)
    grad = np.empty(sum(p.value.size for p in params), dtype=np.dtype(params[0].dtype))
    version, last = 0, 0
    start = time.perf_counter()

    def serve() -> None:
        nonlocal last
        while pending and (
            not outstanding or version - min(outstanding.values()) + len(outstanding) <= k
        ):
            order = [(last + i - 1) % workers + 1 for i in range(1, workers + 1)]
            if k == 0:
                nxt = next((w for w in order if remaining[w] > 0), None)
                if nxt not in pending:
                    return
            else:
                nxt = next(w for w in order if w in pending)
            pending.discard(nxt)
            flat = _flat(params, "value")
            head = np.array([version], dtype=np.float64)
            sends.append((comm.Isend(head, dest=nxt, tag=_PHDR), head))
            sends.append((comm.Isend(flat, dest=nxt, tag=_PDATA), flat))
            outstanding[nxt] = version
            remaining[nxt] -= 1
            last = nxt

    while any(done_pushes[w] < total[w] for w in total):
        waiting = sorted(w for w in total if done_pushes[w] < total[w])
        status = _p2p.probe(
            comm,
            _p2p.mpi("async_ps").ANY_SOURCE,
            _HDR,
            timeout,
            f"[async_ps] the server (rank 0) heard from no worker; waiting for ranks {waiting}",
        )
        src = status.Get_source()
        comm.Recv(hdr, source=src, tag=_HDR)
        if hdr[0] == _PUSH:
            _p2p.wait_all(
                [comm.Irecv(grad, source=src, tag=_DATA)],
                timeout,
                f"[async_ps] the server waited for the gradient of rank {src}",
            )
            pulled = outstanding.pop(src)
            while schedule is not None and epoch_now < int(hdr[2]):
                schedule.step()
                epoch_now += 1
            _unflat(params, grad, "grad")
            opt.step()
            result.log.append((src, int(hdr[2]), version - pulled))
            version += 1
            done_pushes[src] += 1
            e = metrics.setdefault(int(hdr[2]), [0.0, 0.0, 0.0])
            e[0] += float(hdr[3])
            e[1] += float(hdr[4])
            e[2] += float(hdr[5])
        if hdr[6] > 0:
            pending.add(src)
        serve()
        sends = [(r, b) for r, b in sends if not r.Test()]
    _p2p.wait_all([r for r, _ in sends], timeout, "[async_ps] the server waited for its sends")
    result.updates = version
    result.seconds = time.perf_counter() - start
    result.max_staleness = max((s for _, _, s in result.log), default=0)
    for e in sorted(metrics):
        s, c, cnt = metrics[e]
        result.history.append(
            {"epoch": float(e), "loss": float(s / cnt), "accuracy": float(c / cnt), "count": cnt}
        )
    return result


def _work(comm, model, loss, x, y, workers, batch_size, epochs, seed, timeout, augment) -> None:
    rank = comm.Get_rank()
    params = model.parameters()
    plan = _plan(len(x), workers, rank, batch_size, epochs, seed)
    flat = np.empty(sum(p.value.size for p in params), dtype=np.dtype(params[0].dtype))
    head = np.empty(1)
    if not plan:
        return
    hdr = np.zeros(_HLEN)
    hdr[6] = 1.0
    pending = [comm.Isend(hdr, dest=0, tag=_HDR)]
    model.train()
    for step, (epoch, idx) in enumerate(plan):
        _p2p.wait_all(
            [comm.Irecv(head, source=0, tag=_PHDR), comm.Irecv(flat, source=0, tag=_PDATA)],
            timeout,
            f"[async_ps] worker rank {rank} waited for parameters from the server (rank 0)",
        )
        _unflat(params, flat, "value")
        xb, yb = x[idx], y[idx]
        if augment is not None:
            xb = augment(xb, step, yb)
        model.zero_grad()
        out = model.forward(xb)
        value = float(loss(out, yb))
        model.backward(loss.backward(), need_input_grad=False)
        correct = 0.0
        if out.ndim == 2 and out.shape[1] > 1 and np.asarray(yb).ndim == 1:
            correct = float(np.sum(np.argmax(out, axis=1) == yb))
        _p2p.wait_all(pending, timeout, f"[async_ps] worker rank {rank} waited to push")
        g = _flat(params, "grad")
        h = np.array(
            [_PUSH, head[0], epoch, value * len(idx), correct, len(idx), step + 1 < len(plan)],
            dtype=np.float64,
        )
        pending = [comm.Isend(h, dest=0, tag=_HDR), comm.Isend(g, dest=0, tag=_DATA)]
    _p2p.wait_all(pending, timeout, f"[async_ps] worker rank {rank} waited to push")
