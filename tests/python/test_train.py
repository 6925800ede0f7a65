"""Trainer and its callbacks: early-stopping decisions on scripted metric sequences (period in
epochs and steps, patience, min_delta, baseline, restore), hooks, schedules, history logs,
checkpoints (exact resume after Ctrl-C, atomic writes, corrupt files), retrain-on-all,
non-finite losses and bad arguments."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import stat

import numpy as np
import pytest

import seisoku as sei
from seisoku import data, nn
from seisoku.train import (
    Callback,
    Checkpoint,
    CSVLogger,
    EarlyStopping,
    History,
    JSONLogger,
    LRSchedule,
    Trainer,
    retrain_on_all,
)


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


# -- early stopping in steps, on scripted evaluations ---------------------------------------


class ScriptedTrainer(FakeTrainer):
    """Answers evaluate() from a script of validation losses, one per call."""

    def __init__(self, model, losses):
        super().__init__(model)
        self.losses = list(losses)
        self.validation_data = ("x", "y")
        self.epoch, self.steps = 0, 0

    def evaluate(self, x, y):
        return {"loss": self.losses.pop(0)}


def test_period_in_steps_evaluates_every_nth_step_and_restores_best():
    model = nn.Linear(2, 2, dtype="float64")
    s = EarlyStopping(patience=2, period=3, unit="step")
    t = ScriptedTrainer(model, [4.0, 2.0, 2.5, 2.0])  # evaluations at steps 3, 6, 9, 12
    s.on_train_begin(t)
    for step in range(1, 20):
        t.steps = step
        model.weight.value[...] = step
        s.on_batch_end(t, step, {"loss": 1.0})
        s.on_epoch_end(t, 0, {"val_loss": 99.0})  # unit 'step' ignores epoch records
        if t.stop_training:
            break
    assert step == 12  # 2.5 and 2.0 (not below 2.0) are two evaluations without improvement
    assert s.best_step == 6 and s.evaluations == 4
    s.on_train_end(t)
    np.testing.assert_array_equal(model.weight.value, 6.0)
    assert t.history.best_step == 6


def test_early_stopping_state_round_trips():
    s = EarlyStopping(patience=3)
    feed(s, [1.0, 0.5, 0.7])
    s2 = EarlyStopping(patience=3)
    s2.load_state_dict(s.state_dict())
    assert (s2.best, s2.best_epoch, s2.waited, s2.evaluations) == (0.5, 1, 1, 3)
    assert s2.update(3, 0.6, dict) is False and s2.update(4, 0.6, dict) is True


def test_early_stopping_rejects_bad_arguments():
    with pytest.raises(ValueError, match="period must be an int >= 1, got 0"):
        EarlyStopping(period=0)
    with pytest.raises(ValueError, match="unit must be 'epoch' or 'step', got 'batch'"):
        EarlyStopping(unit="batch")
    with pytest.raises(ValueError, match="min_delta must be a finite number >= 0, got -1"):
        EarlyStopping(min_delta=-1)
    with pytest.raises(ValueError, match="mode must be"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="baseline must be a number"):
        EarlyStopping(baseline="low")


# -- the real loop: steps, hooks, schedules, logs -------------------------------------------


def sgd_trainer(callbacks=(), seed=0, lr=0.1, dropout=0.1):
    sei.manual_seed(seed)
    m = nn.mlp([2, 16, 3], dropout=dropout)
    opt = sei.optim.SGD(m.parameters(), lr=lr, momentum=0.9, l2=1e-3)
    return Trainer(m, nn.CrossEntropyLoss(0.05), opt, list(callbacks), progress=False)


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, trainer):
        self.calls.append("begin")

    def on_epoch_begin(self, trainer, epoch):
        self.calls.append(f"epoch{epoch}")

    def on_batch_end(self, trainer, step, logs):
        self.calls.append(f"step{step}")
        assert logs["size"] in (16.0, 4.0) and math.isfinite(logs["loss"])

    def on_epoch_end(self, trainer, epoch, logs):
        self.calls.append(f"end{epoch}")

    def on_train_end(self, trainer):
        self.calls.append("done")


def test_callback_hooks_run_in_order():
    x, y = data.make_blobs(36, seed=0)
    rec = Recorder()
    sgd_trainer([rec]).fit(x, y, epochs=2, batch_size=16)
    steps = ["step1", "step2", "step3"]
    assert rec.calls == [
        "begin", "epoch0", *steps, "end0",
        "epoch1", "step4", "step5", "step6", "end1", "done",
    ]  # fmt: skip


def test_callbacks_run_by_their_order_attribute(tmp_path):
    log = []

    class Named(Callback):
        def __init__(self, name, order=0):
            self.name, self.order = name, order

        def on_epoch_end(self, trainer, epoch, logs):
            log.append(self.name)

    class LoggedCheckpoint(Checkpoint):
        def on_epoch_end(self, trainer, epoch, logs):
            log.append("checkpoint")
            super().on_epoch_end(trainer, epoch, logs)

    x, y = data.make_blobs(20, seed=0)
    given = [
        LoggedCheckpoint(tmp_path / "c.npz"),
        Named("late", order=200),
        Named("first"),
        Named("early", order=-5),
        Named("second"),
    ]
    t = sgd_trainer(given)
    t.fit(x, y, epochs=1, batch_size=16)
    assert log == ["early", "first", "second", "checkpoint", "late"]
    assert [type(c).__name__ for c in t.callbacks][3] == "LoggedCheckpoint"


def test_max_steps_stops_mid_epoch():
    x, y = data.make_blobs(100, seed=0)
    t = sgd_trainer()
    h = t.fit(x, y, epochs=10, batch_size=16, max_steps=10)
    assert t.steps == 10 and len(h.epochs) == 2 and h.epochs[-1]["step"] == 10
    assert h.stop_reason == "reached max_steps=10" and not h.stopped_early


def test_lr_schedule_callback_steps_per_epoch_and_logs_lr():
    x, y = data.make_blobs(64, seed=0)
    t = sgd_trainer()
    sched = sei.optim.lr_scheduler.StepLR(t.optimizer, step_size=2, gamma=0.5)
    t.callbacks.append(LRSchedule(sched))
    h = t.fit(x, y, epochs=5, batch_size=32)
    assert h.column("lr") == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    with pytest.raises(ValueError, match="scheduler must be"):
        LRSchedule(object())


def test_history_loggers_write_csv_and_json(tmp_path):
    x, y = data.make_blobs(90, seed=0)
    csv_path, json_path = tmp_path / "h.csv", tmp_path / "h.json"
    stopper = EarlyStopping(patience=50)
    t = sgd_trainer([CSVLogger(csv_path), JSONLogger(json_path), stopper])
    h = t.fit(x, y, epochs=4, batch_size=32, validation_split=0.2)
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    assert len(rows) == 4
    assert [float(r["val_loss"]) for r in rows] == pytest.approx(h.column("val_loss"))
    assert {"loss", "val_loss", "gap", "lr", "time_s", "step"} <= set(rows[0])
    saved = json.loads(json_path.read_text())
    assert saved["best_epoch"] == h.best_epoch and len(saved["epochs"]) == 4
    assert saved["best_step"] == 3 * (h.best_epoch + 1)  # 72 samples, batches of 32
    with pytest.raises(ValueError, match=r"folder .* does not exist"):
        CSVLogger(tmp_path / "missing" / "h.csv")


def test_nan_loss_with_a_seisoku_optimizer_stops_before_the_step():
    x, y = data.make_blobs(200, seed=2)
    t = sgd_trainer([EarlyStopping(patience=50)], lr=1e4)
    h = t.fit(x, y, validation_split=0.25, epochs=100, batch_size=32)
    assert h.stopped_early and "nan" in h.stop_reason
    assert all(np.isfinite(v).all() for v in t.model.state_dict().values())
    t = sgd_trainer(lr=0.1)
    t.model.parameters()[-1].value[0] = np.nan  # the output bias: the first loss is NaN
    initial = t.model.state_dict()
    h = t.fit(x, y, epochs=3, batch_size=32)
    assert h.stop_reason == "training loss became nan at step 1" and h.stopped_early
    assert t.steps == 0 and len(h.epochs) == 1
    for k, v in t.model.state_dict().items():
        np.testing.assert_array_equal(v, initial[k])


def test_sample_weight_is_checked_and_split_with_validation():
    x, y = data.make_blobs(40, seed=0)
    t = sgd_trainer()
    with pytest.raises(ValueError, match=r"sample_weight must be an array of shape \(40,\)"):
        t.fit(x, y, sample_weight=np.ones(39, np.float32))
    with pytest.raises(ValueError, match="sample_weight must be finite and >= 0"):
        t.fit(x, y, sample_weight=-np.ones(40, np.float32))
    h = t.fit(x, y, sample_weight=np.ones(40, np.float32), validation_split=0.25, epochs=1)
    assert "val_loss" in h.epochs[0]
    with pytest.raises(ValueError, match=r"validation_split must be in \(0, 1\), got 1.5"):
        t.fit(x, y, validation_split=1.5)
    with pytest.raises(ValueError, match="max_steps must be an int >= 1"):
        t.fit(x, y, max_steps=0)
    with pytest.raises(ValueError, match="callbacks\\[0\\] must be a Callback"):
        Trainer(t.model, t.loss, t.optimizer, [object()])


# -- checkpoints: exact resume, atomic writes, corrupt files --------------------------------


class InterruptAt(Callback):
    """Sends the process a real SIGINT (Ctrl-C) after optimizer step `step`."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, trainer, step, logs):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def resumable_trainer(ckpt, extra=()):
    """Dropout masks, a schedule, early stopping and a checkpoint: all state that matters."""
    t = sgd_trainer(seed=3, dropout=0.2)
    sched = sei.optim.lr_scheduler.CosineAnnealingLR(t.optimizer, 6)
    cbs = [Checkpoint(ckpt, every=2), EarlyStopping(patience=2), LRSchedule(sched), *extra]
    return Trainer(t.model, t.loss, t.optimizer, cbs, progress=False)


