"""Row offsets of the random draws (no MPI needed): a shard of a batch, rows [a, b), draws
what those rows draw in the whole batch. Also the sampler's sharding, and that importing
seisoku does not start MPI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import seisoku as sei
from reference import dropout_keep_mask, rand
from seisoku import augment as sa
from seisoku import nn
from seisoku.distributed import DistributedSampler, shard_bounds
from seisoku.nn import functional

SEED, OFFSET, P = 12345, 7, 0.4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("rows", "cols"), [(9, 7), (6, 8), (40, 300), (5, 1)])
def test_dropout_first_draws_the_rows_of_the_whole_batch(dtype, rows, cols):
    x = rand((rows, cols), dtype, seed=1) + 2.0  # no zeros: kept elements are nonzero
    whole = functional.dropout(x, P, SEED, OFFSET)
    for a in range(rows):
        for b in (a + 1, rows):
            part = functional.dropout(np.ascontiguousarray(x[a:b]), P, SEED, OFFSET, first=a * cols)
            np.testing.assert_array_equal(part, whole[a:b])
    # The documented mask (an independent NumPy Philox) at stream elements first, first + 1, ...
    first = 3 * cols + 1
    n = x.size - first
    part = functional.dropout(
        np.ascontiguousarray(x.reshape(-1)[first:]), P, SEED, OFFSET, first=first
    )
    keep = dropout_keep_mask(first + n, P, SEED, OFFSET)[first:]
    np.testing.assert_array_equal(part != 0, keep)


def test_dropout_first_is_checked():
    with pytest.raises(ValueError, match="first"):
        functional.dropout(np.ones((2, 2), np.float32), P, SEED, OFFSET, first=-1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_layer_first_row(dtype):
    x = rand((10, 13), dtype, seed=2) + 2.0
    g = np.cos(np.arange(x.size, dtype=x.dtype)).reshape(x.shape)

    def run(a, b):
        layer = nn.Dropout(0.3, generator=sei.Generator(5))  # the same stream position
        layer.first_row = a
        assert layer.first_row == a
        y = layer.forward(np.ascontiguousarray(x[a:b])).copy()
        return y, layer.backward(np.ascontiguousarray(g[a:b])).copy()

    y, gx = run(0, 10)
    np.testing.assert_array_equal(gx, functional.dropout(g, 0.3, 5, 0))
    for a, b in [(0, 4), (4, 10), (3, 4)]:
        ys, gs = run(a, b)
        np.testing.assert_array_equal(ys, y[a:b])
        np.testing.assert_array_equal(gs, gx[a:b])  # backward draws the forward's mask again


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_fused_dropout_first_row(dtype):
    x = rand((12, 5), dtype, seed=3)

    def make():
        gen = sei.Generator(9)
        return nn.Linear(5, 11, activation="relu", dropout=0.5, dtype=dtype, generator=gen)

    whole = make()
    y = whole.forward(x).copy()
    g = np.cos(np.arange(y.size, dtype=x.dtype)).reshape(y.shape)
    whole.backward(g)
    w_grad = np.zeros_like(whole.weight.grad)
    for a, b in [(0, 5), (5, 12)]:
        layer = make()
        layer.first_row = a
        ys = layer.forward(np.ascontiguousarray(x[a:b]))
        np.testing.assert_array_equal(ys, y[a:b])
        layer.backward(np.ascontiguousarray(g[a:b]))
        w_grad += layer.weight.grad
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(w_grad, whole.weight.grad, rtol=tol, atol=tol)


def test_first_row_rejects_negative():
    with pytest.raises(ValueError, match="first_row"):
        nn.Dropout(0.5).first_row = -1


def test_augmentation_hook_first_row():
    x = rand((9, 1, 6, 6), np.float32, seed=4)
    hook = sa.Compose([sa.RandomCrop(6, padding=2), sa.Cutout(1, 3)], seed=3).trainer_hook()
    whole = hook(x, 5).copy()
    for a, b in [(0, 3), (3, 9), (7, 8)]:
        part = hook(np.ascontiguousarray(x[a:b]), 5, first_row=a)
        np.testing.assert_array_equal(part, whole[a:b])
    assert not np.array_equal(hook(np.ascontiguousarray(x[3:9]), 5), whole[3:9])


@pytest.mark.parametrize(("rows", "size"), [(10, 3), (7, 7), (30, 4), (5, 2)])
def test_shard_bounds_are_contiguous_and_balanced(rows, size):
    bounds = [shard_bounds(rows, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == rows
    assert all(bounds[r][1] == bounds[r + 1][0] for r in range(size - 1))
    lengths = [e - s for s, e in bounds]
    assert max(lengths) - min(lengths) <= 1 and sorted(lengths, reverse=True) == lengths


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_sampler_gives_the_single_process_batches(size):
    n, batch, seed = 47, 8, 3
    samplers = [DistributedSampler(n, batch, rank=r, size=size, seed=seed) for r in range(size)]
    assert len(samplers[0]) == 6
    order = np.random.default_rng([seed, 2]).permutation(n)  # the Trainer's order of epoch 2
    per_rank = [list(s.epoch(2)) for s in samplers]
    for b in range(6):
        shards = [per_rank[r][b] for r in range(size)]
        glued = np.concatenate([sh.indices for sh in shards])
        np.testing.assert_array_equal(glued, order[b * batch : (b + 1) * batch])
        starts = [shard_bounds(len(glued), r, size)[0] for r in range(size)]
        assert [sh.start for sh in shards] == starts


def test_sampler_checks():
    with pytest.raises(ValueError, match="at least one row per rank"):
        DistributedSampler(41, 8, rank=0, size=2).check_batches()  # last batch: 1 row
    DistributedSampler(42, 8, rank=0, size=2).check_batches()
    with pytest.raises(ValueError, match="rank"):
        DistributedSampler(10, 2, rank=2, size=2)
    with pytest.raises(ValueError, match="batch_size"):
        DistributedSampler(10, 0, rank=0, size=2)


def test_importing_seisoku_does_not_start_mpi():
    code = (
        "import sys, seisoku, seisoku.distributed, seisoku.cli\n"
        "seisoku.cli.build_parser() if hasattr(seisoku.cli, 'build_parser') else None\n"
        "print('mpi4py' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


class _TwoRanks:
    """What Trainer asks of a parallel wrapper before any communication."""

    def __init__(self, module):
        self.module, self.rank, self.size, self.is_main = module, 1, 2, False


def test_trainer_rejects_an_augment_without_first_row_when_sharded():
    model = nn.Sequential(nn.Linear(4, 2))
    opt = sei.optim.SGD(model.parameters(), lr=0.1)
    trainer = sei.train.Trainer(model, nn.CrossEntropyLoss(), opt, parallel=_TwoRanks(model))
    x, y = np.ones((8, 4), np.float32), np.zeros(8, np.int64)
    with pytest.raises(ValueError, match="first_row"):
        trainer.fit(x, y, augment=lambda xb, step: xb, batch_size=4)
    with pytest.raises(ValueError, match="parallel must wrap"):
        sei.train.Trainer(model, nn.CrossEntropyLoss(), opt, parallel=_TwoRanks(nn.Linear(4, 2)))
