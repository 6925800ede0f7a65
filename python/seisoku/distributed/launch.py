"""`seisoku train --parallel MODE` under mpirun: the modes and their dispatch.

Each mode is one entry of PARALLEL_MODES: a function (args, run, comm) -> exit status that
makes run(args) (the single-process `seisoku train`) train in that mode, typically by
installing a seisoku.train.set_default_parallel factory around it. register_mode adds one.
train_parallel does what every mode needs: the MPI communicator, at least two ranks, the
abort-on-error hook, and output from rank 0 only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable
from typing import Any

Runner = Callable[[argparse.Namespace], int]
Mode = Callable[[argparse.Namespace, Runner, Any], int]


def _data(args: argparse.Namespace, run: Runner, comm: Any) -> int:
    """Synchronous data parallel: every Trainer the run builds wraps its model in
    DataParallel over comm (parameters and optimizer state from rank 0)."""
    from ..train import set_default_parallel
    from .data_parallel import DataParallel

    transport = getattr(args, "transport", None) or "auto"
    previous = set_default_parallel(
        lambda model, opt: DataParallel(model, comm, optimizer=opt, transport=transport)
    )
    try:
        return run(args)
    finally:
        set_default_parallel(previous)


def lazy_mode(module: str, function: str) -> Mode:
    """A mode that imports seisoku.distributed.<module> only when it runs, then calls its
    <function>(args, run, comm): PARALLEL_MODES["name"] = lazy_mode("module", "function")."""

    def mode(args: argparse.Namespace, run: Runner, comm: Any) -> int:
        import importlib

        return getattr(importlib.import_module(f"{__package__}.{module}"), function)(
            args, run, comm
        )

    return mode


# One entry per `seisoku train --parallel` mode.
PARALLEL_MODES: dict[str, Mode] = {"data": _data}


def register_mode(name: str, mode: Mode) -> None:
    """Add (or replace) `seisoku train --parallel name`: mode(args, run, comm) -> status."""
    if not name or not callable(mode):
        raise ValueError(f"register_mode needs a name and a callable, got {name!r}, {mode!r}")
    PARALLEL_MODES[name] = mode


def train_parallel(args: argparse.Namespace, run: Runner) -> int:
    """Run `seisoku train` (run(args)) in the mode args.parallel over MPI.COMM_WORLD.

    Exit status 2 with one message when mpi4py is missing or only one process was started.
    Ranks other than 0 print nothing on stdout and write their --out / --json copies into a
    temporary folder that is removed afterwards (rank 0's files are the run's). An error on
    any rank prints it with the rank and aborts every rank (no rank waits for a dead peer).
    """
    mode = args.parallel
    if mode not in PARALLEL_MODES:
        print(
            f"seisoku train: --parallel must be one of {sorted(PARALLEL_MODES)}, got {mode!r}",
            file=sys.stderr,
        )
        return 2
    from ._comm import get_comm, install_abort_handler

    try:
        comm = get_comm()
    except ImportError as e:
        print(f"seisoku train: --parallel {mode}: {e}", file=sys.stderr)
        return 2
    size, rank = comm.Get_size(), comm.Get_rank()
    if size < 2:
        print(
            f"seisoku train: --parallel {mode} needs 2 or more MPI processes, but this is the "
            f"only one: launch it as `mpirun -n N seisoku train --parallel {mode} ...` with "
            "N >= 2 (or leave out --parallel to train in one process)",
            file=sys.stderr,
        )
        return 2
    install_abort_handler(comm)
    scratch = None
    with contextlib.ExitStack() as stack:
        if rank != 0:
            scratch = tempfile.mkdtemp(prefix=f"seisoku-rank{rank}-")
            stack.callback(shutil.rmtree, scratch, True)
            if getattr(args, "out", None):
                args.out = os.path.join(scratch, "out")
            if getattr(args, "json", None):
                args.json = os.path.join(scratch, "summary.json")
            devnull = stack.enter_context(open(os.devnull, "w"))
            stack.enter_context(contextlib.redirect_stdout(devnull))
        try:
            return PARALLEL_MODES[mode](args, run, comm)
        except Exception as e:
            detail = "".join(traceback.format_exception_only(type(e), e)).strip()
            sys.stderr.write(f"[rank {rank} of {size}] seisoku train: {detail}\n")
            sys.stderr.write(f"[rank {rank} of {size}] aborting every rank of the job\n")
            sys.stderr.flush()
            comm.Abort(2)
            raise  # not reached: Abort ends the process
