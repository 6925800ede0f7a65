"""The `seisoku train` main job: a regularized MLP (or small CNN) on the built-in digits
data, with a summary of train / validation / test accuracy and the generalization gap.

The data are split 70/30 (stratified) into a training part and the test set, and 15% of
the training part (stratified) is held out for validation and early stopping. With
retrain_on_all the model is then trained again, from scratch, on training and validation
data together for the number of steps early stopping found (the lecture's procedure).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from . import augment, data, nn
from .callbacks import Callback, Checkpoint, EarlyStopping, LRSchedule
from .random import manual_seed
from .train import History, Trainer, retrain_on_all

Array = Any

MODELS = ("mlp", "cnn")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "cosine", "step")
# Formats of --quantize: (int_bits, frac_bits) of the fixed-point codes the parameters are
# stored in after training.
QUANTIZE = {"none": None, "q8.8": (8, 8)}


@dataclass
class Recipe:
    """Model, regularization and optimization settings of one training run.

    Sizes are counts, rates and penalties plain numbers, epochs and patience in epochs.
    Regularizers set to 0 are off. The defaults are the tuned digits recipe.
    """

    model: str = "cnn"  # 'mlp' or 'cnn'
    hidden: tuple[int, ...] = (128,)  # hidden Linear sizes (after the convolutions for cnn)
    channels: tuple[int, ...] = (16, 32)  # cnn: output channels of the 3x3 convolutions
    activation: str = "relu"
    dropout: float = 0.2  # on hidden units
    input_dropout: float = 0.0
    input_noise: float = 0.0  # std of Gaussian noise on the inputs
    hidden_noise: float = 0.0  # std of Gaussian noise on hidden units
    dropconnect: float = 0.0  # DropConnect probability of the hidden Linear layers
    label_smoothing: float = 0.1  # the lecture's convention (true class 1 - eps)
    l2: float = 1e-4  # coupled L2 penalty (torch's weight_decay)
    weight_decay: float = 0.0  # decoupled weight decay
    l1: float = 0.0
    max_norm: float | None = None  # per-unit max-norm bound (None: off)
    shift: int = 1  # random translations of the 8x8 images by up to this many pixels
    rotate: float = 0.0  # random rotations by up to this many degrees (bilinear)
    elastic: float = 0.0  # elastic distortion: alpha in pixels (0: off)
    elastic_sigma: float = 1.0  # elastic distortion: smoothing sigma in pixels
    cutout: int = 0  # one zeroed square of this side in pixels per image (0: off)
    optimizer: str = "sgd"  # 'sgd', 'adam' or 'adamw'
    lr: float = 0.05
    momentum: float = 0.9  # sgd only
    schedule: str = "cosine"  # learning-rate schedule over the epochs: none, cosine, step
    warmup: int = 0  # epochs of linear warm-up before the schedule
    epochs: int = 60
    batch_size: int = 32
    patience: int = 20  # early stopping, in evaluations (0: no early stopping)
    eval_period: int = 1  # evaluate the validation data every this many epochs
    retrain_on_all: bool = False
    seed: int = 0
    device: str = "cpu"
    quantize: str = "none"  # after training, also evaluate the parameters stored in this format
    distill_from: str = ""  # weights.npz of a `seisoku train --out` run to distill from ("": off)
    prune: float = 0.0  # target fraction of zero weights, reached by iterative pruning (0: off)
    temperature: float = 4.0  # distillation: softmax temperature T
    alpha: float = 0.9  # distillation: weight of the soft (teacher) loss; 1 - alpha on labels

    def __post_init__(self) -> None:
        for name in ("hidden", "channels"):
            sizes = getattr(self, name)
            if not isinstance(sizes, (list, tuple)):
                raise ValueError(f"{name} must be a list of positive ints, got {sizes!r}")
            setattr(self, name, tuple(sizes))
        self.validate()

    def validate(self) -> None:
        """ValueError naming the first setting out of range."""
        for name, choices in (
            ("model", MODELS),
            ("activation", ACTIVATIONS),
            ("optimizer", OPTIMIZERS),
            ("schedule", SCHEDULES),
            ("device", ("cpu", "cuda")),
            ("quantize", tuple(QUANTIZE)),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}"
                )
        for name in ("hidden", "channels"):
            sizes = getattr(self, name)
            if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes):
                raise ValueError(f"{name} must be positive ints, got {sizes!r}")
        if self.model == "cnn" and not self.channels:
            raise ValueError("channels must name at least one convolution for model 'cnn'")
        for name in ("dropout", "input_dropout", "dropconnect", "label_smoothing"):
            _number(self, name, 0.0, 1.0, upper_open=True)
        for name in ("input_noise", "hidden_noise", "l2", "weight_decay", "l1"):
            _number(self, name, 0.0, math.inf)
        if self.max_norm is not None:
            _number(self, "max_norm", 0.0, math.inf, lower_open=True)
        _number(self, "rotate", 0.0, 180.0)
        _number(self, "elastic", 0.0, math.inf)
        _number(self, "elastic_sigma", 0.0, math.inf, lower_open=True)
        _number(self, "momentum", 0.0, 1.0, upper_open=True)
        _number(self, "lr", 0.0, math.inf, lower_open=True)
        _number(self, "temperature", 0.0, math.inf, lower_open=True)
        _number(self, "alpha", 0.0, 1.0)
        _number(self, "prune", 0.0, 1.0, upper_open=True)
        if self.prune and self.retrain_on_all:
            raise ValueError("prune cannot be combined with retrain_on_all")
        if not isinstance(self.distill_from, str):
            raise ValueError(f"distill_from must be a path, got {self.distill_from!r}")
        for name, low in (
            ("shift", 0),
            ("cutout", 0),
            ("warmup", 0),
            ("epochs", 1),
            ("batch_size", 1),
            ("patience", 0),
            ("eval_period", 1),
            ("seed", 0),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
        if self.shift > 3:
            raise ValueError(f"shift must be at most 3 pixels for 8x8 images, got {self.shift}")
        if self.cutout > 8:
            raise ValueError(f"cutout must be at most 8 pixels for 8x8 images, got {self.cutout}")
        if not isinstance(self.retrain_on_all, bool):
            raise ValueError(f"retrain_on_all must be true or false, got {self.retrain_on_all!r}")
        if self.retrain_on_all and not self.patience:
            raise ValueError("retrain_on_all needs early stopping (patience >= 1)")

    def unregularized(self) -> Recipe:
        """The same model and optimizer with every regularizer off, no augmentation and no
        early stopping."""
        return replace(
            self,
            dropout=0.0,
            input_dropout=0.0,
            input_noise=0.0,
            hidden_noise=0.0,
            dropconnect=0.0,
            label_smoothing=0.0,
            l2=0.0,
            weight_decay=0.0,
            l1=0.0,
            max_norm=None,
            shift=0,
            rotate=0.0,
            elastic=0.0,
            cutout=0,
            patience=0,
            retrain_on_all=False,
            distill_from="",
            prune=0.0,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"], d["channels"] = list(self.hidden), list(self.channels)
        return d


def _number(
    recipe: Recipe,
    name: str,
    low: float,
    high: float,
    lower_open: bool = False,
    upper_open: bool = False,
) -> None:
    v = getattr(recipe, name)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > low if lower_open else v >= low) and (v < high if upper_open else v <= high)
    if not ok:
        lo, hi = "(" if lower_open else "[", ")" if upper_open or high == math.inf else "]"
        raise ValueError(f"{name} must be a number in {lo}{low}, {high}{hi}, got {v!r}")


RECIPE_FIELDS = tuple(f.name for f in fields(Recipe))


def _augmentation(recipe: Recipe) -> Callable[..., Array] | None:
    """The recipe's augmentation of the 8x8 digit images as a Trainer.fit hook (None when all
    are off): random shifts by up to ±shift pixels with zero fill (a random crop of the
    zero-padded image), rotations by up to ±rotate degrees, elastic distortion and cutout,
    in one seisoku.augment call per batch. A 6 and a 9 are never turned by 90 degrees or more.
    The draws of a batch depend only on (seed, step), so a resumed run draws the same ones.
    Batches are (N, 64) or (N, 1, 8, 8), NumPy or CuPy."""
    steps: list[augment.Transform] = []
    if recipe.shift:
        steps.append(augment.RandomCrop(8, padding=recipe.shift))
    if recipe.rotate:
        upside_down = (6, 9) if recipe.rotate >= 90 else ()
        steps.append(augment.RandomRotation(recipe.rotate, skip_labels=upside_down))
    if recipe.elastic:
        steps.append(augment.ElasticDistortion(recipe.elastic, recipe.elastic_sigma))
    if recipe.cutout:
        steps.append(augment.Cutout(1, recipe.cutout))
    if not steps:
        return None
    pipeline = augment.Compose(steps, seed=recipe.seed, layout="NCHW")
    return pipeline.trainer_hook(image_shape=(1, 8, 8))


def build_model(recipe: Recipe) -> nn.Module:
    """The recipe's network: 64 inputs (mlp) or 1x8x8 images (cnn), 10 logits. Uses the
    process-wide generator (seed it first for a reproducible initialisation)."""
    dev = recipe.device
    layers: list[nn.Module] = []
    if recipe.input_noise:
        layers.append(nn.GaussianNoise(recipe.input_noise))
    if recipe.input_dropout:
        layers.append(nn.Dropout(recipe.input_dropout))
    width = 64
    if recipe.model == "cnn":
        cin = 1
        for c in recipe.channels:
            layers += [nn.Conv2d(cin, c, 3, padding=1, device=dev), nn.ReLU()]
            cin = c
        layers += [nn.MaxPool2d(2), nn.Flatten()]
        width = cin * 16
    for h in recipe.hidden:
        if recipe.dropconnect:
            layers.append(
                nn.DropConnect(
                    width, h, recipe.dropconnect, activation=recipe.activation, device=dev
                )
            )
            if recipe.dropout:
                layers.append(nn.Dropout(recipe.dropout))
        else:
            layers.append(
                nn.Linear(
                    width, h, activation=recipe.activation, dropout=recipe.dropout, device=dev
                )
            )
        if recipe.hidden_noise:
            layers.append(nn.GaussianNoise(recipe.hidden_noise))
        width = h
    layers.append(nn.Linear(width, 10, device=dev))
    return nn.Sequential(*layers)


def build_optimizer(recipe: Recipe, model: nn.Module) -> Any:
    """The recipe's optimizer with its norm penalties."""
    from . import optim

    reg = {"l2": recipe.l2, "l1": recipe.l1, "max_norm": recipe.max_norm}
    if recipe.optimizer == "adamw":
        return optim.AdamW(
            model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, **reg
        )
    reg.update(weight_decay=recipe.weight_decay, decoupled_weight_decay=True)
    if recipe.optimizer == "sgd":
        return optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, **reg)
    return optim.Adam(model.parameters(), lr=recipe.lr, **reg)


