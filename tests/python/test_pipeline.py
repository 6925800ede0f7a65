"""Pipeline model parallelism: split search, and (under mpiexec -n 2 and -n 4) GPipe and 1F1B
steps equal to the full-batch step of one process, shape checks, timeouts and idle fractions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from mpi_launch import main, requires_mpi, run

import seisoku as sei
from seisoku.distributed.pipeline import balanced_split, bubble_fraction

SCRIPT = str(Path(__file__).resolve())


# -- pure functions (no MPI) -------------------------------------------------------------------
def _brute_force(costs, stages):
    from itertools import combinations

    n, best = len(costs), None
    for cut in combinations(range(1, n), stages - 1):
        bounds = [0, *cut, n]
        worst = max(sum(costs[a:b]) for a, b in zip(bounds[:-1], bounds[1:]))
        if best is None or worst < best[0] - 1e-12:
            best = (worst, list(cut))
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("stages", [2, 3, 4])
def test_balanced_split_minimizes_the_slowest_stage(seed, stages):
    costs = list(np.random.default_rng(seed).exponential(size=7))
    points = balanced_split(costs, stages)
    bounds = [0, *points, len(costs)]
    assert len(points) == stages - 1 and all(a < b for a, b in zip(bounds[:-1], bounds[1:]))
    worst = max(sum(costs[a:b]) for a, b in zip(bounds[:-1], bounds[1:]))
    assert worst == pytest.approx(_brute_force(costs, stages)[0], rel=1e-12)


def test_balanced_split_depends_on_the_costs_not_the_layer_count():
    assert balanced_split([1, 1, 1, 1], 2) == [2]
    assert balanced_split([6, 1, 1, 1, 1], 2) == [1]  # one heavy layer gets a stage to itself
    assert balanced_split([1, 1, 1, 1, 6], 2) == [4]
    with pytest.raises(ValueError, match="stages"):
        balanced_split([1, 2], 3)


def test_profile_layers_finds_the_heavy_layer_and_leaves_the_model_alone():
    from seisoku.distributed.pipeline import profile_layers

    nn, g = sei.nn, sei.random.Generator(0)
    model = nn.Sequential(
        nn.ReLU(),
        nn.Linear(256, 1024, activation="relu", dropout=0.5, generator=g),
        nn.ReLU(),
        nn.Linear(1024, 4, generator=g),
    )
    x = np.random.default_rng(0).normal(size=(256, 256)).astype(np.float32)
    state, gen = model.state_dict(), g.state_dict()
    costs = profile_layers(model, x, repeats=5)
    assert len(costs) == 4 and all(c > 0 for c in costs)
    assert costs[1] > 3 * max(costs[0], costs[2]), costs  # 256x1024 product vs elementwise
    assert balanced_split(costs, 2) in ([1], [2])  # the heavy layer ends or starts a stage
    assert g.state_dict() == gen and model.training
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[name])
    assert all(not np.any(p.grad) for p in model.parameters())


def test_bubble_fraction():
    assert bubble_fraction(1, 8) == 0.0
    assert bubble_fraction(4, 8) == pytest.approx(3 / 11)
    assert bubble_fraction(2, 1) == pytest.approx(0.5)


# -- MPI cases (run as a script on every rank) -------------------------------------------------
def _model(widths=(6, 8, 8, 8, 3)):
    nn, g = sei.nn, sei.random.Generator(3)
    layers = [
        nn.Linear(widths[0], widths[1], activation="relu", dtype="float64", generator=g),
        nn.Linear(widths[1], widths[2], activation="tanh", dtype="float64", generator=g),
        nn.Linear(widths[2], widths[3], dtype="float64", generator=g),
        nn.ReLU(),
        nn.Linear(widths[3], widths[4], dtype="float64", generator=g),
    ]
    return nn.Sequential(*layers)


def _sgd(params):
    return sei.optim.SGD(params, lr=0.1, momentum=0.9, l2=1e-3)


def case_equal(schedule, micro_batches, split):
    """Three pipelined steps give the parameters and losses of three full-batch steps."""
    from seisoku.distributed.pipeline import Pipeline

    split = split if split == "balanced" else [int(v) for v in split.split(",")]
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(33, 6)), rng.integers(0, 3, 33)
    loss = sei.nn.CrossEntropyLoss()
    pipe = Pipeline(
        _model(),
        loss,
        _sgd,
        split=split,
        micro_batches=int(micro_batches),
        schedule=schedule,
    )
    ref, ref_loss = _model(), sei.nn.CrossEntropyLoss()
    opt = _sgd(ref.parameters())
    for b in range(3):
        xb, yb = x[b * 11 : (b + 1) * 11], y[b * 11 : (b + 1) * 11]
        got = pipe.train_step(xb if pipe.rank == 0 else None, yb)
        ref.zero_grad()
        out = ref.forward(xb)
        want = float(ref_loss(out, yb))
        ref.backward(ref_loss.backward(), need_input_grad=False)
        opt.step()
        if got is not None:
            assert abs(got["loss"] - want) < 1e-12, (got, want)
            assert got["correct"] == float(np.sum(np.argmax(out, 1) == yb))
    state = pipe.gather_state()
    if state is not None:
        want = ref.state_dict()
        diff = max(float(np.max(np.abs(state[k] - want[k]))) for k in want)
        assert diff < 1e-12, diff
        print(f"PASS split={pipe.split} maxdiff={diff:.1e}")


def case_mismatch():
    """A stage that cannot take its predecessor's output fails on every rank, clearly."""
    from seisoku.distributed.pipeline import Pipeline

    nn = sei.nn
    model = nn.Sequential(nn.Linear(6, 8, dtype="float64"), nn.Linear(7, 3, dtype="float64"))
    pipe = Pipeline(model, nn.CrossEntropyLoss(), split=[1], timeout=20)
    try:
        pipe.train_step(np.zeros((4, 6)), np.zeros(4, dtype=np.int64))
    except ValueError as e:
        msg = str(e)
        assert "[pipeline] stage 1" in msg and "(8,)" in msg and "cannot take" in msg, msg
        print("PASS", msg)
    else:
        raise AssertionError("no error for mismatched stage shapes")
    shared = nn.Parameter(np.ones((6, 6)))
    tied = nn.Sequential(
        nn.Linear(6, 6), nn.Linear(6, 6, weight=shared), nn.Linear(6, 6, weight=shared)
    )
    try:
        Pipeline(tied, nn.MSELoss(), split=[2])
    except ValueError as e:
        assert "shared by stages 0 and 1" in str(e), str(e)
        print("PASS", e)
    else:
        raise AssertionError("a parameter shared across stages was accepted")
    pipe = Pipeline(tied, nn.MSELoss(), lambda ps: sei.optim.SGD(ps, lr=0.1), split=[1])
    assert len(pipe.stage_params) == (3 if pipe.rank == 1 else 2)  # the shared weight once


