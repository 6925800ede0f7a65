"""Trainer and early stopping: decisions on scripted metric sequences, restoring the best
parameters, non-finite losses, and bad arguments."""

from __future__ import annotations

import math

import numpy as np
import pytest

import seisoku as sei
from seisoku import data, nn
from seisoku.train import EarlyStopping, History, Trainer


def feed(stopper: EarlyStopping, values: list[float]) -> int | None:
    """Epoch at which the stopper asks to stop, or None."""
    stopper.reset()
    for epoch, v in enumerate(values):
        if stopper.update(epoch, v, dict):
            return epoch
    return None


def test_patience_counts_evaluations_without_improvement():
    s = EarlyStopping(patience=3)
    assert feed(s, [1.0, 0.9, 0.95, 0.96, 0.97, 0.5]) == 4
    assert s.best == 0.9 and s.best_epoch == 1


def test_min_delta_ignores_small_improvements():
    s = EarlyStopping(patience=2, min_delta=0.05)
    assert feed(s, [1.0, 0.97, 0.96, 0.5]) == 2
    assert s.best_epoch == 0


def test_mode_max_and_auto():
    s = EarlyStopping(monitor="val_accuracy", patience=2)
    assert s.mode == "max"
    assert feed(s, [0.5, 0.6, 0.6, 0.59, 0.9]) == 3
    assert s.best_epoch == 1


def test_baseline_must_be_beaten():
    s = EarlyStopping(patience=2, baseline=0.5)
    assert feed(s, [0.7, 0.6, 0.4]) == 1
    s = EarlyStopping(patience=2, baseline=0.5)
    assert feed(s, [0.7, 0.4, 0.45, 0.46]) == 3
    assert s.best_epoch == 1


def test_nonfinite_value_stops_at_once():
    s = EarlyStopping(patience=10)
    assert feed(s, [1.0, 0.9, math.nan, 0.1]) == 2
    s = EarlyStopping(patience=2, stop_on_nonfinite=False)
    assert feed(s, [1.0, math.inf, math.inf, 0.1]) == 2


class FakeTrainer:
    def __init__(self, model):
        self.model = model
        self.stop_training = False
        self.history = History()


def test_period_evaluates_every_nth_epoch_and_restores_best():
    model = nn.Linear(2, 2, dtype="float64")
    s = EarlyStopping(patience=2, period=2)
    t = FakeTrainer(model)
    s.on_train_begin(t)
    losses = [5.0, 1.0, 9.0, 3.0, 9.0, 4.0, 9.0]  # only odd epochs (1, 3, 5) are evaluated
    for epoch, v in enumerate(losses):
        model.weight.value[...] = epoch
        s.on_epoch_end(t, epoch, {"val_loss": v})
        if t.stop_training:
            break
    assert epoch == 5 and s.best_epoch == 1
    s.on_train_end(t)
    np.testing.assert_array_equal(model.weight.value, 1.0)
    assert t.history.best_epoch == 1


class PlainSGD:
    def __init__(self, params, lr):
        self.params, self.lr = params, lr

    def step(self):
        for p in self.params:
            sei.axpy(-self.lr, p.grad, p.value)


def blobs_model(seed=0):
    sei.manual_seed(seed)
    return nn.mlp([2, 16, 3], dropout=0.1)


def test_fit_learns_and_records_history():
    x, y = data.make_blobs(300, classes=3, seed=1)
    m = blobs_model()
    t = Trainer(m, nn.CrossEntropyLoss(0.05), PlainSGD(m.parameters(), 0.1), progress=False)
    h = t.fit(x, y, validation_split=0.2, epochs=15, batch_size=16, seed=3)
    assert len(h.epochs) == 15
    assert h.epochs[-1]["val_accuracy"] > 0.9
    assert h.epochs[-1]["loss"] < h.epochs[0]["loss"]
    for e in h.epochs:
        assert e["gap"] == pytest.approx(e["val_loss"] - e["loss"])
        assert e["time_s"] > 0
    assert t.evaluate(x, y)["accuracy"] > 0.9


def test_fit_is_reproducible_for_a_seed():
    x, y = data.make_blobs(200, seed=2)
    outs = []
    for _ in range(2):
        m = blobs_model(5)
        Trainer(m, nn.CrossEntropyLoss(), PlainSGD(m.parameters(), 0.1), progress=False).fit(
            x, y, epochs=3, batch_size=32, seed=9
        )
        outs.append(m.state_dict())
    for k in outs[0]:
        np.testing.assert_array_equal(outs[0][k], outs[1][k])


def test_nan_loss_stops_training_and_keeps_best_weights():
    x, y = data.make_blobs(200, seed=2)
    m = blobs_model()
    stopper = EarlyStopping(patience=50)
    t = Trainer(m, nn.CrossEntropyLoss(), PlainSGD(m.parameters(), 1e6), [stopper], False)
    h = t.fit(x, y, validation_split=0.25, epochs=200, batch_size=32)
    assert h.stopped_early
    assert len(h.epochs) < 200
    assert "nan" in h.stop_reason
    assert all(np.isfinite(v).all() for v in m.state_dict().values())
    initial = blobs_model().state_dict()
    for k, v in m.state_dict().items():  # diverged in the first epoch: back to the start
        np.testing.assert_array_equal(v, initial[k])


def test_fit_rejects_bad_input():
    x, y = data.make_blobs(50, seed=0)
    m = blobs_model()
    t = Trainer(m, nn.CrossEntropyLoss(), PlainSGD(m.parameters(), 0.1), progress=False)
    with pytest.raises(ValueError, match="X has 50 samples but y has 49"):
        t.fit(x, y[:-1])
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        t.fit(bad, y)
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        t.fit(x, y, epochs=0)
    with pytest.raises(ValueError, match="no samples"):
        t.fit(x[:0], y[:0])
    with pytest.raises(ValueError, match="optimizer must have a step"):
        Trainer(m, nn.CrossEntropyLoss(), object())
    with pytest.raises(ValueError, match="patience must be an int >= 1"):
        EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="monitors 'val_loss'"):
        Trainer(
            m, nn.CrossEntropyLoss(), PlainSGD(m.parameters(), 0.1), [EarlyStopping()], False
        ).fit(x, y, epochs=2)
