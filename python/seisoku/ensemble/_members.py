"""Training ensemble members: the shared base of Bagging and AdaBoost, the worker pools that
train members side by side, and the loss wrapper that makes sample weights act per sample.

Why processes: a small member spends most of a training step in Python (batch indexing, the
Trainer's bookkeeping, the optimizer's dispatch), all under the GIL; only the native forward,
backward and update release it. Member threads therefore take turns rather than overlap, and
two of them train a digits MLP no faster than one after another. Worker processes,
forked so that they share the training data without copying it, each run a whole member on
one kernel thread and send back its parameters.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _core
from .._array import is_cuda_array
from ..nn import CrossEntropyLoss, Loss, Module
from ..random import Generator
from ..train import History, Trainer
from ._common import Array, MemberFactory, _MemberProgress

if TYPE_CHECKING:
    from ._voting import Ensemble

#: How Bagging trains members at once: 'auto' (processes where fork exists and the data are
#: NumPy, else threads), 'process', 'thread' or 'mpi' (the ranks of an MPI job share them out).
BACKENDS = ("auto", "process", "thread", "mpi")


def _check_backend(backend: Any, op: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(
            f"[{op}] argument 'backend' must be one of {', '.join(map(repr, BACKENDS))}, "
            f"got {backend!r}"
        )
    return str(backend)


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def resolve_backend(backend: str, x: Array, op: str) -> str:
    """'process' or 'thread' for training on x: 'auto' picks processes when the platform can
    fork and x is a NumPy array (CuPy data stay with threads)."""
    if backend == "auto":
        return "process" if _can_fork() and not is_cuda_array(x) else "thread"
    if backend == "process" and not _can_fork():
        raise ValueError(f"[{op}] argument 'backend' is 'process', but this platform cannot fork")
    if backend == "process" and is_cuda_array(x):
        raise ValueError(f"[{op}] argument 'backend' is 'process', which needs NumPy (CPU) data")
    if backend == "mpi":
        _mpi_comm(op)
    return backend


def _mpi_comm(op: str) -> Any:
    """MPI.COMM_WORLD, or ValueError when mpi4py is missing."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ValueError(
            f"[{op}] argument 'backend' is 'mpi', which needs mpi4py (pip install mpi4py): {e}"
        ) from None
    return MPI.COMM_WORLD


def _generators(model: Module) -> list[Generator]:
    gens, seen = [], set()
    for _, m in model.named_modules():
        g = getattr(m, "generator", None)
        if isinstance(g, Generator) and id(g) not in seen:
            seen.add(id(g))
            gens.append(g)
    return gens


def _pack(model: Module) -> dict[str, Any]:
    """A trained member as plain data: its parameters and its generators' states."""
    return {
        "parameters": model.state_dict(),
        "generators": [dict(g.state_dict()) for g in _generators(model)],
    }


def _unpack(model: Module, packed: dict[str, Any]) -> Module:
    model.load_state_dict(packed["parameters"])
    for g, state in zip(_generators(model), packed["generators"]):
        g.load_state_dict(state)
    model.eval()
    return model


# The job of the running process pool, set before the workers fork (they inherit it); the
# lock keeps two fits in threads of one process from swapping it under each other.
_JOB: Callable[[int], Any] | None = None
_JOB_LOCK = threading.Lock()


def _child(m: int) -> tuple[int, Any]:
    global _JOB_LOCK
    _JOB_LOCK = threading.Lock()  # the parent held it when forking: free for nested pools
    _core.set_num_threads(1)
    if _JOB is None:  # pragma: no cover - only when a worker was not forked from fit
        raise RuntimeError("ensemble worker started without a job")
    return m, _JOB(m)


def run_jobs(
    job: Callable[[int], Any], count: int, n_jobs: int, backend: str, bar: _MemberProgress
) -> list[Any]:
    """[job(m) for m in range(count)]: one after another (n_jobs 1), in n_jobs threads
    sharing seisoku's kernel threads (backend 'thread'), or in n_jobs forked worker
    processes with one kernel thread each (backend 'process'; job(m) must return a picklable
    value). The bar advances once per finished job; a job's exception is raised here."""
    if backend == "mpi":
        return _run_ranks(job, count, bar)
    jobs = min(n_jobs, count)
    if jobs == 1:
        results = []
        for m in range(count):
            results.append(job(m))
            bar.update()
        return results
    if backend == "thread":
        return _run_threads(job, count, jobs, bar)
    return _run_processes(job, count, jobs, bar)


def run_members(
    job: Callable[[int], tuple[Module, History]],
    rebuild: Callable[[int], Module],
    count: int,
    n_jobs: int,
    backend: str,
    bar: _MemberProgress,
) -> list[tuple[Module, History]]:
    """run_jobs for jobs that train a member: with processes, each worker sends back the
    member's parameters and generator states, which go into rebuild(m), an untrained member
    m built here. Results are in member order and do not depend on n_jobs or the backend."""
    if backend == "thread" or (backend == "process" and min(n_jobs, count) == 1):
        return run_jobs(job, count, n_jobs, backend, bar)

    def portable(m: int) -> tuple[dict[str, Any], History]:
        model, history = job(m)
        return _pack(model), history

    packed = run_jobs(portable, count, n_jobs, backend, bar)
    return [(_unpack(rebuild(m), state), history) for m, (state, history) in enumerate(packed)]


