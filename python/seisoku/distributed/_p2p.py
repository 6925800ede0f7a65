"""Point-to-point helpers shared by the asynchronous, pipeline and tensor-parallel modes.

MPI's own waits have no timeout, so every wait here polls its requests (``Testall`` or
``Iprobe``), yielding the core between polls (MPICH busy-polls, and oversubscribed ranks would
otherwise starve the peer they wait for), and raises ``TimeoutError`` naming what it waited for
and from which rank once ``timeout`` seconds pass. Buffers go through mpi4py's buffer interface
(no pickling); only set-up messages (shapes, split points) are pickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _comm


def mpi(what: str) -> Any:
    """mpi4py's MPI module, or an ImportError (naming `what`) saying how to get it."""
    try:
        return _comm.mpi()
    except ImportError as e:
        raise ImportError(f"[{what}] {e}") from e


def world(comm: Any, what: str, minimum: int = 2) -> Any:
    """`comm` (default MPI.COMM_WORLD), checked to hold at least `minimum` ranks."""
    if comm is None:
        comm = mpi(what).COMM_WORLD
    if comm.Get_size() < minimum:
        raise ValueError(
            f"[{what}] needs at least {minimum} MPI ranks, got {comm.Get_size()}; "
            f"launch it with e.g. mpiexec -n {max(minimum, 2)} python script.py "
            f"(or mpiexec -n {max(minimum, 2)} seisoku train ...)"
        )
    return comm


def private(comm: Any, timeout: float, what: str) -> Any:
    """A duplicate of `comm` (Idup, waited for with a timeout): a run's messages then never mix
    with those of another run on the same ranks."""
    dup, req = comm.Idup()
    wait_all([req], timeout, f"[{what}] rank {comm.Get_rank()} waited for every rank to start")
    return dup


def check_timeout(timeout: float | None, what: str) -> float:
    """timeout as a float, checked to be finite and > 0; None: $SEISOKU_MPI_TIMEOUT, else
    DEFAULT_TIMEOUT_S (300 s), as for DataParallel."""
    if timeout is None:
        from .data_parallel import _env_timeout

        return _env_timeout()
    try:
        t = float(timeout)
    except (TypeError, ValueError) as e:
        raise ValueError(f"[{what}] argument 'timeout' must be a number, got {timeout!r}") from e
    if not (np.isfinite(t) and t > 0):
        raise ValueError(f"[{what}] argument 'timeout' must be finite and > 0 s, got {timeout!r}")
    return t


def wait_all(requests: Sequence[Any], timeout: float, message: str) -> None:
    """Complete every request within `timeout` seconds, else cancel them and raise
    TimeoutError(message + how long it waited)."""
    reqs = [r for r in requests if r is not None]
    if not reqs:
        return
    request = mpi("distributed").Request
    poll = _comm.Poll(timeout)
    while not request.Testall(reqs):
        if poll.expired():
            for r in reqs:
                try:
                    r.Cancel()
                    r.Free()
                except Exception:  # an already completed request cannot be cancelled
                    pass
            raise TimeoutError(f"{message}: no answer after {timeout:g} s (dead or stuck rank?)")


def probe(comm: Any, source: int, tag: int, timeout: float, message: str) -> Any:
    """Wait (with a timeout) for a message from `source` with `tag`; its MPI.Status."""
    status = mpi("distributed").Status()
    poll = _comm.Poll(timeout)
    while not comm.Iprobe(source=source, tag=tag, status=status):
        if poll.expired():
            raise TimeoutError(f"{message}: no answer after {timeout:g} s (dead or stuck rank?)")
    return status


def recv_object(comm: Any, source: int, tag: int, timeout: float, message: str) -> Any:
    """A pickled set-up message from `source`, waited for with a timeout."""
    probe(comm, source, tag, timeout, message)
    return comm.recv(source=source, tag=tag)


def allgather_object(comm: Any, obj: Any, tag: int, timeout: float, what: str) -> list[Any]:
    """Every rank's `obj` (pickled; set-up messages only), in rank order, with a timeout on
    each receive instead of a collective that would hang on a missing rank."""
    rank, size = comm.Get_rank(), comm.Get_size()
    sends = [comm.isend(obj, dest=r, tag=tag) for r in range(size) if r != rank]
    out = [
        obj
        if r == rank
        else recv_object(comm, r, tag, timeout, f"[{what}] rank {rank} waited for rank {r}")
        for r in range(size)
    ]
    wait_all(sends, timeout, f"[{what}] rank {rank} waited for its messages to be received")
    return out


def recv_array(
    comm: Any,
    source: int,
    tag: int,
    sample_shape: tuple[int, ...],
    dtype: np.dtype,
    timeout: float,
    message: str,
) -> np.ndarray:
    """Receive a (rows, *sample_shape) array whose row count the message itself tells."""
    from mpi4py.util.dtlib import from_numpy_dtype

    status = probe(comm, source, tag, timeout, message)
    per = int(np.prod(sample_shape, dtype=np.int64))
    count = status.Get_count(from_numpy_dtype(dtype))
    if per == 0 or count % per:
        raise ValueError(
            f"{message}: got {count} values, not a whole number of samples of shape {sample_shape}"
        )
    buf = np.empty((count // per, *sample_shape), dtype=dtype)
    wait_all([comm.Irecv(buf, source=source, tag=tag)], timeout, message)
    return buf


def barrier(comm: Any, timeout: float, what: str) -> None:
    """A barrier that raises TimeoutError instead of hanging when a rank is gone."""
    wait_all([comm.Ibarrier()], timeout, f"[{what}] rank {comm.Get_rank()} waited at a barrier")
