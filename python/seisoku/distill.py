"""Knowledge distillation: a small student learns from a trained teacher's softened outputs.

Following Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network" (2015), the
student's loss on a batch with logits s, teacher logits t and labels y is

    alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

(per-sample terms averaged over the batch, with sample weights when given). The soft term is
multiplied by T^2 so that its gradient, T * (softmax(s / T) - softmax(t / T)), keeps the
scale of the hard-label term's as T changes (section 2 of the paper); alpha weights the soft
term. The teacher may be an ensemble (a list of models): its soft targets are then the mean of
the members' probabilities at temperature T, p = mean_m softmax(t_m / T) (the mean of
probabilities, not of logits), passed to the native KL loss as the logits T * log(p), whose
softmax at temperature T is p again.

The defaults, T = 4 and alpha = 0.9, follow the paper: on MNIST, a distilled net with 30 units
per hidden layer did best with temperatures in the range 2.5 to 4 (section 3), and the best
results generally came with a considerably lower weight on the hard-label term (section 2).

`DistillationLoss` is a seisoku.nn.Loss that seisoku.train.Trainer drives like any other: the
Trainer calls its bind_inputs(x) with every training batch after augmentation (and with the
inputs of evaluate()), so the teacher, in evaluation mode and without any gradient, sees the
very batch the student sees. `Distiller` is a Trainer with that loss: callbacks, early
stopping, checkpoints and exact resume work as in any fit, and a checkpoint holds the student
and the optimizer, never the teacher.
"""

from __future__ import annotations

import copy
import hashlib
import math
import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np

from ._array import array_module, require_array
from .callbacks import Callback
from .nn import CrossEntropyLoss, DistillationKLLoss, Loss, Module
from .train import Trainer

Array = Any  # numpy.ndarray or cupy.ndarray
PathLike = Union[str, "os.PathLike[str]"]
TeacherSpec = Union[Module, PathLike, Sequence[Union[Module, PathLike]]]

#: Default temperature T (Hinton et al. 2015, section 3: 2.5 to 4 for small students).
DEFAULT_TEMPERATURE = 4.0
#: Default weight of the soft (teacher) term; the hard-label term gets 1 - alpha.
DEFAULT_ALPHA = 0.9


def _check_temperature(value: Any, op: str) -> float:
    t = _number(value, "temperature", op)
    if not (math.isfinite(t) and t > 0.0):
        raise ValueError(
            f"[{op}] argument 'temperature' must be a finite number > 0, got {value!r}"
        )
    return t


def _check_alpha(value: Any, op: str) -> float:
    a = _number(value, "alpha", op)
    if not 0.0 <= a <= 1.0:  # False for NaN too
        raise ValueError(f"[{op}] argument 'alpha' must be a number in [0, 1], got {value!r}")
    return a


def _number(value: Any, name: str, op: str) -> float:
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    raise ValueError(f"[{op}] argument '{name}' must be a real number, got {value!r}")


def load_teacher(model: Module, path: PathLike) -> Module:
    """Load a state file written by Module.save (an .npz archive) into `model` and return it.

    A missing, unreadable or corrupt file, or one whose parameters do not fit `model`, is a
    ValueError naming the path.
    """
    if not isinstance(model, Module):
        raise ValueError(
            f"[load_teacher] argument 'model' must be a seisoku.nn.Module, got "
            f"{type(model).__name__}"
        )
    return _load(model, path, "load_teacher", "path")


def _load(model: Module, path: PathLike, op: str, arg: str) -> Module:
    where = os.fspath(path)
    try:
        model.load(where)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"[{op}] argument '{arg}' must be a readable seisoku state file that fits the "
            f"teacher model, got {where!r}: {e}"
        ) from e
    return model


