"""Pruning: weights that contribute little are set to zero, and training keeps them there.

* :func:`magnitude_prune` zeroes the fraction ``amount`` of the weights with the smallest
  magnitude, per layer or globally (unstructured pruning, Han et al. 2015).
* :func:`structured_prune` zeroes whole units of a Linear layer (a row of its weight, its bias
  entry and the matching input column of the next layer) or whole filters of a Conv2d (and the
  next layer's input channels), ranked by the L1 or L2 norm of their weights; :func:`shrink`
  then builds the physically smaller model, whose outputs equal the masked one's (the same
  sums without their zero terms).
* :class:`Masks` holds what was pruned. Attached to an optimizer (``masks.attach(opt)``, or
  ``optimizer=`` of the pruning functions) it keeps pruned weights at exactly zero through
  every later step: a step pre-hook zeroes their gradients (so ``clip_grad_norm`` and the
  non-finite check see the pruned network's gradient only) and a post-hook zeroes the weights
  and every state buffer of the optimizer at those positions (momentum, Adam's moments,
  RMSprop's and Adagrad's accumulators), so nothing regrows. The cost is one extra pass over
  each masked gradient before the fused native step and one over each masked weight and each
  of its state buffers after it (a bitwise AND with the mask: NaN and Inf become +0 too);
  a masked native step would fold these into the step's own pass.
* :class:`PruneSchedule` prunes iteratively during ``Trainer.fit`` (cubic schedule of Zhu and
  Gupta 2017, or a fixed fraction per round); its masks are part of the Trainer's checkpoints.
* :func:`sparsity_report` counts nonzero weights per parameter and in total.

Ties go by position (the lower flat index, or the earlier parameter for the global scope, is
pruned first), so pruning is deterministic, and monotone: what given ``masks`` pruned stays so.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import nn
from ._array import array_module, is_cuda_array
from .callbacks import Callback
from .sparse import to_dense, to_sparse  # the pruned model in compressed sparse rows

if TYPE_CHECKING:
    from .train import Trainer

Array = Any

SCOPES = ("layer", "global")
NORMS = ("l1", "l2")
SCHEDULES = ("cubic", "geometric", "linear")
UNITS = ("epoch", "step")
# Activations with act(0) == 0: a unit whose weights and bias are zero outputs exactly zero.
_ZERO_PRESERVING = ("identity", "relu", "leaky_relu", "tanh")


def _host(x: Array) -> np.ndarray:
    return np.asarray(x.get() if is_cuda_array(x) else x)


_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _bit_mask(pruned: Array, itemsize: int) -> Array:
    """All ones where kept, all zeros where pruned, in unsigned words of `itemsize` bytes."""
    word = _UINT[itemsize]
    return (~pruned).astype(word) * word(np.iinfo(word).max)


def _zero(a: Array, bits: Array, pruned: Array) -> None:
    """a[pruned] = +0 in place, NaN and Inf included: one AND of a's bits with the mask (as
    fast as a multiply, which would keep NaN), a masked copy for arrays of other widths."""
    xp = array_module(a)
    if a.dtype.itemsize == bits.dtype.itemsize:
        u = a.view(bits.dtype)
        xp.bitwise_and(u, bits, out=u)
    else:
        xp.copyto(a, a.dtype.type(0), where=pruned)


def _check_model(model: Any, op: str) -> None:
    if not isinstance(model, nn.Module):
        raise ValueError(f"[{op}] argument 'model' must be a seisoku.nn.Module, got {model!r}")


def _check_amount(amount: Any, op: str, name: str = "amount") -> float:
    if (
        isinstance(amount, (bool, np.bool_))
        or not isinstance(amount, (int, float, np.integer, np.floating))
        or not 0.0 <= float(amount) < 1.0
    ):
        raise ValueError(f"[{op}] argument '{name}' must be a number in [0, 1), got {amount!r}")
    return float(amount)


def _check_choice(value: Any, choices: tuple[str, ...], op: str, name: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"[{op}] argument '{name}' must be one of {choices}, got {value!r}")
    return value


def _check_int(value: Any, op: str, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"[{op}] argument '{name}' must be an int >= {minimum}, got {value!r}")
    return int(value)


def _count(amount: float, n: int) -> int:
    """Elements to prune: amount * n rounded half up."""
    return math.floor(amount * n + 0.5)


def _select(model: nn.Module, params: Any, op: str) -> list[tuple[str, nn.Parameter]]:
    """(name, Parameter) pairs to prune: the regularized ones (weights) by default, else the
    given names or Parameters of the model."""
    named = list(model.named_parameters())
    if params is None:
        chosen = [(n, p) for n, p in named if p.regularize]
    else:
        items = [params] if isinstance(params, (str, nn.Parameter)) else params
        try:
            items = list(items)
        except TypeError:
            raise ValueError(
                f"[{op}] argument 'params' must be names or Parameters of the model, got {params!r}"
            ) from None
        by_name = dict(named)
        by_id = {id(p): n for n, p in named}
        chosen, seen = [], set()
        for item in items:
            if isinstance(item, str) and item in by_name:
                name = item
            elif isinstance(item, nn.Parameter) and id(item) in by_id:
                name = by_id[id(item)]
            else:
                raise ValueError(
                    f"[{op}] argument 'params' holds {item!r}, which is not a parameter of the "
                    f"model (its parameters: {[n for n, _ in named]})"
                )
            if name not in seen:
                seen.add(name)
                chosen.append((name, by_name[name]))
    if not chosen:
        raise ValueError(
            f"[{op}] argument 'model' has no prunable weights (parameters: "
            f"{[n for n, _ in named]}; by default the weights, Parameter.regularize=True)"
        )
    return chosen


class Masks:
    """Keep-masks of named parameters of one model: True where a weight is kept, False where
    it is pruned (held at exactly zero).

    Args:
        model: the seisoku.nn Module whose parameters the masks cover.
        masks: {parameter name (as in model.named_parameters()): mask}, each mask an array of
            the parameter's shape, boolean or of 0/1 values (default: none yet).

    The pruned entries are zeroed as the masks are set. Masks of parameters on the GPU live
    there. ``attach(optimizer)`` keeps the pruned entries at zero through every step of that
    optimizer (see the module docstring for the cost).
    """

    def __init__(self, model: nn.Module, masks: Mapping[str, Array] | None = None) -> None:
        _check_model(model, "Masks")
        self._params: dict[str, nn.Parameter] = dict(model.named_parameters())
        self._pruned: dict[str, Array] = {}  # True where pruned, on the parameter's device
        self._bits: dict[str, Array] = {}  # the same as an AND mask of the parameter's width
        self._attached: list[tuple[Any, tuple[Any, Any]]] = []
        if masks is not None:
            self.load_state_dict(masks)

    # -- contents --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._pruned)

    def __iter__(self) -> Iterator[str]:
        return iter(self._pruned)

    def __contains__(self, name: object) -> bool:
        return name in self._pruned

    def __getitem__(self, name: str) -> Array:
        """The keep-mask of a parameter (a new boolean array: True where kept)."""
        return ~self._pruned[name]

    def names(self) -> list[str]:
        """Names of the masked parameters, in the order they were added."""
        return list(self._pruned)

    def pruned_count(self, name: str | None = None) -> int:
        """Pruned elements of one masked parameter, or of all of them (name None)."""
        names = self._pruned if name is None else [name]
        return sum(int(array_module(self._pruned[n]).count_nonzero(self._pruned[n])) for n in names)

    def sparsity(self) -> float:
        """Fraction of the masked parameters' elements that are pruned (0 with no masks)."""
        total = sum(int(m.size) for m in self._pruned.values())
        return self.pruned_count() / total if total else 0.0

    def __repr__(self) -> str:
        return f"Masks({len(self)} parameters, sparsity {self.sparsity():.4f})"

    def _check_entry(self, name: Any, mask: Any, op: str) -> tuple[nn.Parameter, np.ndarray]:
        if name not in self._params:
            raise ValueError(
                f"[{op}] argument 'masks' names {name!r}, which is not a parameter of the model "
                f"(its parameters: {list(self._params)})"
            )
        p = self._params[name]
        m = _host(mask) if hasattr(mask, "shape") else np.asarray(mask)
        if tuple(m.shape) != tuple(p.shape):
            raise ValueError(
                f"[{op}] argument 'masks' entry {name!r} has shape {tuple(m.shape)}, the "
                f"parameter has shape {tuple(p.shape)}"
            )
        if m.dtype != np.bool_:
            if m.dtype.kind not in "biuf" or not np.isin(m, (0, 1)).all():
                raise ValueError(
                    f"[{op}] argument 'masks' entry {name!r} must be boolean or hold only 0 and "
                    f"1, got dtype {m.dtype}"
                )
            m = m != 0
        return p, m

    def _set(self, name: str, keep: np.ndarray) -> None:
        """Install a host keep-mask (ANDed with what was pruned before)."""
        p = self._params[name]
        pruned = array_module(p.value).asarray(~keep)
        if name in self._pruned:
            pruned |= self._pruned[name]
        self._pruned[name] = pruned
        self._bits[name] = _bit_mask(pruned, p.value.dtype.itemsize)

    def state_dict(self) -> dict[str, np.ndarray]:
        """{name: keep-mask} as NumPy boolean arrays (copies); Masks(model, state) rebuilds."""
        return {name: ~_host(m) for name, m in self._pruned.items()}

    def load_state_dict(self, state: Mapping[str, Array]) -> None:
        """Replace every mask by those of `state` ({name: keep-mask}) and zero what they
        prune; nothing changes unless every entry is valid."""
        if not isinstance(state, Mapping):
            raise ValueError(
                f"[Masks] argument 'masks' must be a mapping {{name: mask}}, got {state!r}"
            )
        checked = [(name, *self._check_entry(name, m, "Masks")) for name, m in state.items()]
        self._pruned, self._bits = {}, {}
        for name, _, keep in checked:
            self._set(name, keep)
        self.apply()

    # -- keeping pruned entries at zero ----------------------------------------------------
    def apply(self) -> None:
        """Zero the pruned entries of the masked parameters and of their state buffers in
        every attached optimizer."""
        for name, pruned in self._pruned.items():
            _zero(self._params[name].value, self._bits[name], pruned)
        for optimizer, _ in self._attached:
            self._zero_state(optimizer)

    def _zero_state(self, optimizer: Any) -> None:
        state = optimizer.state
        for name, pruned in self._pruned.items():
            p = self._params[name]
            for key, buf in state.get(p, {}).items():
                if key != "step" and tuple(getattr(buf, "shape", ())) == tuple(p.shape):
                    _zero(buf, self._bits[name], pruned)

    def _before_step(self, optimizer: Any) -> None:
        for name, pruned in self._pruned.items():
            p = self._params[name]
            if not p.grad_marked_zero:
                _zero(p.grad, self._bits[name], pruned)

    def _after_step(self, optimizer: Any) -> None:
        for name, pruned in self._pruned.items():
            _zero(self._params[name].value, self._bits[name], pruned)
        self._zero_state(optimizer)

    def attach(self, optimizer: Any) -> Masks:
        """Keep the pruned entries at zero through every step of `optimizer` (a
        seisoku.optim optimizer): its gradients are masked before the native step, the
        weights and state buffers after it. Attaching twice to one optimizer does nothing
        more. Zeroes the pruned entries now; returns self."""
        if not (
            callable(getattr(optimizer, "register_step_pre_hook", None))
            and callable(getattr(optimizer, "register_step_post_hook", None))
        ):
            raise ValueError(
                "[Masks.attach] argument 'optimizer' must be a seisoku.optim optimizer (with "
                f"step hooks), got {type(optimizer).__name__}"
            )
        if not any(o is optimizer for o, _ in self._attached):
            handles = (
                optimizer.register_step_pre_hook(self._before_step),
                optimizer.register_step_post_hook(self._after_step),
            )
            self._attached.append((optimizer, handles))
        self.apply()
        return self

    def detach(self, optimizer: Any | None = None) -> None:
        """Stop masking the steps of `optimizer` (None: of every attached optimizer)."""
        kept = []
        for o, handles in self._attached:
            if optimizer is None or o is optimizer:
                for h in handles:
                    h.remove()
            else:
                kept.append((o, handles))
        self._attached = kept


