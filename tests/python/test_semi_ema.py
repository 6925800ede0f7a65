"""seisoku.semi_ema.WeightEMA: the averages against a NumPy recurrence over the recorded
parameters, applying and restoring them, ConsistencyTrainer's ema_decay through an
interrupted and resumed fit, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import seisoku as sei
import seisoku.augment as sa
from seisoku import data, nn, optim
from seisoku.semi_consistency import ConsistencyTrainer
from seisoku.semi_ema import WeightEMA
from seisoku.train import Trainer


class _Record(sei.train.Callback):
    """The parameters at the start of the fit and after every optimizer step."""

    def __init__(self) -> None:
        self.seen: list[dict[str, np.ndarray]] = []

    def on_train_begin(self, trainer: Trainer) -> None:
        self.seen = [trainer.model.state_dict()]

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict) -> None:
        self.seen.append(trainer.model.state_dict())


def _blobs(seed: int = 0):
    x, y = data.make_blobs(240, 3, 6, spread=0.8, seed=seed)
    ys = np.full(240, -1)
    ys[:15] = y[:15]
    return x, y, ys


def _supervised(*callbacks: sei.train.Callback) -> Trainer:
    m = nn.mlp([6, 16, 3], generator=sei.Generator(0))
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    return Trainer(m, nn.CrossEntropyLoss(), opt, list(callbacks), progress=False)


def test_averages_follow_the_recurrence_over_the_steps() -> None:
    x, y, _ = _blobs()
    rec, ema = _Record(), WeightEMA(0.9, apply_at_end=False)
    t = _supervised(rec, ema)
    t.fit(x, y, epochs=2, batch_size=32)
    assert ema.updates == t.steps == len(rec.seen) - 1 == 16
    for name in rec.seen[0]:
        e = rec.seen[0][name].astype(np.float64)
        for w in rec.seen[1:]:
            e = 0.9 * e + 0.1 * w[name].astype(np.float64)
        np.testing.assert_allclose(ema.averages[name], e, rtol=1e-12, atol=1e-15)
        # not applied: the model keeps the last step's parameters
        np.testing.assert_array_equal(t.model.state_dict()[name], rec.seen[-1][name])
    assert not np.allclose(ema.averages["0.weight"], rec.seen[-1]["0.weight"])


def test_apply_at_end_puts_the_averages_in_and_restore_raw_takes_them_out() -> None:
    x, y, _ = _blobs()
    rec, ema = _Record(), WeightEMA(0.5)
    t = _supervised(rec, ema)
    t.fit(x, y, epochs=1, batch_size=48)
    state = t.model.state_dict()
    for name, avg in ema.averages.items():
        np.testing.assert_array_equal(state[name], avg.astype(np.float32))
        np.testing.assert_array_equal(ema.raw[name], rec.seen[-1][name])
    ema.restore_raw(t.model)
    for name, v in t.model.state_dict().items():
        np.testing.assert_array_equal(v, rec.seen[-1][name])
    # decay 0 averages nothing: the average is the last step's parameters
    zero = WeightEMA(0.0, apply_at_end=False)
    t = _supervised(zero)
    t.fit(x, y, epochs=1, batch_size=48)
    for name, v in t.model.state_dict().items():
        np.testing.assert_array_equal(zero.averages[name], v.astype(np.float64))


def _fixmatch(**kw) -> ConsistencyTrainer:
    m = nn.mlp([6, 16, 3], generator=sei.Generator(0))
    return ConsistencyTrainer(
        m,
        optim.SGD(m.parameters(), lr=0.05, momentum=0.9),
        weak=sa.Compose([sa.GaussianNoise(0.1)], seed=1, layout="NCHW"),
        strong=sa.Compose([sa.GaussianNoise(0.4)], seed=2, layout="NCHW"),
        threshold=0.7,
        mu=3,
        image_shape=(1, 1, 6),
        progress=False,
        **kw,
    )


class _InterruptAt(sei.train.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict) -> None:
        if step == self.step:
            trainer.interrupt()


def test_consistency_trainer_ema_survives_an_interrupted_and_resumed_fit(tmp_path) -> None:
    x, _, ys = _blobs()
    full = _fixmatch(ema_decay=0.95)
    full.fit(x, ys, epochs=3, batch_size=8)
    assert full.ema is not None and full.ema.updates == full.steps == 30
    ckpt = tmp_path / "run.npz"
    first = _fixmatch(ema_decay=0.95, callbacks=[_InterruptAt(13), sei.train.Checkpoint(ckpt)])
    with pytest.raises(KeyboardInterrupt):
        first.fit(x, ys, epochs=3, batch_size=8)
    assert first.ema.updates == 13
    second = _fixmatch(ema_decay=0.95, callbacks=[_InterruptAt(-1), sei.train.Checkpoint(ckpt)])
    second.fit(x, ys, epochs=3, batch_size=8, resume=ckpt)
    assert second.ema.updates == 30
    for k, v in full.ema.averages.items():
        np.testing.assert_array_equal(second.ema.averages[k], v)
        np.testing.assert_array_equal(second.ema.raw[k], full.ema.raw[k])
        np.testing.assert_array_equal(second.model.state_dict()[k], full.model.state_dict()[k])
    # evaluate and predict use the averages; the raw parameters score differently
    averaged = full.predict(x)
    full.ema.restore_raw(full.model)
    assert not np.array_equal(full.predict(x), averaged)
    # a different decay does not load
    third = _fixmatch(ema_decay=0.9, callbacks=[_InterruptAt(-1), sei.train.Checkpoint(ckpt)])
    with pytest.raises(ValueError, match=r"written with decay 0.95"):
        third.fit(x, ys, epochs=3, batch_size=8, resume=ckpt)


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5, float("nan"), "0.9", True])
def test_decay_outside_zero_one(decay: object) -> None:
    with pytest.raises(ValueError, match=r"\[ConsistencyTrainer\] argument 'ema_decay' must"):
        _fixmatch(ema_decay=decay)
    with pytest.raises(ValueError, match=r"\[WeightEMA\] argument 'decay' must be a number in"):
        WeightEMA(decay)  # type: ignore[arg-type]


def test_apply_before_a_fit_and_to_another_model_are_errors() -> None:
    ema = WeightEMA(0.9)
    m = nn.mlp([6, 16, 3], generator=sei.Generator(0))
    with pytest.raises(ValueError, match=r"apply\(\) needs a fit first"):
        ema.apply(m)
    with pytest.raises(ValueError, match=r"restore_raw\(\) needs apply\(\) first"):
        ema.restore_raw(m)
    x, y, _ = _blobs()
    _supervised(ema).fit(x, y, epochs=1, batch_size=48)
    with pytest.raises(ValueError, match=r"argument 'model' must have the parameters"):
        ema.apply(nn.mlp([6, 3], generator=sei.Generator(0)))
