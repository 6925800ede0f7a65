"""seisoku.multitask: the combined loss and its gradients (static and uncertainty weights)
against PyTorch and finite differences, masking of missing labels against NumPy, bad input,
training through the Trainer, and a measured test on tasks derived from the digits data."""

from __future__ import annotations

import math

import numpy as np
import pytest

import seisoku as sei
from seisoku import data, nn, optim
from seisoku.callbacks import Callback, Checkpoint
from seisoku.multitask import (
    MultiTaskLoss,
    MultiTaskModel,
    TaskMetrics,
    fit_multitask,
    stack_targets,
)
from seisoku.train import Trainer

WIDTHS = {"a": 3, "b": 1, "c": 1}
LOSSES = {"a": "cross_entropy", "b": "mse", "c": "bce"}


def batch(seed: int = 0, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """pred (n, 5) float64 and targets (n, 3): class of a (some -1 / NaN), value of b (some
    NaN), 0/1 of c."""
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=(n, 5))
    target = np.stack(
        [
            rng.integers(0, 3, n).astype(np.float64),
            rng.normal(size=n),
            rng.integers(0, 2, n).astype(np.float64),
        ],
        axis=1,
    )
    target[1, 0], target[4, 0] = -1, np.nan
    target[2, 1], target[5, 1] = np.nan, np.nan
    target[7, 2] = np.nan
    return pred, target


def numpy_task_losses(pred: np.ndarray, target: np.ndarray, w: np.ndarray | None) -> list:
    """L_t as weighted means over the rows labelled for t, by NumPy."""
    w = np.ones(pred.shape[0]) if w is None else w
    out = []
    a, b, c = pred[:, :3], pred[:, 3], pred[:, 4]
    keep = ~np.isnan(target[:, 0]) & (target[:, 0] >= 0)
    logp = a - a.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    ce = -logp[keep, target[keep, 0].astype(int)]
    out.append((ce * w[keep]).sum() / w[keep].sum())
    keep = ~np.isnan(target[:, 1])
    out.append((((b - target[:, 1]) ** 2)[keep] * w[keep]).sum() / w[keep].sum())
    keep = ~np.isnan(target[:, 2])
    t = target[keep, 2]
    x = c[keep]
    bce = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    out.append((bce * w[keep]).sum() / w[keep].sum())
    return out


@pytest.mark.parametrize("weights", [None, {"a": 0.5, "c": 2.0}])
@pytest.mark.parametrize("with_sample_weight", [False, True])
def test_static_loss_and_masking_match_numpy(weights, with_sample_weight):
    pred, target = batch(1)
    w = np.random.default_rng(2).uniform(0.5, 2.0, pred.shape[0]) if with_sample_weight else None
    loss = MultiTaskLoss(LOSSES, WIDTHS, weights, dtype=np.float64)
    value = float(loss(pred, target, w))
    per_task = numpy_task_losses(pred, target, w)
    static = {"a": 1.0, "b": 1.0, "c": 1.0, **(weights or {})}
    expect = sum(static[t] * lt for t, lt in zip("abc", per_task))
    np.testing.assert_allclose(value, expect, rtol=1e-12)
    for t, lt in zip("abc", per_task):
        np.testing.assert_allclose(loss.task_losses[t], lt, rtol=1e-12)
    assert loss.task_counts == {"a": 6, "b": 6, "c": 7}
    grad = loss.backward()
    # a row without a label for a task gets no gradient in that task's columns
    assert not grad[[1, 4], :3].any() and not grad[[2, 5], 3].any() and grad[7, 4] == 0
    # finite differences of the NumPy oracle
    h = 1e-6
    for i, j in [(0, 0), (3, 2), (6, 3), (0, 4), (1, 1)]:
        up, down = pred.copy(), pred.copy()
        up[i, j] += h
        down[i, j] -= h
        f = [
            sum(static[t] * v for t, v in zip("abc", numpy_task_losses(p, target, w)))
            for p in (up, down)
        ]
        np.testing.assert_allclose(grad[i, j], (f[0] - f[1]) / (2 * h), atol=1e-7)