def _schedule(
    recipe: Recipe, opt: Any, length: int, unit: str, per_epoch: int
) -> LRSchedule | None:
    """The recipe's schedule over `length` epochs or steps (unit); warm-up is in epochs,
    per_epoch steps each when the unit is 'step'."""
    from .optim import lr_scheduler as ls

    after: Any = None
    warmup = recipe.warmup * (per_epoch if unit == "step" else 1)
    span = max(1, length - warmup)
    if recipe.schedule == "cosine":
        after = ls.CosineAnnealingLR(opt, span)
    elif recipe.schedule == "step":
        after = ls.StepLR(opt, max(1, span // 3), gamma=0.1)
    if warmup:
        return LRSchedule(ls.LinearWarmup(opt, warmup, after=after), unit=unit)
    return LRSchedule(after, unit=unit) if after is not None else None


def _split_digits(recipe: Recipe) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    x, y = data.load_digits(images=recipe.model == "cnn")
    train, test = data.stratified_split(y, 0.3, seed=recipe.seed)
    fit, val = data.stratified_split(y[train], 0.15, seed=recipe.seed + 1)
    return {
        "train": (x[train][fit], y[train][fit]),
        "val": (x[train][val], y[train][val]),
        "test": (x[test], y[test]),
    }


def _to_device(arrays: dict[str, tuple[np.ndarray, np.ndarray]], device: str) -> dict[str, Any]:
    if device == "cpu":
        return arrays
    from ._array import device_module

    cupy = device_module("cuda")
    return {k: (cupy.asarray(a), cupy.asarray(b)) for k, (a, b) in arrays.items()}


def make_trainer(
    recipe: Recipe,
    progress: bool = True,
    checkpoint: str | None = None,
    checkpoint_every: int | None = None,
    callbacks: Sequence[Callback] = (),
    early_stopping: bool = True,
    checkpoint_at_end: bool = True,
    schedule_steps: tuple[int, int] | None = None,
) -> Trainer:
    """A fresh Trainer for the recipe: model initialised from recipe.seed, optimizer,
    learning-rate schedule over recipe.epochs (or, with schedule_steps = (steps, steps per
    epoch), stepped per optimizer step over that many steps), early stopping when
    recipe.patience and early_stopping, a Checkpoint at `checkpoint` (written every
    checkpoint_every epochs, on Ctrl-C and at the end) and any extra callbacks."""
    manual_seed(recipe.seed)
    model = build_model(recipe)
    opt = build_optimizer(recipe, model)
    cbs: list[Callback] = []
    if schedule_steps is None:
        schedule = _schedule(recipe, opt, recipe.epochs, "epoch", 1)
    else:
        schedule = _schedule(recipe, opt, schedule_steps[0], "step", schedule_steps[1])
    if schedule is not None:
        cbs.append(schedule)
    if recipe.prune:
        cbs.append(prune_schedule(recipe))
    elif early_stopping and recipe.patience:
        cbs.append(EarlyStopping("val_loss", patience=recipe.patience, period=recipe.eval_period))
    if checkpoint:
        cbs.append(Checkpoint(checkpoint, every=checkpoint_every, at_end=checkpoint_at_end))
    cbs.extend(callbacks)
    if recipe.distill_from:
        from .distill import DistillationLoss

        loss: Any = DistillationLoss(
            load_teacher_run(recipe.distill_from, recipe),
            temperature=recipe.temperature,
            alpha=recipe.alpha,
            label_smoothing=recipe.label_smoothing,
        )
    else:
        loss = nn.CrossEntropyLoss(recipe.label_smoothing)
    trainer = Trainer(model, loss, opt, cbs, progress)
    trainer.metadata["recipe"] = recipe.to_dict()
    return trainer


def prune_schedule(recipe: Recipe) -> Callback:
    """Iterative global magnitude pruning of the weights up to recipe.prune zeros: 8 rounds on
    the cubic schedule (seisoku.prune.PruneSchedule) from a quarter of the epochs to three
    quarters, the rest fine-tunes the pruned network. Early stopping is off with pruning (its
    best weights could predate the last round)."""
    from .prune import PruneSchedule

    rounds = 8
    start = recipe.epochs // 4
    every = max(1, (recipe.epochs // 2) // rounds)
    return PruneSchedule(recipe.prune, rounds=rounds, every=every, start=start, scope="global")


class _Reshape(nn.Module):
    """Rows of 64 values to 1x8x8 images or back (a teacher fed the student's inputs)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: Array) -> Array:
        self.in_shape = x.shape
        return x.reshape((x.shape[0], *self.shape))

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array:
        return grad.reshape(self.in_shape)


def load_teacher_run(path: str, student: Recipe) -> nn.Module:
    """The model of a `seisoku train --out DIR` run, from DIR/weights.npz (or DIR) and the
    recipe in the summary.json beside it, taking the student's inputs (rows of 64 values or
    1x8x8 images). ValueError naming the path when a file is missing or corrupt, or when the
    teacher was trained on another split of the digits (another seed: its training data
    would overlap the student's test set)."""
    import json
    import os

    from .distill import load_teacher

    weights = os.path.join(path, "weights.npz") if os.path.isdir(path) else path
    summary = os.path.join(os.path.dirname(weights) or ".", "summary.json")
    try:
        with open(summary, encoding="utf-8") as f:
            saved = json.load(f)["recipe"]
        teacher = Recipe(**{**saved, "device": student.device, "distill_from": ""})
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"distill_from: {path!r} must be the weights.npz of a `seisoku train --out` run, "
            f"with its summary.json beside it ({summary!r}: {e})"
        ) from None
    if teacher.seed != student.seed:
        raise ValueError(
            f"distill_from: the teacher {path!r} was trained with seed {teacher.seed}, this run "
            f"has seed {student.seed}: another split of the digits, whose training part "
            "overlaps this run's test set; train both with the same --seed"
        )
    manual_seed(teacher.seed)
    model = load_teacher(build_model(teacher), weights)
    if teacher.model == student.model:
        return model
    shape = (1, 8, 8) if teacher.model == "cnn" else (64,)
    return nn.Sequential(_Reshape(shape), model)


def recipe_from_checkpoint(path: str) -> Recipe:
    """The Recipe a `seisoku train` checkpoint was written with; ValueError for a file that
    is not such a checkpoint."""
    from ._state_file import load_state
    from .train import CHECKPOINT_KIND

    state = load_state(path, CHECKPOINT_KIND)
    saved = state.get("metadata", {}).get("recipe")
    if not isinstance(saved, dict):
        raise ValueError(f"{path} is a checkpoint but not one of `seisoku train` (no recipe in it)")
    unknown = sorted(set(saved) - set(RECIPE_FIELDS))
    if unknown:
        raise ValueError(f"{path}: unknown recipe settings {unknown}")
    return Recipe(**saved)


def run(
    recipe: Recipe,
    progress: bool = True,
    *,
    checkpoint: str | None = None,
    checkpoint_every: int | None = None,
    checkpoint_at_end: bool = True,
    resume: str | None = None,
    callbacks: Sequence[Callback] = (),
) -> tuple[dict[str, Any], History, nn.Module]:
    """Train the recipe on digits; returns (summary, history, model).

    The summary holds accuracies and losses on the three sets, the generalization gap (train
    minus test accuracy), best_epoch (counting from 1; history.best_epoch counts from 0),
    best_step, epochs_run, stop_reason, seconds and the recipe; with recipe.quantize also
    test_accuracy_quantized, model_bytes (the stored codes) and model_bytes_float32 (see
    quantized_scores).

    checkpoint: file for a Checkpoint callback (every checkpoint_every epochs, on Ctrl-C,
    and at the end when checkpoint_at_end); resume: continue from such a file (written
    with the same recipe; recipe_from_checkpoint reads it). Ctrl-C raises
    KeyboardInterrupt after the checkpoint is written.
    """
    sets = _to_device(_split_digits(recipe), recipe.device)
    hook = _augmentation(recipe)
    trainer = make_trainer(
        recipe,
        progress,
        checkpoint,
        checkpoint_every,
        callbacks,
        checkpoint_at_end=checkpoint_at_end,
    )
    start = time.perf_counter()
    history = trainer.fit(
        *sets["train"],
        validation_data=sets["val"],
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        augment=hook,
        seed=recipe.seed,
        resume=resume,
    )
    final = trainer
    if (
        recipe.retrain_on_all
        and history.best_step
        and not history.stop_reason.startswith(("training loss became", "non-finite"))
    ):
        n_all = sets["train"][0].shape[0] + sets["val"][0].shape[0]
        steps = (history.best_step, -(-n_all // recipe.batch_size))
        final = retrain_on_all(
            lambda: make_trainer(recipe, progress, early_stopping=False, schedule_steps=steps),
            *sets["train"],
            sets["val"],
            steps=history.best_step,
            batch_size=recipe.batch_size,
            augment=hook,
            seed=recipe.seed,
        )
    seconds = time.perf_counter() - start
    scores = {name: final.evaluate(*xy) for name, xy in sets.items()}
    summary = {
        "train_accuracy": scores["train"]["accuracy"],
        "val_accuracy": scores["val"]["accuracy"],
        "test_accuracy": scores["test"]["accuracy"],
        "train_loss": scores["train"]["loss"],
        "val_loss": scores["val"]["loss"],
        "test_loss": scores["test"]["loss"],
        "gap": scores["train"]["accuracy"] - scores["test"]["accuracy"],
        "best_epoch": None if history.best_epoch is None else history.best_epoch + 1,  # from 1
        "best_step": history.best_step,
        "epochs_run": len(history.epochs),
        "retrained_steps": final.steps if final is not trainer else None,
        "stop_reason": history.stop_reason,
        "seconds": seconds,
        "recipe": recipe.to_dict(),
    }
    if QUANTIZE[recipe.quantize] is not None:
        summary.update(quantized_scores(final, sets["test"], recipe.quantize))
    if recipe.prune:
        from .prune import sparsity_report

        summary["weights_nonzero_fraction"] = 1.0 - sparsity_report(final.model).sparsity
    if recipe.distill_from:
        teacher = final.loss.teacher_logits(sets["test"][0])
        summary["teacher_test_accuracy"] = Trainer._correct(teacher, sets["test"][1]) / len(
            sets["test"][1]
        )
    return summary, history, final.model


def quantize_model(model: nn.Module, fmt: str) -> Any:
    """The model's parameters as fixed-point codes of the format `fmt` (a key of QUANTIZE
    other than "none"), rounded to nearest: a seisoku.quant.QuantizedState."""
    from . import quant

    int_bits, frac_bits = QUANTIZE[fmt]
    return quant.quantize_parameters(model, int_bits=int_bits, frac_bits=frac_bits)


def quantized_scores(trainer: Trainer, test: tuple[Array, Array], fmt: str) -> dict[str, Any]:
    """Test accuracy of the trainer's model with its parameters stored in `fmt` and read
    back, and the stored sizes in bytes; the model's own parameters are restored after."""
    from . import quant

    model = trainer.model
    qstate = quantize_model(model, fmt)
    kept = model.state_dict()
    try:
        quant.apply_quantized(model, qstate)
        accuracy = trainer.evaluate(*test)["accuracy"]
    finally:
        model.load_state_dict(kept)
    return {
        "test_accuracy_quantized": accuracy,
        "model_bytes": qstate.nbytes,
        "model_bytes_float32": qstate.float_nbytes,
    }


def write_outputs(
    out_dir: str, summary: dict[str, Any], history: History, model: nn.Module
) -> list[str]:
    """weights.npz, history.csv, history.json, summary.json and (with matplotlib)
    learning_curve.png in out_dir, each written atomically; returns the paths written."""
    import json
    import os

    from ._state_file import atomic_write

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    weights = os.path.join(out_dir, "weights.npz")
    model.save(weights)
    paths.append(weights)
    fmt = summary.get("recipe", {}).get("quantize", "none")
    if QUANTIZE.get(fmt) is not None:
        quantized = os.path.join(out_dir, f"weights.{fmt}.npz")
        quantize_model(model, fmt).save(quantized)
        paths.append(quantized)
    history.to_csv(os.path.join(out_dir, "history.csv"))
    history.to_json(os.path.join(out_dir, "history.json"))
    paths += [os.path.join(out_dir, "history.csv"), os.path.join(out_dir, "history.json")]
    path = os.path.join(out_dir, "summary.json")
    with atomic_write(path, "w") as f:
        json.dump(summary, f, indent=2)
    paths.append(path)
    png = plot_learning_curve(history, os.path.join(out_dir, "learning_curve.png"))
    if png:
        paths.append(png)
    return paths


def plot_learning_curve(history: History, path: str) -> str | None:
    """Training and validation loss per epoch with the early-stopping point marked, as a
    PNG at `path`; None when matplotlib (an optional extra) is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from ._state_file import atomic_write

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
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return path


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """A plain-text table: one column per run, one row per figure."""
    table = [
        ("train accuracy", "train_accuracy", "{:.4f}"),
        ("validation accuracy", "val_accuracy", "{:.4f}"),
        ("test accuracy", "test_accuracy", "{:.4f}"),
        ("test accuracy, quantized", "test_accuracy_quantized", "{:.4f}"),
        ("teacher test accuracy", "teacher_test_accuracy", "{:.4f}"),
        ("weights nonzero", "weights_nonzero_fraction", "{:.2%}"),
        ("model bytes, quantized", "model_bytes", "{:,}"),
        ("model bytes, float32", "model_bytes_float32", "{:,}"),
        ("generalization gap", "gap", "{:+.4f}"),
        ("best epoch", "best_epoch", "{}"),
        ("epochs run", "epochs_run", "{}"),
        ("retrained steps", "retrained_steps", "{}"),
        ("time (s)", "seconds", "{:.1f}"),
    ]
    names = list(rows)
    optional = (
        "retrained_steps",
        "test_accuracy_quantized",
        "teacher_test_accuracy",
        "weights_nonzero_fraction",
        "model_bytes",
        "model_bytes_float32",
    )
    table = [
        t
        for t in table
        if t[1] not in optional or any(r.get(t[1]) is not None for r in rows.values())
    ]
    width = max(len(f[0]) for f in table)
    col = max(14, *(len(n) for n in names))
    lines = [" " * width + "".join(f"  {n:>{col}}" for n in names)]
    for label, key, fmt in table:
        cells = []
        for n in names:
            v = rows[n].get(key)
            cells.append(f"  {('-' if v is None else fmt.format(v)):>{col}}")
        lines.append(f"{label:<{width}}" + "".join(cells))
    return "\n".join(lines)