def _prepare_masks(model: nn.Module, masks: Masks | None, op: str) -> Masks:
    if masks is None:
        return Masks(model)
    if not isinstance(masks, Masks):
        raise ValueError(f"[{op}] argument 'masks' must be a Masks or None, got {masks!r}")
    held = [p for _, p in model.named_parameters()]  # alive while their ids are compared
    mine = {id(p) for p in held}
    if any(id(p) not in mine for p in masks._params.values()) or len(mine) != len(masks._params):
        raise ValueError(f"[{op}] argument 'masks' belongs to another model")
    return masks


def _finish(masks: Masks, optimizer: Any | None) -> Masks:
    if optimizer is not None:
        masks.attach(optimizer)
    else:
        masks.apply()
    return masks


def _smallest(scores: np.ndarray, before: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest scores, those pruned before first; ties by index."""
    key = np.where(before, -1.0, scores)
    return np.argsort(key, kind="stable")[:k]


def magnitude_prune(
    model: nn.Module,
    amount: float,
    scope: str = "layer",
    params: Iterable[str | nn.Parameter] | None = None,
    *,
    masks: Masks | None = None,
    optimizer: Any | None = None,
) -> Masks:
    """Zero the fraction `amount` of the chosen weights with the smallest magnitude |w|.

    Args:
        model: a seisoku.nn Module.
        amount: fraction in [0, 1) of the chosen elements to be pruned afterwards, in all
            (rounded half up): 0.9 leaves one weight in ten.
        scope: 'layer' (default): `amount` of each parameter; 'global': `amount` of all chosen
            elements together, by one magnitude threshold (layers end up unequally sparse).
        params: names (as in named_parameters()) or Parameters to prune (default None: the
            weights, i.e. the parameters with Parameter.regularize set, not the biases).
        masks: masks of an earlier round (default None: a new Masks): what they pruned stays
            pruned (counted in `amount`); they are updated in place and returned.
        optimizer: a seisoku.optim optimizer to attach the masks to (default None), so that
            its steps keep the pruned weights and their state at zero.

    Returns the Masks; the pruned weights (and their state in attached optimizers) are zero.
    """
    op = "magnitude_prune"
    _check_model(model, op)
    amount = _check_amount(amount, op)
    scope = _check_choice(scope, SCOPES, op, "scope")
    chosen = _select(model, params, op)
    masks = _prepare_masks(model, masks, op)
    weights = [np.abs(_host(p.value).astype(np.float64)).ravel() for _, p in chosen]
    before = [
        _host(masks._pruned[n]).ravel() if n in masks else np.zeros(w.size, bool)
        for (n, _), w in zip(chosen, weights)
    ]
    if scope == "layer":
        for (name, p), w, b in zip(chosen, weights, before):
            k = max(_count(amount, w.size), int(b.sum()))
            keep = np.ones(w.size, bool)
            keep[_smallest(w, b, k)] = False
            masks._set(name, keep.reshape(p.shape))
    else:
        w_all, b_all = np.concatenate(weights), np.concatenate(before)
        k = max(_count(amount, w_all.size), int(b_all.sum()))
        keep_all = np.ones(w_all.size, bool)
        keep_all[_smallest(w_all, b_all, k)] = False
        start = 0
        for (name, p), w in zip(chosen, weights):
            masks._set(name, keep_all[start : start + w.size].reshape(p.shape))
            start += w.size
    return _finish(masks, optimizer)


# -- structured pruning --------------------------------------------------------------------
@dataclass(frozen=True)
class _Link:
    """Units of layers[producer] feed layers[consumer]: unit j is input columns
    j * block ... (j + 1) * block - 1 of a Linear consumer (block > 1 behind a Flatten), or
    input channel j of a Conv2d consumer."""

    producer: int
    consumer: int
    block: int


def _layers(model: nn.Module, op: str) -> list[nn.Module]:
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"[{op}] argument 'model' must be a seisoku.nn.Sequential, got {model!r}")
    out: list[nn.Module] = []
    for layer in model:
        out.extend(_layers(layer, op) if isinstance(layer, nn.Sequential) else [layer])
    return out


def _passes_zero(layer: nn.Module, spatial: bool) -> bool:
    """Whether a layer maps a zero unit (channel) to a zero unit, channel by channel."""
    if isinstance(layer, nn.Activation):
        return layer.name in _ZERO_PRESERVING
    if isinstance(layer, (nn.Dropout, nn.GaussianNoise, nn.ActivityRegularization)):
        return True
    return spatial and isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d))


def _links(layers: list[nn.Module]) -> list[_Link]:
    """The producer -> consumer pairs whose producer's units can be removed: the outputs of
    a Linear (zero-preserving activation) or Conv2d reach the next Linear or Conv2d through
    zero-preserving, per-unit layers only, and no parameter of either is shared."""
    held = [p for layer in layers for _, p in layer.named_parameters()]  # ids stay valid
    uses: dict[int, int] = {}
    for p in held:
        uses[id(p)] = uses.get(id(p), 0) + 1
    links = []
    for i, prod in enumerate(layers):
        if type(prod) is nn.Linear:
            if prod.activation not in _ZERO_PRESERVING:
                continue
            units, spatial = prod.out_features, False
        elif type(prod) is nn.Conv2d:
            units, spatial = prod.out_channels, True
        else:
            continue
        flat = False
        for j in range(i + 1, len(layers)):
            layer = layers[j]
            if isinstance(layer, nn.Flatten) and spatial and not flat:
                flat = True
                continue
            if _passes_zero(layer, spatial and not flat):
                continue
            if type(layer) is nn.Linear and (flat or not spatial):
                ok = layer.in_features % units == 0 if flat else layer.in_features == units
                block = layer.in_features // units if flat else 1
            elif type(layer) is nn.Conv2d and spatial and not flat:
                ok, block = layer.in_channels == units, 1
            else:
                ok = False
            shared = any(uses[id(p)] > 1 for m in (prod, layer) for _, p in m.named_parameters())
            if ok and not shared:
                links.append(_Link(i, j, block))
            break
    return links


def _columns(units: np.ndarray, block: int) -> np.ndarray:
    return (units[:, None] * block + np.arange(block)[None, :]).ravel()


def _norm_arg(norm: Any, op: str) -> str:
    if norm in (1, 2) and not isinstance(norm, bool):
        norm = f"l{norm}"
    return _check_choice(norm, NORMS, op, "norm")


def structured_prune(
    model: nn.Sequential,
    amount: float,
    norm: str = "l1",
    *,
    masks: Masks | None = None,
    optimizer: Any | None = None,
) -> Masks:
    """Zero whole units: the fraction `amount` of the units of each Linear (rows of its weight)
    and of the filters of each Conv2d with the smallest L1 or L2 norm of their weights.

    A unit's weight row (filter), bias entry and the next layer's matching input columns
    (channels) are masked, so it outputs exactly zero and feeds nothing; shrink(model) then
    removes it. Only units that reach the next Linear or Conv2d through zero-preserving
    per-unit layers are candidates (ReLU, LeakyReLU, Tanh, Identity, Dropout, GaussianNoise,
    ActivityRegularization; for filters also pooling and one Flatten; a Linear's own
    activation must not be sigmoid), and layers with shared parameters are left whole, so
    the last layer's outputs are never removed. Each layer keeps at least one unit.

    Args:
        model: a seisoku.nn.Sequential (nested Sequentials are read as one).
        amount: fraction in [0, 1) of each layer's units to prune (rounded half up).
        norm: 'l1' (default, sum of |w|) or 'l2' (Euclidean norm) of a unit's incoming weights.
        masks, optimizer: as for magnitude_prune.

    Returns the Masks; the pruned units' weights (and their state in attached optimizers) are
    zero.
    """
    op = "structured_prune"
    _check_model(model, op)
    amount = _check_amount(amount, op)
    norm = _norm_arg(norm, op)
    layers = _layers(model, op)
    links = _links(layers)
    if not links:
        raise ValueError(
            f"[{op}] argument 'model' has no units that can be removed (a Linear or Conv2d "
            "feeding another through zero-preserving layers)"
        )
    masks = _prepare_masks(model, masks, op)
    named = list(model.named_parameters())  # alive while their ids are compared
    names = {id(p): n for n, p in named}
    for link in links:
        prod, cons = layers[link.producer], layers[link.consumer]
        w = _host(prod.weight.value).astype(np.float64)
        units = w.shape[0]
        rows = w.reshape(units, -1)
        scores = np.abs(rows).sum(axis=1) if norm == "l1" else np.sqrt((rows * rows).sum(axis=1))
        wname = names[id(prod.weight)]
        before = (
            _host(masks._pruned[wname]).reshape(units, -1).all(axis=1)
            if wname in masks
            else np.zeros(units, bool)
        )
        k = min(max(_count(amount, units), int(before.sum())), units - 1)
        gone = np.sort(_smallest(scores, before, k))
        keep = np.ones(prod.weight.shape, bool)
        keep[gone] = False
        masks._set(wname, keep)
        if prod.bias is not None:
            keep_b = np.ones(units, bool)
            keep_b[gone] = False
            masks._set(names[id(prod.bias)], keep_b)
        keep_c = np.ones(cons.weight.shape, bool)
        keep_c[:, _columns(gone, link.block)] = False
        masks._set(names[id(cons.weight)], keep_c)
    return _finish(masks, optimizer)


def _rebuilt(layer: nn.Module, weight: Array, bias: Array | None) -> nn.Module:
    """A layer like `layer` (same settings, generator and parameter names) with new arrays."""

    def param(value: Array, old: nn.Parameter) -> nn.Parameter:
        xp = array_module(value)
        return nn.Parameter(xp.ascontiguousarray(value), old.name, old.regularize)

    b = param(bias, layer.bias) if bias is not None else False
    w = param(weight, layer.weight)
    placement = {"dtype": w.dtype, "device": w.device}
    if type(layer) is nn.Linear:
        _, kw = layer._config()
        kw.update(bias=b, weight=w, **placement)
        return nn.Linear(w.shape[1], w.shape[0], **kw)
    return nn.Conv2d(
        w.shape[1],
        w.shape[0],
        layer.kernel_size,
        stride=layer.stride,
        padding=layer.padding,
        bias=b,
        weight=w,
        **placement,
    )


def shrink(model: nn.Sequential) -> nn.Sequential:
    """A new, smaller Sequential without the dead units of `model`: units of a Linear (filters
    of a Conv2d) whose incoming weights and bias are all exactly zero, as structured_prune
    leaves them, together with the next layer's matching input columns (channels).

    Such a unit outputs exactly zero, so the new model computes the same sums as `model` less
    their zero terms: its outputs equal `model`'s in evaluation mode up to the order in which
    a product over fewer inputs adds its terms (a few units in the last place; training-mode
    dropout and noise draw differently for other shapes). The model is not changed (the new
    one holds copies of its parameters); units are removed only where structured_prune could
    remove them (see there), and each layer keeps at least one unit.
    """
    op = "shrink"
    _check_model(model, op)
    layers = _layers(copy.deepcopy(model), op)
    for link in _links(layers):
        prod, cons = layers[link.producer], layers[link.consumer]
        w, b = prod.weight.value, prod.bias.value if prod.bias is not None else None
        dead = ~_host(w).reshape(w.shape[0], -1).any(axis=1)
        if b is not None:
            dead &= _host(b) == 0
        alive = np.flatnonzero(~dead)
        if alive.size == w.shape[0]:
            continue
        if alive.size == 0:
            alive = np.zeros(1, np.int64)
        xp = array_module(w)
        idx = xp.asarray(alive)
        layers[link.producer] = _rebuilt(prod, w[idx], b[idx] if b is not None else None)
        cols = xp.asarray(_columns(alive, link.block))
        cb = cons.bias.value if cons.bias is not None else None
        layers[link.consumer] = _rebuilt(cons, cons.weight.value[:, cols], cb)
    return nn.Sequential(*layers)


# -- reports -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParameterSparsity:
    """One row of a SparsityReport: a parameter's name, shape and nonzero count."""

    name: str
    shape: tuple[int, ...]
    nonzero: int
    numel: int

    @property
    def sparsity(self) -> float:
        """Fraction of the elements that are exactly zero."""
        return 1.0 - self.nonzero / self.numel if self.numel else 0.0


@dataclass(frozen=True)
class SparsityReport:
    """Nonzero counts per parameter and in total; str() gives a table."""

    rows: tuple[ParameterSparsity, ...]

    @property
    def nonzero(self) -> int:
        """Nonzero elements over all reported parameters."""
        return sum(r.nonzero for r in self.rows)

    @property
    def numel(self) -> int:
        """Elements over all reported parameters."""
        return sum(r.numel for r in self.rows)

    @property
    def sparsity(self) -> float:
        """Fraction of all reported elements that are exactly zero."""
        return 1.0 - self.nonzero / self.numel if self.numel else 0.0

    @property
    def compression(self) -> float:
        """numel / nonzero: how many times fewer nonzero weights than dense (inf if none)."""
        return self.numel / self.nonzero if self.nonzero else math.inf

    def __str__(self) -> str:
        head = ("parameter", "shape", "nonzero", "numel", "sparsity")
        lines = [
            (r.name, str(r.shape), f"{r.nonzero:,}", f"{r.numel:,}", f"{r.sparsity:.2%}")
            for r in self.rows
        ]
        total = ("total", "", f"{self.nonzero:,}", f"{self.numel:,}", f"{self.sparsity:.2%}")
        widths = [max(len(x[i]) for x in [head, *lines, total]) for i in range(5)]

        def fmt(cells: tuple[str, ...]) -> str:
            left = [c.ljust(w) for c, w in zip(cells[:2], widths)]
            right = [c.rjust(w) for c, w in zip(cells[2:], widths[2:])]
            return "  ".join(left + right).rstrip()

        rule = "-" * len(fmt(head))
        tail = f"{fmt(total)}  ({self.compression:.1f}x fewer nonzero)"
        return "\n".join([fmt(head), rule, *map(fmt, lines), rule, tail])


def sparsity_report(
    model: nn.Module, params: Iterable[str | nn.Parameter] | None = None
) -> SparsityReport:
    """Count the exactly-zero elements of the chosen parameters (default None: the weights, as
    magnitude_prune chooses them; or names / Parameters): per parameter (name, shape, nonzero,
    numel, sparsity) and in total (nonzero, numel, sparsity, compression). print() it for a
    table."""
    op = "sparsity_report"
    _check_model(model, op)
    rows = []
    for name, p in _select(model, params, op):
        v = p.value
        nnz = int(array_module(v).count_nonzero(v))
        rows.append(ParameterSparsity(name, tuple(p.shape), nnz, int(v.size)))
    return SparsityReport(tuple(rows))


# -- iterative pruning during training ------------------------------------------------------
class PruneSchedule(Callback):
    """Iterative magnitude pruning with fine-tuning between rounds, as a Trainer callback.

    Round r (r = 1 ... rounds) runs at the start of epoch ``start + (r - 1) * every`` (unit
    'epoch'), or once ``start + (r - 1) * every`` optimizer steps are done (unit 'step'), and
    prunes the chosen weights by magnitude up to the cumulative sparsity s_r:

    * 'cubic' (default; Zhu and Gupta 2017, "To prune, or not to prune"):
      s_r = target * (1 - (1 - r / rounds) ** 3): large cuts first, while many redundant
      weights remain, then smaller ones;
    * 'geometric' (the lecture's fixed rounds, Han et al. 2015): every round removes the same
      fraction of the remaining weights, s_r = 1 - (1 - target) ** (r / rounds);
    * 'linear': s_r = target * r / rounds.

    Training continues between rounds and after the last one (fine-tuning); the masks keep
    pruned weights and their optimizer state at zero through every step (Masks.attach on the
    Trainer's optimizer, which must be a seisoku.optim optimizer). The masks and the rounds
    done are in state_dict(), hence in the Trainer's checkpoints: a resumed fit continues
    with the same masks. Each epoch record gets the key 'sparsity' (of the chosen weights).
    EarlyStopping's restore_best may bring back weights of a denser round: let it monitor
    after the last round, or set restore_best=False.

    Args:
        target: final sparsity in [0, 1) of the chosen weights (e.g. 0.92: 12.5x fewer).
        rounds: pruning rounds, >= 1 (default 10).
        every: epochs (or steps) between rounds, >= 1 (default 1).
        start: epoch (or step count) of the first round, >= 0 (default 0).
        unit: 'epoch' (default) or 'step'.
        schedule: 'cubic' (default), 'geometric' or 'linear'.
        scope: 'layer' (default) or 'global', as in magnitude_prune.
        params: names or Parameters to prune (default None: the weights).
    """

    order = -10  # before loggers (they see 'sparsity') and checkpoints (order 100)

    def __init__(
        self,
        target: float,
        rounds: int = 10,
        every: int = 1,
        start: int = 0,
        unit: str = "epoch",
        schedule: str = "cubic",
        scope: str = "layer",
        params: Iterable[str | nn.Parameter] | None = None,
    ) -> None:
        op = "PruneSchedule"
        self.target = _check_amount(target, op, "target")
        self.rounds = _check_int(rounds, op, "rounds", 1)
        self.every = _check_int(every, op, "every", 1)
        self.start = _check_int(start, op, "start", 0)
        self.unit = _check_choice(unit, UNITS, op, "unit")
        self.schedule = _check_choice(schedule, SCHEDULES, op, "schedule")
        self.scope = _check_choice(scope, SCOPES, op, "scope")
        if params is not None:
            params = [params] if isinstance(params, (str, nn.Parameter)) else list(params)
        self.params = params
        self.rounds_done = 0
        self.masks: Masks | None = None
        self._trainer: Trainer | None = None

    @property
    def sparsities(self) -> list[float]:
        """The cumulative sparsity after each round, s_1 ... s_rounds."""
        n, t = self.rounds, self.target
        if self.schedule == "cubic":
            return [t * (1.0 - (1.0 - r / n) ** 3) for r in range(1, n + 1)]
        if self.schedule == "geometric":
            return [1.0 - (1.0 - t) ** (r / n) for r in range(1, n + 1)]
        return [t * r / n for r in range(1, n + 1)]

    def _prune_due(self, now: int) -> None:
        trainer = self._trainer
        while self.rounds_done < self.rounds and now >= self.start + self.rounds_done * self.every:
            amount = min(self.sparsities[self.rounds_done], self.target)
            magnitude_prune(trainer.model, amount, self.scope, self.params, masks=self.masks)
            self.rounds_done += 1

    def on_train_begin(self, trainer: Trainer) -> None:
        if self.masks is not None:
            self.masks.detach()
        _select(trainer.model, self.params, "PruneSchedule")  # fail before the first epoch
        self._trainer = trainer
        self.rounds_done = 0
        self.masks = Masks(trainer.model).attach(trainer.optimizer)

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        self._prune_due(epoch if self.unit == "epoch" else trainer.steps)

    def on_batch_end(self, trainer: Trainer, step: int, logs: dict[str, float]) -> None:
        if self.unit == "step":
            self._prune_due(step)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        logs["sparsity"] = sparsity_report(trainer.model, self.params).sparsity

    def state_dict(self) -> dict[str, Any]:
        return {
            "rounds_done": self.rounds_done,
            "masks": self.masks.state_dict() if self.masks is not None else {},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.masks is None:
            raise ValueError("[PruneSchedule] load_state_dict needs on_train_begin first")
        self.masks.load_state_dict(dict(state["masks"]))
        self.rounds_done = int(state["rounds_done"])


__all__ = [
    "Masks",
    "ParameterSparsity",
    "PruneSchedule",
    "SparsityReport",
    "magnitude_prune",
    "shrink",
    "sparsity_report",
    "structured_prune",
    "to_dense",
    "to_sparse",
]
