"""Gradient transports for device (CuPy) parameters under DataParallel.

A model whose parameters are CuPy arrays gets its gradient buckets on the device (the
bucket allocation follows the parameters); this module moves them between the ranks in one
of three ways, chosen by DataParallel(..., transport=...):

- 'mpi': CUDA-aware MPI. The bucket's device memory goes to MPI as it is (mpi4py reads
  __cuda_array_interface__), after the current stream has finished writing it.
- 'staged': through pinned host memory, for an MPI that cannot read device memory. Each
  bucket owns a pinned host buffer. When a bucket is complete its device-to-host copy is
  queued on a copy stream (which first waits for the work queued so far on the current
  stream), so backward continues on the GPU while the copy runs; the bucket's
  MPI_Iallreduce (or Iallgather for reduction='ordered') starts on the host buffer once the
  copy is done. Reductions start strictly in bucket order on every rank, so the collective
  calls match across ranks and the sum is formed exactly as for NumPy buckets of the same
  layout (same bits). After the wait, each host result is copied back into its bucket on
  the current stream, before the optimizer step that follows on that stream.
- 'nccl': NCCL through cupy.cuda.nccl (one communicator per DataParallel, from a unique id
  that rank 0 creates and sends over MPI); the all-reduce (or all-gather for 'ordered') of a
  complete bucket is queued on a communication stream that waits for the backward kernels.
  The current process's CUDA device is the one NCCL uses: pick it before wrapping (e.g.
  cupy.cuda.Device(local_rank).use()).

'auto' (default) is 'mpi' when every rank's MPI reports CUDA support, else 'staged', for
device parameters, and 'host' (plain MPI on NumPy buffers) for NumPy parameters. Whether MPI
is CUDA-aware: $SEISOKU_CUDA_AWARE_MPI (1 or 0) when set; else mpi4py's
MPI.Query_cuda_support() where mpi4py has it; else 'cuda' among the MPI 4.1 memory
allocation kinds of MPI.COMM_WORLD's info; else the MPIX_Query_cuda_support() extension of
the loaded MPI library (Open MPI and MPICH have it); else not.

The transports talk to the GPU only through a small device interface (CupyDevice below), so
the ordering logic runs unchanged on a stand-in device in tests.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._array import is_cuda_array
from ._comm import Poll, mpi

TRANSPORTS = ("auto", "mpi", "staged", "nccl")
DEVICE_TRANSPORTS = ("mpi", "staged", "nccl")
ENV_CUDA_AWARE = "SEISOKU_CUDA_AWARE_MPI"


class CupyDevice:
    """The device operations the transports use, on CuPy's current device and stream."""

    name = "cupy"

    def __init__(self, cupy: Any) -> None:
        self.cp = cupy

    def synchronize(self) -> None:
        """Wait for the work queued on the current stream."""
        self.cp.cuda.get_current_stream().synchronize()

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return self.cp.empty(shape, dtype=dtype)

    def empty_pinned(self, n: int, dtype: Any) -> np.ndarray:
        """A NumPy array of n elements in page-locked host memory."""
        dtype = np.dtype(dtype)
        mem = self.cp.cuda.alloc_pinned_memory(max(1, n * dtype.itemsize))
        return np.frombuffer(mem, dtype=dtype, count=n)

    def stream(self) -> Any:
        return self.cp.cuda.Stream(non_blocking=True)

    def follow(self, stream: Any) -> None:
        """Make `stream` wait for the work queued so far on the current stream."""
        stream.wait_event(self.cp.cuda.get_current_stream().record())

    def record(self, stream: Any) -> Any:
        return stream.record()

    def done(self, event: Any) -> bool:
        return bool(event.done)

    def wait(self, event: Any) -> None:
        event.synchronize()

    def to_host(self, host: np.ndarray, dev: Any, stream: Any) -> None:
        """Queue the copy of contiguous device array `dev` into pinned `host` on `stream`."""
        dev.data.copy_to_host_async(ctypes.c_void_p(host.ctypes.data), dev.nbytes, stream)

    def to_device(self, dev: Any, host: np.ndarray) -> None:
        """Queue the copy of pinned `host` into contiguous `dev` on the current stream."""
        dev.data.copy_from_host_async(ctypes.c_void_p(host.ctypes.data), dev.nbytes)

    def get(self, a: Any) -> np.ndarray:
        """A NumPy copy of `a` (blocking)."""
        return self.cp.asnumpy(a)

    def put(self, a: Any, host: np.ndarray) -> None:
        """Overwrite device array `a` with `host`."""
        a[...] = self.cp.asarray(host).reshape(a.shape)

    def has_nccl(self) -> bool:
        try:
            from cupy.cuda import nccl
        except ImportError:
            return False
        return bool(getattr(nccl, "available", True))

    def nccl_unique_id(self) -> Any:
        from cupy.cuda import nccl

        return nccl.get_unique_id()

    def nccl_comm(self, size: int, uid: Any, rank: int) -> Any:
        return _CupyNccl(size, uid, rank)


