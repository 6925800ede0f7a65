"""Communicators, ranks, waits with deadlines and the abort-on-error hook.

mpi4py is imported on first use only (importing seisoku never starts MPI).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any

DEFAULT_TIMEOUT_S = 300.0
_hooked: dict[str, Any] = {}


def mpi() -> Any:
    """The mpi4py.MPI module; ImportError saying how to install it when it is missing."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(
            "seisoku.distributed needs mpi4py and an MPI library: pip install 'seisoku[mpi]' "
            f"(mpi4py and the mpich wheel, which brings mpiexec): {e}"
        ) from e
    return MPI


def available() -> bool:
    """Whether mpi4py can be imported (it starts MPI when it can)."""
    try:
        mpi()
    except ImportError:
        return False
    return True


def get_comm(comm: Any = None) -> Any:
    """comm itself, or MPI.COMM_WORLD when None; ValueError for anything that is not an
    mpi4py intra-communicator."""
    lib = mpi()
    if comm is None:
        return lib.COMM_WORLD
    if not isinstance(comm, lib.Intracomm) or comm == lib.COMM_NULL:
        raise ValueError(f"comm must be an mpi4py intra-communicator, got {comm!r}")
    return comm


def rank(comm: Any = None) -> int:
    """This process's rank in comm (default MPI.COMM_WORLD)."""
    return int(get_comm(comm).Get_rank())


def size(comm: Any = None) -> int:
    """The number of processes in comm (default MPI.COMM_WORLD)."""
    return int(get_comm(comm).Get_size())


def is_main(comm: Any = None) -> bool:
    """Whether this process is rank 0 of comm (the one that prints and writes files)."""
    return rank(comm) == 0


def launched_size() -> int | None:
    """The number of processes mpiexec started, read from the launcher's environment without
    starting MPI (None when not launched by a known launcher)."""
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE"):
        value = os.environ.get(key)
        if value and value.isdigit():
            return int(value)
    return None


class Poll:
    """The cadence of every wait on MPI requests: MPI moves a transfer along only inside MPI
    calls of both ranks, so a poll must neither starve a rank sharing the core nor sleep
    while the data is arriving. For its first 50 ms it gives the processor away only when
    another process wants it (sched_yield returns at once on an idle core), then it sleeps
    0.5 ms between tests; expired() says when `timeout` seconds have passed."""

    def __init__(self, timeout: float) -> None:
        self.start = time.monotonic()
        self.timeout = timeout

    def expired(self) -> bool:
        waited = time.monotonic() - self.start
        if waited < 0.05:
            _yield_cpu()
            return False
        time.sleep(5e-4)
        return waited > self.timeout


_yield_cpu = getattr(os, "sched_yield", lambda: time.sleep(0))


def wait_all(requests: Sequence[Any], timeout: float, what: str, comm: Any = None) -> None:
    """Complete every request (polling as Poll does); TimeoutError naming `what` and the
    rank when they are not done within timeout seconds (a peer that died or stopped
    sending)."""
    lib = mpi()
    if not requests:
        return
    reqs = list(requests)
    poll = Poll(timeout)
    while not lib.Request.Testall(reqs):
        if poll.expired():
            who = "" if comm is None else f"rank {comm.Get_rank()} of {comm.Get_size()}: "
            raise TimeoutError(
                f"[seisoku.distributed] {who}{what} did not complete within {timeout:g} s: "
                "a peer rank died, hangs or stopped sending"
            )


def _abort_hook(exc_type: type, exc: BaseException, tb: Any) -> None:
    comm = _hooked.get("comm")
    where = ""
    if comm is not None:
        where = f"[rank {comm.Get_rank()} of {comm.Get_size()}] "
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    sys.stderr.write("".join(where + line + "\n" for line in text.rstrip("\n").split("\n")))
    sys.stderr.write(f"{where}aborting every rank of the job\n")
    sys.stderr.flush()
    if comm is not None:
        # the launcher forwards each rank's output on its own: give it the lines just written
        # before the abort ends the job (whose ranks it then stops forwarding)
        time.sleep(0.25)
        comm.Abort(1)


def install_abort_handler(comm: Any = None) -> None:
    """An uncaught exception prints its traceback prefixed with the rank, then aborts the
    whole job (comm.Abort), so the other ranks end with a non-zero status instead of waiting
    for this one for ever. Idempotent; the last communicator given is the one aborted."""
    comm = get_comm(comm)
    if sys.excepthook is not _abort_hook:
        _hooked["previous"] = sys.excepthook
        sys.excepthook = _abort_hook
    _hooked["comm"] = comm


def shard_bounds(rows: int, rank: int, size: int) -> tuple[int, int]:
    """Rows [start, end) of `rows` that rank `rank` of `size` takes: contiguous slices in rank
    order, the first rows % size ranks one row longer."""
    base, extra = divmod(int(rows), int(size))
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)