def test_uncertainty_loss_and_gradients_by_finite_differences():
    pred, target = batch(3)
    loss = MultiTaskLoss(LOSSES, WIDTHS, "uncertainty", dtype=np.float64)
    s = np.array([0.3, -0.7, 1.1])
    loss.log_vars.value[...] = s

    def combined(p: np.ndarray, s: np.ndarray) -> float:
        lt = numpy_task_losses(p, target, None)
        return sum(math.exp(-si) * li + si for si, li in zip(s, lt))

    np.testing.assert_allclose(float(loss(pred, target)), combined(pred, s), rtol=1e-12)
    grad = loss.backward()
    ds = loss.log_vars.grad.copy()
    h = 1e-6
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        np.testing.assert_allclose(
            ds[k], (combined(pred, s + e) - combined(pred, s - e)) / (2 * h), atol=1e-7
        )
    for i, j in [(0, 1), (2, 3), (5, 4)]:
        up, down = pred.copy(), pred.copy()
        up[i, j] += h
        down[i, j] -= h
        np.testing.assert_allclose(
            grad[i, j], (combined(up, s) - combined(down, s)) / (2 * h), atol=1e-7
        )
    assert loss.task_weights() == pytest.approx({t: math.exp(-v) for t, v in zip("abc", s)})


@pytest.mark.parametrize("weights", ["uncertainty", {"a": 0.25, "b": 3.0}])
def test_combined_loss_and_gradients_match_torch(weights):
    torch = pytest.importorskip("torch")
    pred, target = batch(4, n=16)
    sw = np.random.default_rng(5).uniform(0.1, 1.0, 16)
    loss = MultiTaskLoss(LOSSES, WIDTHS, weights, dtype=np.float64)
    if weights == "uncertainty":
        loss.log_vars.value[...] = [0.2, -0.4, 0.9]
    value = float(loss(pred, target, sw))
    grad = loss.backward()

    p = torch.tensor(pred, requires_grad=True)
    s = torch.tensor([0.2, -0.4, 0.9], dtype=torch.float64, requires_grad=True)
    y, w = torch.tensor(target), torch.tensor(sw)
    fns = torch.nn.functional
    terms = []
    keep = ~torch.isnan(y[:, 0]) & (y[:, 0] >= 0)
    ce = fns.cross_entropy(p[keep, :3], y[keep, 0].long(), reduction="none")
    terms.append((ce * w[keep]).sum() / w[keep].sum())
    keep = ~torch.isnan(y[:, 1])
    se = (p[keep, 3] - y[keep, 1]) ** 2
    terms.append((se * w[keep]).sum() / w[keep].sum())
    keep = ~torch.isnan(y[:, 2])
    bce = fns.binary_cross_entropy_with_logits(p[keep, 4], y[keep, 2], reduction="none")
    terms.append((bce * w[keep]).sum() / w[keep].sum())
    if weights == "uncertainty":
        total = sum(torch.exp(-s[i]) * terms[i] + s[i] for i in range(3))
    else:
        static = [weights.get(t, 1.0) for t in "abc"]
        total = sum(static[i] * terms[i] for i in range(3))
    total.backward()
    np.testing.assert_allclose(value, total.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, p.grad.numpy(), rtol=1e-10, atol=1e-14)
    if weights == "uncertainty":
        np.testing.assert_allclose(loss.log_vars.grad, s.grad.numpy(), rtol=1e-10)


def test_batch_without_a_task_label_skips_that_task():
    pred, target = batch(6)
    target[:, 1] = np.nan
    loss = MultiTaskLoss(LOSSES, WIDTHS, "uncertainty", dtype=np.float64)
    value = float(loss(pred, target))
    assert math.isnan(loss.task_losses["b"]) and loss.task_counts["b"] == 0
    with np.errstate(invalid="ignore"):  # task b: 0 / 0
        per_task = numpy_task_losses(pred, target, None)
    np.testing.assert_allclose(value, per_task[0] + per_task[2], rtol=1e-12)
    grad = loss.backward()
    assert not grad[:, 3].any() and loss.log_vars.grad[1] == 0


def small_model(weights=None, gen_seed=0) -> MultiTaskModel:
    gen = sei.Generator(gen_seed)
    heads = {"digit": nn.Linear(16, 10, generator=gen), "parity": nn.Linear(16, 2, generator=gen)}
    return MultiTaskModel(
        nn.Linear(64, 16, activation="relu", generator=gen), heads, weights=weights
    )


