"""Faults under mpiexec end every rank with a non-zero status and a clear message, never a
hang; and `seisoku train --parallel data` from the command line. Each launch runs under a
time limit in its own process group (killed as a whole past it)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
from mpi_launch import launch as run

MPIEXEC = shutil.which("mpiexec")
HAVE_MPI = MPIEXEC is not None and importlib.util.find_spec("mpi4py") is not None
pytestmark = pytest.mark.skipif(not HAVE_MPI, reason="needs mpi4py and mpiexec")

WORKER = str(Path(__file__).with_name("test_distributed_worker.py"))
CLI = "import sys; from seisoku.cli import main; sys.exit(main(sys.argv[1:]))"
# Seconds a faulty job may take from launch to the end of every rank (start-up included).
FAULT_LIMIT = 30.0


def fault(tmp_path: Path, kind: str, *extra: str, **env_vars: str) -> tuple[int, str, float]:
    cmd = [
        MPIEXEC,
        "-n",
        "2",
        sys.executable,
        WORKER,
        "fault",
        str(tmp_path / "x.npz"),
        "--fault",
        kind,
        "--steps",
        "100000",
        "--epochs",
        "1000",
        *extra,
    ]
    code, out, err, seconds = run(cmd, timeout=FAULT_LIMIT + 30, **env_vars)
    return code, out + err, seconds


def test_exception_on_one_rank_aborts_every_rank(tmp_path):
    code, text, seconds = fault(tmp_path, "raise")
    assert code != 0
    assert "[rank 1 of 2]" in text and "RuntimeError: injected failure at step 3" in text
    assert seconds < FAULT_LIMIT, text


def test_rank_that_stops_sending_times_out_the_others(tmp_path):
    code, text, seconds = fault(tmp_path, "hang", SEISOKU_MPI_TIMEOUT="4")
    assert code != 0
    assert "[rank 0 of 2]" in text and "did not complete within 4 s" in text
    assert "a peer rank died, hangs or stopped sending" in text
    assert seconds < FAULT_LIMIT, text


def test_rank_killed_with_sigkill_ends_the_job(tmp_path):
    code, text, seconds = fault(tmp_path, "kill", "--timeout", "20")
    assert code != 0
    assert "signal 9" in text.lower() or "killed" in text.lower(), text
    assert seconds < FAULT_LIMIT, text


def test_mismatched_models_are_refused_at_wrap_time(tmp_path):
    cmd = [MPIEXEC, "-n", "2", sys.executable, WORKER, "mismatch", str(tmp_path / "x.npz")]
    code, out, err, seconds = run(cmd, timeout=FAULT_LIMIT + 30)
    assert code != 0
    text = out + err
    assert "[DataParallel] the model on rank 1 differs from rank 0's" in text
    assert "shape (25, 36) on rank 1 and float64 of shape (24, 36) on rank 0" in text
    assert seconds < FAULT_LIMIT, text


def test_ranks_with_other_data_are_refused_at_fit(tmp_path):
    cmd = [MPIEXEC, "-n", "2", sys.executable, WORKER, "baddata", str(tmp_path / "x.npz")]
    code, out, err, seconds = run(cmd, timeout=FAULT_LIMIT + 30)
    assert code != 0
    assert "rank 1 holds other training data than rank 0" in out + err
    assert seconds < FAULT_LIMIT, out + err


def test_cli_parallel_with_one_process_says_how_to_launch(tmp_path):
    cmd = [MPIEXEC, "-n", "1", sys.executable, "-c", CLI, "train", "--parallel", "data"]
    code, _, err, _ = run(cmd, timeout=120, cwd=tmp_path)
    assert code == 2
    assert "--parallel data needs 2 or more MPI processes" in err
    assert "mpirun -n N seisoku train --parallel data" in err


def test_cli_gpu_transport_for_a_cpu_model_is_a_clear_error(tmp_path):
    args = ["train", "--parallel", "data", "--transport", "staged", "--epochs", "1"]
    cmd = [MPIEXEC, "-n", "2", sys.executable, "-c", CLI, *args, "--no-progress"]
    code, out, err, _ = run(cmd, timeout=FAULT_LIMIT + 60, cwd=tmp_path)
    assert code != 0
    assert "argument 'transport'" in out + err and "staged" in out + err, out + err


def test_cli_parallel_data_prints_the_single_process_summary_once(tmp_path):
    args = ["train", "--epochs", "2", "--no-progress", "--model", "mlp", "--hidden", "32"]
    code, single, err, _ = run(
        [sys.executable, "-c", CLI, *args, "--json", "one.json"], timeout=300, cwd=tmp_path
    )
    assert code == 0, err
    cmd = [
        MPIEXEC,
        "-n",
        "2",
        sys.executable,
        "-c",
        CLI,
        *args,
        "--parallel",
        "data",
        "--json",
        "two.json",
    ]
    code, double, err, _ = run(cmd, timeout=300, cwd=tmp_path)
    assert code == 0, err
    assert double.count("test_accuracy") == single.count("test_accuracy") >= 1 or (
        double.splitlines()[0] == single.splitlines()[0]
    )
    assert len(double.splitlines()) == len(single.splitlines())  # printed once, by rank 0
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    for key in ("train_accuracy", "val_accuracy", "test_accuracy", "test_loss", "epochs_run"):
        assert two[key] == pytest.approx(one[key], rel=1e-6, abs=1e-9), key
