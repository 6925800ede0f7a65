"""Parameters, the Module base class, containers and state (save / load)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import ops
from .._array import BufferPool, array_module, device_module, is_cuda_array

Array = Any


class Parameter:
    """A learnable array and its gradient.

    Args:
        value: the array (NumPy or CuPy); the Parameter keeps it, not a copy.
        name: label used in messages.
        regularize: whether norm penalties apply. Default: True for arrays of 2 or more
            dimensions (weights), False for 1-D ones (biases), as the lecture recommends.

    zero_grad() costs nothing at once: the gradient is marked as zero, and the next backward
    that writes the whole gradient (Linear, Conv2d) overwrites it instead of adding to it.
    Reading ``grad`` before that clears the array first, so it always reads as zeros.
    """

    def __init__(self, value: Array, name: str = "", regularize: bool | None = None) -> None:
        self.value = value
        self._grad = array_module(value).zeros_like(value)
        self._zero_pending = False
        self.name = name
        self.regularize = value.ndim >= 2 if regularize is None else bool(regularize)

    @property
    def grad(self) -> Array:
        """The gradient array (value's shape, dtype and device)."""
        if self._zero_pending:
            ops.fill(self._grad, 0.0)
            self._zero_pending = False
        return self._grad

    @grad.setter
    def grad(self, grad: Array) -> None:
        self._grad = grad
        self._zero_pending = False

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    @property
    def device(self) -> str:
        return "cuda" if is_cuda_array(self.value) else "cpu"

    def zero_grad(self) -> None:
        """Set the gradient to zero (lazily: see the class docstring)."""
        self._zero_pending = True

    def to(self, device: str) -> None:
        """Move value and gradient to 'cpu' or 'cuda' in place."""
        if device == self.device:
            return
        xp = device_module(device)
        if device == "cpu":
            self.value, self.grad = self.value.get(), self.grad.get()
        else:
            self.value, self.grad = xp.asarray(self.value), xp.asarray(self.grad)

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={self.shape}, dtype={self.dtype}, {self.device})"


@contextlib.contextmanager
def writing_grads(*params: Parameter | None) -> Iterator[bool]:
    """Context of a backward that adds into the gradients of params (None entries ignored).

    Yields accumulate: False when every one of them is marked zero by zero_grad(), so that
    the backward overwrites them and no pass clears them first; True otherwise, the marked
    ones cleared now. Inside, the gradients count as written; when the body raises, those
    that were marked zero are marked again.
    """
    ps = [p for p in params if p is not None]
    overwrite = bool(ps) and all(p._zero_pending for p in ps)
    for p in ps:
        if overwrite:
            p._zero_pending = False
        else:
            p.grad  # noqa: B018 -- clears a gradient marked zero
    try:
        yield not overwrite
    except BaseException:
        if overwrite:
            for p in ps:
                p._zero_pending = True
        raise


