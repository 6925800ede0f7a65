"""Training ensemble members: worker processes and threads against one after another, the
single progress bar, per-sample loss weights (NumPy SGD oracle) in AdaBoost, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import seisoku
from seisoku import nn, optim
from seisoku.ensemble import AdaBoost, Bagging, Ensemble, PerSampleWeightLoss, _members, samme_step
from seisoku.train import Trainer


def blobs(n: int = 90, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = rng.standard_normal((n, 2)) * 0.9 + 2.0 * np.stack([np.cos(y * 2.1), np.sin(y * 2.1)], 1)
    return x.astype(np.float32), y.astype(np.int64)


def build_mlp(seed: int):
    model = nn.mlp([2, 16, 3], dropout=0.1, generator=seisoku.Generator(seed))
    return model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def params(model) -> list[np.ndarray]:
    return [np.array(p.value) for p in model.parameters()]


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_members_trained_side_by_side_equal_those_trained_in_turn(backend) -> None:
    if backend == "process" and not _members._can_fork():
        pytest.skip("this platform cannot fork")
    x, y = blobs()
    runs = [
        Bagging(build_mlp, 3, epochs=4, n_jobs=jobs, backend=backend, progress=False).fit(x, y)
        for jobs in (1, 2)
    ]
    for a, b in zip(runs[0].members_, runs[1].members_):
        for pa, pb in zip(params(a), params(b)):
            np.testing.assert_array_equal(pa, pb)
        assert not b.training
    for ha, hb in zip(runs[0].histories_, runs[1].histories_):
        assert ha.column("loss") == hb.column("loss")
    np.testing.assert_array_equal(runs[0].predict_proba(x), runs[1].predict_proba(x))
    assert runs[0].oob_score_ == runs[1].oob_score_


class CountingBar:
    def __init__(self) -> None:
        self.count = 0

    def update(self) -> None:
        self.count += 1


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_one_bar_advances_once_per_member(backend) -> None:
    if backend == "process" and not _members._can_fork():
        pytest.skip("this platform cannot fork")
    x, y = blobs()
    bar = CountingBar()

    def job(m: int):
        model, loss, opt = build_mlp(m)
        return model, Trainer(model, loss, opt, progress=False).fit(x, y, epochs=1, seed=m)

    results = _members.run_members(job, lambda m: build_mlp(m)[0], 5, 2, backend, bar)
    assert bar.count == 5
    assert len(results) == 5


def test_a_worker_error_reaches_the_caller() -> None:
    if not _members._can_fork():
        pytest.skip("this platform cannot fork")
    x, y = blobs()

    def bad(seed: int):
        model = nn.mlp([2, 4, 3], generator=seisoku.Generator(seed))
        return model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=-1.0)

    with pytest.raises(ValueError, match="lr"):
        Bagging(bad, 2, epochs=1, n_jobs=2, backend="process", progress=False).fit(x, y)


def numpy_weighted_sgd(w0, b0, x, y, sw, lr, epochs, batch, seed, per_sample=True):
    """Softmax regression trained by plain SGD in NumPy: batch loss sum_i w_i l_i / |B|
    (per_sample) or sum_i w_i l_i / sum_i w_i."""
    w, b = w0.astype(np.float64).copy(), b0.astype(np.float64).copy()
    n = x.shape[0]
    for e in range(epochs):
        order = np.random.default_rng([seed, e]).permutation(n)
        for s in range(0, n, batch):
            idx = order[s : s + batch]
            z = x[idx] @ w.T + b
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(idx)), y[idx]] -= 1.0
            scale = len(idx) if per_sample else sw[idx].sum()
            g = p * (sw[idx] / scale)[:, None]
            w -= lr * (g.T @ x[idx])
            b -= lr * g.sum(axis=0)
    return w, b


def build_linear(seed: int):
    model = nn.Linear(2, 3, generator=seisoku.Generator(seed))
    return model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5)


@pytest.mark.parametrize("per_sample", [True, False])
def test_per_sample_weight_loss_matches_numpy_sgd(per_sample) -> None:
    x, y = blobs(n=22)
    sw = np.random.default_rng(1).uniform(0.0, 3.0, 22).astype(np.float32)
    sw[:6] = 0.05  # batches with little weight: their steps shrink only per sample
    model, loss, opt = build_linear(7)
    w0, b0 = params(model)
    if per_sample:
        loss = PerSampleWeightLoss(loss)
    Trainer(model, loss, opt, progress=False).fit(
        x, y, epochs=3, batch_size=4, sample_weight=sw, seed=5
    )
    w, b = numpy_weighted_sgd(w0, b0, x.astype(np.float64), y, sw, 0.5, 3, 4, 5, per_sample)
    np.testing.assert_allclose(params(model)[0], w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(params(model)[1], b, rtol=1e-4, atol=1e-5)


def test_adaboost_members_follow_the_weighted_objective() -> None:
    """The second member of AdaBoost equals NumPy SGD on sum_i w_i l_i / |B| with the SAMME
    weights left by the first: the weights act per sample, not per batch."""
    x, y = blobs(n=40)
    ab = AdaBoost(build_linear, 2, epochs=2, batch_size=8, seed=3, progress=False).fit(x, y)
    assert len(ab.members_) == 2
    xd = x.astype(np.float64)
    w = np.full(40, 1.0 / 40)
    for m in range(2):
        np.testing.assert_allclose(ab.sample_weights_[m], w, rtol=1e-12)
        seed = int(np.random.default_rng([3, m]).integers(0, 2**31 - 1))
        w0, b0 = params(build_linear(seed)[0])
        sw = (w * 40).astype(np.float32).astype(np.float64)
        wm, bm = numpy_weighted_sgd(w0, b0, xd, y, sw, 0.5, 2, 8, seed)
        np.testing.assert_allclose(params(ab.members_[m])[0], wm, rtol=1e-4, atol=1e-5)
        miss = (xd @ wm.T + bm).argmax(axis=1) != y
        _, _, w = samme_step(w, miss, 3)


def test_bad_ensemble_arguments_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"\[Ensemble\] argument 'members' must be a non-empty"):
        Ensemble([])
    with pytest.raises(ValueError, match=r"'n_members' must be an int >= 1, got 0"):
        Bagging(build_mlp, 0)
    with pytest.raises(ValueError, match=r"'n_members' must be an int >= 1, got -2"):
        AdaBoost(build_mlp, -2)
    with pytest.raises(ValueError, match=r"'backend' must be one of 'auto', 'process', 'thread'"):
        Bagging(build_mlp, 2, backend="gpu")
    with pytest.raises(ValueError, match=r"'base' must be a seisoku.nn.Loss, got int"):
        PerSampleWeightLoss(3)
    x = np.zeros((5, 2), np.float32)
    three, four = nn.Linear(2, 3), nn.Linear(2, 4)
    with pytest.raises(ValueError, match=r"'members' must all output logits.*\(5, 3\), \(5, 4\)"):
        Ensemble([three, four]).predict(x)

    def not_a_model(seed: int):
        return "model", nn.CrossEntropyLoss(), None

    with pytest.raises(ValueError, match=r"build_member must return a seisoku.nn.Module.*str"):
        Bagging(not_a_model, 1, progress=False).fit(*blobs())