def shifted(xb, step):
    return xb + np.float32(0.01 * (step % 3))


def fit_blobs(trainer, **kw):
    x, y = data.make_blobs(150, seed=4)
    return trainer.fit(
        x, y, validation_split=0.2, epochs=6, batch_size=16, seed=7, augment=shifted, **kw
    )


def _own_sigint_handler(signum, frame):
    raise KeyboardInterrupt


# Steps: mid-epoch, end of epoch 1, mid-epoch 3. The SIGINT handler in place before fit is
# whatever the test runs under (Python's default_int_handler, or SIG_IGN in the background of
# a non-interactive shell or under nohup), SIG_IGN, or a handler of the program's own: fit
# stops at the real SIGINT in every case and puts that handler back.
@pytest.mark.parametrize(
    ("stop_at", "handler"),
    [(5, "inherited"), (8, signal.SIG_IGN), (23, _own_sigint_handler)],
)
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path, stop_at, handler):
    full = resumable_trainer(tmp_path / "full.npz")
    h_full = fit_blobs(full)
    ckpt = tmp_path / "run.npz"
    first = resumable_trainer(ckpt, [InterruptAt(stop_at)])
    outer = signal.getsignal(signal.SIGINT)
    if handler != "inherited":
        signal.signal(signal.SIGINT, handler)
    before = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt):
            fit_blobs(first)
        assert signal.getsignal(signal.SIGINT) is before
    finally:
        if handler != "inherited":
            signal.signal(signal.SIGINT, outer)
    assert first.steps == stop_at
    second = resumable_trainer(ckpt, [InterruptAt(-1)])
    h = fit_blobs(second, resume=ckpt)
    assert second.steps == full.steps
    for k, v in full.model.state_dict().items():
        np.testing.assert_array_equal(second.model.state_dict()[k], v)
    opt_a, opt_b = full.optimizer.state_dict(), second.optimizer.state_dict()
    for i, entry in opt_a["state"].items():
        np.testing.assert_array_equal(
            opt_b["state"][i]["momentum_buffer"], entry["momentum_buffer"]
        )
    assert len(h.epochs) == len(h_full.epochs)
    for a, b in zip(h.epochs, h_full.epochs):
        assert {k: v for k, v in a.items() if k != "time_s"} == {
            k: v for k, v in b.items() if k != "time_s"
        }
    assert (h.best_epoch, h.stop_reason) == (h_full.best_epoch, h_full.stop_reason)