def case_timeout():
    """A stage whose peer stops answering gets a TimeoutError naming what it waited for."""
    from mpi4py import MPI

    from seisoku.distributed.pipeline import Pipeline

    pipe = Pipeline(_model(), sei.nn.CrossEntropyLoss(), _sgd, split=[2], timeout=1.5)
    x, y = np.ones((4, 6)), np.zeros(4, dtype=np.int64)
    pipe.train_step(x, y)
    if pipe.rank == 1:
        try:
            pipe.train_step(x, y)  # stage 0 never starts this step
        except TimeoutError as e:
            assert "stage 1 waited for stage 0" in str(e) and "1.5 s" in str(e), str(e)
            print("PASS", e)
        else:
            raise AssertionError("no timeout")
    MPI.COMM_WORLD.Barrier()


def case_one_rank():
    from seisoku.distributed.pipeline import Pipeline

    try:
        Pipeline(_model(), sei.nn.CrossEntropyLoss())
    except ValueError as e:
        assert "at least 2 MPI ranks, got 1" in str(e) and "mpiexec -n" in str(e), str(e)
        print("PASS", e)
    else:
        raise AssertionError("no error on one rank")


class _FixedTime(sei.nn.Module):
    """Identity whose forward takes 20 ms and backward 40 ms (sleeps: machine load does not
    stretch them), so the schedule's own idle time shows."""

    def forward(self, x):
        time.sleep(0.02)
        return x

    def backward(self, grad, need_input_grad=True):
        time.sleep(0.04)
        return grad


