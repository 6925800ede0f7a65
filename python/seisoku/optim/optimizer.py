"""Optimizers whose step runs the norm penalties and constraints in the same fused pass.

Every optimizer takes the same regularization arguments (each parameter group may override them):

* ``l2`` -- coupled L2, the lecture's form: ``l2 * w`` is added to the gradient
  (penalty ``l2 / 2 * ||w||^2``).
* ``weight_decay`` -- PyTorch's name, with PyTorch's meaning: coupled (the same as ``l2``, added
  to it) for SGD, Adam, RMSprop and Adagrad; decoupled for AdamW, or anywhere with
  ``decoupled_weight_decay=True``: ``w *= 1 - lr * weight_decay`` before the update (Loshchilov
  and Hutter 2019). Decoupled decay is not a term of the loss, so :meth:`Optimizer.penalty`
  leaves it out.
* ``l1`` with ``l1_mode`` -- ``"proximal"`` (default): soft-thresholding after the update, which
  produces exact zeros; the threshold is ``l1`` times the optimizer's per-coordinate step size
  (``lr`` for SGD; ``lr / (sqrt(v_hat) + eps)`` for Adam/AdamW, ``lr / (sqrt(v) + eps)`` for
  RMSprop, ``clr / (sqrt(sum) + eps)`` for Adagrad). ``"subgradient"``: ``l1 * sign(w)`` is added
  to the gradient. ``l1`` together with ``l2`` is the elastic net.
* ``max_norm`` (None: off) with ``max_norm_axis`` -- after the update each unit's incoming weight
  vector ``w[..., j, ...]`` (index ``j`` of ``max_norm_axis``; default 0: the rows of a Linear
  ``(out, in)`` or Conv2d ``(out, in, kh, kw)`` weight) is projected onto ``||w_j||_2 <= max_norm``.
* ``clip_value`` -- each gradient element clamped to ``[-clip_value, clip_value]`` (the step reads
  the clamped value; ``Parameter.grad`` is left as it is). Optimizer-wide ``clip_grad_norm``
  scales all gradients so that their global 2-norm is at most that value.

Penalties and max-norm apply to the parameters whose ``regularize`` flag is set (by default the
weights, not the biases or other 1-D parameters); a group's ``regularize`` key (True / False)
overrides the flag for all of its parameters.

Gradients with NaN or Inf: ``nonfinite="raise"`` (default) checks inside the update pass
itself, at no extra read of memory: no NaN or Inf ever reaches a parameter or its state. The
elements whose gradient is NaN or Inf keep their values and state (with fused max-norm along rows,
the whole row), every other element takes the step, and then ValueError names the first such
parameter and its count of non-finite values. The outcome depends neither on the thread count nor
on the device; with ``clip_grad_norm`` the check rides on the norm pass and the error comes before
anything is changed. ``"skip"`` reads the gradients once more before the step and, when one holds
NaN or Inf, changes nothing and counts the step in ``skipped_steps`` (the choice for loss-scaled
mixed precision); ``"ignore"`` does not look (NaN then reaches the weights, as in torch.optim).

One native call updates every parameter of every group: the arrays are converted once and cached,
so a step has no Python loop over the parameters. Step hooks
(:meth:`Optimizer.register_step_pre_hook`, :meth:`Optimizer.register_step_post_hook`) run Python
code just before and just after that call, e.g. the pruning masks of :mod:`seisoku.prune`, which
keep pruned weights and their state at zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Callable

import numpy as np

from .. import _core
from .._array import array_module, is_cuda_array

Array = Any

_REG_DEFAULTS: dict[str, Any] = {
    "l2": 0.0,
    "weight_decay": 0.0,
    "decoupled_weight_decay": False,
    "l1": 0.0,
    "l1_mode": "proximal",
    "max_norm": None,
    "max_norm_axis": 0,
    "clip_value": None,
    "regularize": None,
}
_EXTRA_GROUP_KEYS = ("params", "initial_lr", "name")
_NONFINITE = ("raise", "skip", "ignore")


def _as_float(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"[optim_step] {name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"[optim_step] {name} must be a number, got {value!r}") from e


def _to_host(x: Array) -> np.ndarray:
    return np.array(x.get() if is_cuda_array(x) else x, copy=True)


StepHook = Callable[["Optimizer"], None]


class HookHandle:
    """What register_step_pre_hook / register_step_post_hook return: remove() unregisters
    the hook (a second call does nothing)."""

    def __init__(self, hooks: dict[int, StepHook], key: int) -> None:
        self._hooks = hooks
        self._key = key

    def remove(self) -> None:
        """Unregister the hook."""
        self._hooks.pop(self._key, None)


class Optimizer:
    """Base class: parameter groups, fused step, state, penalty and sparsity reports.

    Args:
        params: Parameters (objects with ``.value`` and ``.grad`` arrays, e.g. from
            ``Module.parameters()``), or a list of dicts, each with a ``params`` list and any
            hyper-parameter overrides for that group.
        defaults: hyper-parameters of every group that does not set them.
        clip_grad_norm: None (off) or the largest global 2-norm of all gradients, > 0.
        nonfinite: what a NaN/Inf gradient does: "raise" (default), "skip" or "ignore".
    """

    _kind = "sgd"

    def __init__(
        self,
        params: Iterable[Any],
        defaults: dict[str, Any],
        *,
        clip_grad_norm: float | None = None,
        nonfinite: str = "raise",
    ) -> None:
        if nonfinite not in _NONFINITE:
            raise ValueError(
                f"[optim_step] nonfinite must be one of {_NONFINITE}, got {nonfinite!r}"
            )
        if clip_grad_norm is not None:
            clip_grad_norm = _as_float(clip_grad_norm, "clip_grad_norm")
            if not (math.isfinite(clip_grad_norm) and clip_grad_norm > 0):
                raise ValueError(
                    "[optim_step] clip_grad_norm must be None or finite and > 0, "
                    f"got {clip_grad_norm}"
                )
        self.defaults = dict(defaults)
        self.clip_grad_norm = clip_grad_norm
        self.nonfinite = nonfinite
        self.skipped_steps = 0
        self.last_grad_norm = math.nan
        self.param_groups: list[dict[str, Any]] = []
        self._step_pre_hooks: dict[int, StepHook] = {}
        self._step_post_hooks: dict[int, StepHook] = {}
        self._next_hook = 0
        self._native: list[Any] = []
        self._slots: list[list[str]] = []
        self._buffers: list[list[list[Array]]] = []
        self._keys: list[tuple] = []
        self._settings: list[tuple[list[Any], Any] | None] = []
        params = list(params)
        if not params:
            raise ValueError("[optim_step] the optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)

    # -- groups --------------------------------------------------------------------------
    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group: a dict with ``params`` and optional hyper-parameter overrides."""
        if not isinstance(group, dict) or "params" not in group:
            raise ValueError("[optim_step] a parameter group is a dict with a 'params' list")
        unknown = set(group) - set(self.defaults) - set(_EXTRA_GROUP_KEYS)
        if unknown:
            raise ValueError(
                f"[optim_step] unknown parameter group key(s) {sorted(unknown)}; "
                f"known: {sorted(self.defaults)}"
            )
        g = dict(self.defaults)
        g.update(group)
        ps = group["params"]
        g["params"] = [ps] if hasattr(ps, "value") else list(ps)
        for p in g["params"]:
            if not (hasattr(p, "value") and hasattr(p, "grad")):
                raise ValueError(
                    "[optim_step] parameters must have .value and .grad arrays, "
                    f"got {type(p).__name__}"
                )
        seen = {id(p) for grp in self.param_groups for p in grp["params"]}
        ids = [id(p) for p in g["params"]]
        if len(set(ids)) != len(ids) or seen.intersection(ids):
            raise ValueError("[optim_step] a parameter appears more than once in the optimizer")
        _core.optim_check_hyper(self._hyper(g))
        self.param_groups.append(g)
        self._native.append(None)
        self._slots.append([])
        self._buffers.append([])
        self._keys.append(())
        self._settings.append(None)

    def _hyper(self, g: dict[str, Any]) -> Any:
        h = _core.OptimHyper()
        h.kind = self._kind
        h.lr = _as_float(g["lr"], "lr")
        for key in ("momentum", "dampening", "eps", "alpha", "lr_decay", "l1"):
            if key in g:
                setattr(h, key, _as_float(g[key], key))
        l2, decay = _as_float(g["l2"], "l2"), _as_float(g["weight_decay"], "weight_decay")
        if not (math.isfinite(decay) and decay >= 0):
            raise ValueError(f"[optim_step] weight_decay must be finite and >= 0, got {decay}")
        if bool(g["decoupled_weight_decay"]):
            h.l2, h.weight_decay = l2, decay
        else:
            h.l2, h.weight_decay = l2 + decay, 0.0
        if "betas" in g:
            betas = tuple(g["betas"])
            if len(betas) != 2:
                raise ValueError(f"[optim_step] betas must be a pair, got {g['betas']!r}")
            h.beta1 = _as_float(betas[0], "beta1")
            h.beta2 = _as_float(betas[1], "beta2")
        if "initial_accumulator_value" in g:
            h.initial_accumulator = _as_float(g["initial_accumulator_value"], "initial_accumulator")
        for key in ("nesterov", "amsgrad", "centered"):
            if key in g:
                setattr(h, key, bool(g[key]))
        h.l1_mode = str(g["l1_mode"])
        if g["max_norm"] is None:
            h.max_norm = 0.0
        else:
            h.max_norm = _as_float(g["max_norm"], "max_norm")
            if not h.max_norm > 0:
                raise ValueError(
                    f"[optim_step] max_norm must be None (off) or > 0, got {g['max_norm']!r}"
                )
        h.max_norm_axis = int(g["max_norm_axis"])
        h.clip_value = (
            math.inf if g["clip_value"] is None else _as_float(g["clip_value"], "clip_value")
        )
        return h

    def _group_native(self, gi: int, hyper: Any) -> Any:
        """The cached native group, rebuilt when the parameter list, the regularize flags or
        the set of state buffers changed."""
        g = self.param_groups[gi]
        slots = list(_core.optim_state_names(hyper))
        key = (id(g["params"]), len(g["params"]), g["regularize"], tuple(slots))
        native = self._native[gi]
        if native is not None and key == self._keys[gi]:
            native.hyper = hyper
            return native
        params = g["params"]
        steps = (
            list(native.steps) if native is not None and len(native.steps) == len(params) else None
        )
        old = dict(zip(self._slots[gi], self._buffers[gi])) if native is not None else {}
        buffers = []
        for name in slots:
            if name in old and len(old[name]) == len(params):
                buffers.append(old[name])
                continue
            fill = hyper.initial_accumulator if name == "sum" else 0.0
            bufs = []
            for p in params:
                b = array_module(p.value).zeros_like(p.value)
                if fill:
                    b[...] = fill
                bufs.append(b)
            buffers.append(bufs)
        names = [str(getattr(p, "name", "") or "") for p in params]
        native = _core.OptimGroup(
            params, buffers, g["regularize"], names, steps or [0] * len(params)
        )
        native.hyper = hyper
        self._native[gi] = native
        self._slots[gi] = slots
        self._buffers[gi] = buffers
        self._keys[gi] = key
        return native

    def _natives(self) -> list[Any]:
        """The native groups with their current hyper-parameters (rebuilt only for a group
        whose settings changed since the last step, e.g. by a learning-rate schedule)."""
        natives = []
        for i, g in enumerate(self.param_groups):
            settings = [v for k, v in g.items() if k != "params"]
            cached = self._settings[i]
            if cached is None or cached[0] != settings:
                cached = self._settings[i] = (settings, self._hyper(g))
            natives.append(self._group_native(i, cached[1]))
        return natives

    # -- the step ------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One fused step over every parameter; returns closure() when a closure is given.

        Raises ValueError (nonfinite="raise") naming the first parameter whose gradient holds
        NaN or Inf; those elements are left as they were, the finite ones are stepped (see the
        module docstring).
        """
        loss = closure() if closure is not None else None
        for hook in list(self._step_pre_hooks.values()):
            hook(self)
        try:
            applied, norm = _core.optim_step(
                self._natives(), self.clip_grad_norm or 0.0, self.nonfinite
            )
        finally:  # also after a non-finite ValueError: the finite elements were stepped
            for hook in list(self._step_post_hooks.values()):
                hook(self)
        self.last_grad_norm = norm
        if not applied:
            self.skipped_steps += 1
        return loss

    def _register(self, hooks: dict[int, StepHook], hook: StepHook, what: str) -> HookHandle:
        if not callable(hook):
            raise ValueError(f"[{what}] argument 'hook' must be callable, got {hook!r}")
        key = self._next_hook
        self._next_hook += 1
        hooks[key] = hook
        return HookHandle(hooks, key)

    def register_step_pre_hook(self, hook: StepHook) -> HookHandle:
        """Call hook(optimizer) at every step(), after the closure and before the native
        update, when the gradients are final (e.g. to mask them). Hooks run in the order
        registered; returns a handle whose remove() unregisters the hook."""
        return self._register(self._step_pre_hooks, hook, "register_step_pre_hook")

    def register_step_post_hook(self, hook: StepHook) -> HookHandle:
        """Call hook(optimizer) right after every native update, also when it raised for a
        non-finite gradient (the finite elements were stepped), e.g. to project or mask the
        parameters and their state (Optimizer.state). Hooks run in the order registered;
        returns a handle whose remove() unregisters the hook."""
        return self._register(self._step_post_hooks, hook, "register_step_post_hook")

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero, in place (one native call per group)."""
        for native in self._natives():
            _core.optim_zero_grad(native)

    # -- reports -------------------------------------------------------------------------
    def penalty(self) -> float:
        """Omega(theta) at the current parameters: the sum over the regularized parameters of
        l1 * ||w||_1 + l2 / 2 * ||w||_2^2, with each group's l1 and l2 (coupled weight decay
        counts as l2; decoupled weight decay and max-norm are not terms of the loss)."""
        return float(sum(_core.optim_stats(n)["penalty"] for n in self._natives()))

    def sparsity(self) -> dict[str, dict[str, Any]]:
        """Per parameter L0 count: {name: {"nonzero", "numel", "zero_fraction", "regularized"}}.

        Names are Parameter.name, or "group{g}.param{i}" for unnamed parameters.
        """
        out: dict[str, dict[str, Any]] = {}
        for gi, (g, native) in enumerate(zip(self.param_groups, self._natives())):
            stats = _core.optim_stats(native)
            for i, (p, nnz, pen) in enumerate(zip(g["params"], stats["nonzero"], native.penalize)):
                name = str(getattr(p, "name", "") or "") or f"group{gi}.param{i}"
                if name in out:
                    name = f"{name}#group{gi}.param{i}"
                numel = int(p.value.size)
                out[name] = {
                    "nonzero": int(nnz),
                    "numel": numel,
                    "zero_fraction": 1.0 - nnz / numel if numel else 0.0,
                    "regularized": pen,
                }
        return out

    # -- state ---------------------------------------------------------------------------
    @property
    def state(self) -> dict[Any, dict[str, Any]]:
        """Per parameter: {"step": int, buffer name: array} (live arrays)."""
        out: dict[Any, dict[str, Any]] = {}
        for gi, g in enumerate(self.param_groups):
            native = self._native[gi]
            if native is None:
                continue
            steps = native.steps
            for i, p in enumerate(g["params"]):
                entry: dict[str, Any] = {"step": int(steps[i])}
                for name, bufs in zip(self._slots[gi], self._buffers[gi]):
                    entry[name] = bufs[i]
                out[p] = entry
        return out

    def state_dict(self) -> dict[str, Any]:
        """A copy of the whole state: per parameter step counts and buffers (NumPy arrays, by
        parameter index over all groups in order) and every group's hyper-parameters."""
        natives = self._natives()
        state: dict[int, dict[str, Any]] = {}
        groups = []
        index = 0
        for gi, g in enumerate(self.param_groups):
            steps = natives[gi].steps
            ids = []
            for i in range(len(g["params"])):
                entry: dict[str, Any] = {"step": int(steps[i])}
                for name, bufs in zip(self._slots[gi], self._buffers[gi]):
                    entry[name] = _to_host(bufs[i])
                state[index] = entry
                ids.append(index)
                index += 1
            hyper = {k: (tuple(v) if k == "betas" else v) for k, v in g.items() if k != "params"}
            hyper["params"] = ids
            groups.append(hyper)
        return {
            "state": state,
            "param_groups": groups,
            "clip_grad_norm": self.clip_grad_norm,
            "nonfinite": self.nonfinite,
            "skipped_steps": self.skipped_steps,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state_dict(): the same number of groups and parameters, buffers of the
        parameters' shapes and dtypes. Nothing is changed unless every entry is valid."""
        try:
            saved_groups = list(state_dict["param_groups"])
            saved_state = dict(state_dict["state"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"[load_state_dict] not an optimizer state_dict: {e}") from e
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"[load_state_dict] {len(saved_groups)} parameter groups saved, "
                f"the optimizer has {len(self.param_groups)}"
            )
        new_groups = []
        new_buffers = []
        new_steps = []
        for gi, (g, sg) in enumerate(zip(self.param_groups, saved_groups)):
            ids = list(sg["params"])
            if len(ids) != len(g["params"]):
                raise ValueError(
                    f"[load_state_dict] group {gi}: {len(ids)} parameters saved, "
                    f"the group has {len(g['params'])}"
                )
            ng = dict(g)
            ng.update({k: v for k, v in sg.items() if k != "params"})
            hyper = self._hyper(ng)
            _core.optim_check_hyper(hyper)
            slots = list(_core.optim_state_names(hyper))
            bufs: list[list[Array]] = [[] for _ in slots]
            steps = []
            for i, (p, idx) in enumerate(zip(g["params"], ids)):
                entry = saved_state.get(idx, saved_state.get(str(idx)))
                if entry is None:
                    raise ValueError(f"[load_state_dict] no state for parameter {idx}")
                step = int(entry.get("step", 0))
                if step < 0:
                    raise ValueError(f"[load_state_dict] parameter {idx}: negative step {step}")
                steps.append(step)
                xp = array_module(p.value)
                for k, name in enumerate(slots):
                    if name not in entry:
                        raise ValueError(
                            f"[load_state_dict] parameter {idx} (group {gi}, index {i}) "
                            f"has no '{name}' buffer"
                        )
                    v = entry[name]
                    v = v.get() if is_cuda_array(v) else np.asarray(v)
                    if tuple(v.shape) != tuple(p.value.shape) or v.dtype != p.value.dtype:
                        raise ValueError(
                            f"[load_state_dict] parameter {idx} '{name}': "
                            f"{v.dtype}{tuple(v.shape)} "
                            f"does not match the parameter's {p.value.dtype}{tuple(p.value.shape)}"
                        )
                    bufs[k].append(xp.array(v, copy=True))
            new_groups.append((ng, slots))
            new_buffers.append(bufs)
            new_steps.append(steps)
        for gi, (ng, slots) in enumerate(new_groups):
            self.param_groups[gi].update({k: v for k, v in ng.items() if k != "params"})
            g = self.param_groups[gi]
            native = _core.OptimGroup(
                g["params"],
                new_buffers[gi],
                g["regularize"],
                [str(getattr(p, "name", "") or "") for p in g["params"]],
                new_steps[gi],
            )
            self._native[gi] = native
            self._slots[gi] = slots
            self._buffers[gi] = new_buffers[gi]
            self._keys[gi] = (id(g["params"]), len(g["params"]), g["regularize"], tuple(slots))
        self.clip_grad_norm = state_dict.get("clip_grad_norm", self.clip_grad_norm)
        self.nonfinite = state_dict.get("nonfinite", self.nonfinite)
        self.skipped_steps = int(state_dict.get("skipped_steps", self.skipped_steps))

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for gi, g in enumerate(self.param_groups):
            lines.append(f"  group {gi}: {len(g['params'])} params")
            for k in sorted(k for k in g if k != "params"):
                lines.append(f"    {k}: {g[k]!r}")
        return "\n".join([*lines, ")"])


def _reg(
    l2: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    l1: float,
    l1_mode: str,
    max_norm: float | None,
    max_norm_axis: int,
    clip_value: float | None,
    regularize: bool | None,
) -> dict[str, Any]:
    return {
        "l2": l2,
        "weight_decay": weight_decay,
        "decoupled_weight_decay": bool(decoupled_weight_decay),
        "l1": l1,
        "l1_mode": l1_mode,
        "max_norm": max_norm,
        "max_norm_axis": max_norm_axis,
        "clip_value": clip_value,
        "regularize": regularize,
    }


class SGD(Optimizer):
    """Stochastic gradient descent with momentum (heavy ball or Nesterov) and dampening.

    Same rule and arguments as torch.optim.SGD (``weight_decay`` coupled, as there; with
    ``decoupled_weight_decay=True``, SGDW). Defaults: lr 1e-3, momentum 0, dampening 0, no
    penalties. See the module docstring for the penalty arguments, clip_grad_norm and nonfinite.
    """

    _kind = "sgd"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        *,
        l2: float = 0.0,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        l1: float = 0.0,
        l1_mode: str = "proximal",
        max_norm: float | None = None,
        max_norm_axis: int = 0,
        clip_value: float | None = None,
        regularize: bool | None = None,
        clip_grad_norm: float | None = None,
        nonfinite: str = "raise",
    ) -> None:
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "nesterov": nesterov}
        defaults.update(
            _reg(
                l2,
                weight_decay,
                decoupled_weight_decay,
                l1,
                l1_mode,
                max_norm,
                max_norm_axis,
                clip_value,
                regularize,
            )
        )
        super().__init__(params, defaults, clip_grad_norm=clip_grad_norm, nonfinite=nonfinite)