def test_resume_from_a_finished_checkpoint_only_restores(tmp_path):
    ckpt = tmp_path / "c.npz"
    done = resumable_trainer(ckpt)
    fit_blobs(done)
    again = resumable_trainer(ckpt)
    h = fit_blobs(again, resume=ckpt)
    assert again.steps == done.steps and len(h.epochs) == len(done.history.epochs)
    for k, v in done.model.state_dict().items():
        np.testing.assert_array_equal(again.model.state_dict()[k], v)


def test_resume_rejects_other_settings_and_callbacks(tmp_path):
    ckpt = tmp_path / "c.npz"
    fit_blobs(resumable_trainer(ckpt))
    x, y = data.make_blobs(150, seed=4)
    with pytest.raises(ValueError, match=r"was written by a fit with .*batch_size"):
        resumable_trainer(ckpt).fit(x, y, validation_split=0.2, epochs=6, batch_size=8,
                                    seed=7, resume=ckpt)  # fmt: skip
    plain = sgd_trainer(seed=3, dropout=0.2)
    with pytest.raises(ValueError, match="written with callbacks"):
        plain.fit(x, y, epochs=6, batch_size=16, resume=ckpt)


def test_corrupt_or_foreign_checkpoints_are_clear_errors(tmp_path):
    ckpt = tmp_path / "c.npz"
    fit_blobs(resumable_trainer(ckpt))
    t = resumable_trainer(tmp_path / "other.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(ckpt.read_bytes()[:500])
    text = tmp_path / "text.npz"
    text.write_text("epoch,loss\n")
    weights = tmp_path / "weights.npz"
    t.model.save(weights)
    for path, message in [
        (truncated, "truncated.npz is not a readable seisoku checkpoint file"),
        (text, "text.npz is not a readable seisoku checkpoint file: not an .npz archive"),
        (weights, "weights.npz is not a readable seisoku checkpoint file: no state record"),
        (tmp_path / "missing.npz", "missing.npz: no such file"),
    ]:
        with pytest.raises(ValueError, match=message):
            t.load_checkpoint(path)
    sei.manual_seed(0)
    wider = nn.mlp([2, 32, 3])
    other = Trainer(wider, t.loss, sei.optim.SGD(wider.parameters(), lr=0.1), t.callbacks)
    with pytest.raises(ValueError, match=r"c\.npz: .*shape"):
        other.load_checkpoint(ckpt)


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    ckpt = tmp_path / "c.npz"
    t = resumable_trainer(ckpt)
    fit_blobs(t)
    before = ckpt.read_bytes()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(ckpt.stat().st_mode) == 0o666 & ~umask  # as open() would make it

    def crash(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        t.save_checkpoint(ckpt)
    assert ckpt.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


# -- retrain on all data ----------------------------------------------------------------------


def test_retrain_on_all_runs_the_found_number_of_steps():
    x, y = data.make_blobs(150, seed=5)
    x, y, xv, yv = x[:120], y[:120], x[120:], y[120:]
    stopper = EarlyStopping(patience=3)
    t = sgd_trainer([stopper])
    h = t.fit(x, y, validation_data=(xv, yv), epochs=30, batch_size=16)
    assert h.best_step == 8 * (h.best_epoch + 1)
    again = retrain_on_all(sgd_trainer, x, y, (xv, yv), steps=h.best_step, batch_size=16)
    assert again.steps == h.best_step
    assert again.history.epochs[-1]["step"] == h.best_step
    assert again.evaluate(xv, yv)["accuracy"] > 0.9
    by_epochs = retrain_on_all(sgd_trainer, x, y, (xv, yv), epochs=2, batch_size=50)
    assert by_epochs.steps == 2 * 3 and len(by_epochs.history.epochs) == 2
    with pytest.raises(ValueError, match="give exactly one of steps and epochs"):
        retrain_on_all(sgd_trainer, x, y, (xv, yv))
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        retrain_on_all(sgd_trainer, x, y, (xv, yv), steps=0)
    with pytest.raises(ValueError, match="build\\(\\) must return a Trainer"):
        retrain_on_all(lambda: None, x, y, (xv, yv), steps=3)