def _run_ranks(job: Callable[[int], Any], count: int, bar: _MemberProgress) -> list[Any]:
    """MPI: rank r of P runs jobs r, r + P, ... (its kernel threads as set), then every rank
    receives every result (allgather), in job order."""
    comm = _mpi_comm("ensemble")
    rank, size = comm.Get_rank(), comm.Get_size()
    mine = {}
    error = None
    for m in range(rank, count, size):
        try:
            mine[m] = job(m)
        except Exception as e:  # sent to every rank and raised on all alike (no rank hangs)
            error = f"member {m} failed on rank {rank}: {type(e).__name__}: {e}"
            break
        bar.update()
    gathered = comm.allgather((mine, error))
    errors = [err for _, err in gathered if err is not None]
    if errors:
        raise ValueError(f"[ensemble] {errors[0]}")
    results: dict[int, Any] = {}
    for part, _ in gathered:
        results.update(part)
    for _ in range(count - len(mine)):
        bar.update()
    return [results[m] for m in range(count)]


def _run_threads(
    job: Callable[[int], Any], count: int, jobs: int, bar: _MemberProgress
) -> list[Any]:
    threads = _core.get_num_threads()

    def counted(m: int) -> Any:
        result = job(m)
        bar.update()
        return result

    _core.set_num_threads(max(1, threads // jobs))
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            return list(pool.map(counted, range(count)))
    finally:
        _core.set_num_threads(threads)


def _run_processes(
    job: Callable[[int], Any], count: int, jobs: int, bar: _MemberProgress
) -> list[Any]:
    global _JOB
    with _JOB_LOCK:
        _JOB = job
        results: dict[int, Any] = {}
        try:
            with warnings.catch_warnings():
                # Python >= 3.12 warns on fork from a process with threads (OpenMP's); the
                # workers run one kernel thread and never enter an OpenMP region.
                warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
                ctx = multiprocessing.get_context("fork")
                with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
                    pending = {pool.submit(_child, m) for m in range(count)}
                    try:
                        while pending:
                            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                            for f in done:
                                m, value = f.result()  # a worker's error is raised here
                                results[m] = value
                                bar.update()
                    except BaseException:
                        for f in pending:
                            f.cancel()
                        raise
        finally:
            _JOB = None
        return [results[m] for m in range(count)]


def default_jobs() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return os.cpu_count() or 1


class PerSampleWeightLoss(Loss):
    """A loss whose sample weights act per sample: the batch loss is sum_i w_i l_i / |B|
    rather than the wrapped loss's weighted mean sum_i w_i l_i / sum_i w_i.

    seisoku's losses divide a batch's weighted sum by the batch's total weight, so every
    mini-batch makes a step of the same size whatever its total weight. With weights of
    mean 1 over the training set, this wrapper's batch loss instead has the expectation
    (1/N) sum_i w_i l_i over a shuffled epoch: the weighted objective AdaBoost needs, where a
    batch of heavily weighted (hard) samples makes a larger step than a batch of easy ones.
    Without weights it is the wrapped loss unchanged.

    Args:
        base: the seisoku.nn Loss to wrap (e.g. CrossEntropyLoss()).
    """

    def __init__(self, base: Loss) -> None:
        super().__init__()
        if not isinstance(base, Loss):
            raise ValueError(
                f"[PerSampleWeightLoss] argument 'base' must be a seisoku.nn.Loss, got "
                f"{type(base).__name__}"
            )
        self.base = base
        self._scale = 1.0

    @property
    def classification(self) -> bool:
        """Whether the wrapped loss is a classification loss (the Trainer records accuracy)."""
        return isinstance(self.base, CrossEntropyLoss) or bool(
            getattr(self.base, "classification", False)
        )

    def forward(self, pred: Array, target: Array, sample_weight: Array | None = None) -> Array:
        value = self.base(pred, target, sample_weight)
        self._scale = 1.0
        if sample_weight is not None and sample_weight.shape[0]:
            self._scale = float(sample_weight.sum()) / sample_weight.shape[0]
        return value * value.dtype.type(self._scale)

    def backward(self) -> Array:
        """d(loss)/d(pred) of the last forward: the wrapped gradient times sum(w) / |B|."""
        grad = self.base.backward()
        return grad * grad.dtype.type(self._scale) if self._scale != 1.0 else grad


class _Base:
    """What Bagging and AdaBoost share: training a member, prediction through `ensemble_`."""

    ensemble_: Ensemble
    build_member: MemberFactory
    epochs: int
    batch_size: int
    fit_kwargs: dict[str, Any]

    def _build(self, m: int, member_seed: int) -> tuple[Module, Loss, Any]:
        result = self.build_member(member_seed)
        if not isinstance(result, tuple) or len(result) != 3:
            raise ValueError(
                f"[{type(self).__name__}] build_member must return (model, loss, optimizer), "
                f"got {type(result).__name__} for member {m}"
            )
        if not isinstance(result[0], Module):
            raise ValueError(
                f"[{type(self).__name__}] build_member must return a seisoku.nn.Module as the "
                f"model, got {type(result[0]).__name__} for member {m}"
            )
        return result

    def _train(
        self,
        m: int,
        member_seed: int,
        x: Array,
        y: Array,
        sample_weight: Array | None = None,
        per_sample: bool = False,
    ) -> tuple[Module, History]:
        """Member m, built from build_member(member_seed) and trained with a Trainer; with
        per_sample, its loss is wrapped in PerSampleWeightLoss."""
        model, loss, optimizer = self._build(m, member_seed)
        if per_sample and sample_weight is not None:
            loss = PerSampleWeightLoss(loss)
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
