"""Multi-task learning on the digits: a shared trunk against separate single-task models, and
static, uncertainty and GradNorm task weights.

Four tasks derived from scikit-learn's 8x8 digits, each labelled on only a few training rows
(the others are missing, -1): the digit itself (the main task, 10% of the rows), its parity,
whether it is >= 5 and whether it is prime (40% each, drawn independently). A shared trunk
(64 -> 64 ReLU) with one head per task learns from every task's labels; a separate model of
the same size per task sees only its own. The auxiliary labels are functions of the digit, so
sharing should help the main task most.

    PYTHONPATH=... python examples/multitask.py [--seeds 0 1 2] [--epochs 60]

Prints, per seed, the test accuracy of every task for the separate models and for the shared
trunk under each weighting: static weights (main task 1, auxiliary tasks w for w in a small
grid), uncertainty weighting (Kendall et al. 2018) and GradNorm (Chen et al. 2018).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

import seisoku
from seisoku import data, nn, optim
from seisoku.multitask import MultiTaskModel, fit_multitask

TASKS = ("digit", "parity", "ge5", "prime")
STATIC_GRID = (0.1, 0.3, 1.0, 3.0)


def derived_tasks(y: np.ndarray) -> dict[str, np.ndarray]:
    """The four tasks' labels of digit labels y."""
    return {
        "digit": y,
        "parity": y % 2,
        "ge5": (y >= 5).astype(np.int64),
        "prime": np.isin(y, (2, 3, 5, 7)).astype(np.int64),
    }


def split(
    seed: int, digit_fraction: float = 0.1, aux_fraction: float = 0.4
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    """(x_train, partly labelled train tasks, x_test, fully labelled test tasks)."""
    x, y = data.load_digits()
    train, test = data.stratified_split(y, 0.3, seed=seed)
    rng = np.random.default_rng([seed, 1])
    labels = {}
    for t, col in derived_tasks(y[train]).items():
        frac = digit_fraction if t == "digit" else aux_fraction
        keep = rng.random(len(col)) < frac
        labels[t] = np.where(keep, col, -1)
    return x[train], labels, x[test], derived_tasks(y[test])


def build(tasks: tuple[str, ...], seed: int, weights: Any = None) -> MultiTaskModel:
    gen = seisoku.Generator(seed)
    trunk = nn.Sequential(nn.Linear(64, 64, activation="relu", generator=gen))
    widths = {"digit": 10, "parity": 2, "ge5": 2, "prime": 2}
    heads = {t: nn.Linear(64, widths[t], generator=gen) for t in tasks}
    return MultiTaskModel(trunk, heads, weights=weights)


def accuracies(model: MultiTaskModel, x: np.ndarray, y: dict[str, np.ndarray]) -> dict[str, float]:
    out = model.predict(x)
    return {t: float((out[t].argmax(axis=1) == y[t]).mean()) for t in model.tasks}


def train(
    tasks: tuple[str, ...],
    x: np.ndarray,
    labels: dict[str, np.ndarray],
    seed: int,
    epochs: int,
    weights: Any = None,
) -> MultiTaskModel:
    rows = np.flatnonzero(np.any([labels[t] >= 0 for t in tasks], axis=0))
    model = build(tasks, seed, weights)
    fit_multitask(
        model,
        optim.Adam(model.parameters(), lr=3e-3, l2=1e-4),
        x[rows],
        {t: labels[t][rows] for t in tasks},
        epochs=epochs,
        batch_size=32,
        seed=seed,
    )
    return model


def run(seed: int, epochs: int = 60) -> dict[str, dict[str, float]]:
    """Test accuracies {setting: {task: accuracy}} of one seed; 'separate' holds each task's
    own single-task model."""
    x, labels, xt, yt = split(seed)
    results: dict[str, dict[str, float]] = {"separate": {}}
    for t in TASKS:
        results["separate"][t] = accuracies(train((t,), x, labels, seed, epochs), xt, yt)[t]
    for w in STATIC_GRID:
        weights = {t: (1.0 if t == "digit" else w) for t in TASKS}
        results[f"static aux={w:g}"] = accuracies(
            train(TASKS, x, labels, seed, epochs, weights), xt, yt
        )
    for mode in ("uncertainty", "gradnorm"):
        results[mode] = accuracies(train(TASKS, x, labels, seed, epochs, mode), xt, yt)
    return results


def best_static(results: dict[str, dict[str, float]], task: str = "digit") -> tuple[str, float]:
    """The static setting with the best main-task accuracy, and that accuracy."""
    static = {k: v[task] for k, v in results.items() if k.startswith("static")}
    name = max(static, key=lambda k: static[k])
    return name, static[name]


def format_table(results: dict[str, dict[str, float]]) -> str:
    width = max(len(k) for k in results)
    lines = [f"{'':<{width}}" + "".join(f"  {t:>7}" for t in TASKS)]
    for name, acc in results.items():
        lines.append(f"{name:<{width}}" + "".join(f"  {acc[t]:>7.4f}" for t in TASKS))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    seisoku.set_num_threads(1)
    for seed in args.seeds:
        start = time.perf_counter()
        results = run(seed, args.epochs)
        print(f"seed {seed} (test accuracy; digit labels on 10% of the training rows):")
        print(format_table(results))
        name, acc = best_static(results)
        print(
            f"main task: shared trunk (best static, {name}) {acc:.4f}, uncertainty "
            f"{results['uncertainty']['digit']:.4f}, GradNorm {results['gradnorm']['digit']:.4f}"
            f" vs separate model {results['separate']['digit']:.4f}"
            f"  [{time.perf_counter() - start:.0f} s]\n"
        )


if __name__ == "__main__":
    main()
