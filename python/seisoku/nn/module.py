"""What Python adds to the native modules (seisoku._core.nn): calling, state dictionaries and
files, pickling and copying, and repr.

Every layer, model and loss of seisoku.nn is a C++ class of seisoku::nn bound with pybind11; the
functions here are attached to its base classes, so Python subclasses of seisoku.nn.Module
(forward and backward written with NumPy or CuPy) get them too.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from typing import Any

import numpy as np

from .. import _core
from .._array import array_module, is_cuda_array

Array = Any

Module = _core.nn.Module
Parameter = _core.nn.Parameter
Loss = _core.nn.Loss
Sequential = _core.nn.Sequential
MultiHead = _core.nn.MultiHead


def _call(self: Module, x: Array) -> Array:
    """module(x) is module.forward(x)."""
    return self.forward(x)


def _loss_call(self: Loss, pred: Array, target: Array, sample_weight: Array | None = None) -> Array:
    """loss(pred, target, sample_weight=None) is loss.forward(...): the weighted mean loss as a
    0-d array, its gradient kept for backward()."""
    return self.forward(pred, target, sample_weight)


def state_dict(self: Module) -> dict[str, np.ndarray]:
    """Copies of the parameter values as NumPy arrays, by dotted name."""
    out = {}
    for name, p in self.named_parameters():
        v = p.value
        out[name] = np.array(v.get() if is_cuda_array(v) else v, copy=True)
    return out


def load_state_dict(self: Module, state: dict[str, Any], strict: bool = True) -> None:
    """Copy values into the parameters; names, shapes and dtypes must match.

    With strict (default True), missing or unexpected names are a ValueError; nothing is
    changed unless every entry is valid.
    """
    params = dict(self.named_parameters())
    missing = sorted(set(params) - set(state))
    unexpected = sorted(set(state) - set(params))
    if strict and (missing or unexpected):
        raise ValueError(
            f"[load_state_dict] state does not match the model: missing {missing}, "
            f"unexpected {unexpected}"
        )
    updates = []
    for name, p in params.items():
        if name not in state:
            continue
        v = state[name] if is_cuda_array(state[name]) else np.asarray(state[name])
        if tuple(v.shape) != p.shape:
            raise ValueError(
                f"[load_state_dict] {name}: shape {tuple(v.shape)} does not match {p.shape}"
            )
        if v.dtype != p.dtype:
            raise ValueError(f"[load_state_dict] {name}: dtype {v.dtype} does not match {p.dtype}")
        updates.append((p, v))
    for p, v in updates:
        value = p.value
        value[...] = array_module(value).asarray(v)


def save(self: Module, path: str | os.PathLike[str]) -> None:
    """Write state_dict() to an .npz file atomically (a crash never leaves a broken file)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp.npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **self.state_dict())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(self: Module, path: str | os.PathLike[str], strict: bool = True) -> None:
    """Load a state written by save(); a corrupt or mismatched file is a ValueError."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        try:
            data = np.load(f, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with data:
                state = {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
            raise ValueError(f"[load] {path} is not a readable seisoku state file: {e}") from e
    self.load_state_dict(state, strict=strict)


def _native_class(cls: type) -> type:
    """The first class of cls's MRO defined by the core (whose constructor rebuilds it)."""
    for c in cls.__mro__:
        if c.__module__ == "seisoku._core.nn":
            return c
    raise TypeError(f"{cls.__name__} is not a seisoku.nn class")


def _reduce(self: Any, protocol: int = 2) -> tuple:
    """Pickles and copies rebuild the object from its constructor arguments (parameters and
    generators included, so sharing survives), then restore what was assigned to it (the
    attributes of a Python subclass included) and its mode. The memory native layers keep from
    the last forward is left out."""
    native = _native_class(type(self))
    if native in (Module, Loss):
        args, kwargs = (), {}
    else:
        args, kwargs = self._config()
    attached = self._attached() if isinstance(self, Module) else ([], [])
    training = self.training if isinstance(self, Module) else True
    attributes = dict(getattr(self, "__dict__", {}))
    return (_restore, (type(self), native, args, kwargs, attached, attributes, training))


def _restore(
    cls: type,
    native: type,
    args: tuple,
    kwargs: dict[str, Any],
    attached: tuple[list, list],
    attributes: dict[str, Any],
    training: bool,
) -> Any:
    obj = cls.__new__(cls)
    native.__init__(obj, *args, **kwargs)
    for name, value in [*attached[0], *attached[1]]:
        setattr(obj, name, value)
    if attributes:
        obj.__dict__.update(attributes)
    if isinstance(obj, Module):
        obj._set_training(training)  # its children restored their own modes
    return obj


def extra_repr(self: Module) -> str:
    """The part of repr between the parentheses (a layer's own settings)."""
    return ""


def _repr(self: Module) -> str:
    children = "".join(
        "\n  (" + name + "): " + repr(m).replace("\n", "\n  ") for name, m in self._children()
    )
    head = f"{type(self).__name__}({self.extra_repr()}"
    return head + (children + "\n)" if children else ")")


def _loss_repr(self: Loss) -> str:
    _, kwargs = self._config() if hasattr(self, "_config") else ((), {})
    return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


for _name, _fn in (
    ("__call__", _call),
    ("state_dict", state_dict),
    ("load_state_dict", load_state_dict),
    ("save", save),
    ("load", load),
    ("__reduce_ex__", _reduce),
    ("__repr__", _repr),
):
    setattr(Module, _name, _fn)
if "extra_repr" not in Module.__dict__:
    Module.extra_repr = extra_repr
Loss.__call__ = _loss_call
Loss.__reduce_ex__ = _reduce
Loss.__repr__ = _loss_repr

__all__ = ["Loss", "Module", "MultiHead", "Parameter", "Sequential"]
