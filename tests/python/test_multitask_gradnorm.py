"""GradNorm task weighting (seisoku.multitask): the weight update against a PyTorch autograd
re-implementation of Chen et al. 2018, the per-task backward's gradients, early stopping on
any task's metric, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import seisoku
from seisoku import nn, optim
from seisoku.multitask import (
    GRADNORM_MIN_WEIGHT,
    MultiTaskLoss,
    MultiTaskModel,
    fit_multitask,
    stack_targets,
)


def small_model(alpha: float = 1.5, lr: float = 0.05) -> MultiTaskModel:
    gen = seisoku.Generator(3)
    trunk = nn.Sequential(
        nn.Linear(4, 6, activation="relu", generator=gen),
        nn.Linear(6, 5, activation="tanh", generator=gen),
    )
    heads = {"cls": nn.Linear(5, 3, generator=gen), "reg": nn.Linear(5, 1, generator=gen)}
    return MultiTaskModel(
        trunk,
        heads,
        losses={"cls": "cross_entropy", "reg": "mse"},
        weights="gradnorm",
        gradnorm_alpha=alpha,
        gradnorm_lr=lr,
    )


def small_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 4)).astype(np.float32)
    cls = rng.integers(0, 3, 10).astype(np.float64)
    reg = rng.standard_normal(10)
    cls[[1, 4]] = -1  # missing labels
    reg[[0, 7, 8]] = np.nan
    return x, stack_targets({"cls": cls, "reg": reg}, ["cls", "reg"]).astype(np.float32)


def torch_gradnorm(torch, params, x, y, w, initial, alpha, lr):
    """One GradNorm step by autograd: losses, the gradient of sum w_t L_t with respect to
    every parameter, and the new weights (and first losses)."""
    p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    xt = torch.tensor(x, dtype=torch.float64)
    h = torch.relu(xt @ p["net.trunk.0.weight"].T + p["net.trunk.0.bias"])
    h = torch.tanh(h @ p["net.trunk.1.weight"].T + p["net.trunk.1.bias"])
    out_c = h @ p["net.cls.weight"].T + p["net.cls.bias"]
    out_r = h @ p["net.reg.weight"].T + p["net.reg.bias"]
    keep_c = y[:, 0] >= 0
    keep_r = ~np.isnan(y[:, 1])
    losses = {
        "cls": torch.nn.functional.cross_entropy(
            out_c[torch.tensor(keep_c)], torch.tensor(y[keep_c, 0].astype(np.int64))
        ),
        "reg": torch.nn.functional.mse_loss(
            out_r[torch.tensor(keep_r), 0], torch.tensor(y[keep_r, 1], dtype=torch.float64)
        ),
    }
    wt = torch.tensor([w["cls"], w["reg"]], dtype=torch.float64, requires_grad=True)
    shared = p["net.trunk.1.weight"]
    g = torch.stack(
        [
            torch.linalg.norm(torch.autograd.grad(wt[i] * losses[t], shared, create_graph=True)[0])
            for i, t in enumerate(["cls", "reg"])
        ]
    )
    initial = initial or {t: float(v.detach()) for t, v in losses.items()}
    ratio = torch.stack([losses[t].detach() / initial[t] for t in ["cls", "reg"]])
    r = ratio / ratio.mean()
    target = (g.mean() * r**alpha).detach()
    l_grad = (g - target).abs().sum()
    (dw,) = torch.autograd.grad(l_grad, wt, retain_graph=True)
    new = torch.clamp(wt.detach() - lr * dw, min=GRADNORM_MIN_WEIGHT)
    new = new * 2 / new.sum()
    total = sum(wt[i].detach() * losses[t] for i, t in enumerate(["cls", "reg"]))
    grads = torch.autograd.grad(total, list(p.values()))
    return (
        {t: float(v.detach()) for t, v in losses.items()},
        {k: gr.numpy() for k, gr in zip(p, grads)},
        {"cls": float(new[0]), "reg": float(new[1])},
        [float(v) for v in g.detach()],
        initial,
    )


@pytest.mark.parametrize("alpha", [0.0, 1.5])
def test_gradnorm_update_matches_torch_autograd_over_three_steps(alpha) -> None:
    torch = pytest.importorskip("torch")
    model = small_model(alpha=alpha, lr=0.05)
    opt = optim.SGD(model.parameters(), lr=0.3)
    x, y = small_data()
    initial = None
    for _ in range(3):
        params = model.state_dict()
        w = model.loss.task_weights()
        losses, grads, new_w, norms, initial = torch_gradnorm(
            torch, params, x, y, w, initial, alpha, 0.05
        )
        model.zero_grad()
        out = model.forward(x)
        model.loss(out, y)
        for t in ("cls", "reg"):
            assert model.loss.task_losses[t] == pytest.approx(losses[t], rel=1e-5)
        model.backward(model.loss.backward(), need_input_grad=False)
        for (name, p), ref in zip(model.named_parameters(), grads.values()):
            np.testing.assert_allclose(p.grad, ref, rtol=1e-4, atol=1e-6, err_msg=name)
        got = [model.last_grad_norms[t] for t in ("cls", "reg")]
        np.testing.assert_allclose(got, norms, rtol=1e-4)
        weights = model.loss.task_weights()
        assert weights == pytest.approx(new_w, rel=1e-6)
        assert sum(weights.values()) == pytest.approx(2.0)
        opt.step()
    assert model.loss.initial_losses == pytest.approx(initial, rel=1e-5)


def test_gradnorm_weights_move_toward_the_slower_task_and_are_logged() -> None:
    """With alpha > 0 the task whose loss fell less (relative to its start) gains weight;
    the history records every task's weight per epoch."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((240, 8)).astype(np.float32)
    easy = (x[:, 0] > 0).astype(np.int64)
    hard = ((x[:, 1] * x[:, 2] > 0) ^ (x[:, 3] > 0.5)).astype(np.int64)
    gen = seisoku.Generator(0)
    model = MultiTaskModel(
        nn.Sequential(nn.Linear(8, 16, activation="relu", generator=gen)),
        {"easy": nn.Linear(16, 2, generator=gen), "hard": nn.Linear(16, 2, generator=gen)},
        weights="gradnorm",
    )
    history = fit_multitask(
        model,
        optim.Adam(model.parameters(), lr=1e-2),
        x,
        {"easy": easy, "hard": hard},
        epochs=5,
    )
    w = history.column("hard_weight")
    assert len(w) == 5
    assert w[-1] > history.column("easy_weight")[-1]
    assert w[-1] + history.column("easy_weight")[-1] == pytest.approx(2.0)