class Module:
    """Base class of layers and models: forward, backward, parameters, train/eval, state.

    A module stores in forward what its backward needs. backward(grad) receives the gradient
    of the loss with respect to the module's output, adds the gradients of its parameters
    into Parameter.grad (so shared parameters accumulate), and returns the gradient with
    respect to its input (None when need_input_grad is False).
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_params" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        self._params.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._params[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    # -- computation -------------------------------------------------------------------
    def forward(self, x: Array) -> Array:
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def __call__(self, x: Array) -> Array:
        return self.forward(x)

    def __getstate__(self) -> dict[str, Any]:
        """Pickling and copying leave out the reusable buffers of _buffer."""
        state = dict(self.__dict__)
        state.pop("_buffers", None)
        return state

    def _buffer(
        self, key: str, shape: tuple[int, ...], like: Any, dtype: Any = None
    ) -> Array | None:
        """An uninitialised NumPy array of `shape` and `dtype` (default: like's) for this
        module's output or gradient `key` from the module's BufferPool, or None where the
        op should allocate its result itself (CuPy arrays, which come from CuPy's memory
        pool, and anything that is not an array, which the op rejects with its own message).
        A training loop then writes into the same memory every step; an array still held
        anywhere (returned and kept, saved for backward, viewed) is never handed out again.
        """
        if type(like) is not np.ndarray:
            return None
        pool = self.__dict__.get("_buffers")
        if pool is None:
            pool = self.__dict__["_buffers"] = BufferPool()
        shape = tuple(int(d) for d in shape)
        return pool.get(key, shape, like.dtype if dtype is None else np.dtype(dtype))

    def penalty(self) -> float:
        """Sum of the regularization penalties this module and its children added to the
        gradients in the last backward / apply_penalties (activity and tying penalties)."""
        return sum(float(m._own_penalty()) for _, m in self.named_modules())

    def _own_penalty(self) -> float:
        return 0.0

    def apply_penalties(self) -> float:
        """Add the gradients of parameter penalties (tying) held by this module tree and
        return the total penalty (activity penalties of the last backward included)."""
        for _, m in self.named_modules():
            m._apply_own_penalties()
        return self.penalty()

    def _apply_own_penalties(self) -> None:
        return None

    # -- structure ---------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every descendant, each once, with dotted names."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop(0)
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            for child_name, child in m._modules.items():
                stack.append((f"{name}.{child_name}" if name else child_name, child))

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Every parameter once (a shared parameter under the first name it is reached by)."""
        seen: set[int] = set()
        for mname, m in self.named_modules():
            for pname, p in m._params.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> Module:
        for _, m in self.named_modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def to(self, device: str) -> Module:
        """Move every parameter to 'cpu' or 'cuda'."""
        for p in self.parameters():
            p.to(device)
        return self

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameter values as NumPy arrays, by name."""
        out = {}
        for name, p in self.named_parameters():
            v = p.value.get() if is_cuda_array(p.value) else p.value
            out[name] = np.array(v, copy=True)
        return out

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy values into the parameters; names, shapes and dtypes must match.

        With strict, missing or unexpected names are a ValueError; nothing is changed
        unless every entry is valid.
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
            v = np.asarray(state[name]) if not is_cuda_array(state[name]) else state[name]
            if tuple(v.shape) != p.shape:
                raise ValueError(
                    f"[load_state_dict] {name}: shape {tuple(v.shape)} does not match {p.shape}"
                )
            if v.dtype != p.dtype:
                raise ValueError(
                    f"[load_state_dict] {name}: dtype {v.dtype} does not match {p.dtype}"
                )
            updates.append((p, v))
        for p, v in updates:
            xp = array_module(p.value)
            p.value[...] = xp.asarray(v)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state to an .npz file atomically (a crash never leaves a broken file)."""
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

    def load(self, path: str | os.PathLike[str], strict: bool = True) -> None:
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

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = "".join(
            "\n  (" + n + "): " + repr(m).replace("\n", "\n  ") for n, m in self._modules.items()
        )
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + (children + "\n)" if children else ")")


class Sequential(Module):
    """Modules applied in order; backward runs them in reverse."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise ValueError(f"Sequential takes Modules, argument {i} is {type(m).__name__}")
            setattr(self, str(i), m)
        object.__setattr__(self, "layers", list(modules))

    def forward(self, x: Array) -> Array:
        for m in self.layers:
            x = m.forward(x)
        return x

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        for i in range(len(self.layers) - 1, -1, -1):
            grad = self.layers[i].backward(grad, need_input_grad=need_input_grad or i > 0)
        return grad

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]


class MultiHead(Module):
    """A shared trunk feeding several named heads (multi-task learning).

    forward(x) returns {head name: output}; backward takes {head name: gradient} (a head
    left out contributes nothing) and sums the heads' gradients into the trunk.
    """

    def __init__(self, trunk: Module, heads: dict[str, Module]) -> None:
        super().__init__()
        if not heads:
            raise ValueError("MultiHead needs at least one head")
        self.trunk = trunk
        for name, head in heads.items():
            if not name.isidentifier():
                raise ValueError(f"head names must be identifiers, got {name!r}")
            setattr(self, name, head)
        object.__setattr__(self, "heads", dict(heads))

    def forward(self, x: Array) -> dict[str, Array]:
        h = self.trunk.forward(x)
        return {name: head.forward(h) for name, head in self.heads.items()}

    def backward(self, grad: dict[str, Array], need_input_grad: bool = True) -> Array | None:
        unknown = set(grad) - set(self.heads)
        if unknown:
            raise ValueError(f"MultiHead.backward: unknown heads {sorted(unknown)}")
        total = None
        for name, g in grad.items():
            gh = self.heads[name].backward(g, need_input_grad=True)
            if total is None:
                total = gh.copy()  # a head may hand back the caller's own array
            else:
                ops.axpy(1.0, gh, total)
        if total is None:
            return None
        return self.trunk.backward(total, need_input_grad=need_input_grad)
