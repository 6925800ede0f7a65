"""Multi-task learning: a shared trunk with named task heads, each with its own loss.

`MultiTaskModel` wraps the native `nn.MultiHead`: its forward gives the heads' outputs side by
side in one (N, sum of widths) array and its backward splits the gradient back per head, so the
model trains with the ordinary `Trainer` (checkpoints, early stopping, schedules). Targets are one
(N, T) float array, a column per task in the model's task order (`stack_targets` builds it from
a dict); a missing label (NaN, or -1 for a classification task) masks that task's loss for that
row. `MultiTaskLoss` combines the per-task losses with static weights,
``L = sum_t w_t L_t``, or with weights learned by homoscedastic uncertainty (Kendall, Gal &
Cipolla 2018), in the form

    L = sum_t exp(-s_t) L_t + s_t,    s_t = log sigma_t^2 learned,

used for every task type: for a mean-squared-error task it is twice Kendall's
``L_t / (2 sigma^2) + log sigma``; for a cross-entropy task it is Kendall's approximation
``L_t / sigma^2 + log sigma`` with ``log sigma^2`` as the regularizer (the form of the paper's
code). Its gradients are ``exp(-s_t) dL_t/dpred`` and ``dL/ds_t = 1 - exp(-s_t) L_t``; the
``s_t`` are a Parameter of the model (``model.log_vars``, 1-D, so no weight decay by default)
and the optimizer updates them with the rest. L_t is the (sample-weighted) mean loss over the
batch's rows that have a label for task t; a task without labels in a batch adds nothing.

The third way is GradNorm (Chen, Badrinarayanan, Lee and Rabinovich 2018, "GradNorm: Gradient
Normalization for Adaptive Loss Balancing"): static-looking weights w_t in L = sum_t w_t L_t
that are moved after every step so that each task's gradient norm at the last shared layer W,
G_t = ||d(w_t L_t)/dW||, approaches mean_t(G) r_t^alpha, where r_t = (L_t / L_t(0)) / mean
over tasks of (L_t / L_t(0)) is the task's relative inverse training rate (L_t(0) its first
loss). The weights take a gradient step on L_grad = sum_t |G_t - mean(G) r_t^alpha| with the
target held constant, dL_grad/dw_t = sign(G_t - target_t) G_t / w_t, are kept >= 1e-4 and
are renormalized to sum to the number of tasks. Measuring G_t takes one backward pass per
task with a label in the batch (their sum is the full gradient, so no extra pass).
`TaskMetrics` adds per-task loss and accuracy to the Trainer's history (``<task>_loss``,
``val_<task>_accuracy``, ...), so `EarlyStopping` can monitor any task; `fit_multitask` puts
the two together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import nn
from ._array import array_module
from .callbacks import Callback, EarlyStopping
from .train import History, Trainer

Array = Any

#: Names accepted for a task's loss, besides a seisoku.nn Loss object.
LOSSES = ("cross_entropy", "mse", "bce")
#: Names of the learned weightings accepted for MultiTaskLoss's `weights`.
WEIGHTINGS = ("uncertainty", "gradnorm")
#: GradNorm weights are kept at or above this value before renormalization.
GRADNORM_MIN_WEIGHT = 1e-4


def _make_loss(spec: Any, task: str) -> nn.Loss:
    if isinstance(spec, nn.Loss):
        return spec
    if spec == "cross_entropy":
        return nn.CrossEntropyLoss()
    if spec == "mse":
        return nn.MSELoss()
    if spec == "bce":
        return nn.BCEWithLogitsLoss()
    raise ValueError(
        f"[MultiTaskLoss] argument 'losses[{task!r}]' must be a seisoku.nn.Loss or one of "
        f"{LOSSES}, got {spec!r}"
    )


def _check_tasks(mapping: Mapping[str, Any], tasks: Sequence[str], arg: str, op: str) -> None:
    unknown = [k for k in mapping if k not in tasks]
    if unknown:
        raise ValueError(
            f"[{op}] argument '{arg}' names unknown task(s) {unknown}; the tasks are {list(tasks)}"
        )


class MultiTaskLoss(nn.Loss):
    """Per-task losses combined with static or learned (uncertainty) weights.

    Args:
        losses: {task: loss}, in the order of the prediction's column blocks; a loss is a
            seisoku.nn Loss object or 'cross_entropy', 'mse' or 'bce'.
        widths: {task: number of prediction columns of that task's head}, same keys.
        weights: None (default: every static weight 1), {task: static weight >= 0, finite;
            tasks left out weigh 1}, 'uncertainty' for learned weights (see the module
            docstring; then `log_vars` is a Parameter (T,) of s_t = log sigma_t^2, start 0)
            or 'gradnorm' (GradNorm, start 1; MultiTaskModel measures the gradient norms
            and calls gradnorm_step after each backward).
        dtype: of log_vars (default float32).
        gradnorm_alpha: GradNorm's asymmetry alpha >= 0 (default 1.5; 0 pulls every task to
            the same gradient norm).
        gradnorm_lr: step size of the GradNorm weight update, > 0 (default 0.025).

    forward(pred, target, sample_weight=None): pred (N, sum of widths), target (N, T) with a
    column per task (class index for cross-entropy, value for a width-1 mse or bce head; NaN,
    or -1 for cross-entropy, marks a missing label). Returns the combined loss (0-d array) and
    keeps in `task_losses` {task: L_t} (NaN where the batch has no label) and `task_counts`.
    """

    def __init__(
        self,
        losses: Mapping[str, Any],
        widths: Mapping[str, int],
        weights: Mapping[str, float] | str | None = None,
        dtype: Any = np.float32,
        gradnorm_alpha: float = 1.5,
        gradnorm_lr: float = 0.025,
    ) -> None:
        super().__init__()
        if not isinstance(losses, Mapping) or not losses:
            raise ValueError(
                f"[MultiTaskLoss] argument 'losses' must be a non-empty dict, got {losses!r}"
            )
        self.tasks = [str(t) for t in losses]
        self.losses = {t: _make_loss(s, t) for t, s in losses.items()}
        if not isinstance(widths, Mapping) or sorted(widths) != sorted(self.tasks):
            raise ValueError(
                f"[MultiTaskLoss] argument 'widths' must give every task {self.tasks}, "
                f"got {widths!r}"
            )
        self.widths = widths
        self.log_vars: nn.Parameter | None = None
        self.weights = {t: 1.0 for t in self.tasks}
        self.mode = "static"
        for name, v in (("gradnorm_alpha", gradnorm_alpha), ("gradnorm_lr", gradnorm_lr)):
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float, np.number))
                or not math.isfinite(float(v))
                or float(v) < 0
                or (name == "gradnorm_lr" and float(v) == 0)
            ):
                bound = "> 0" if name == "gradnorm_lr" else ">= 0"
                raise ValueError(
                    f"[MultiTaskLoss] argument '{name}' must be finite and {bound}, got {v!r}"
                )
        self.gradnorm_alpha, self.gradnorm_lr = float(gradnorm_alpha), float(gradnorm_lr)
        self.initial_losses: dict[str, float] = {}
        if isinstance(weights, str):
            if weights not in WEIGHTINGS:
                raise ValueError(
                    "[MultiTaskLoss] argument 'weights' must be a dict, None, 'uncertainty' or "
                    f"'gradnorm', got {weights!r}"
                )
            self.mode = weights
            if weights == "uncertainty":
                self.log_vars = nn.Parameter(np.zeros(len(self.tasks), dtype), "log_vars")
        elif weights is not None:
            if not isinstance(weights, Mapping):
                raise ValueError(
                    "[MultiTaskLoss] argument 'weights' must be a dict, None, 'uncertainty' or "
                    f"'gradnorm', got {weights!r}"
                )
            _check_tasks(weights, self.tasks, "weights", "MultiTaskLoss")
            for t, w in weights.items():
                if isinstance(w, bool) or not isinstance(w, (int, float, np.number)):
                    raise ValueError(
                        f"[MultiTaskLoss] argument 'weights[{t!r}]' must be a number, got {w!r}"
                    )
                if not math.isfinite(float(w)) or float(w) < 0:
                    raise ValueError(
                        f"[MultiTaskLoss] argument 'weights[{t!r}]' must be finite and >= 0, "
                        f"got {w!r}"
                    )
                self.weights[t] = float(w)
        self.task_losses: dict[str, float] = {}
        self.task_counts: dict[str, int] = {}
        self._grad: Array | None = None
        self._log_var_grad: np.ndarray | None = None

    @property
    def classification(self) -> bool:
        """False: the Trainer's single accuracy does not apply (TaskMetrics gives per-task ones)."""
        return False

    def task_weights(self) -> dict[str, float]:
        """The current weight of each task: w_t (static or GradNorm), or exp(-s_t) when
        learned by uncertainty."""
        if self.log_vars is None:
            return dict(self.weights)
        s = np.asarray(self.log_vars.value, dtype=np.float64)
        return {t: float(np.exp(-s[i])) for i, t in enumerate(self.tasks)}

    def _columns(self, pred: Array) -> dict[str, slice]:
        total = sum(int(self.widths[t]) for t in self.tasks)
        if pred.ndim != 2 or pred.shape[1] != total:
            raise ValueError(
                f"[MultiTaskLoss] argument 'pred' must have shape (N, {total}), got {pred.shape}"
            )
        cols, start = {}, 0
        for t in self.tasks:
            if not isinstance(self.losses[t], nn.CrossEntropyLoss) and self.widths[t] != 1:
                raise ValueError(
                    f"[MultiTaskLoss] task {t!r} has one target column, so its head must give "
                    f"1 output, got {self.widths[t]}"
                )
            cols[t] = slice(start, start + int(self.widths[t]))
            start += int(self.widths[t])
        return cols

    def forward(self, pred: Array, target: Array, sample_weight: Array | None = None) -> Array:
        xp = array_module(pred)
        n, n_tasks = pred.shape[0], len(self.tasks)
        if target.ndim != 2 or target.shape != (n, n_tasks):
            raise ValueError(
                f"[MultiTaskLoss] argument 'target' must have shape ({n}, {n_tasks}) (a column "
                f"per task {self.tasks}), got {target.shape}"
            )
        cols = self._columns(pred)
        s = None if self.log_vars is None else xp.asarray(self.log_vars.value, dtype=np.float64)
        grad = xp.zeros(pred.shape, dtype=pred.dtype)
        total = 0.0
        self._log_var_grad = np.zeros(n_tasks)
        self.task_losses, self.task_counts = {}, {}
        for i, t in enumerate(self.tasks):
            column = target[:, i]
            keep = ~xp.isnan(column)
            ce = isinstance(self.losses[t], nn.CrossEntropyLoss)
            if ce:
                keep &= column >= 0
            rows = xp.nonzero(keep)[0]
            self.task_counts[t] = int(rows.shape[0])
            if sample_weight is not None and rows.shape[0]:
                w = xp.ascontiguousarray(sample_weight[rows], dtype=pred.dtype)
                if not bool((w > 0).any()):
                    rows = rows[:0]
            if rows.shape[0] == 0:
                self.task_losses[t] = math.nan
                continue
            p = xp.ascontiguousarray(pred[rows, cols[t]])
            y = column[rows]
            if ce and not bool((y == xp.floor(y)).all()):
                bad = y[y != xp.floor(y)][0]
                raise ValueError(
                    f"[MultiTaskLoss] argument 'target' must hold class indices (or NaN / -1) "
                    f"for task {t!r}, got {float(bad)!r}"
                )
            y = y.astype(np.int64) if ce else xp.ascontiguousarray(y.reshape(-1, 1), pred.dtype)
            w = None
            if sample_weight is not None:
                w = xp.ascontiguousarray(sample_weight[rows], dtype=pred.dtype)
            lt = float(self.losses[t](p, y, w))
            g = self.losses[t].backward()
            self.task_losses[t] = lt
            if s is None:
                scale = self.weights[t]
                total += scale * lt
            else:
                scale = math.exp(-float(s[i]))
                total += scale * lt + float(s[i])
                self._log_var_grad[i] = 1.0 - scale * lt
            grad[rows, cols[t]] = g * scale
        self._grad = grad
        return xp.asarray(total, dtype=pred.dtype)

    def gradnorm_step(self, grad_norms: Mapping[str, float]) -> dict[str, float]:
        """One GradNorm update of the weights (see the module docstring) from
        grad_norms = {task: G_t}, the norm of d(w_t L_t)/dW at the last shared layer W for
        the tasks with a label in the last forward's batch (others are left out and keep
        their weight). The first loss seen of a task is its L_t(0). Returns the new
        weights."""
        if self.mode != "gradnorm":
            raise ValueError(
                f"[MultiTaskLoss] gradnorm_step needs weights='gradnorm', this loss has "
                f"{self.mode!r} weights"
            )
        active = [
            t
            for t in self.tasks
            if t in grad_norms and math.isfinite(self.task_losses.get(t, math.nan))
        ]
        for t in active:
            self.initial_losses.setdefault(t, self.task_losses[t])
        active = [t for t in active if self.initial_losses[t] > 0]
        if not active:
            return self.task_weights()
        w = np.array([self.weights[t] for t in active])
        g = np.array([float(grad_norms[t]) for t in active])
        ratio = np.array([self.task_losses[t] / self.initial_losses[t] for t in active])
        r = ratio / ratio.mean()
        target = g.mean() * r**self.gradnorm_alpha
        step = np.sign(g - target) * g / w
        w = np.maximum(w - self.gradnorm_lr * step, GRADNORM_MIN_WEIGHT)
        for t, v in zip(active, w):
            self.weights[t] = float(v)
        total = sum(self.weights.values())
        for t in self.tasks:
            self.weights[t] *= len(self.tasks) / total
        return self.task_weights()

    def state_dict(self) -> dict[str, Any]:
        """The GradNorm state (weights and first losses), for checkpoints."""
        return {"weights": dict(self.weights), "initial_losses": dict(self.initial_losses)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state_dict()."""
        self.weights = {t: float(state["weights"][t]) for t in self.tasks}
        self.initial_losses = {str(t): float(v) for t, v in state["initial_losses"].items()}

    def backward(self) -> Array:
        """d(loss)/d(pred) of the last forward; with learned weights also adds dL/ds into
        log_vars.grad."""
        if self._grad is None:
            raise ValueError("[MultiTaskLoss] backward() needs a forward() first")
        if self.log_vars is not None:
            g = self.log_vars.grad
            g[...] += array_module(g).asarray(self._log_var_grad, dtype=g.dtype)
        return self._grad


class MultiTaskModel(nn.Module):
    """A shared trunk and named heads (the native nn.MultiHead), with one loss per head.

    Args:
        trunk: the shared lower layers (a seisoku.nn Module).
        heads: {task: head module}, each giving a 2-D output (N, width_t); names are
            identifiers. The order is the order of the output blocks and target columns.
        losses: {task: loss} for MultiTaskLoss (default: 'cross_entropy' for every task).
        weights: static {task: weight}, None (all 1), 'uncertainty' (learned; the
            log-variances become the Parameter `log_vars` of this model, so the optimizer
            steps them and state_dict / checkpoints keep them) or 'gradnorm' (GradNorm: each
            backward runs one pass per task to measure the gradient norms at `shared`, then
            updates the weights; TaskMetrics keeps them in checkpoints).
        gradnorm_alpha, gradnorm_lr: GradNorm's settings (defaults 1.5 and 0.025), see
            MultiTaskLoss.
        shared: the shared Parameter GradNorm measures gradient norms at (default None: the
            trunk's last parameter of 2 or more dimensions, i.e. its last weight).

    forward(x) gives the heads' outputs side by side (N, sum of widths); `predict(x)` gives
    {task: output}; `loss` is the model's MultiTaskLoss.
    """

    def __init__(
        self,
        trunk: nn.Module,
        heads: Mapping[str, nn.Module],
        losses: Mapping[str, Any] | None = None,
        weights: Mapping[str, float] | str | None = None,
        *,
        gradnorm_alpha: float = 1.5,
        gradnorm_lr: float = 0.025,
        shared: nn.Parameter | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(heads, Mapping) or not heads:
            raise ValueError(
                f"[MultiTaskModel] argument 'heads' must be a non-empty dict, got {heads!r}"
            )
        self.net = nn.MultiHead(trunk, dict(heads))
        self.tasks = [str(t) for t in heads]
        if losses is None:
            losses = dict.fromkeys(self.tasks, "cross_entropy")
        if not isinstance(losses, Mapping):
            raise ValueError(f"[MultiTaskModel] argument 'losses' must be a dict, got {losses!r}")
        _check_tasks(losses, self.tasks, "losses", "MultiTaskModel")
        missing = [t for t in self.tasks if t not in losses]
        if missing:
            raise ValueError(f"[MultiTaskModel] argument 'losses' lacks task(s) {missing}")
        self.widths: dict[str, int] = dict.fromkeys(self.tasks, 0)  # set by each forward
        self.loss = MultiTaskLoss(
            {t: losses[t] for t in self.tasks},
            self.widths,
            weights,
            gradnorm_alpha=gradnorm_alpha,
            gradnorm_lr=gradnorm_lr,
        )
        if self.loss.log_vars is not None:
            self.log_vars = self.loss.log_vars
        self.last_grad_norms: dict[str, float] = {}
        # Held in a dict, not as an attribute: a Parameter attribute would be registered as
        # another (duplicate) parameter of this model.
        self._gradnorm: dict[str, nn.Parameter] = {}
        if self.loss.mode == "gradnorm":
            self._gradnorm["shared"] = self._shared(trunk, shared)

    @staticmethod
    def _shared(trunk: nn.Module, shared: nn.Parameter | None) -> nn.Parameter:
        params = trunk.parameters()
        if shared is not None:
            if not any(p is shared for p in params):
                raise ValueError(
                    "[MultiTaskModel] argument 'shared' must be a Parameter of the trunk, got "
                    f"{shared!r:.80}"
                )
            return shared
        weights = [p for p in params if len(p.value.shape) >= 2]
        if not weights:
            raise ValueError(
                "[MultiTaskModel] argument 'weights' is 'gradnorm', which needs a trunk with a "
                "weight (a parameter of >= 2 dimensions) to measure gradient norms at"
            )
        return weights[-1]

    def forward(self, x: Array) -> Array:
        outs = self.net.forward(x)
        for t in self.tasks:
            if outs[t].ndim != 2:
                raise ValueError(
                    f"[MultiTaskModel] head '{t}' must give a 2-D output, got {outs[t].shape}"
                )
            self.widths[t] = int(outs[t].shape[1])
        return array_module(x).concatenate([outs[t] for t in self.tasks], axis=1)

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array:
        grads, start = {}, 0
        xp = array_module(grad)
        for t in self.tasks:
            w = self.widths[t]
            grads[t] = xp.ascontiguousarray(grad[:, start : start + w])
            start += w
        if not self._gradnorm:
            return self.net.backward(grads, need_input_grad)
        return self._backward_per_task(grads, need_input_grad)

    def _backward_per_task(self, grads: dict[str, Array], need_input_grad: bool) -> Array:
        """GradNorm's backward: one pass per task with a label in the batch (the gradients
        add up to the full one), the norm of each pass's gradient at the shared weight, then
        the loss's weight update."""
        counts = self.loss.task_counts
        active = [t for t in self.tasks if counts.get(t, 0) > 0]
        if not active:
            return self.net.backward(grads, need_input_grad)
        shared = self._gradnorm["shared"]
        xp = array_module(shared.grad)
        before = shared.grad.copy()
        norms: dict[str, float] = {}
        total = None
        for t in active:
            only = {s: (g if s == t else xp.zeros_like(g)) for s, g in grads.items()}
            dx = self.net.backward(only, need_input_grad)
            if need_input_grad:
                total = dx.copy() if total is None else total + dx
            after = shared.grad.copy()
            norms[t] = float(xp.linalg.norm((after - before).astype(np.float64)))
            before = after
        self.last_grad_norms = norms
        self.loss.gradnorm_step(norms)
        return total

    def predict(self, x: Array, batch_size: int = 1024) -> dict[str, Array]:
        """{task: head output} in evaluation mode, by batches of batch_size (default 1024);
        the train/eval mode is put back afterwards."""
        was_training = self.training
        self.eval()
        try:
            parts = [
                self.net.forward(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)
            ]
        finally:
            self.train(was_training)
        xp = array_module(x)
        return {t: xp.concatenate([p[t].copy() for p in parts]) for t in self.tasks}


def stack_targets(
    y: Mapping[str, Array] | Array, tasks: Sequence[str], n: int | None = None
) -> np.ndarray:
    """Targets as the (N, T) float64 array MultiTaskLoss reads, from {task: (N,) labels}
    (NaN or -1 marks a missing label) or such an array already; every task needs a label
    somewhere, and a dict must name exactly the tasks."""
    if isinstance(y, Mapping):
        _check_tasks(y, tasks, "y", "stack_targets")
        missing = [t for t in tasks if t not in y]
        if missing:
            raise ValueError(f"[stack_targets] argument 'y' lacks task(s) {missing}")
        cols = [np.asarray(y[t], dtype=np.float64).reshape(-1) for t in tasks]
        if len({c.shape[0] for c in cols}) != 1:
            raise ValueError(
                f"[stack_targets] argument 'y' has tasks of different lengths "
                f"{ {t: c.shape[0] for t, c in zip(tasks, cols)} }"
            )
        out = np.stack(cols, axis=1)
    else:
        out = np.asarray(y, dtype=np.float64)
        if out.ndim != 2 or out.shape[1] != len(tasks):
            raise ValueError(
                f"[stack_targets] argument 'y' must have shape (N, {len(tasks)}), got {out.shape}"
            )
    if n is not None and out.shape[0] != n:
        raise ValueError(f"[stack_targets] argument 'y' has {out.shape[0]} rows, x has {n}")
    for i, t in enumerate(tasks):
        if not ((~np.isnan(out[:, i])) & (out[:, i] != -1)).any():
            raise ValueError(f"[stack_targets] argument 'y' has no label for task {t!r}")
    return np.ascontiguousarray(out)


class TaskMetrics(Callback):
    """Adds per-task metrics to each epoch record of a Trainer whose model is a
    MultiTaskModel: ``<task>_loss`` (mean training loss L_t over the epoch's labelled rows),
    ``<task>_weight`` (w_t or exp(-s_t)), and with validation data ``val_<task>_loss`` and,
    for cross-entropy tasks, ``val_<task>_accuracy`` (over the rows with a label). Runs
    before the other callbacks (order -10), so EarlyStopping(monitor='val_digit_accuracy')
    sees them."""

    order = -10

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, float] = {}
        self._loss: MultiTaskLoss | None = None

    def on_train_begin(self, trainer: Trainer) -> None:
        loss = trainer.loss
        self._loss = loss if isinstance(loss, MultiTaskLoss) and loss.mode == "gradnorm" else None

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        self._sums, self._counts = {}, {}

    def state_dict(self) -> dict[str, Any]:
        """The current epoch's running sums, so that a resumed epoch reports all its batches,
        and with GradNorm weights the loss's weights and first losses."""
        state: dict[str, Any] = {"sums": dict(self._sums), "counts": dict(self._counts)}
        if self._loss is not None:
            state["gradnorm"] = self._loss.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sums = {str(k): float(v) for k, v in state["sums"].items()}
        self._counts = {str(k): float(v) for k, v in state["counts"].items()}
        if self._loss is not None and "gradnorm" in state:
            self._loss.load_state_dict(state["gradnorm"])

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        loss = trainer.loss
        for t, v in loss.task_losses.items():
            if math.isfinite(v):
                c = loss.task_counts[t]
                self._sums[t] = self._sums.get(t, 0.0) + v * c
                self._counts[t] = self._counts.get(t, 0.0) + c

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        model, loss = trainer.model, trainer.loss
        for t in model.tasks:
            logs[f"{t}_loss"] = self._sums.get(t, math.nan) / max(self._counts.get(t, 0.0), 1.0)
        for t, w in loss.task_weights().items():
            logs[f"{t}_weight"] = w
        if trainer.validation_data is None:
            return
        xv, yv = trainer.validation_data
        outs = model.predict(xv)
        yv = np.asarray(yv)
        for i, t in enumerate(model.tasks):
            col = yv[:, i]
            keep = ~np.isnan(col)
            ce = isinstance(loss.losses[t], nn.CrossEntropyLoss)
            if ce:
                keep &= col >= 0
            if not keep.any():
                continue
            out = np.asarray(outs[t])[keep]
            y = col[keep].astype(np.int64) if ce else col[keep].reshape(-1, 1).astype(out.dtype)
            logs[f"val_{t}_loss"] = float(loss.losses[t](np.ascontiguousarray(out), y))
            if ce:
                logs[f"val_{t}_accuracy"] = float((out.argmax(axis=1) == y).mean())