def _build(teacher_model: Module | Callable[[], Module] | None, op: str, where: str) -> Module:
    if teacher_model is None:
        raise ValueError(
            f"[{op}] argument 'teacher_model' is needed to load the teacher file {where!r}: "
            "give the teacher's architecture (a Module, or a function that builds one)"
        )
    if isinstance(teacher_model, Module):
        return copy.deepcopy(teacher_model)
    if callable(teacher_model):
        model = teacher_model()
        if not isinstance(model, Module):
            raise ValueError(
                f"[{op}] argument 'teacher_model' must build a seisoku.nn.Module, got "
                f"{type(model).__name__}"
            )
        return model
    raise ValueError(
        f"[{op}] argument 'teacher_model' must be a seisoku.nn.Module or a function that "
        f"builds one, got {type(teacher_model).__name__}"
    )


def _resolve_teachers(
    teacher: TeacherSpec, teacher_model: Module | Callable[[], Module] | None, op: str
) -> list[Module]:
    """The teacher's members as modules: paths loaded into copies of teacher_model."""
    items = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    if not items:
        raise ValueError(f"[{op}] argument 'teacher' must name at least one model, got {teacher!r}")
    members = []
    for item in items:
        if isinstance(item, Module):
            members.append(item)
        elif isinstance(item, (str, os.PathLike)):
            where = os.fspath(item)
            members.append(_load(_build(teacher_model, op, where), where, op, "teacher"))
        else:
            raise ValueError(
                f"[{op}] argument 'teacher' must be a seisoku.nn.Module, the path of its .npz "
                f"state file, or a list of them, got {type(item).__name__}"
            )
    return members


def _fingerprint(teachers: Sequence[Module]) -> str:
    """SHA-256 of the members' parameters (names, dtypes, shapes and bytes), in order."""
    h = hashlib.sha256()
    for member in teachers:
        for name, value in sorted(member.state_dict().items()):
            h.update(f"{name}:{value.dtype.str}:{value.shape};".encode())
            h.update(np.ascontiguousarray(value).tobytes())
        h.update(b"|")
    return h.hexdigest()


