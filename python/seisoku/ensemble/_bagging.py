"""Bagging: members trained on bootstrap resamples, combined by voting, with out-of-bag
estimates."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._array import array_module, is_cuda_array
from ..nn import Module
from ..train import History
from ._common import (
    Array,
    MemberFactory,
    _check_common,
    _check_factory,
    _check_int,
    _check_labels,
    _check_voting,
    _MemberProgress,
)
from ._members import _Base, _check_backend, resolve_backend, run_members
from ._voting import Ensemble


class Bagging(_Base):
    """Bootstrap aggregating: members trained on resamples of the training set, combined by
    voting.

    Member m draws from ``numpy.random.default_rng([seed, m])``: first its own seed s_m (an
    int in [0, 2**31 - 1), passed to build_member and used as the Trainer's shuffling seed),
    then its sample of round(max_samples * N) indices, with replacement (bootstrap=True,
    default) or without. Each member is trained with seisoku.train.Trainer.

    Args:
        build_member: build_member(s_m) -> (model, loss, optimizer), a fresh member. Give
            every random layer a seisoku.Generator of its own seeded from s_m (e.g.
            ``nn.mlp(..., generator=seisoku.Generator(s_m))``): layers that fall back on the
            process-wide generator share it across threads, and results then depend on the
            thread schedule.
        n_members: number of members (default 5).
        max_samples: fraction of N drawn for each member, in (0, 1] (default 1.0).
        bootstrap: draw with replacement (default True).
        epochs, batch_size: passed to Trainer.fit (defaults 10 and 32).
        seed: the ensemble's seed (default 0).
        n_jobs: members trained at once (default 1: one after another).
        backend: how n_jobs > 1 members train at once: 'process' (forked worker processes,
            each running seisoku's kernels on one thread, sending back the trained
            parameters; needs NumPy data and a platform with fork), 'thread' (threads in
            this process sharing the kernel threads; they overlap only in native calls,
            which small members spend little of their time in), 'mpi' (run under mpiexec
            with mpi4py: rank r of P trains members r, r + P, ..., then every rank gets every
            member; n_jobs is not used; only rank 0 shows the bar) or 'auto' (default:
            'process' where possible, else 'thread'). Results depend on neither n_jobs nor
            backend. With 'process' and 'mpi', build_member is called again in this process
            to give each member's architecture.
        voting: 'soft' (default) or 'hard', see Ensemble.
        progress: one tqdm bar over the members when tqdm is installed (default True).
        fit_kwargs: more keyword arguments for every Trainer.fit (e.g. augment).

    After fit: ensemble_ (an Ensemble), members_, histories_, indices_ (each member's drawn
    sample indices), oob_mask_ ((M, N) bool: sample n was not drawn for member m),
    oob_decision_function_ ((N, K) combined probabilities of the members for which each
    sample is out of bag; NaN rows for samples drawn by every member) and oob_score_ (the
    accuracy of those combined predictions over the samples with at least one out-of-bag
    member; NaN when there are none, e.g. bootstrap=False with max_samples=1).
    """

    def __init__(
        self,
        build_member: MemberFactory,
        n_members: int = 5,
        *,
        max_samples: float = 1.0,
        bootstrap: bool = True,
        epochs: int = 10,
        batch_size: int = 32,
        seed: int = 0,
        n_jobs: int = 1,
        backend: str = "auto",
        voting: str = "soft",
        progress: bool = True,
        fit_kwargs: dict[str, Any] | None = None,
    ) -> None:
        op = "Bagging"
        _check_factory(build_member, op)
        self.n_members, self.epochs, self.batch_size, self.seed = _check_common(
            n_members, epochs, batch_size, seed, op
        )
        if (
            isinstance(max_samples, bool)
            or not isinstance(max_samples, (int, float, np.floating))
            or not 0.0 < max_samples <= 1.0
        ):
            raise ValueError(
                f"[{op}] argument 'max_samples' must be in (0, 1], got {max_samples!r}"
            )
        self.build_member = build_member
        self.max_samples = float(max_samples)
        self.bootstrap = bool(bootstrap)
        self.n_jobs = _check_int(n_jobs, "n_jobs", op)
        self.backend = _check_backend(backend, op)
        self.voting = _check_voting(voting, op)
        self.progress = bool(progress)
        self.fit_kwargs = dict(fit_kwargs or {})
        self.ensemble_: Ensemble | None = None  # type: ignore[assignment]

    def draw(self, n: int) -> list[tuple[int, np.ndarray]]:
        """(s_m, sample indices) of every member for a training set of n samples."""
        size = max(1, round(self.max_samples * n))
        out = []
        for m in range(self.n_members):
            rng = np.random.default_rng([self.seed, m])
            member_seed = int(rng.integers(0, 2**31 - 1))
            if self.bootstrap:
                idx = rng.integers(0, n, size)
            else:
                idx = np.sort(rng.choice(n, size, replace=False))
            out.append((member_seed, idx.astype(np.int64)))
        return out

    def fit(self, x: Array, y: Array) -> Bagging:
        """Train the members on their samples of (x, y) and build ensemble_; returns self."""
        labels = _check_labels(x, y, "Bagging.fit")
        n = x.shape[0]
        draws = self.draw(n)

        def job(m: int) -> tuple[Module, History]:
            member_seed, idx = draws[m]
            sel = array_module(x).asarray(idx) if is_cuda_array(x) else idx
            return self._train(m, member_seed, x[sel], y[sel])

        backend = resolve_backend(self.backend, x, "Bagging")
        shown = self.progress
        if backend == "mpi":
            from ._members import _mpi_comm

            shown = shown and _mpi_comm("Bagging").Get_rank() == 0
        bar = _MemberProgress(shown, self.n_members, "bagging")
        try:
            results = run_members(
                job,
                lambda m: self._build(m, draws[m][0])[0],
                self.n_members,
                self.n_jobs,
                backend,
                bar,
            )
        finally:
            bar.close()
        self.members_ = [r[0] for r in results]
        self.histories_ = [r[1] for r in results]
        self.indices_ = [d[1] for d in draws]
        self.ensemble_ = Ensemble(self.members_, voting=self.voting)
        self._out_of_bag(x, labels)
        return self

    def _out_of_bag(self, x: Array, labels: np.ndarray) -> None:
        n = x.shape[0]
        mask = np.ones((self.n_members, n), dtype=bool)
        for m, idx in enumerate(self.indices_):
            mask[m, idx] = False
        self.oob_mask_ = mask
        votes = self.ensemble_.member_votes(x)  # (M, N, K)
        total = (votes * mask[:, :, None]).sum(axis=0)
        count = mask.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.oob_decision_function_ = total / count[:, None]
        seen = count > 0
        if seen.any():
            pred = self.oob_decision_function_[seen].argmax(axis=1)
            self.oob_score_ = float((pred == labels[seen]).mean())
        else:
            self.oob_score_ = math.nan