class Adam(Optimizer):
    """Adam (optionally AMSGrad), as torch.optim.Adam: ``weight_decay`` is coupled (an L2 term,
    as ``l2``) unless ``decoupled_weight_decay=True`` (then it is AdamW). Defaults: lr 1e-3,
    betas (0.9, 0.999), eps 1e-8, no penalties."""

    _kind = "adam"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        amsgrad: bool = False,
        *,
        l2: float = 0.0,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        l1: float = 0.0,
        l1_mode: str = "proximal",
        max_norm: float | None = None,
        max_norm_axis: int = 0,
        clip_value: float | None = None,
        regularize: bool | None = None,
        clip_grad_norm: float | None = None,
        nonfinite: str = "raise",
    ) -> None:
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "amsgrad": amsgrad}
        defaults.update(
            _reg(
                l2,
                weight_decay,
                decoupled_weight_decay,
                l1,
                l1_mode,
                max_norm,
                max_norm_axis,
                clip_value,
                regularize,
            )
        )
        super().__init__(params, defaults, clip_grad_norm=clip_grad_norm, nonfinite=nonfinite)


class AdamW(Adam):
    """Adam with decoupled weight decay, as torch.optim.AdamW (``weight_decay`` is always
    decoupled here). Defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2 (on
    regularized parameters only)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        **kwargs: Any,
    ) -> None:
        if "decoupled_weight_decay" in kwargs:
            raise ValueError("[optim_step] AdamW's weight decay is always decoupled")
        super().__init__(
            params,
            lr,
            betas,
            eps,
            amsgrad,
            weight_decay=weight_decay,
            decoupled_weight_decay=True,
            **kwargs,
        )


class RMSprop(Optimizer):
    """RMSprop (optionally centered, with momentum), as torch.optim.RMSprop (``weight_decay``
    coupled, as there). Defaults: lr 1e-2, alpha 0.99, eps 1e-8, momentum 0, not centered."""

    _kind = "rmsprop"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        l2: float = 0.0,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        l1: float = 0.0,
        l1_mode: str = "proximal",
        max_norm: float | None = None,
        max_norm_axis: int = 0,
        clip_value: float | None = None,
        regularize: bool | None = None,
        clip_grad_norm: float | None = None,
        nonfinite: str = "raise",
    ) -> None:
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "momentum": momentum,
            "centered": centered,
        }
        defaults.update(
            _reg(
                l2,
                weight_decay,
                decoupled_weight_decay,
                l1,
                l1_mode,
                max_norm,
                max_norm_axis,
                clip_value,
                regularize,
            )
        )
        super().__init__(params, defaults, clip_grad_norm=clip_grad_norm, nonfinite=nonfinite)


class Adagrad(Optimizer):
    """Adagrad with learning-rate decay and an initial accumulator, as torch.optim.Adagrad
    (``weight_decay`` coupled, as there). Defaults: lr 1e-2, lr_decay 0,
    initial_accumulator_value 0, eps 1e-10."""

    _kind = "adagrad"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        l2: float = 0.0,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        l1: float = 0.0,
        l1_mode: str = "proximal",
        max_norm: float | None = None,
        max_norm_axis: int = 0,
        clip_value: float | None = None,
        regularize: bool | None = None,
        clip_grad_norm: float | None = None,
        nonfinite: str = "raise",
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "eps": eps,
        }
        defaults.update(
            _reg(
                l2,
                weight_decay,
                decoupled_weight_decay,
                l1,
                l1_mode,
                max_norm,
                max_norm_axis,
                clip_value,
                regularize,
            )
        )
        super().__init__(params, defaults, clip_grad_norm=clip_grad_norm, nonfinite=nonfinite)


def max_norm_project(w: Array, max_norm: float, axis: int = 0) -> Array:
    """Project, in place, each slice ``w[..., j, ...]`` along ``axis`` onto the 2-norm ball of
    radius max_norm (> 0); returns w."""
    _core.max_norm_project(w, float(max_norm), int(axis))
    return w
