"""Self-training rounds and denoising-autoencoder pretraining for semi-supervised learning.

Self-training (Yarowsky 1995; scikit-learn's SelfTrainingClassifier) works in rounds: train on
the labeled rows, label the unlabeled rows the model is confident about (softmax probability
>= threshold, or the k most confident), add them to the labeled set, retrain from scratch,
and repeat until a round adds nothing or `rounds` are done.

Denoising-autoencoder pretraining (Vincent et al. 2008, "Extracting and Composing Robust
Features with Denoising Autoencoders"; the lecture's noise injection): an AutoEncoder with
Gaussian noise on its input learns to reconstruct every row, labeled or not, so its encoder
learns features of the whole input distribution; the encoder, followed by a new Linear head,
is then fine-tuned on the labeled rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import nn
from ._array import array_module, require_array
from .random import Generator
from .semi import UNLABELED, _check_threshold, _real, check_labels
from .semi_consistency import _softmax
from .train import Trainer

Array = Any


@dataclass
class SelfTrainingResult:
    """What self_training did: the final trainer, the labels it ended with (y with the
    pseudo-labels filled in, -1 where none), and per round the number of rows added and the
    labeled count before the round's fit."""

    trainer: Trainer
    labels: Array
    added: list[int] = field(default_factory=list)
    labeled: list[int] = field(default_factory=list)
    stop_reason: str = ""


def self_training(
    build: Callable[[], Trainer],
    x: Array,
    y: Array,
    *,
    rounds: int = 10,
    threshold: float = 0.95,
    k_best: int | None = None,
    **fit_kwargs: Any,
) -> SelfTrainingResult:
    """Self-training: fit a fresh trainer from build() on the labeled rows of (x, y) (y: -1 for
    unlabeled), label the confident unlabeled rows with its predictions, and repeat.

    Args:
        build: makes a new Trainer with a freshly initialised model (called once per round).
        x, y: inputs (N, ...) and labels (N,), -1 marking unlabeled rows.
        rounds: rounds of fit-then-label, an int >= 1 (default 10); the last fit is on the
            labels gathered after rounds - 1 labelings.
        threshold: minimum softmax probability in (0, 1] of a new label (default 0.95).
        k_best: when given (int >= 1), label at most the k most confident rows per round
            among those at or above threshold (scikit-learn's criterion 'k_best').
        fit_kwargs: passed to every Trainer.fit (epochs, batch_size, augment, seed, ...).
    Returns:
        SelfTrainingResult.
    """
    op = "self_training"
    require_array(x, "x", op)
    check_labels(y, None, op)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"[{op}] arguments 'x' and 'y' must have the same rows, got {x.shape[0]} and "
            f"{y.shape[0]}"
        )
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise ValueError(f"[{op}] argument 'rounds' must be an int >= 1, got {rounds!r}")
    threshold = _check_threshold(threshold, op)
    if k_best is not None and (
        isinstance(k_best, bool) or not isinstance(k_best, (int, np.integer)) or k_best < 1
    ):
        raise ValueError(f"[{op}] argument 'k_best' must be None or an int >= 1, got {k_best!r}")
    if not callable(build):
        raise ValueError(f"[{op}] argument 'build' must be a callable returning a Trainer")
    xp = array_module(x)
    labels = y.astype(xp.int64).copy()
    result = SelfTrainingResult(trainer=None, labels=labels)  # type: ignore[arg-type]
    for r in range(int(rounds)):
        trainer = build()
        if not isinstance(trainer, Trainer):
            raise ValueError(f"[{op}] build() must return a Trainer, got {type(trainer).__name__}")
        known = xp.flatnonzero(labels != UNLABELED)
        result.labeled.append(int(known.shape[0]))
        trainer.fit(x[known], labels[known], **fit_kwargs)
        result.trainer = trainer
        if r == rounds - 1:
            result.stop_reason = f"ran {rounds} rounds"
            break
        rest = xp.flatnonzero(labels == UNLABELED)
        if rest.shape[0] == 0:
            result.stop_reason = "every row is labeled"
            break
        p = _softmax(trainer.predict(x[rest]).astype(xp.float64))
        conf, guess = p.max(axis=1), p.argmax(axis=1)
        pick = xp.flatnonzero(conf >= threshold)
        if k_best is not None and pick.shape[0] > k_best:
            pick = pick[xp.argsort(-conf[pick], kind="stable")[:k_best]]
        result.added.append(int(pick.shape[0]))
        if pick.shape[0] == 0:
            result.stop_reason = f"no unlabeled row reached threshold {threshold} in round {r}"
            break
        labels[rest[pick]] = guess[pick]
    return result


def pretrain_dae(
    x: Array,
    sizes: Sequence[int],
    *,
    noise_std: float = 0.3,
    epochs: int = 50,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    generator: Generator | None = None,
    progress: bool = False,
) -> nn.AutoEncoder:
    """A denoising AutoEncoder(sizes, noise_std) trained with Adam (lr) to reconstruct every
    row of x (N, sizes[0]), values in [0, 1] (sigmoid reconstruction, mean squared error).

    Args:
        x: all rows, labeled and unlabeled (flat (N, D) float32).
        sizes: (inputs, hidden..., code), e.g. (64, 128).
        noise_std: standard deviation of the Gaussian noise on the inputs in training, in the
            inputs' units, >= 0 (default 0.3).
        epochs, batch_size, lr, seed: of the reconstruction fit (defaults 50, 64, 1e-3, 0).
        generator: of the weights and the noise (default: Generator(seed)).
    """
    from . import optim

    op = "pretrain_dae"
    require_array(x, "x", op)
    std = _real(noise_std, "noise_std", op)
    if not (math.isfinite(std) and std >= 0.0):
        raise ValueError(f"[{op}] argument 'noise_std' must be finite and >= 0, got {noise_std!r}")
    if x.ndim != 2:
        raise ValueError(f"[{op}] argument 'x' must be flat rows (N, D), got shape {x.shape}")
    gen = generator if generator is not None else Generator(seed)
    ae = nn.AutoEncoder(list(sizes), noise_std=std, tied=False, generator=gen)
    t = Trainer(ae, nn.MSELoss(), optim.Adam(ae.parameters(), lr=lr), progress=progress)
    t.fit(x, x, epochs=epochs, batch_size=batch_size, seed=seed)
    return ae


def dae_classifier(
    ae: nn.AutoEncoder,
    classes: int,
    *,
    dropout: float = 0.0,
    generator: Generator | None = None,
) -> nn.Sequential:
    """The classifier to fine-tune: ae's encoder (its weights, shared with ae), optional
    Dropout(dropout) on the code, then a new Linear(code, classes) head of logits."""
    code = int(ae.encoder[-1].weight.shape[0])
    layers: list[Any] = [ae.encoder]
    if dropout:
        layers.append(nn.Dropout(dropout, generator=generator))
    layers.append(nn.Linear(code, int(classes), generator=generator))
    return nn.Sequential(*layers)


__all__ = ["SelfTrainingResult", "dae_classifier", "pretrain_dae", "self_training"]