def fit_multitask(
    model: MultiTaskModel,
    optimizer: Any,
    x: Array,
    y: Mapping[str, Array] | Array,
    *,
    validation_data: tuple[Array, Mapping[str, Array] | Array] | None = None,
    epochs: int = 10,
    batch_size: int = 32,
    monitor: str | None = None,
    patience: int = 10,
    seed: int = 0,
    progress: bool = False,
) -> History:
    """Train a MultiTaskModel with the Trainer, its own MultiTaskLoss and TaskMetrics.

    Args:
        model, optimizer: the model and an optimizer over model.parameters().
        x: inputs (N, ...); y: {task: (N,) labels} or the (N, T) array (NaN / -1 missing).
        validation_data: (x_val, y_val) in the same forms (default None).
        epochs, batch_size, seed: as Trainer.fit (defaults 10, 32, 0).
        monitor: a history key for early stopping with `patience` evaluations (default None:
            no early stopping), e.g. 'val_digit_accuracy' (any task's validation accuracy or
            loss), 'val_loss' or 'digit_loss'; the best parameters are restored. A key no
            epoch record will have (e.g. of a task the model lacks) is a ValueError.
        progress: tqdm bar (default False).

    Returns the History: per epoch the combined loss, per-task losses, weights and validation
    metrics (see TaskMetrics).
    """
    if not isinstance(model, MultiTaskModel):
        raise ValueError(
            f"[fit_multitask] argument 'model' must be a MultiTaskModel, got {type(model).__name__}"
        )
    if monitor is not None:
        keys = ["loss"] + [f"{t}_{k}" for t in model.tasks for k in ("loss", "weight")]
        if validation_data is not None:
            keys += ["val_loss"] + [f"val_{t}_loss" for t in model.tasks]
            keys += [
                f"val_{t}_accuracy"
                for t in model.tasks
                if isinstance(model.loss.losses[t], nn.CrossEntropyLoss)
            ]
        if monitor not in keys:
            raise ValueError(
                f"[fit_multitask] argument 'monitor' must be one of {keys} (the tasks are "
                f"{model.tasks}), got {monitor!r}"
            )
    y = stack_targets(y, model.tasks, x.shape[0]).astype(np.float32)
    if validation_data is not None:
        xv, yv = validation_data
        validation_data = (xv, stack_targets(yv, model.tasks, xv.shape[0]).astype(np.float32))
    callbacks: list[Callback] = [TaskMetrics()]
    if monitor is not None:
        callbacks.append(EarlyStopping(monitor=monitor, patience=patience))
    trainer = Trainer(model, model.loss, optimizer, callbacks=callbacks, progress=progress)
    return trainer.fit(
        x, y, validation_data=validation_data, epochs=epochs, batch_size=batch_size, seed=seed
    )


__all__ = [
    "GRADNORM_MIN_WEIGHT",
    "LOSSES",
    "WEIGHTINGS",
    "MultiTaskLoss",
    "MultiTaskModel",
    "TaskMetrics",
    "fit_multitask",
    "stack_targets",
]
