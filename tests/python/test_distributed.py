"""Data parallel training under mpiexec equals one process with the same global batch.

Each test launches test_distributed_worker.py with `mpiexec -n N` (oversubscribed: 4 ranks
on 2 cores) under a time limit, and compares its parameters and history with the same
program run alone with the plain Trainer (the oracle): dropout (a Dropout layer and Linear's
fused dropout) and augmentation (random crop, cutout) included, unequal last shards
included (290 samples, global batch 30: the last batch of an epoch has 20 rows).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from mpi_launch import launch as run

MPIEXEC = shutil.which("mpiexec")
HAVE_MPI = MPIEXEC is not None and importlib.util.find_spec("mpi4py") is not None
pytestmark = pytest.mark.skipif(not HAVE_MPI, reason="needs mpi4py and mpiexec")

WORKER = str(Path(__file__).with_name("test_distributed_worker.py"))
TOLERANCE = {"float64": 1e-12, "float32": 1e-6}


def worker(ranks: int | None, out: Path, *args: str, timeout: float = 240) -> dict:
    """Run the worker alone (ranks None) or under mpiexec -n ranks; its saved results."""
    cmd = [sys.executable, WORKER, "train", str(out), *args]
    if ranks is None:
        cmd.append("--single")
    else:
        cmd = [MPIEXEC, "-n", str(ranks), *cmd]
    code, stdout, stderr, _ = run(cmd, timeout)
    assert code == 0, f"exit {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def assert_same_training(got: dict, want: dict, tol: float) -> None:
    params = sorted(k for k in want if k.startswith("p_"))
    assert params and sorted(k for k in got if k.startswith("p_")) == params
    for k in params:
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=tol, err_msg=k)
    assert int(got["steps"]) == int(want["steps"])
    assert int(got["best_step"]) == int(want["best_step"])
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5, atol=0)
    np.testing.assert_allclose(got["val_loss"], want["val_loss"], rtol=1e-5, atol=0)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The one-process oracle runs, by dtype (computed once)."""
    folder = tmp_path_factory.mktemp("single")
    return {dt: worker(None, folder / f"{dt}.npz", "--dtype", dt) for dt in ("float64", "float32")}


@pytest.mark.parametrize("ranks", [2, 4])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_data_parallel_equals_one_process(single, tmp_path, dtype, ranks):
    got = worker(ranks, tmp_path / "dp.npz", "--dtype", dtype)
    assert int(got["steps"]) == 50
    assert str(got["reduction"]) == "shared"  # 'auto' on one machine
    assert_same_training(got, single[dtype], TOLERANCE[dtype])


@pytest.mark.parametrize("ranks", [2, 4])
def test_mpi_allreduce_equals_one_process(single, tmp_path, ranks):
    """reduction='allreduce' (MPI's Iallreduce, the transport across machines) too."""
    got = worker(ranks, tmp_path / "ar.npz", "--dtype", "float32", "--reduction", "allreduce")
    assert str(got["reduction"]) == "allreduce"
    assert_same_training(got, single["float32"], TOLERANCE["float32"])


def test_eight_ranks_oversubscribed_equal_one_process(single, tmp_path):
    """Beyond one machine, simulated: 8 ranks on this machine's cores (4x oversubscribed)
    train the one-process parameters too."""
    got = worker(8, tmp_path / "dp8.npz", "--dtype", "float64", timeout=480)
    assert int(got["steps"]) == 50
    assert_same_training(got, single["float64"], TOLERANCE["float64"])


def test_without_row_offsets_the_draws_depend_on_the_ranks(single, tmp_path):
    """The comparison can fail: the same 2-rank run with every shard drawing as if it were
    rows 0.. of the batch (no row offsets for dropout and augmentation) ends elsewhere."""
    got = worker(2, tmp_path / "norows.npz", "--ignore-rows")
    diff = max(np.abs(got[k] - single["float64"][k]).max() for k in got if k.startswith("p_"))
    assert diff > 1e-4