def case_idle(schedule, micro_batches):
    """With equal fixed-time stages the measured idle fraction is the GPipe bubble."""
    from mpi4py import MPI

    from seisoku.distributed.pipeline import Pipeline, idle_fractions

    p, m = MPI.COMM_WORLD.size, int(micro_batches)
    layers = [_FixedTime() for _ in range(p)]
    pipe = Pipeline(
        sei.nn.Sequential(*layers),
        sei.nn.MSELoss(),
        split=list(range(1, p)),
        micro_batches=m,
        schedule=schedule,
    )
    x = np.zeros((4 * m, 3))
    pipe.train_step(x, x)
    r = idle_fractions(pipe, x, x, steps=3)
    assert len(r["idle"]) == p and all(0.0 <= f < 1.0 for f in r["idle"]), r
    assert r["bubble"] == pytest.approx((p - 1) / (m + p - 1))
    busy = (m * 0.06) / r["makespan_seconds"]
    assert abs(r["mean_idle"] - r["bubble"]) < 0.1, r  # within 5 points on a quiet machine
    assert r["mean_idle"] > r["bubble"] - 0.03 and busy < 1.0, r
    if pipe.rank == 0:
        print("PASS", r)


def case_recipe():
    """run_pipeline on the digits recipe (no dropout or augmentation) ends where the one-process
    Trainer of seisoku.recipes.run ends, to float32 rounding."""
    from seisoku import recipes
    from seisoku.distributed.runs import run_pipeline

    r = recipes.Recipe(model="mlp", hidden=(32, 32), dropout=0.0, shift=0, epochs=2, patience=0)
    got = run_pipeline(r, micro_batches=3, split=[1])
    if got is None:
        return
    want, _, _ = recipes.run(r, progress=False)
    summary, history, _ = got
    assert abs(summary["test_loss"] - want["test_loss"]) < 1e-4, (summary, want)
    assert abs(summary["test_accuracy"] - want["test_accuracy"]) < 0.01, (summary, want)
    assert len(history.epochs) == 2 and summary["parallel"]["split"] == [1]
    print("PASS", summary["test_loss"], want["test_loss"])


# -- the launches ------------------------------------------------------------------------------
@requires_mpi
@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
@pytest.mark.parametrize(
    ("ranks", "micro", "split"), [(2, 3, "2"), (2, 4, "balanced"), (4, 5, "1,2,4")]
)
def test_pipeline_equals_one_process(ranks, micro, split, schedule):
    out = run(ranks, SCRIPT, "equal", schedule, str(micro), split, timeout=180)
    assert "PASS" in out


@requires_mpi
def test_pipeline_balanced_on_four_ranks():
    out = run(4, SCRIPT, "equal", "1f1b", "4", "balanced", timeout=180)
    assert "PASS" in out


@requires_mpi
def test_pipeline_mismatched_stage_shapes_and_shared_parameters():
    out = run(2, SCRIPT, "mismatch", timeout=120)
    assert out.count("PASS") == 4


@requires_mpi
def test_pipeline_wait_times_out():
    out = run(2, SCRIPT, "timeout", timeout=120)
    assert "PASS" in out


@requires_mpi
def test_pipeline_one_rank_is_a_clear_error():
    assert "PASS" in run(1, SCRIPT, "one_rank", timeout=120)


@requires_mpi
@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
def test_idle_fraction_matches_the_bubble(schedule):
    assert "PASS" in run(2, SCRIPT, "idle", schedule, "4", timeout=180)


@requires_mpi
def test_recipe_run_matches_the_trainer():
    pytest.importorskip("sklearn")
    assert "PASS" in run(2, SCRIPT, "recipe", timeout=180)


@requires_mpi
def test_cli_train_parallel_pipeline(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "summary.json"
    args = [
        "train",
        "--parallel",
        "pipeline",
        "--micro-batches",
        "3",
        "--split",
        "1",
        "--model",
        "mlp",
        "--epochs",
        "2",
    ]
    args += ["--no-progress", "--json", str(out)]
    printed = run(2, "-m", "seisoku.cli", *args, timeout=180)
    assert printed.count("test accuracy") == 1  # rank 0 prints the table
    summary = json.loads(out.read_text())
    assert summary["parallel"]["mode"] == "pipeline" and summary["epochs_run"] == 2
    assert 0.5 < summary["test_accuracy"] <= 1.0


if __name__ == "__main__":
    main(globals())