class _CupyNccl:
    """An NCCL communicator over CuPy arrays (pointers, counts and datatypes filled in)."""

    def __init__(self, size: int, uid: Any, rank: int) -> None:
        from cupy.cuda import nccl

        self.nccl = nccl
        self.comm = nccl.NcclCommunicator(size, uid, rank)

    def _type(self, dtype: Any) -> int:
        name = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64"}
        code = getattr(self.nccl, name.get(np.dtype(dtype).name, ""), None)
        if code is None:
            raise ValueError(
                f"[DataParallel] transport 'nccl' reduces float16, float32 and float64 "
                f"gradients, got {np.dtype(dtype).name}"
            )
        return int(code)

    def all_reduce(self, buf: Any, stream: Any) -> None:
        ptr, kind = buf.data.ptr, self._type(buf.dtype)
        self.comm.allReduce(ptr, ptr, buf.size, kind, self.nccl.NCCL_SUM, stream.ptr)

    def all_gather(self, buf: Any, out: Any, stream: Any) -> None:
        self.comm.allGather(buf.data.ptr, out.data.ptr, buf.size, self._type(buf.dtype), stream.ptr)

    def abort(self) -> None:
        self.comm.abort()


def device_of(a: Any) -> Any:
    """The device interface for array `a`: a CupyDevice for CUDA arrays, None for host ones."""
    if is_cuda_array(a):
        import cupy

        return CupyDevice(cupy)
    return None


def _parse_flag(text: str) -> bool | None:
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    if word:
        raise ValueError(f"{ENV_CUDA_AWARE} must be 1 or 0, got {text!r}")
    return None


def _mpix_query() -> bool:
    """MPIX_Query_cuda_support() of the MPI library loaded in this process (False when it
    has none or it cannot be found)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = {line.split()[-1] for line in f if "/libmpi" in line}
    except OSError:
        return False
    for path in sorted(p for p in paths if ".so" in os.path.basename(p)):
        try:
            query = ctypes.CDLL(path).MPIX_Query_cuda_support
        except (OSError, AttributeError):
            continue
        query.restype = ctypes.c_int
        query.argtypes = []
        return bool(query())
    return False


def cuda_aware_mpi() -> bool:
    """Whether this process's MPI accepts CUDA device memory (see the module text for the
    order of the checks; $SEISOKU_CUDA_AWARE_MPI=1|0 overrides them)."""
    flag = _parse_flag(os.environ.get(ENV_CUDA_AWARE, ""))
    if flag is not None:
        return flag
    lib = mpi()
    query = getattr(lib, "Query_cuda_support", None)
    if callable(query):
        return bool(query())
    try:
        kinds = lib.COMM_WORLD.Get_info().Get("mpi_memory_alloc_kinds") or ""
    except Exception:  # an MPI before 4.1 has no such key
        kinds = ""
    if "cuda" in str(kinds):
        return True
    return _mpix_query()


def select(transport: Any, params: Sequence[Any], comm: Any) -> tuple[str, Any]:
    """(transport name, device interface or None) for parameters `params` on `comm`:
    ValueError naming the argument for an unknown transport, a device transport for host
    parameters, parameters on both host and device, or 'nccl' without CuPy's NCCL."""
    if not isinstance(transport, str) or transport not in TRANSPORTS:
        raise ValueError(
            "[DataParallel] argument 'transport' must be one of 'auto', 'mpi', 'staged', "
            f"'nccl', got {transport!r}"
        )
    devices = [device_of(p.value) for p in params]
    on_device = [d is not None for d in devices]
    if any(on_device) and not all(on_device):
        raise ValueError(
            "[DataParallel] argument 'module' must have all its parameters on the host (NumPy) "
            "or all on the device (CuPy), got both"
        )
    device = devices[0] if devices and on_device[0] else None
    if transport == "nccl":
        missing = _cupy_nccl_missing() if device is None else not device.has_nccl()
        if missing:
            raise ValueError(
                "[DataParallel] argument 'transport' 'nccl' needs CuPy with NCCL "
                "(cupy.cuda.nccl), which is not available here; use transport='auto'"
            )
    if device is None:
        if transport != "auto":
            raise ValueError(
                f"[DataParallel] argument 'transport' {transport!r} moves device (CuPy) "
                "gradients, but the model's parameters are NumPy arrays; use transport='auto'"
            )
        return "host", None
    if transport == "auto":
        size = int(comm.Get_size())
        aware = cuda_aware_mpi() if size > 1 else False
        if size > 1:  # every rank must take the same path (pickled once, at start)
            aware = all(comm.allgather(aware))
        transport = "mpi" if aware else "staged"
    return transport, device


