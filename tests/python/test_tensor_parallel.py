"""Tensor-parallel Linear layers under mpiexec -n 2: forward and backward equal the dense layer
and a NumPy oracle; the column/row pair (Megatron MLP) trains like the dense MLP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mpi_launch import main, requires_mpi, run

import seisoku as sei

SCRIPT = str(Path(__file__).resolve())


def _close(a, b, what, tol=1e-12):
    err = float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
    assert err <= tol, f"{what}: max abs difference {err:.3e}"


def case_column():
    from seisoku.distributed.tensor_parallel import ColumnParallelLinear

    rng = np.random.default_rng(0)
    x, gy = rng.normal(size=(7, 5)), rng.normal(size=(7, 9))
    dense = sei.nn.Linear(
        5, 9, activation="tanh", dtype="float64", generator=sei.random.Generator(1)
    )
    col = ColumnParallelLinear(
        5, 9, activation="tanh", dtype="float64", generator=sei.random.Generator(1)
    )
    w, b = dense.weight.value.copy(), dense.bias.value.copy()
    y = np.tanh(x @ w.T + b)  # NumPy oracle
    _close(col.forward(x), y, "forward vs NumPy")
    col.zero_grad()
    gx = col.backward(gy)
    gz = gy * (1 - y**2)
    _close(gx, gz @ w, "input gradient vs NumPy")
    lo, hi = col.columns
    _close(col.local.weight.grad, (gz.T @ x)[lo:hi], "weight gradient vs NumPy")
    _close(col.local.bias.grad, gz.sum(0)[lo:hi], "bias gradient vs NumPy")
    dense.forward(x)
    dense.zero_grad()
    _close(gx, dense.backward(gy), "input gradient vs dense")
    _close(col.local.weight.grad, dense.weight.grad[lo:hi], "weight gradient vs dense")
    print("PASS column", col.columns)


def case_row():
    from seisoku.distributed.tensor_parallel import RowParallelLinear

    rng = np.random.default_rng(1)
    x, gy = rng.normal(size=(6, 7)), rng.normal(size=(6, 4))
    dense = sei.nn.Linear(7, 4, dtype="float64", generator=sei.random.Generator(2))
    row = RowParallelLinear.from_dense(dense)
    w, b = dense.weight.value.copy(), dense.bias.value.copy()
    _close(row.forward(x), x @ w.T + b, "forward vs NumPy")
    row.zero_grad()
    gx = row.backward(gy)
    lo, hi = row.rows
    _close(gx, gy @ w, "input gradient vs NumPy")
    _close(row.local.weight.grad, (gy.T @ x)[:, lo:hi], "weight gradient vs NumPy")
    _close(row.bias.grad, gy.sum(0), "bias gradient vs NumPy")
    try:
        RowParallelLinear.from_dense(sei.nn.Linear(7, 4, activation="relu"))
    except ValueError as e:
        assert "[row_parallel_linear]" in str(e) and "activation" in str(e), str(e)
    else:
        raise AssertionError("a Linear with activation was split by rows")
    print("PASS row", row.rows)


def case_mlp():
    """Column(gather_output=False) -> Row(input_is_parallel=True) trains like the dense MLP."""
    from seisoku.distributed.tensor_parallel import ColumnParallelLinear, RowParallelLinear

    nn = sei.nn
    g = sei.random.Generator(4)
    d1 = nn.Linear(6, 11, activation="relu", dtype="float64", generator=g)
    d2 = nn.Linear(11, 3, dtype="float64", generator=g)
    par = nn.Sequential(
        ColumnParallelLinear.from_dense(d1, gather_output=False),
        RowParallelLinear.from_dense(d2, input_is_parallel=True),
    )
    ref = nn.Sequential(
        nn.Linear(6, 11, activation="relu", weight=nn.Parameter(d1.weight.value.copy()),
                  bias=nn.Parameter(d1.bias.value.copy())),
        nn.Linear(11, 3, weight=nn.Parameter(d2.weight.value.copy()),
                  bias=nn.Parameter(d2.bias.value.copy())),
    )  # fmt: skip
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(20, 6)), rng.integers(0, 3, 20)
    losses = []
    for model in (par, ref):
        loss = nn.CrossEntropyLoss()
        opt = sei.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
        seen = []
        for _ in range(4):
            model.zero_grad()
            seen.append(float(loss(model.forward(x), y)))
            model.backward(loss.backward())
            opt.step()
        losses.append(seen)
    _close(losses[0], losses[1], "losses")
    lo, hi = par[0].columns
    _close(par[0].local.weight.value, ref[0].weight.value[lo:hi], "first weight")
    _close(par[1].local.weight.value, ref[1].weight.value[:, lo:hi], "second weight")
    _close(par[1].bias.value, ref[1].bias.value, "second bias")
    print("PASS mlp", losses[0][-1])


@requires_mpi
def test_column_parallel_linear_equals_dense():
    assert run(2, SCRIPT, "column", timeout=120).count("PASS") == 2


@requires_mpi
def test_row_parallel_linear_equals_dense():
    assert run(2, SCRIPT, "row", timeout=120).count("PASS") == 2


@requires_mpi
def test_column_row_pair_trains_like_the_dense_mlp():
    assert run(2, SCRIPT, "mlp", timeout=120).count("PASS") == 2


if __name__ == "__main__":
    main(globals())
