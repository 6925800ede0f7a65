"""The `seisoku train` main job: a regularized MLP on the built-in digits data, with a
summary of train / validation / test accuracy and the generalization gap."""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import data, nn
from .random import manual_seed
from .train import EarlyStopping, History, Trainer


@dataclass
class Recipe:
    """Model and regularization settings of one training run."""

    hidden: tuple[int, ...] = (512, 512)
    activation: str = "relu"
    dropout: float = 0.3
    input_dropout: float = 0.1
    input_noise: float = 0.0
    label_smoothing: float = 0.1
    l2: float = 5e-4
    l1: float = 0.0
    max_norm: float = 0.0
    lr: float = 0.05
    momentum: float = 0.9
    epochs: int = 200
    batch_size: int = 32
    patience: int = 20
    seed: int = 0
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    def unregularized(self) -> Recipe:
        """The same model with every regularizer off and no early stopping."""
        return Recipe(
            hidden=self.hidden,
            activation=self.activation,
            dropout=0.0,
            input_dropout=0.0,
            input_noise=0.0,
            label_smoothing=0.0,
            l2=0.0,
            l1=0.0,
            max_norm=0.0,
            lr=self.lr,
            momentum=self.momentum,
            epochs=self.epochs,
            batch_size=self.batch_size,
            patience=self.epochs,
            seed=self.seed,
            device=self.device,
        )


def _split_digits(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    x, y = data.load_digits()
    train, test = data.stratified_split(y, 0.3, seed=seed)
    fit, val = data.stratified_split(y[train], 0.15, seed=seed + 1)
    return {
        "train": (x[train][fit], y[train][fit]),
        "val": (x[train][val], y[train][val]),
        "test": (x[test], y[test]),
    }


def _to_device(arrays: dict[str, tuple[np.ndarray, np.ndarray]], device: str) -> dict[str, Any]:
    if device == "cpu":
        return arrays
    import cupy

    return {k: (cupy.asarray(a), cupy.asarray(b)) for k, (a, b) in arrays.items()}


def run(recipe: Recipe, progress: bool = True) -> tuple[dict[str, Any], History, nn.Module]:
    """Train the recipe on digits; returns (summary, history, model)."""
    from . import optim

    sets = _to_device(_split_digits(recipe.seed), recipe.device)
    manual_seed(recipe.seed)
    model = nn.mlp(
        [64, *recipe.hidden, 10],
        activation=recipe.activation,
        dropout=recipe.dropout,
        input_dropout=recipe.input_dropout,
        input_noise=recipe.input_noise,
        device=recipe.device,
    )
    opt = optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        l2=recipe.l2,
        l1=recipe.l1,
        max_norm=recipe.max_norm or None,
    )
    stopper = EarlyStopping("val_loss", patience=recipe.patience)
    trainer = Trainer(model, nn.CrossEntropyLoss(recipe.label_smoothing), opt, [stopper], progress)
    start = time.perf_counter()
    history = trainer.fit(
        *sets["train"],
        validation_data=sets["val"],
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        seed=recipe.seed,
    )
    seconds = time.perf_counter() - start
    scores = {name: trainer.evaluate(*xy) for name, xy in sets.items()}
    summary = {
        "train_accuracy": scores["train"]["accuracy"],
        "val_accuracy": scores["val"]["accuracy"],
        "test_accuracy": scores["test"]["accuracy"],
        "train_loss": scores["train"]["loss"],
        "test_loss": scores["test"]["loss"],
        "gap": scores["train"]["accuracy"] - scores["test"]["accuracy"],
        "best_epoch": history.best_epoch,
        "epochs_run": len(history.epochs),
        "stop_reason": history.stop_reason,
        "seconds": seconds,
        "recipe": {k: v for k, v in asdict(recipe).items() if k != "extra"},
    }
    return summary, history, model


def write_outputs(
    out_dir: str, summary: dict[str, Any], history: History, model: nn.Module
) -> list[str]:
    """weights.npz, history.csv, history.json, summary.json and (with matplotlib)
    learning_curve.png in out_dir; returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    weights = os.path.join(out_dir, "weights.npz")
    model.save(weights)
    paths.append(weights)
    keys = sorted({k for e in history.epochs for k in e})
    csv_path = os.path.join(out_dir, "history.csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history.epochs)
    paths.append(csv_path)
    for name, obj in (("history.json", history.epochs), ("summary.json", summary)):
        path = os.path.join(out_dir, name)
        with open(path, "w") as f:
            json.dump(obj, f, indent=2)
        paths.append(path)
    png = plot_learning_curve(history, os.path.join(out_dir, "learning_curve.png"))
    if png:
        paths.append(png)
    return paths


def plot_learning_curve(history: History, path: str) -> str | None:
    """Training and validation loss per epoch with the early-stopping point marked; None
    when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    epochs = [int(e) + 1 for e in history.column("epoch")]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, history.column("loss"), label="training loss")
    ax.plot(epochs, history.column("val_loss"), label="validation loss")
    if history.best_epoch is not None:
        ax.axvline(
            history.best_epoch + 1, color="gray", linestyle="--", label="early-stopping point"
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """A plain-text table: one column per run, one row per figure."""
    fields = [
        ("train accuracy", "train_accuracy", "{:.4f}"),
        ("validation accuracy", "val_accuracy", "{:.4f}"),
        ("test accuracy", "test_accuracy", "{:.4f}"),
        ("generalization gap", "gap", "{:+.4f}"),
        ("best epoch", "best_epoch", "{}"),
        ("epochs run", "epochs_run", "{}"),
        ("time (s)", "seconds", "{:.1f}"),
    ]
    names = list(rows)
    width = max(len(f[0]) for f in fields)
    col = max(14, *(len(n) for n in names))
    lines = [" " * width + "".join(f"  {n:>{col}}" for n in names)]
    for label, key, fmt in fields:
        cells = []
        for n in names:
            v = rows[n].get(key)
            cells.append(f"  {('-' if v is None else fmt.format(v)):>{col}}")
        lines.append(f"{label:<{width}}" + "".join(cells))
    return "\n".join(lines)
