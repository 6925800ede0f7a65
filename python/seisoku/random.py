"""Counter-based random numbers: Philox4x32-10 keyed by (seed, offset, element index).

A draw depends only on (seed, offset, index): the same on CPU and GPU and for any number
of threads. A Generator hands out a fresh offset to each draw, so draws never overlap.
"""

from __future__ import annotations

from typing import Any

from . import _core
from ._array import device_module, resolve_dtype

_U64 = 1 << 64


def _check_u64(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _U64:
        raise ValueError(f"{name} must be an int in [0, 2**64), got {value!r}")
    return value


class Generator:
    """A seeded source of random arrays.

    Args:
        seed: key of the Philox stream, an int in [0, 2**64).
        offset: first stream offset to hand out (default 0); each draw takes the next one.
    """

    def __init__(self, seed: int, offset: int = 0) -> None:
        self._seed = _check_u64(seed, "seed")
        self._offset = _check_u64(offset, "offset")

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def offset(self) -> int:
        """The offset the next draw will use."""
        return self._offset

    def next_offset(self, n: int = 1) -> int:
        """Reserve n offsets and return the first."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        first = self._offset
        self._offset = (self._offset + n) % _U64
        return first

    def state_dict(self) -> dict[str, int]:
        return {"seed": self._seed, "offset": self._offset}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._seed = _check_u64(state["seed"], "state['seed']")
        self._offset = _check_u64(state["offset"], "state['offset']")

    def _target(
        self, size: Any, dtype: Any, device: str, out: Any, allowed: tuple[str, ...]
    ) -> Any:
        if out is not None:
            return out
        dt = resolve_dtype(dtype)
        if dt.name not in allowed:
            raise ValueError(f"dtype must be one of {', '.join(allowed)}, got {dt.name}")
        shape = (size,) if isinstance(size, int) else tuple(size)
        if any((not isinstance(s, int)) or s < 0 for s in shape):
            raise ValueError(f"size must be non-negative ints, got {size!r}")
        return device_module(device).empty(shape, dtype=dt)

    def uniform(
        self,
        size: Any = (),
        low: float = 0.0,
        high: float = 1.0,
        *,
        dtype: Any = "float32",
        device: str = "cpu",
        out: Any = None,
    ) -> Any:
        """Uniform values on [low, high), float32 (24 random bits) or float64 (53)."""
        out = self._target(size, dtype, device, out, ("float32", "float64"))
        _core.uniform(out, self._seed, self.next_offset(), float(low), float(high))
        return out

    def normal(
        self,
        size: Any = (),
        mean: float = 0.0,
        std: float = 1.0,
        *,
        dtype: Any = "float32",
        device: str = "cpu",
        out: Any = None,
    ) -> Any:
        """Normal values N(mean, std**2) by the Box-Muller transform; float32 or float64."""
        out = self._target(size, dtype, device, out, ("float32", "float64"))
        _core.normal(out, self._seed, self.next_offset(), float(mean), float(std))
        return out

    def bernoulli(
        self,
        size: Any = (),
        p: float = 0.5,
        *,
        dtype: Any = "float32",
        device: str = "cpu",
        out: Any = None,
    ) -> Any:
        """1 with probability p, else 0; float32, float64 or uint8."""
        out = self._target(size, dtype, device, out, ("float32", "float64", "uint8"))
        _core.bernoulli(out, self._seed, self.next_offset(), float(p))
        return out

    def __repr__(self) -> str:
        return f"Generator(seed={self._seed}, offset={self._offset})"


_default = Generator(0)


def default_generator() -> Generator:
    """The process-wide generator used where no generator or seed is given."""
    return _default


def manual_seed(seed: int) -> Generator:
    """Reset the process-wide generator to (seed, offset 0) and return it."""
    _default.load_state_dict({"seed": _check_u64(seed, "seed"), "offset": 0})
    return _default


def philox4x32_10(seed: int, offset: int, block: int) -> tuple[int, int, int, int]:
    """The four raw 32-bit words of block `block` of the stream (seed, offset)."""
    return tuple(
        _core.philox4x32_10(
            _check_u64(seed, "seed"), _check_u64(offset, "offset"), _check_u64(block, "block")
        )
    )


__all__ = ["Generator", "default_generator", "manual_seed", "philox4x32_10"]