class DistillationLoss(Loss):
    """alpha * T^2 * KL(teacher's softened probabilities || the student's) + (1 - alpha) * CE.

    A seisoku.nn.Loss for seisoku.train.Trainer, called as loss(student_logits, labels,
    sample_weight=None) after bind_inputs(x) has given it the inputs of those logits (the
    Trainer does this for every batch); see the module docstring for the convention.

    Args:
        teacher: a trained seisoku.nn.Module, the path of its state file (Module.save; needs
            teacher_model), or a list of those: an ensemble, whose soft targets are the mean
            of its members' probabilities at temperature T. Teachers run in evaluation mode
            (their mode is put back afterwards) and never get a gradient.
        temperature: T > 0, softening both distributions (default 4.0).
        alpha: weight in [0, 1] of the soft term (default 0.9); 1 - alpha weights the
            cross-entropy with the labels. alpha = 0 is plain cross-entropy and never runs
            the teacher.
        label_smoothing: of the hard-label term, in the lecture's convention (default 0).
        teacher_model: the teacher's architecture for teachers given as paths: a Module
            (each path is loaded into a copy of it) or a function that builds one.
        batch_size: the teacher runs on at most this many samples at a time (default 1024).
    """

    classification = True  # Trainer records accuracy, as for CrossEntropyLoss

    def __init__(
        self,
        teacher: TeacherSpec,
        *,
        temperature: float = DEFAULT_TEMPERATURE,
        alpha: float = DEFAULT_ALPHA,
        label_smoothing: float = 0.0,
        teacher_model: Module | Callable[[], Module] | None = None,
        batch_size: int = 1024,
    ) -> None:
        super().__init__()
        op = type(self).__name__
        self.temperature = _check_temperature(temperature, op)
        self.alpha = _check_alpha(alpha, op)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"[{op}] argument 'batch_size' must be an int >= 1, got {batch_size!r}"
            )
        self.batch_size = batch_size
        self.teachers: tuple[Module, ...] = tuple(_resolve_teachers(teacher, teacher_model, op))
        self._soft = DistillationKLLoss(self.temperature, scale_t2=True)
        self._hard = CrossEntropyLoss(label_smoothing=label_smoothing)
        self._bound: Array | None = None  # teacher logits for the next forward
        self._grad: Array | None = None

    def _config(self) -> tuple[tuple, dict[str, Any]]:
        return (), {
            "temperature": self.temperature,
            "alpha": self.alpha,
            "label_smoothing": self._hard.label_smoothing,
            "teachers": len(self.teachers),
        }

    # -- the teacher's side ---------------------------------------------------------------
    def _member_outputs(self, member: Module, x: Array) -> Array:
        xp = array_module(x)
        was_training = member.training
        member.eval()
        try:
            parts = [
                xp.array(member.forward(x[i : i + self.batch_size]), copy=True)
                for i in range(0, x.shape[0], self.batch_size)
            ]
        finally:
            member.train(was_training)
        out = parts[0] if len(parts) == 1 else xp.concatenate(parts)
        if out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise ValueError(
                f"[{type(self).__name__}] argument 'teacher' must give logits of shape "
                f"({x.shape[0]}, classes) for {x.shape[0]} inputs, got {tuple(out.shape)}"
            )
        return out

    def teacher_logits(self, x: Array) -> Array:
        """Logits whose softmax at temperature T is the teacher's soft target for inputs x
        (N, ...): a single teacher's own logits; for an ensemble of M members,
        T * log(mean_m softmax(t_m / T)), computed as a log-mean-exp of log-softmaxes so that
        no probability underflows to log(0)."""
        require_array(x, "x", type(self).__name__)
        outs = [self._member_outputs(m, x) for m in self.teachers]
        classes = {o.shape[1] for o in outs}
        if len(classes) > 1:
            raise ValueError(
                f"[{type(self).__name__}] argument 'teacher': the ensemble's members give "
                f"different numbers of classes, {[o.shape[1] for o in outs]}"
            )
        if len(outs) == 1:
            return outs[0]
        xp = array_module(x)
        t = self.temperature
        logp = []
        for o in outs:
            z = o.astype(xp.float64) / t
            z -= z.max(axis=1, keepdims=True)
            logp.append(z - xp.log(xp.exp(z).sum(axis=1, keepdims=True)))
        stack = xp.stack(logp)  # (M, N, K) log-probabilities
        top = stack.max(axis=0)
        log_mean = top + xp.log(xp.exp(stack - top).mean(axis=0))
        return (t * log_mean).astype(outs[0].dtype)

    def soft_targets(self, x: Array) -> Array:
        """The teacher's probabilities at temperature T for inputs x, shape (N, classes)."""
        z = self.teacher_logits(x).astype(array_module(x).float64) / self.temperature
        z -= z.max(axis=1, keepdims=True)
        p = array_module(x).exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def bind_inputs(self, x: Array) -> None:
        """Run the teacher on x, the inputs of the logits the next forward gets (the Trainer
        calls this with every training batch after augmentation, and in evaluate())."""
        self._bound = None
        if self.alpha > 0.0:
            self._bound = self.teacher_logits(x)

    # -- the loss ---------------------------------------------------------------------------
    def forward(self, pred: Array, target: Array, sample_weight: Array | None = None) -> Array:
        """The combined loss of student logits pred (N, K) against labels target (N,), as a
        0-d array of pred's dtype; its gradient is kept for backward(). Uses (and drops) the
        teacher logits of the last bind_inputs, which must have been given these N inputs."""
        op = type(self).__name__
        require_array(pred, "pred", op)
        teacher, self._bound = self._bound, None
        a = self.alpha
        if a > 0.0:
            if teacher is None:
                raise ValueError(
                    f"[{op}] no teacher outputs for this batch: call bind_inputs(x) with the "
                    "inputs of pred first (seisoku.train.Trainer does)"
                )
            if pred.ndim != 2 or teacher.shape[0] != pred.shape[0]:
                raise ValueError(
                    f"[{op}] argument 'pred' must be student logits of shape "
                    f"({teacher.shape[0]}, {teacher.shape[1]}) for the bound inputs, got "
                    f"{tuple(pred.shape)}"
                )
            if teacher.shape[1] != pred.shape[1]:
                raise ValueError(
                    f"[{op}] argument 'teacher' gives {teacher.shape[1]} classes, the student "
                    f"(argument 'pred') gives {pred.shape[1]}"
                )
            if teacher.dtype != pred.dtype:
                teacher = teacher.astype(pred.dtype)
        xp = array_module(pred)
        if a == 0.0:
            loss = self._hard(pred, target, sample_weight)
            self._grad = self._hard.backward()
            return loss
        soft = self._soft(pred, teacher, sample_weight)
        if a == 1.0:
            self._grad = self._soft.backward()
            return soft
        soft = float(soft)
        hard = float(self._hard(pred, target, sample_weight))
        grad = self._soft.backward() * pred.dtype.type(a)
        grad += pred.dtype.type(1.0 - a) * self._hard.backward()
        self._grad = grad
        return xp.asarray(a * soft + (1.0 - a) * hard, dtype=pred.dtype)

    def backward(self) -> Array:
        """d(loss)/d(pred) of the last forward."""
        if self._grad is None:
            raise ValueError(f"[{type(self).__name__}] backward() needs a forward() first")
        return self._grad


