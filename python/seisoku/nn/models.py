"""Ready-made models built from the native layers: a regularized MLP."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import _core
from ..random import Generator


def mlp(
    sizes: Sequence[int],
    *,
    activation: str = "relu",
    dropout: float = 0.0,
    input_dropout: float = 0.0,
    input_noise: float = 0.0,
    dtype: Any = "float32",
    device: str = "cpu",
    generator: Generator | None = None,
) -> _core.nn.Sequential:
    """A Sequential of fused Linear layers: sizes = (inputs, hidden..., outputs).

    Hidden layers use `activation` (default 'relu') and `dropout` (default 0); the last layer is
    linear (logits). input_dropout / input_noise (standard deviation, in the inputs' units)
    regularize the inputs themselves (default 0: off).
    """
    nn = _core.nn
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"[mlp] argument 'sizes' needs at least inputs and outputs, got {sizes}")
    layers: list[Any] = []
    if input_noise:
        layers.append(nn.GaussianNoise(input_noise, generator=generator))
    if input_dropout:
        layers.append(nn.Dropout(input_dropout, generator=generator))
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        layers.append(
            nn.Linear(
                a,
                b,
                activation=None if last else activation,
                dropout=0.0 if last else dropout,
                dtype=dtype,
                device=device,
                generator=generator,
            )
        )
    return nn.Sequential(*layers)