def test_early_stopping_watches_any_task_metric() -> None:
    """Task b has random labels: its validation loss rises as the network memorizes them, so
    monitoring val_b_loss stops early at its minimum while task a still improves."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 6)).astype(np.float32)
    y = {"a": (x[:, 0] > 0).astype(np.int64), "b": rng.integers(0, 2, 200)}
    gen = seisoku.Generator(0)
    model = MultiTaskModel(
        nn.Sequential(nn.Linear(6, 64, activation="relu", generator=gen)),
        {"a": nn.Linear(64, 2, generator=gen), "b": nn.Linear(64, 2, generator=gen)},
    )
    history = fit_multitask(
        model,
        optim.Adam(model.parameters(), lr=3e-2),
        x[:100],
        {k: v[:100] for k, v in y.items()},
        validation_data=(x[100:], {k: v[100:] for k, v in y.items()}),
        epochs=60,
        monitor="val_b_loss",
        patience=3,
    )
    assert history.stopped_early
    watched = history.column("val_b_loss")
    assert history.best_epoch == int(np.argmin(watched))
    assert len(watched) == history.best_epoch + 4
    assert "val_a_accuracy" in history.epochs[0]


def test_bad_gradnorm_and_task_arguments_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"'gradnorm_alpha'.*-1"):
        MultiTaskLoss({"a": "mse"}, {"a": 1}, "gradnorm", gradnorm_alpha=-1.0)
    with pytest.raises(ValueError, match=r"'gradnorm_lr'.*0"):
        MultiTaskLoss({"a": "mse"}, {"a": 1}, "gradnorm", gradnorm_lr=0.0)
    with pytest.raises(ValueError, match=r"'weights'.*'gradnorm'.*'grad'"):
        MultiTaskLoss({"a": "mse"}, {"a": 1}, "grad")
    with pytest.raises(ValueError, match=r"'weights' is 'gradnorm'.*trunk with a weight"):
        MultiTaskModel(nn.ReLU(), {"a": nn.Linear(3, 1)}, {"a": "mse"}, "gradnorm")
    with pytest.raises(ValueError, match=r"'shared' must be a Parameter of the trunk"):
        head = nn.Linear(3, 1)
        MultiTaskModel(
            nn.Linear(3, 3), {"a": head}, {"a": "mse"}, "gradnorm", shared=head.parameters()[0]
        )
    with pytest.raises(ValueError, match=r"gradnorm_step needs weights='gradnorm'"):
        MultiTaskLoss({"a": "mse"}, {"a": 1}).gradnorm_step({"a": 1.0})
    model = small_model()
    x, y = small_data()
    with pytest.raises(ValueError, match=r"'monitor'.*\['cls', 'reg'\].*'val_digit_accuracy'"):
        fit_multitask(model, optim.SGD(model.parameters(), lr=0.1), x, y,
                      validation_data=(x, y), monitor="val_digit_accuracy")  # fmt: skip
    with pytest.raises(ValueError, match=r"'y' lacks task\(s\) \['reg'\]"):
        fit_multitask(model, optim.SGD(model.parameters(), lr=0.1), x, {"cls": y[:, 0]})
    with pytest.raises(ValueError, match=r"'y' names unknown task\(s\) \['parity'\]"):
        stack_targets({"cls": y[:, 0], "reg": y[:, 1], "parity": y[:, 0]}, ["cls", "reg"])


def test_gradnorm_weights_survive_a_checkpoint(tmp_path) -> None:
    """The GradNorm weights and first losses ride in TaskMetrics' checkpoint state: a fit
    resumed from a checkpoint written after epoch 2 of 4 ends with the weights and parameters
    of the unbroken fit."""
    from seisoku.callbacks import Callback
    from seisoku.multitask import TaskMetrics
    from seisoku.train import Trainer

    x, y = small_data()
    path = tmp_path / "ckpt.npz"

    class SaveAfterSecondEpoch(Callback):
        def __init__(self, save: bool) -> None:
            self.save = save

        def on_epoch_end(self, trainer, epoch, logs) -> None:
            if self.save and epoch == 1:
                trainer.save_checkpoint(path)
                self.saved = trainer.loss.state_dict()

    def trainer(save: bool) -> Trainer:
        model = small_model()
        cbs = [TaskMetrics(), SaveAfterSecondEpoch(save)]
        return Trainer(model, model.loss, optim.SGD(model.parameters(), lr=0.1), cbs,
                       progress=False)  # fmt: skip

    whole = trainer(True)
    whole.fit(x, y, epochs=4, batch_size=4, seed=1)
    saved = whole.callbacks[-1].saved
    resumed = trainer(False)
    resumed.fit(x, y, epochs=4, batch_size=4, seed=1, resume=path)
    assert resumed.loss.initial_losses == saved["initial_losses"]
    assert saved["weights"] != pytest.approx(whole.loss.task_weights())  # they moved on
    assert resumed.loss.task_weights() == pytest.approx(whole.loss.task_weights(), rel=1e-6)
    for p, q in zip(resumed.model.parameters(), whole.model.parameters()):
        np.testing.assert_allclose(p.value, q.value, rtol=1e-6)


def test_the_multitask_example_runs_every_setting() -> None:
    """examples/multitask.py with 2 epochs: every setting reports every task, accuracies are
    fractions, and the labels it derives are the digits' parity, >= 5 and primality."""
    import importlib.util
    import os

    pytest.importorskip("sklearn")  # the digits
    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "multitask.py")
    spec = importlib.util.spec_from_file_location("multitask_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    derived = example.derived_tasks(np.arange(10))
    assert derived["parity"].tolist() == [0, 1] * 5
    assert derived["ge5"].tolist() == [0] * 5 + [1] * 5
    assert derived["prime"].tolist() == [0, 0, 1, 1, 0, 1, 0, 1, 0, 0]
    _, labels, _, _ = example.split(0)
    assert 0.07 < (labels["digit"] >= 0).mean() < 0.13
    assert 0.35 < (labels["parity"] >= 0).mean() < 0.45
    results = example.run(0, epochs=2)
    expected = {"separate", "uncertainty", "gradnorm"} | {
        f"static aux={w:g}" for w in example.STATIC_GRID
    }
    assert set(results) == expected
    for accs in results.values():
        assert set(accs) == set(example.TASKS)
        assert all(0.0 <= a <= 1.0 for a in accs.values())
    name, best = example.best_static(results)
    assert results[name]["digit"] == best
    assert best == max(v["digit"] for k, v in results.items() if k.startswith("static"))
    assert "digit" in example.format_table(results)