def test_ordered_reduction_and_several_buckets(single, tmp_path):
    """reduction='ordered' (gather, then sum in rank order) with tiny buckets (one per
    parameter or so) gives the oracle's parameters too."""
    got = worker(3, tmp_path / "ordered.npz", "--reduction", "ordered", "--bucket-mb", "0.0001")
    assert_same_training(got, single["float64"], TOLERANCE["float64"])


@pytest.mark.parametrize("ranks", [1, 2])
def test_arguments_buckets_and_launch_order(tmp_path, ranks):
    """Bad arguments are ValueErrors; gradients live in the buckets; a bucket's reduction
    starts right after the layer that completes it, while the earlier layers' backward runs."""
    cmd = [MPIEXEC, "-n", str(ranks), sys.executable, WORKER, "api", str(tmp_path / "x")]
    code, out, err, _ = run(cmd, timeout=120)
    # every rank reports (mpiexec may interleave the ranks' lines)
    assert code == 0, f"{out}\n{err}"
    assert sorted(re.findall(r"ok (\d+)", out)) == [str(r) for r in range(ranks)], f"{out}\n{err}"


def test_any_sub_communicator(single, tmp_path):
    """4 ranks split into two communicators of 2 (ranks 0, 2 and 1, 3): each trains the
    oracle's parameters on its own."""
    cmd = [MPIEXEC, "-n", "4", sys.executable, WORKER, "train", str(tmp_path / "s.npz"), "--split"]
    code, out, err, _ = run(cmd, timeout=240)
    assert code == 0, f"{out}\n{err}"
    for color in (0, 1):
        with np.load(tmp_path / f"s-{color}.npz") as f:
            assert_same_training(dict(f), single["float64"], TOLERANCE["float64"])


def test_sample_weights_give_the_weighted_global_mean(tmp_path):
    want = worker(None, tmp_path / "w1.npz", "--weights")
    got = worker(2, tmp_path / "w2.npz", "--weights")
    assert_same_training(got, want, TOLERANCE["float64"])


def test_early_stopping_stops_every_rank_at_the_same_step(tmp_path):
    args = ("--early", "--steps", "400", "--epochs", "40")
    want = worker(None, tmp_path / "e1.npz", *args)
    assert 0 < int(want["best_step"]) < int(want["steps"]) < 400  # it did stop early
    got = worker(2, tmp_path / "e2.npz", *args)
    assert_same_training(got, want, TOLERANCE["float64"])


@pytest.mark.parametrize(("first", "then"), [(2, 4), (4, 1)])
def test_checkpoint_written_with_n_ranks_resumes_with_m(tmp_path, first, then):
    """Train 2 epochs on `first` ranks with a checkpoint per epoch, resume to 5 epochs on
    `then` ranks (1: the plain Trainer): the oracle's parameters after 5 epochs."""
    want = worker(None, tmp_path / "full.npz", "--epochs", "5", "--steps", "1000")
    ckpt = tmp_path / "ckpt.npz"
    common = ("--steps", "1000", "--checkpoint", str(ckpt))
    worker(first, tmp_path / "a.npz", "--epochs", "2", *common)
    assert ckpt.exists()
    resumed = ("--epochs", "5", "--resume", str(ckpt), *common)
    got = worker(None if then == 1 else then, tmp_path / "b.npz", *resumed)
    assert_same_training(got, want, TOLERANCE["float64"])


def test_readme_example_runs_under_mpirun(tmp_path):
    """The README's data parallel script, as written, under mpiexec -n 2."""
    readme = Path(__file__).parents[2] / "README.md"
    text = readme.read_text(encoding="utf-8")
    section = text[text.index("## Distributed training") :]
    start = section.index("```py\n") + len("```py\n")
    script = section[start : section.index("```\n", start)]
    (tmp_path / "train.py").write_text(script, encoding="utf-8")
    cmd = [MPIEXEC, "-n", "2", sys.executable, str(tmp_path / "train.py")]
    code, out, err, _ = run(cmd, timeout=240)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("2 ranks: val accuracy"), out
    assert float(lines[0].split()[-1]) > 0.8