def test_model_forward_backward_match_multihead():
    model = small_model("uncertainty")
    names = [n for n, _ in model.named_parameters()]
    assert "log_vars" in names and "net.trunk.weight" in names
    x = np.random.default_rng(7).random((5, 64), dtype=np.float32)
    out = model.forward(x)
    heads = model.net.forward(x)
    np.testing.assert_array_equal(out, np.concatenate([heads["digit"], heads["parity"]], 1))
    g = np.random.default_rng(8).normal(size=out.shape).astype(np.float32)
    model.zero_grad()
    model.forward(x)
    model.backward(g)
    mine = {n: p.grad.copy() for n, p in model.net.named_parameters()}
    model.zero_grad()
    model.net.forward(x)
    model.net.backward({"digit": g[:, :10].copy(), "parity": g[:, 10:].copy()})
    for n, p in model.net.named_parameters():
        np.testing.assert_array_equal(mine[n], p.grad)
    pred = model.predict(x, batch_size=2)
    assert sorted(pred) == ["digit", "parity"] and pred["digit"].shape == (5, 10)


def test_fit_multitask_records_per_task_metrics_and_steps_log_vars():
    x, y = data.load_digits()
    x, y = x[:400], y[:400]
    model = small_model("uncertainty")
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    targets = {"digit": y.astype(float), "parity": y % 2}
    targets["digit"][:100] = np.nan
    hist = fit_multitask(
        model,
        opt,
        x[:300],
        {k: v[:300] for k, v in targets.items()},
        validation_data=(x[300:], {"digit": y[300:], "parity": y[300:] % 2}),
        epochs=3,
        monitor="val_digit_accuracy",
    )
    rec = hist.epochs[-1]
    for key in ("digit_loss", "parity_loss", "digit_weight", "val_digit_accuracy", "val_loss"):
        assert key in rec and math.isfinite(rec[key]), key
    assert rec["val_parity_accuracy"] > 0.6
    assert model.log_vars.value.any()  # the optimizer stepped the log-variances
    assert "log_vars" in model.state_dict()


def test_bad_input_names_argument_and_value():
    with pytest.raises(ValueError, match=r"'weights' names unknown task\(s\) \['z'\]"):
        MultiTaskLoss(LOSSES, WIDTHS, {"z": 1.0})
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(
            ValueError, match=rf"'weights\['a'\]' must be finite and >= 0, got {bad}"
        ):
            MultiTaskLoss(LOSSES, WIDTHS, {"a": bad})
    with pytest.raises(
        ValueError, match="'weights' must be a dict, None, 'uncertainty' or 'gradnorm', got 'x'"
    ):
        MultiTaskLoss(LOSSES, WIDTHS, "x")
    with pytest.raises(ValueError, match=r"'losses\['a'\]' must be a seisoku.nn.Loss.*'hinge'"):
        MultiTaskLoss({"a": "hinge"}, {"a": 2})
    with pytest.raises(ValueError, match="'widths' must give every task"):
        MultiTaskLoss(LOSSES, {"a": 3})
    loss = MultiTaskLoss(LOSSES, WIDTHS, dtype=np.float64)
    pred, target = batch(0)
    with pytest.raises(ValueError, match=r"'target' must have shape \(8, 3\).*got \(8, 2\)"):
        loss(pred, target[:, :2])
    with pytest.raises(ValueError, match=r"'pred' must have shape \(N, 5\), got \(8, 4\)"):
        loss(pred[:, :4].copy(), target)
    bad = target.copy()
    bad[0, 0] = 1.5
    with pytest.raises(ValueError, match=r"class indices .* for task 'a', got 1\.5"):
        loss(pred, bad)
    with pytest.raises(ValueError, match=r"task 'b' has one target column.* got 2"):
        MultiTaskLoss(LOSSES, {"a": 2, "b": 2, "c": 1})(pred, target)
    with pytest.raises(ValueError, match=r"'losses' names unknown task\(s\) \['color'\]"):
        MultiTaskModel(nn.Linear(4, 4), {"a": nn.Linear(4, 2)}, losses={"color": "mse"})
    tasks = ["digit", "parity"]
    with pytest.raises(ValueError, match=r"argument 'y' lacks task\(s\) \['parity'\]"):
        stack_targets({"digit": np.zeros(3)}, tasks)
    with pytest.raises(ValueError, match=r"argument 'y' names unknown task\(s\) \['ge5'\]"):
        stack_targets({"digit": np.zeros(3), "parity": np.zeros(3), "ge5": np.zeros(3)}, tasks)
    with pytest.raises(ValueError, match="argument 'y' has no label for task 'parity'"):
        stack_targets({"digit": np.zeros(3), "parity": np.full(3, np.nan)}, tasks)
    with pytest.raises(ValueError, match="argument 'y' has no label for task 'digit'"):
        stack_targets({"digit": -np.ones(3), "parity": np.zeros(3)}, tasks)
    x = np.zeros((3, 64), np.float32)
    model = small_model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="'y' has 2 rows, x has 3"):
        fit_multitask(model, opt, x, {"digit": np.zeros(2), "parity": np.zeros(2)})
    with pytest.raises(ValueError, match="'model' must be a MultiTaskModel, got Linear"):
        fit_multitask(nn.Linear(64, 2), opt, x, np.zeros((3, 1)))