class Distiller(Trainer):
    """A seisoku.train.Trainer whose loss is DistillationLoss: trains `student` on the
    teacher's softened outputs and the labels.

    Args:
        student: the seisoku.nn.Module to train (its parameters are the optimizer's).
        teacher: a trained model, the path of its .npz state file (with teacher_model), or a
            list of those (an ensemble); see DistillationLoss.
        optimizer: over the student's parameters (e.g. seisoku.optim.SGD(student.parameters())).
        temperature: T > 0 (default 4.0).
        alpha: weight in [0, 1] of the soft term (default 0.9).
        label_smoothing: of the hard-label term (default 0).
        teacher_model: the architecture for teachers given as paths.
        callbacks, progress: as for Trainer.

    fit, evaluate, predict, checkpoints and resume are the Trainer's; evaluate() reports the
    distillation loss and the student's accuracy, and a checkpoint holds the student and the
    optimizer but not the teacher: it records the settings and a SHA-256 of the teacher's
    parameters (metadata["distillation"]), and resuming with others is a ValueError.
    """

    def __init__(
        self,
        student: Module,
        teacher: TeacherSpec,
        optimizer: Any,
        *,
        temperature: float = DEFAULT_TEMPERATURE,
        alpha: float = DEFAULT_ALPHA,
        label_smoothing: float = 0.0,
        teacher_model: Module | Callable[[], Module] | None = None,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
    ) -> None:
        op = "Distiller"
        temperature = _check_temperature(temperature, op)
        alpha = _check_alpha(alpha, op)
        teachers = _resolve_teachers(teacher, teacher_model, op)
        if any(m is student for m in teachers):
            raise ValueError(f"[{op}] argument 'teacher' must not be the student itself")
        loss = DistillationLoss(
            teachers, temperature=temperature, alpha=alpha, label_smoothing=label_smoothing
        )
        super().__init__(student, loss, optimizer, callbacks=callbacks, progress=progress)
        self.metadata["distillation"] = self._settings = {
            "temperature": temperature,
            "alpha": alpha,
            "label_smoothing": float(loss._hard.label_smoothing),
            "teacher_sha256": _fingerprint(teachers),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Trainer.load_state_dict, and a ValueError when the state was written by a
        distillation with other settings or another teacher (resuming it would not give the
        result of a run never stopped)."""
        super().load_state_dict(state)
        saved = self.metadata.get("distillation")
        if saved != self._settings:
            self.metadata["distillation"] = self._settings
            raise ValueError(
                f"[load_checkpoint] the checkpoint was written by a distillation with {saved}, "
                f"this Distiller has {self._settings}"
            )

    @property
    def student(self) -> Module:
        """The model being trained (the Trainer's model)."""
        return self.model

    @property
    def teachers(self) -> tuple[Module, ...]:
        """The teacher's members (one model unless an ensemble)."""
        return self.loss.teachers


__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_TEMPERATURE",
    "DistillationLoss",
    "Distiller",
    "load_teacher",
]
