"""Launch a test file's MPI cases under mpiexec with a time limit (tests skip without MPI).

A test module that calls :func:`run` is also a script: ``mpiexec -n N python test_x.py CASE
ARGS...`` runs its ``CASE`` function on every rank. Each launch runs in its own process group,
killed whole when the time limit passes, so no rank outlives a test.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

MPIEXEC = shutil.which("mpiexec")
HAVE_MPI = MPIEXEC is not None and importlib.util.find_spec("mpi4py") is not None
requires_mpi = pytest.mark.skipif(not HAVE_MPI, reason="needs mpi4py and mpiexec")


def launch(
    cmd: list[str], timeout: float, cwd: Path | None = None, **env_vars: str
) -> tuple[int, str, str, float]:
    """Run cmd (one thread per process, env_vars added) in its own process group; its exit code,
    stdout, stderr and seconds. Past `timeout` seconds the whole group is killed and the test
    fails (a hang)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", **env_vars)
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} ran past {timeout} s (a hang)\n{out}\n{err}")
    return proc.returncode, out, err, time.monotonic() - start


def run(ranks: int, script: str, *args: str, timeout: float = 120.0) -> str:
    """Run `script` with `args` on `ranks` ranks; its stdout, or a test failure (with stderr)
    when it exits non-zero or outlives `timeout` seconds."""
    code, out, err, _ = launch([MPIEXEC, "-n", str(ranks), sys.executable, script, *args], timeout)
    if code != 0:
        pytest.fail(f"mpiexec -n {ranks} {' '.join(args)} exited {code}\n{out}\n{err}")
    return out


def main(namespace: dict) -> None:
    """Script entry: call the case named by argv[1] with the remaining arguments."""
    namespace["case_" + sys.argv[1]](*sys.argv[2:])
