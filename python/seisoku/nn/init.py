"""Seeded weight initialisers drawing from the Philox generator."""

from __future__ import annotations

import math
from typing import Any

from .._array import device_module, resolve_dtype
from ..random import Generator, default_generator


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight: (out, in) for Linear, (out, in, kh, kw) for Conv2d."""
    if len(shape) < 2:
        raise ValueError(f"fans need a weight of 2 or more dimensions, got shape {shape}")
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def he_normal(
    shape: tuple[int, ...],
    *,
    dtype: Any = "float32",
    device: str = "cpu",
    generator: Generator | None = None,
) -> Any:
    """N(0, 2 / fan_in): He et al. 2015, for ReLU-family layers."""
    fan_in, _ = fans(shape)
    gen = generator or default_generator()
    return gen.normal(shape, std=math.sqrt(2.0 / fan_in), dtype=dtype, device=device)


def glorot_uniform(
    shape: tuple[int, ...],
    *,
    dtype: Any = "float32",
    device: str = "cpu",
    generator: Generator | None = None,
) -> Any:
    """U(-a, a), a = sqrt(6 / (fan_in + fan_out)): Glorot and Bengio 2010."""
    fan_in, fan_out = fans(shape)
    a = math.sqrt(6.0 / (fan_in + fan_out))
    gen = generator or default_generator()
    return gen.uniform(shape, low=-a, high=a, dtype=dtype, device=device)


def zeros(shape: tuple[int, ...], *, dtype: Any = "float32", device: str = "cpu") -> Any:
    """An array of zeros (biases)."""
    return device_module(device).zeros(shape, dtype=resolve_dtype(dtype))


INITIALISERS = {"he": he_normal, "glorot": glorot_uniform}


def initialise(
    name: str,
    shape: tuple[int, ...],
    *,
    dtype: Any,
    device: str,
    generator: Generator | None,
) -> Any:
    """Weight array by initialiser name ('he' or 'glorot')."""
    if name not in INITIALISERS:
        raise ValueError(f"init must be one of {', '.join(INITIALISERS)}, got {name!r}")
    return INITIALISERS[name](shape, dtype=dtype, device=device, generator=generator)
