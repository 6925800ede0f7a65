"""Asynchronous parameter server under mpiexec: the staleness bound holds; k = 0 equals
synchronous one-process training on the interleaved batch order; waits time out clearly."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from mpi_launch import main, requires_mpi, run

import seisoku as sei
from seisoku.distributed.async_ps import shard_batches

SCRIPT = str(Path(__file__).resolve())


def test_shards_partition_each_epoch():
    for workers in (1, 2, 3):
        for epoch in range(2):
            got = np.concatenate(
                [
                    b
                    for w in range(1, workers + 1)
                    for b in shard_batches(23, workers, w, 4, epoch, 7)
                ]
            )
            assert sorted(got.tolist()) == list(range(23))
    a = shard_batches(23, 2, 1, 4, 0, 7)
    b = shard_batches(23, 2, 1, 4, 1, 7)
    assert not all(np.array_equal(u, v) for u, v in zip(a, b))  # each epoch reshuffles


def _model():
    nn, g = sei.nn, sei.random.Generator(3)
    return nn.Sequential(
        nn.Linear(6, 10, activation="relu", dtype="float64", generator=g),
        nn.Linear(10, 3, dtype="float64", generator=g),
    )


def _adam(params):
    return sei.optim.Adam(params, lr=0.01)


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(45, 6)), rng.integers(0, 3, 45)


def case_sync(staleness):
    """k = 0: the server's parameters equal one process stepping through the batches of workers
    1, 2, ..., W in turn (the order the module documents), each gradient at the current weights."""
    from mpi4py import MPI

    from seisoku.distributed.async_ps import train_async

    x, y = _data()
    model = _model()
    k = None if staleness == "none" else int(staleness)
    res = train_async(
        model, sei.nn.CrossEntropyLoss(), _adam, x, y, batch_size=4, epochs=2, staleness=k, seed=5
    )
    comm = MPI.COMM_WORLD
    if comm.rank != 0:
        assert res is None
        return
    workers = comm.size - 1
    queues = {
        w: [b for e in range(2) for b in shard_batches(45, workers, w, 4, e, 5)]
        for w in range(1, workers + 1)
    }
    assert res.updates == sum(len(q) for q in queues.values()) == len(res.log)
    if k is not None:
        assert res.max_staleness <= k, res.max_staleness
    if k != 0:
        print("PASS", k, res.max_staleness)
        return
    assert [w for w, _, _ in res.log][: 2 * workers] == list(range(1, workers + 1)) * 2
    ref, loss = _model(), sei.nn.CrossEntropyLoss()
    opt = _adam(ref.parameters())
    while any(queues.values()):
        for w in range(1, workers + 1):
            if queues[w]:
                idx = queues[w].pop(0)
                ref.zero_grad()
                loss(ref.forward(x[idx]), y[idx])
                ref.backward(loss.backward(), need_input_grad=False)
                opt.step()
    got, want = model.state_dict(), ref.state_dict()
    diff = max(float(np.max(np.abs(got[n] - want[n]))) for n in want)
    assert diff <= 1e-12, diff
    assert [h["count"] for h in res.history] == [45.0, 45.0]
    print("PASS", diff)


class _Stall(sei.nn.Module):
    """Identity that stalls for 5 s: a worker stuck in its computation."""

    def forward(self, x):
        time.sleep(5.0)
        return x

    def backward(self, grad, need_input_grad=True):
        return grad


def case_timeout(role):
    """A silent peer: the waiting side gets a TimeoutError naming what it waited for."""
    from mpi4py import MPI

    from seisoku.distributed.async_ps import train_async

    x, y = _data()
    rank = MPI.COMM_WORLD.rank
    model, make = _model(), _adam
    if role == "worker" and rank == 1:
        model = sei.nn.Sequential(_Stall(), *model.layers)
    if role == "server" and rank == 0:

        def make(params):
            time.sleep(5.0)
            return _adam(params)

    want = {
        "worker": (0, "heard from no worker; waiting for ranks [1]"),
        "server": (1, "worker rank 1 waited for parameters from the server"),
        "start": (0, "rank 0 waited for every rank to start"),
    }[role]
    if role == "start" and rank == 1:
        return  # never joins
    try:
        train_async(model, sei.nn.CrossEntropyLoss(), make, x, y, timeout=1.0)
    except TimeoutError as e:
        if rank == want[0]:  # the others may time out in turn once it gives up
            assert want[1] in str(e) and "1 s" in str(e), str(e)
            print("PASS", e)
    else:
        assert rank != want[0], "no timeout"


def case_one_rank():
    from seisoku.distributed.async_ps import train_async

    x, y = _data()
    try:
        train_async(_model(), sei.nn.CrossEntropyLoss(), _adam, x, y)
    except ValueError as e:
        assert "[async_ps] needs at least 2 MPI ranks, got 1" in str(e), str(e)
        print("PASS", e)
    else:
        raise AssertionError("no error on one rank")


def case_recipe():
    """run_async with one worker and staleness 0 on the digits recipe (no dropout, augmentation
    or early stopping) is the one-process Trainer of seisoku.recipes.run: same batch order."""
    from seisoku import recipes
    from seisoku.distributed.runs import run_async

    r = recipes.Recipe(model="mlp", hidden=(32,), dropout=0.0, shift=0, epochs=2, patience=0)
    got = run_async(r, staleness=0)
    if got is None:
        return
    want, _, _ = recipes.run(r, progress=False)
    summary, history, _ = got
    assert abs(summary["test_loss"] - want["test_loss"]) < 1e-5, (summary, want)
    assert summary["test_accuracy"] == want["test_accuracy"], (summary, want)
    assert summary["parallel"]["max_staleness"] == 0 and len(history.epochs) == 2
    print("PASS", summary["test_loss"], want["test_loss"])


@requires_mpi
def test_recipe_run_matches_the_trainer():
    pytest.importorskip("sklearn")
    assert "PASS" in run(2, SCRIPT, "recipe", timeout=180)


@requires_mpi
@pytest.mark.parametrize("ranks", [2, 3, 4])
def test_staleness_zero_is_synchronous_training(ranks):
    assert "PASS" in run(ranks, SCRIPT, "sync", "0", timeout=180)


@requires_mpi
@pytest.mark.parametrize("staleness", ["1", "2", "none"])
def test_staleness_bound_holds(staleness):
    assert "PASS" in run(4, SCRIPT, "sync", staleness, timeout=180)


@requires_mpi
@pytest.mark.parametrize("role", ["worker", "server", "start"])
def test_silent_peer_times_out(role):
    assert "PASS" in run(2, SCRIPT, "timeout", role, timeout=120)


@requires_mpi
def test_one_rank_is_a_clear_error():
    assert "PASS" in run(1, SCRIPT, "one_rank", timeout=120)


@requires_mpi
def test_cli_train_parallel_async(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "summary.json"
    args = ["train", "--parallel", "async", "--staleness", "1", "--model", "mlp", "--epochs", "2"]
    args += ["--no-progress", "--json", str(out)]
    printed = run(3, "-m", "seisoku.cli", *args, timeout=180)
    assert printed.count("test accuracy") == 1  # rank 0 prints the table
    summary = json.loads(out.read_text())
    assert summary["parallel"]["mode"] == "async" and summary["epochs_run"] == 2
    assert 0.5 < summary["test_accuracy"] <= 1.0


if __name__ == "__main__":
    main(globals())