def _cupy_nccl_missing() -> bool:
    try:
        from cupy.cuda import nccl
    except ImportError:
        return True
    return not bool(getattr(nccl, "available", True))


class _Slot:
    """Per-bucket state of a device transport."""

    __slots__ = ("bucket", "event", "gathered", "host")

    def __init__(self, bucket: Any) -> None:
        self.bucket = bucket
        self.host: np.ndarray | None = None  # staged: pinned copy of the bucket
        self.gathered: Any = None  # ordered: (ranks, n), pinned (staged) or on the device
        self.event: Any = None  # staged: the device-to-host copy's completion


class DeviceReducer:
    """The reduction of device gradient buckets over `comm` with one transport.

    DataParallel calls launch(bucket) when a bucket is complete, progress() at each layer
    boundary of backward, and finish() before the optimizer step. Host models get an
    inactive reducer (active False): DataParallel's own NumPy path runs then.
    """

    def __init__(
        self,
        transport: Any,
        params: Sequence[Any],
        comm: Any,
        reduction: str,
        wait: Callable[[Sequence[Any], str], None],
        timeout: float,
    ) -> None:
        self.name, self.device = select(transport, params, comm)
        self.comm = comm
        self.rank = int(comm.Get_rank())
        self.size = int(comm.Get_size())
        self.ordered = reduction == "ordered"
        self.wait_requests = wait
        self.timeout = float(timeout)
        self.active = self.device is not None and self.size > 1
        self.slots: dict[int, _Slot] = {}
        self.pending: list[_Slot] = []  # staged: copied to the host, reduction not started
        self.started: list[_Slot] = []  # launched this step, in order
        self.requests: list[Any] = []
        self.stream: Any = None
        self.nccl: Any = None
        if self.active and self.name in ("staged", "nccl"):
            self.stream = self.device.stream()
        if self.active and self.name == "nccl":
            uid = self.device.nccl_unique_id() if self.rank == 0 else None
            uid = comm.bcast(uid, root=0)  # once, at start
            self.nccl = self.device.nccl_comm(self.size, uid, self.rank)

    # -- start ---------------------------------------------------------------------------
    def attach(self, buckets: Sequence[Any]) -> None:
        """Allocate each bucket's staging and gather memory."""
        if not self.active:
            return
        for b in buckets:
            slot = _Slot(b)
            n = int(b.buffer.size)
            if self.name == "staged":
                slot.host = self.device.empty_pinned(n, b.buffer.dtype)
                if self.ordered:
                    slot.gathered = self.device.empty_pinned(self.size * n, b.buffer.dtype)
                    slot.gathered = slot.gathered.reshape(self.size, n)
            elif self.ordered:
                slot.gathered = self.device.empty((self.size, n), b.buffer.dtype)
            self.slots[id(b)] = slot

    def broadcast(self, params: Sequence[Any]) -> bool:
        """Give every rank rank 0's device parameter values (True), or leave host parameters
        to the caller (False)."""
        if not self.active:
            return False
        reqs = []
        if self.name == "mpi":
            self.device.synchronize()
            for p in params:
                reqs.append(self.comm.Ibcast(p.value, root=0))
            self.wait_requests(reqs, "the parameter broadcast")
            return True
        hosts = [np.ascontiguousarray(self.device.get(p.value)) for p in params]
        for h in hosts:
            reqs.append(self.comm.Ibcast(h, root=0))
        self.wait_requests(reqs, "the parameter broadcast")
        if self.rank != 0:
            for p, h in zip(params, hosts):
                self.device.put(p.value, h)
        return True

    # -- one step ------------------------------------------------------------------------
    def launch(self, bucket: Any) -> None:
        """Start the reduction of a complete bucket (staged: start its copy to the host)."""
        slot = self.slots[id(bucket)]
        self.started.append(slot)
        if self.name == "mpi":
            self.device.synchronize()
            self._start_mpi(slot, bucket.buffer)
        elif self.name == "staged":
            self.device.follow(self.stream)
            self.device.to_host(slot.host, bucket.buffer, self.stream)
            slot.event = self.device.record(self.stream)
            self.pending.append(slot)
        else:
            self.device.follow(self.stream)
            if slot.gathered is None:
                self.nccl.all_reduce(bucket.buffer, self.stream)
            else:
                self.nccl.all_gather(bucket.buffer, slot.gathered, self.stream)

    def _start_mpi(self, slot: _Slot, buf: Any) -> None:
        lib = mpi()
        if slot.gathered is None:
            self.requests.append(self.comm.Iallreduce(lib.IN_PLACE, buf, lib.SUM))
        else:
            self.requests.append(self.comm.Iallgather(buf, slot.gathered))

    def progress(self) -> None:
        """Start the reductions whose host copy is done (in bucket order) and move MPI's
        reductions in flight along."""
        if not self.active:
            return
        while self.pending and self.device.done(self.pending[0].event):
            slot = self.pending.pop(0)
            self._start_mpi(slot, slot.host)
        if self.requests:
            mpi().Request.Testall(self.requests)

    def finish(self) -> None:
        """Wait for every reduction launched this step; the buckets then hold the sums."""
        if not self.active:
            return
        started, self.started = self.started, []
        if self.name == "nccl":
            self._finish_nccl(started)
            return
        for slot in self.pending:
            self.device.wait(slot.event)
            self._start_mpi(slot, slot.host)
        self.pending = []
        requests, self.requests = self.requests, []
        self.wait_requests(requests, "the gradient reduction")
        for slot in started:
            buf = slot.bucket.buffer
            if self.name == "staged":
                if slot.gathered is not None:
                    _sum_rows(slot.gathered, slot.host)
                self.device.to_device(buf, slot.host)
            elif slot.gathered is not None:
                _sum_rows(slot.gathered, buf)

    def _finish_nccl(self, started: list[_Slot]) -> None:
        if not started:
            return
        event = self.device.record(self.stream)
        poll = Poll(self.timeout)
        while not self.device.done(event):
            if poll.expired():
                self.nccl.abort()
                raise TimeoutError(
                    f"[seisoku.distributed] rank {self.rank} of {self.size}: the gradient "
                    f"reduction (NCCL) did not complete within {self.timeout:g} s: a peer "
                    "rank died, hangs or stopped sending"
                )
        for slot in started:
            if slot.gathered is not None:
                _sum_rows(slot.gathered, slot.bucket.buffer)


def _sum_rows(gathered: Any, out: Any) -> None:
    """out = gathered[0] + gathered[1] + ... in rank order (every rank adds alike)."""
    out[...] = gathered[0]
    for r in range(1, gathered.shape[0]):
        out += gathered[r]
