"""Ready-made models: a regularized MLP and a (denoising) autoencoder with tied weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..random import Generator
from .layers import GaussianNoise, Linear, TiedLinear
from .module import Module, Sequential

Array = Any


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
) -> Sequential:
    """A Sequential of fused Linear layers: sizes = (inputs, hidden..., outputs).

    Hidden layers use `activation` and `dropout`; the last layer is linear (logits).
    input_dropout / input_noise regularize the inputs themselves.
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least inputs and outputs, got {sizes}")
    layers: list[Module] = []
    if input_noise:
        layers.append(GaussianNoise(input_noise, generator=generator))
    if input_dropout:
        from .layers import Dropout

        layers.append(Dropout(input_dropout, generator=generator))
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        layers.append(
            Linear(
                a,
                b,
                activation=None if last else activation,
                dropout=0.0 if last else dropout,
                dtype=dtype,
                device=device,
                generator=generator,
            )
        )
    return Sequential(*layers)


class AutoEncoder(Module):
    """Encoder Linear layers down to a code, decoder back up.

    Args:
        sizes: (inputs, hidden..., code).
        activation: of every layer but the reconstruction (default 'relu').
        output_activation: of the reconstruction (default 'sigmoid', for inputs in [0, 1]).
        tied: decoder weights are the encoder's transposed (default True).
        noise_std: Gaussian noise on the input in training: a denoising autoencoder
            (default 0).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        activation: str = "relu",
        output_activation: str | None = "sigmoid",
        tied: bool = True,
        noise_std: float = 0.0,
        dtype: Any = "float32",
        device: str = "cpu",
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least inputs and a code size, got {sizes}")
        self.noise = GaussianNoise(noise_std, generator=generator)
        enc = [
            Linear(a, b, activation=activation, dtype=dtype, device=device, generator=generator)
            for a, b in zip(sizes[:-1], sizes[1:])
        ]
        self.encoder = Sequential(*enc)
        dec: list[Module] = []
        for i, layer in enumerate(reversed(enc)):
            act = output_activation if i == len(enc) - 1 else activation
            if tied:
                dec.append(TiedLinear(layer, activation=act))
            else:
                dec.append(
                    Linear(
                        layer.out_features,
                        layer.in_features,
                        activation=act,
                        dtype=dtype,
                        device=device,
                        generator=generator,
                    )
                )
        self.decoder = Sequential(*dec)

    def encode(self, x: Array) -> Array:
        """The code of x (no noise)."""
        return self.encoder.forward(x)

    def forward(self, x: Array) -> Array:
        return self.decoder.forward(self.encoder.forward(self.noise.forward(x)))

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        g = self.decoder.backward(grad)
        return self.encoder.backward(g, need_input_grad=need_input_grad)
