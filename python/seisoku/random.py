"""Counter-based random numbers: Philox4x32-10 keyed by (seed, offset, element index).

A draw depends only on (seed, offset, index): the same on CPU and GPU and for any number of
threads. A Generator (seisoku::Generator) hands out a fresh offset to each draw, so draws never
overlap; layers and initialisers built without a generator of their own use the process-wide
one, default_generator().
"""

from __future__ import annotations

from typing import Any

from . import _core

Generator = _core.Generator

_default: Generator = _core.default_generator()


def _check_u64(value: Any, name: str, op: str = "random") -> int:
    """value as an int in [0, 2**64); ValueError naming op and name otherwise."""
    return int(_core.check_u64(value, op, name))


def default_generator() -> Generator:
    """The process-wide generator used where no generator is given (seed 0 at start)."""
    return _default


def manual_seed(seed: int) -> Generator:
    """Reset the process-wide generator to (seed, offset 0) and return it."""
    _default.load_state_dict({"seed": _check_u64(seed, "seed", "manual_seed"), "offset": 0})
    return _default


def philox4x32_10(seed: int, offset: int, block: int) -> tuple[int, int, int, int]:
    """The four raw 32-bit words of block `block` of the stream (seed, offset)."""
    return tuple(_core.philox4x32_10(seed, offset, block))


__all__ = ["Generator", "default_generator", "manual_seed", "philox4x32_10"]
