"""`seisoku train --labels-per-class N --semi METHOD`: the digits recipe trained with only N
labels per class, the rest of the training part unlabeled, beside the same network trained on
the labeled rows alone (the baseline), for the same number of optimizer steps.

The split is the recipe's (70/30 stratified, 15% of the training part held out as validation
data, which is only reported: neither run stops early on it). The N labeled rows per class are
drawn from the training part by the recipe's seed. Methods: 'pseudo' (seisoku.semi's
PseudoLabeler), 'consistency' (FixMatch, seisoku.semi_consistency) and 'self_training'
(seisoku.semi_selftrain).

An epoch of 'consistency' is one pass over the unlabeled rows with half the recipe's batch
size of labeled rows per step (16 by default, and 112 unlabeled ones): the recipe's 60 epochs
are about 540 steps; FixMatch keeps gaining up to a few hundred epochs (--epochs 250).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import numpy as np

from . import augment
from .semi import UNLABELED, PseudoLabeler, _check_threshold
from .semi_consistency import ConsistencyTrainer
from .semi_selftrain import self_training

Array = Any

SEMI_METHODS = ("pseudo", "consistency", "self_training")
#: FixMatch threshold of the digits runs (0.95 selects too few 8x8 digits early on; see the
#: README's comparison).
DIGITS_THRESHOLD = 0.7
DIGITS_MU = 7


def labeled_subset(
    y: np.ndarray, labels_per_class: int, seed: int, op: str = "labeled_subset"
) -> np.ndarray:
    """Sorted indices of `labels_per_class` rows of every class of y (int labels), drawn by
    seed; ValueError when a class has fewer rows."""
    if (
        isinstance(labels_per_class, bool)
        or not isinstance(labels_per_class, (int, np.integer))
        or labels_per_class < 1
    ):
        raise ValueError(
            f"[{op}] argument 'labels_per_class' must be an int >= 1, got {labels_per_class!r}"
        )
    classes, counts = np.unique(y, return_counts=True)
    if labels_per_class > counts.min():
        c = classes[counts.argmin()]
        raise ValueError(
            f"[{op}] argument 'labels_per_class' must be at most {counts.min()} (class {c} has "
            f"{counts.min()} rows to draw from), got {labels_per_class}"
        )
    rng = np.random.default_rng([seed, 0x1AB])
    picks = [rng.choice(np.flatnonzero(y == c), labels_per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(picks))


def digit_pipelines(shift: int, seed: int) -> tuple[augment.Compose | None, augment.Compose]:
    """(weak, strong) augmentations of 8x8 digits (NCHW): weak, random shifts of up to
    `shift` pixels (None for 0); strong, the shifts, rotations of up to 30 degrees and one
    4x4 cutout (a 6 and a 9 are never turned upside down: the angles stay below 90)."""
    shifts = [augment.RandomCrop(8, padding=shift)] if shift else []
    weak = augment.Compose(shifts, seed=seed, layout="NCHW") if shifts else None
    strong = augment.Compose(
        [*shifts, augment.RandomRotation(30.0), augment.Cutout(1, 4)],
        seed=seed + 1,
        layout="NCHW",
    )
    return weak, strong


def _summary(trainer: Any, sets: dict[str, tuple[Array, Array]], seconds: float) -> dict:
    scores = {k: trainer.evaluate(*xy) for k, xy in sets.items()}
    return {
        "train_accuracy": scores["labeled"]["accuracy"],
        "val_accuracy": scores["val"]["accuracy"],
        "test_accuracy": scores["test"]["accuracy"],
        "gap": scores["labeled"]["accuracy"] - scores["test"]["accuracy"],
        "epochs_run": len(trainer.history.epochs),
        "steps": trainer.steps,
        "seconds": seconds,
    }


def run(
    recipe: Any,
    labels_per_class: int,
    method: str,
    progress: bool = True,
    *,
    threshold: float = DIGITS_THRESHOLD,
    mu: int = DIGITS_MU,
) -> dict[str, dict[str, Any]]:
    """Train the recipe semi-supervised with `method` on N = labels_per_class labels per class
    and the baseline on those labels alone (same optimizer steps); returns {'labels only':
    summary, method: summary} (accuracies on the labeled rows, validation and test sets)."""
    from . import recipes

    op = "seisoku train"
    if method not in SEMI_METHODS:
        raise ValueError(f"[{op}] argument 'semi' must be one of {SEMI_METHODS}, got {method!r}")
    threshold = _check_threshold(threshold, op)
    sets = recipes._split_digits(recipe)
    x, y = sets["train"]
    lab = labeled_subset(y, labels_per_class, recipe.seed, op)
    partial = np.full(y.shape, UNLABELED, dtype=np.int64)
    partial[lab] = y[lab]
    sets = recipes._to_device(
        {**sets, "train": (x, partial), "labeled": (x[lab], y[lab])}, recipe.device
    )
    x, partial = sets.pop("train")
    evals = {k: sets[k] for k in ("labeled", "val", "test")}
    flat = recipe.model != "cnn"
    weak, strong = digit_pipelines(recipe.shift, recipe.seed)
    fresh = replace(recipe, patience=0)
    runs: dict[str, dict[str, Any]] = {}

    start = time.perf_counter()
    if method == "consistency":
        base = recipes.make_trainer(fresh, progress, early_stopping=False)
        semi: Any = ConsistencyTrainer(
            base.model,
            base.optimizer,
            weak=weak,
            strong=strong,
            threshold=threshold,
            mu=mu,
            image_shape=(1, 8, 8) if flat else None,
            label_smoothing=recipe.label_smoothing,
            callbacks=base.callbacks,
            progress=progress,
        )
        # Half the recipe's batch of labeled rows per step (with mu times as many unlabeled
        # ones): 4 labeled rows at the recipe's learning rate do not train.
        batch = max(1, recipe.batch_size // 2)
        semi.fit(x, partial, epochs=recipe.epochs, batch_size=batch, seed=recipe.seed)
    elif method == "pseudo":
        base = recipes.make_trainer(fresh, progress, early_stopping=False)
        semi = PseudoLabeler(
            base.model,
            base.optimizer,
            threshold=threshold,
            t1=max(1, recipe.epochs // 10),
            t2=max(2, recipe.epochs * 4 // 10),
            callbacks=base.callbacks,
            progress=progress,
        )
        semi.fit(
            x,
            partial,
            epochs=recipe.epochs,
            batch_size=recipe.batch_size,
            augment=recipes._augmentation(recipe),
            seed=recipe.seed,
        )
    else:
        per_round = _baseline_epochs(recipe, len(lab))
        result = self_training(
            lambda: recipes.make_trainer(
                replace(fresh, epochs=per_round), progress, early_stopping=False
            ),
            x,
            partial,
            rounds=5,
            threshold=threshold,
            epochs=per_round,
            batch_size=recipe.batch_size,
            augment=recipes._augmentation(recipe),
            seed=recipe.seed,
        )
        semi = result.trainer
    seconds = time.perf_counter() - start
    semi_summary = _summary(semi, evals, seconds)
    semi_summary["labeled_rows"] = len(lab)
    semi_summary["unlabeled_rows"] = int((partial == UNLABELED).sum())

    steps = max(semi.steps, 1)
    per_epoch = -(-len(lab) // recipe.batch_size)
    epochs = max(1, -(-steps // per_epoch)) if method != "self_training" else per_round
    start = time.perf_counter()
    sup = recipes.make_trainer(replace(fresh, epochs=epochs), progress, early_stopping=False)
    sup.fit(
        *sets["labeled"],
        epochs=epochs,
        batch_size=recipe.batch_size,
        augment=recipes._augmentation(recipe),
        seed=recipe.seed,
    )
    runs["labels only"] = _summary(sup, evals, time.perf_counter() - start)
    runs[method] = semi_summary
    return runs


def _baseline_epochs(recipe: Any, n_labeled: int) -> int:
    """Epochs of a labels-only fit with about 2000 optimizer steps (at least recipe.epochs)."""
    per_epoch = -(-n_labeled // recipe.batch_size)
    return max(recipe.epochs, math.ceil(2000 / per_epoch))


def format_runs(runs: dict[str, dict[str, Any]], labels_per_class: int) -> str:
    """The summary table of run(), with a line on the gain."""
    from .recipes import format_table

    names = list(runs)
    table = format_table(runs)
    base, semi = runs[names[0]]["test_accuracy"], runs[names[-1]]["test_accuracy"]
    return (
        f"{labels_per_class} labels per class (the rest of the training part unlabeled); "
        "'train accuracy' is on the labeled rows\n"
        f"{table}\n"
        f"test accuracy gain over labels only: {100 * (semi - base):+.1f} points"
    )


def main(args: Any, recipe: Any) -> int:
    """The `seisoku train --labels-per-class N --semi METHOD` job (cli.py's dispatch)."""
    progress = not getattr(args, "no_progress", False)
    n = args.labels_per_class
    method = args.semi or "consistency"
    runs = run(recipe, n, method, progress)
    print(format_runs(runs, n))
    if getattr(args, "json", None):
        import json

        from ._state_file import atomic_write

        with atomic_write(args.json, "w") as f:
            json.dump({"labels_per_class": n, "runs": runs}, f, indent=2)
    return 0


__all__ = ["SEMI_METHODS", "digit_pipelines", "format_runs", "labeled_subset", "main", "run"]