# -- measured: digits with few labels for the main task ------------------------------------
N_LABELLED = 50  # digit labels among the 1000 training rows; parity and >= 5 label them all


def digits_run(seed: int, config) -> float:
    """Test accuracy on the digit class of one model: 'single' (trunk + digit head trained on
    the labelled rows only), static weights {task: w}, or 'uncertainty'."""
    x, y = data.load_digits()
    perm = np.random.default_rng(seed).permutation(len(y))
    tr, va, te = perm[:1000], perm[1000:1300], perm[1300:]
    labels = {"digit": y.astype(float), "parity": y % 2, "ge5": (y >= 5) * 1}
    y_tr = {t: v[tr].astype(float) for t, v in labels.items()}
    y_tr["digit"][N_LABELLED:] = np.nan
    tasks, lr = ["digit", "parity", "ge5"], 0.005
    if config == "single":
        tasks, lr = ["digit"], 0.1  # the best of 0.1, 0.05, 0.02, 0.005 for this model
        tr = tr[:N_LABELLED]
        y_tr = {"digit": y_tr["digit"][:N_LABELLED]}
    gen = sei.Generator(seed)
    heads = {t: nn.Linear(32, 10 if t == "digit" else 2, generator=gen) for t in tasks}
    weights = None if config == "single" else config
    model = MultiTaskModel(
        nn.Linear(64, 32, activation="relu", generator=gen), heads, None, weights
    )
    groups = [{"params": [p for n, p in model.named_parameters() if n != "log_vars"]}]
    if config == "uncertainty":
        groups.append({"params": [model.log_vars], "lr": 0.01, "momentum": 0.0})
    opt = optim.SGD(groups, lr=lr, momentum=0.9)
    fit_multitask(
        model,
        opt,
        x[tr],
        {t: y_tr[t] for t in tasks},
        validation_data=(x[va], {t: labels[t][va] for t in tasks}),
        epochs=100,
        monitor="val_digit_accuracy",
        patience=20,
        seed=seed,
    )
    return float((model.predict(x[te])["digit"].argmax(1) == y[te]).mean())


def test_shared_trunk_helps_the_main_task_on_digits():
    configs = {
        "single": "single",
        "static 0.3": {"parity": 0.3, "ge5": 0.3},
        "static 1": {"parity": 1.0, "ge5": 1.0},
        "uncertainty": "uncertainty",
    }
    acc = {k: [digits_run(s, c) for s in range(3)] for k, c in configs.items()}
    mean = {k: float(np.mean(v)) for k, v in acc.items()}
    print({k: [round(a, 3) for a in v] for k, v in acc.items()}, mean)
    best_static = max(mean["static 0.3"], mean["static 1"])
    assert best_static >= mean["single"], mean
    # learned weights within 2 points of the best static weights of the grid
    assert mean["uncertainty"] >= best_static - 0.02, mean


class StopAt(Callback):
    """Interrupts the fit after a given optimizer step (as Ctrl-C does)."""

    def __init__(self, step: int | None) -> None:
        self.step = step

    def on_batch_end(self, trainer, step, logs) -> None:
        if step == self.step:
            trainer.interrupt()


def test_trainer_resume_is_exact_with_learned_weights(tmp_path):
    x, y = data.load_digits()
    x, y = x[:300], y[:300]
    targets = stack_targets({"digit": y, "parity": y % 2}, ["digit", "parity"]).astype(np.float32)
    path = str(tmp_path / "ckpt.npz")

    def run(stop: int | None, resume: str | None = None) -> tuple[MultiTaskModel, Trainer]:
        model = small_model("uncertainty")
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        callbacks = [TaskMetrics(), StopAt(stop), Checkpoint(path, every=1)]
        trainer = Trainer(model, model.loss, opt, callbacks=callbacks, progress=False)
        trainer.fit(x, targets, epochs=3, validation_split=0.2, resume=resume)
        return model, trainer

    whole, whole_trainer = run(None)
    with pytest.raises(KeyboardInterrupt):
        run(13)  # mid-epoch 1 (8 steps per epoch)
    resumed, resumed_trainer = run(None, resume=path)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    for key in ("digit_loss", "parity_loss", "val_digit_accuracy"):
        assert whole_trainer.history.column(key) == resumed_trainer.history.column(key), key
