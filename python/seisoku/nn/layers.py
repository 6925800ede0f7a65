"""Layers: forward and backward on NumPy or CuPy arrays, each running native ops.

Stochastic layers (dropout, DropConnect, noise) take a fresh Philox offset from their
generator (default: seisoku.random.default_generator()) at every training forward and keep
it for the backward, which draws the same mask again instead of storing it.
"""

from __future__ import annotations

import math
from typing import Any

from .. import _core, ops
from .._array import array_module, is_cuda_array
from ..random import Generator, default_generator
from . import _conv, _pool
from . import functional as F  # noqa: N812
from .init import initialise, zeros
from .module import Module, Parameter, writing_grads

Array = Any

DROPOUT_MODES = ("inverted", "seed")


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _pair(value: Any, name: str, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    ok = (
        isinstance(pair, (tuple, list))
        and len(pair) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in pair)
    )
    if not ok:
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_mode(mode: str) -> str:
    if mode not in DROPOUT_MODES:
        raise ValueError(f"dropout_mode must be one of {', '.join(DROPOUT_MODES)}, got {mode!r}")
    return mode


def _dropout_scales(p: float, mode: str, training: bool) -> tuple[float, float, float]:
    """(p in use, scale of kept units, factor applied at evaluation)."""
    if training:
        return p, (1.0 / (1.0 - p) if mode == "inverted" else 1.0), 1.0
    return 0.0, 1.0, (1.0 - p if mode == "seed" else 1.0)


class Linear(Module):
    """y = dropout(act(x @ W.T + b)), the epilogue fused into one pass over the output.

    On the CPU, a product whose left operand is at most 40% nonzeros (the input in forward;
    the gradient behind the epilogue in backward, as after ReLU and dropout) multiplies its
    nonzero entries only; zeros then contribute nothing even where a weight is Inf or NaN.

    Args:
        in_features, out_features: sizes; weight shape (out_features, in_features).
        bias: learn a bias (default True; biases are exempt from norm penalties).
        activation: None, 'relu', 'leaky_relu', 'tanh' or 'sigmoid' (default None).
        slope: leaky_relu negative slope (default 0.01).
        dropout: probability of dropping an output unit in training (default 0).
        dropout_mode: 'inverted' (scale kept units by 1 / (1 - p) in training; default) or
            'seed' (no scaling in training, outputs times (1 - p) at evaluation).
        init: 'he' (default for relu-family activations) or 'glorot' (default otherwise).
        weight: an existing Parameter to share (its shape must match).
        dtype, device: of new parameters (default float32 on cpu).
        generator: Philox generator for initialisation and dropout masks.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        activation: str | None = None,
        slope: float = 0.01,
        dropout: float = 0.0,
        dropout_mode: str = "inverted",
        init: str | None = None,
        weight: Parameter | None = None,
        dtype: Any = "float32",
        device: str = "cpu",
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        self.activation = F.check_activation(activation)
        self.slope = float(slope)
        self.p = F.check_probability(dropout, "dropout")
        self.dropout_mode = _check_mode(dropout_mode)
        self.generator = generator
        if weight is None:
            init = init or ("he" if self.activation in ("relu", "leaky_relu") else "glorot")
            shape = (self.out_features, self.in_features)
            value = initialise(init, shape, dtype=dtype, device=device, generator=generator)
            weight = Parameter(value, "weight")
        elif weight.shape != (self.out_features, self.in_features):
            raise ValueError(
                f"shared weight has shape {weight.shape}, expected "
                f"{(self.out_features, self.in_features)}"
            )
        self.weight = weight
        dt, dev = weight.dtype, weight.device
        self.bias = (
            Parameter(zeros((self.out_features,), dtype=dt, device=dev), "bias") if bias else None
        )

    def _gen(self) -> Generator:
        return self.generator or default_generator()

    def forward(self, x: Array) -> Array:
        p, scale, eval_factor = _dropout_scales(self.p, self.dropout_mode, self.training)
        gen = self._gen()
        offset = gen.next_offset() if p > 0 else 0
        bias = self.bias.value if self.bias is not None else None
        out = None
        if getattr(x, "ndim", 0) == 2 and x.shape[1] == self.in_features:
            out = self._buffer("y", (x.shape[0], self.out_features), x)
        y = F.linear(
            x,
            self.weight.value,
            bias,
            activation=self.activation,
            slope=self.slope,
            dropout_p=p,
            dropout_scale=scale,
            seed=gen.seed,
            offset=offset,
            out=out,
        )
        self._saved = (x, y, p, scale, gen.seed, offset, eval_factor)
        return y if eval_factor == 1.0 else ops.scale(eval_factor, y)

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        x, y, p, scale, seed, offset, eval_factor = self._saved
        if eval_factor != 1.0:
            grad = ops.scale(eval_factor, grad)
        if self.activation == "identity" and p == 0:
            grad_z = grad
        else:
            grad_z = F.bias_act_dropout_backward(
                grad,
                y,
                activation=self.activation,
                slope=self.slope,
                dropout_p=p,
                dropout_scale=scale,
                seed=seed,
                offset=offset,
                out=self._buffer("grad_z", tuple(y.shape), y),
            )
        with writing_grads(self.weight, self.bias) as accumulate:
            return F.linear_backward(
                grad_z,
                x,
                self.weight.value,
                need_grad_x=need_input_grad,
                grad_weight=self.weight.grad,
                grad_bias=self.bias.grad if self.bias is not None else None,
                accumulate=accumulate,
                grad_x=self._buffer("grad_x", tuple(x.shape), x) if need_input_grad else None,
            )

    def extra_repr(self) -> str:
        extra = f", activation={self.activation!r}" if self.activation != "identity" else ""
        extra += f", dropout={self.p}" if self.p else ""
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}{extra}"


class TiedLinear(Module):
    """A decoder layer that uses another Linear's weight transposed: y = act(x @ W + b).

    The weight is the same Parameter (gradients from both uses accumulate into it); only
    the bias is this layer's own.
    """

    def __init__(self, source: Linear, bias: bool = True, *, activation: str | None = None) -> None:
        super().__init__()
        if not isinstance(source, Linear):
            raise ValueError(f"TiedLinear ties to a Linear, got {type(source).__name__}")
        self.weight = source.weight
        self.activation = F.check_activation(activation)
        out = source.in_features
        self.bias = (
            Parameter(zeros((out,), dtype=self.weight.dtype, device=self.weight.device), "bias")
            if bias
            else None
        )

    def forward(self, x: Array) -> Array:
        z = ops.gemm(x, self.weight.value)
        bias = self.bias.value if self.bias is not None else None
        y = F.bias_act_dropout(z, bias, activation=self.activation, out=z)
        self._saved = (x, y)
        return y

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        x, y = self._saved
        grad_z = (
            grad
            if self.activation == "identity"
            else F.bias_act_dropout_backward(grad, y, activation=self.activation)
        )
        ops.gemm(x, grad_z, self.weight.grad, trans_a=True, beta=1.0)
        if self.bias is not None:
            _core.column_sum(grad_z, self.bias.grad, True)
        return ops.gemm(grad_z, self.weight.value, trans_b=True) if need_input_grad else None


class DropConnect(Module):
    """A Linear whose weights are masked per mini-batch in training (Wan et al. 2013).

    Training uses W * M, M ~ Bernoulli(1 - p) drawn once per forward for the whole batch
    (no rescaling). Evaluation uses either the expected weights (1 - p) W ('mean', default)
    or the moment-matched Gaussian approximation of the pre-activation, averaged over
    `samples` draws ('gaussian').
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        p: float = 0.5,
        bias: bool = True,
        *,
        activation: str | None = None,
        inference: str = "mean",
        samples: int = 64,
        init: str | None = None,
        dtype: Any = "float32",
        device: str = "cpu",
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        if inference not in ("mean", "gaussian"):
            raise ValueError(f"inference must be 'mean' or 'gaussian', got {inference!r}")
        self.p = F.check_probability(p, "p")
        self.inference = inference
        self.samples = _positive_int(samples, "samples")
        self.activation = F.check_activation(activation)
        self.generator = generator
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        init = init or ("he" if self.activation in ("relu", "leaky_relu") else "glorot")
        shape = (self.out_features, self.in_features)
        w = initialise(init, shape, dtype=dtype, device=device, generator=generator)
        self.weight = Parameter(w, "weight")
        self.bias = (
            Parameter(zeros((self.out_features,), dtype=w.dtype, device=device), "bias")
            if bias
            else None
        )

    def _gen(self) -> Generator:
        return self.generator or default_generator()

    def forward(self, x: Array) -> Array:
        bias = self.bias.value if self.bias is not None else None
        w = self.weight.value
        if not self.training:
            keep = 1.0 - self.p
            if self.inference == "mean" or self.p == 0:
                return F.linear(x, ops.scale(keep, w), bias, activation=self.activation)
            return self._gaussian(x, w, bias, keep)
        gen = self._gen()
        offset = gen.next_offset()
        masked = F.dropout(w, self.p, gen.seed, offset, scale=1.0)
        y = F.linear(x, masked, bias, activation=self.activation)
        self._saved = (x, y, masked, gen.seed, offset)
        return y

    def _gaussian(self, x: Array, w: Array, bias: Array | None, keep: float) -> Array:
        xp = array_module(x)
        mean = keep * (x @ w.T)
        if bias is not None:
            mean += bias
        std = xp.sqrt(keep * (1.0 - keep) * ((x * x) @ (w * w).T))
        gen = self._gen()
        total = xp.zeros_like(mean)
        device = "cuda" if is_cuda_array(x) else "cpu"
        for _ in range(self.samples):
            eps = gen.normal(mean.shape, dtype=mean.dtype.name, device=device)
            total += F.activation(mean + std * eps, self.activation)
        return total / self.samples

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        if not self.training:
            raise RuntimeError("DropConnect.backward is defined for training mode only")
        x, y, masked, seed, offset = self._saved
        grad_z = (
            grad
            if self.activation == "identity"
            else F.bias_act_dropout_backward(grad, y, activation=self.activation)
        )
        grad_masked = array_module(masked).empty_like(masked)
        grad_x = F.linear_backward(
            grad_z, x, masked, need_grad_x=need_input_grad, grad_weight=grad_masked
        )
        F.dropout(grad_masked, self.p, seed, offset, scale=1.0, out=grad_masked)
        ops.axpy(1.0, grad_masked, self.weight.grad)
        if self.bias is not None:
            _core.column_sum(grad_z, self.bias.grad, True)
        return grad_x

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, p={self.p}, inference={self.inference!r}"


class Dropout(Module):
    """Drop units with probability p in training.

    mode 'inverted' (default) scales kept units by 1 / (1 - p) and is the identity at
    evaluation; mode 'seed' (the lecture's form) does not scale in training and multiplies
    by (1 - p) at evaluation.
    """

    def __init__(self, p: float = 0.5, mode: str = "inverted", generator: Generator | None = None):
        super().__init__()
        self.p = F.check_probability(p, "p")
        self.mode = _check_mode(mode)
        self.generator = generator

    def forward(self, x: Array) -> Array:
        p, scale, eval_factor = _dropout_scales(self.p, self.mode, self.training)
        if p == 0:
            self._saved = None
            return x if eval_factor == 1.0 else ops.scale(eval_factor, x)
        gen = self.generator or default_generator()
        offset = gen.next_offset()
        self._saved = (p, scale, gen.seed, offset)
        out = self._buffer("y", getattr(x, "shape", ()), x)
        return F.dropout(x, p, gen.seed, offset, scale, out=out)

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        if self._saved is None:
            _, _, eval_factor = _dropout_scales(self.p, self.mode, False)
            return grad if self.training or eval_factor == 1.0 else ops.scale(eval_factor, grad)
        p, scale, seed, offset = self._saved
        out = self._buffer("grad_x", getattr(grad, "shape", ()), grad)
        return F.dropout(grad, p, seed, offset, scale, out=out)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode!r}"


class GaussianNoise(Module):
    """Add N(0, std**2) noise in training (inputs: noise injection / denoising; hidden
    units: noise robustness); the identity at evaluation."""

    def __init__(self, std: float, generator: Generator | None = None) -> None:
        super().__init__()
        if isinstance(std, bool) or not isinstance(std, (int, float)) or not (0 <= std < math.inf):
            raise ValueError(f"std must be a finite number >= 0, got {std!r}")
        self.std = float(std)
        self.generator = generator

    def forward(self, x: Array) -> Array:
        if not self.training or self.std == 0:
            return x
        gen = self.generator or default_generator()
        return F.gaussian_noise(x, self.std, gen.seed, gen.next_offset())

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        return grad

    def extra_repr(self) -> str:
        return f"std={self.std}"


class Activation(Module):
    """An elementwise activation; backward uses the stored output."""

    name = "identity"

    def __init__(self, slope: float = 0.01) -> None:
        super().__init__()
        self.slope = float(slope)

    def forward(self, x: Array) -> Array:
        out = self._buffer("y", getattr(x, "shape", ()), x)
        self._y = F.activation(x, self.name, self.slope, out=out)
        return self._y

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        out = self._buffer("grad_x", self._y.shape, self._y)
        return F.activation_backward(grad, self._y, self.name, self.slope, out=out)


class Identity(Activation):
    name = "identity"


class ReLU(Activation):
    name = "relu"


class LeakyReLU(Activation):
    name = "leaky_relu"

    def extra_repr(self) -> str:
        return f"slope={self.slope}"


class Tanh(Activation):
    name = "tanh"


class Sigmoid(Activation):
    name = "sigmoid"


class Softmax(Module):
    """Softmax over the last axis."""

    def forward(self, x: Array) -> Array:
        self._y = F.softmax(x)
        return self._y

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        return F.softmax_backward(grad, self._y)


class Flatten(Module):
    """(N, ...) -> (N, prod(...))."""

    def forward(self, x: Array) -> Array:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        return grad.reshape(self._shape)


class ActivityRegularization(Module):
    """The identity in forward; in backward adds the gradient of an activity penalty on its
    input, lam / N * sum|x| (ord 1, sparse representations) or lam / N * sum x**2 (ord 2),
    and records the penalty's value (see Module.penalty)."""

    def __init__(self, lam: float, ord: int = 1) -> None:
        super().__init__()
        if not (isinstance(lam, (int, float)) and 0 <= lam < math.inf):
            raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
        if ord not in (1, 2):
            raise ValueError(f"ord must be 1 or 2, got {ord!r}")
        self.lam = float(lam)
        self.ord = ord
        self._value: Any = 0.0

    def forward(self, x: Array) -> Array:
        self._x = x
        return x

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        grad = grad.copy()
        self._value = F.activity_penalty(self._x, self.lam, self.ord, grad)
        return grad

    def _own_penalty(self) -> float:
        return float(self._value)

    def extra_repr(self) -> str:
        return f"lam={self.lam}, ord={self.ord}"


class Tie(Module):
    """Soft parameter tying: the penalty lam * ||a - b||**2 between two parameters of one
    shape. Attach it to a model (model.tie = Tie(a, b, lam)); model.apply_penalties() adds
    its gradients and reports it."""

    def __init__(self, a: Parameter, b: Parameter, lam: float) -> None:
        super().__init__()
        if a.shape != b.shape:
            raise ValueError(f"tied parameters need one shape, got {a.shape} and {b.shape}")
        if not (isinstance(lam, (int, float)) and 0 <= lam < math.inf):
            raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
        object.__setattr__(self, "a", a)  # not registered: they belong to the layers
        object.__setattr__(self, "b", b)
        self.lam = float(lam)
        self._value: Any = 0.0

    def _apply_own_penalties(self) -> None:
        self._value = F.tying_penalty(
            self.a.value, self.b.value, self.lam, self.a.grad, self.b.grad
        )

    def _own_penalty(self) -> float:
        return float(self._value)

    def extra_repr(self) -> str:
        return f"lam={self.lam}"


class Conv2d(Module):
    """2-D convolution over NCHW inputs; weight (out_channels, in_channels, kh, kw).

    kernel_size, stride and padding are an int or an (h, w) pair (1-D signals: 1 x k).
    A `weight` Parameter can be passed to share filters between layers (the lecture's
    example of parameter sharing); init defaults to 'he'.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        bias: bool = True,
        *,
        init: str = "he",
        weight: Parameter | None = None,
        dtype: Any = "float32",
        device: str = "cpu",
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.out_channels = _positive_int(out_channels, "out_channels")
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        if weight is None:
            value = initialise(init, shape, dtype=dtype, device=device, generator=generator)
            weight = Parameter(value, "weight")
        elif weight.shape != shape:
            raise ValueError(f"shared weight has shape {weight.shape}, expected {shape}")
        self.weight = weight
        self.bias = (
            Parameter(zeros((self.out_channels,), dtype=weight.dtype, device=weight.device), "bias")
            if bias
            else None
        )

    def forward(self, x: Array) -> Array:
        self._x = x
        bias = self.bias.value if self.bias is not None else None
        w = self.weight.value
        out = self._buffer("y", _conv.conv2d_shape(x, w, self.stride, self.padding), x)
        return _conv.conv2d(x, w, bias, stride=self.stride, padding=self.padding, out=out)

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        with writing_grads(self.weight, self.bias) as accumulate:
            grad_x, _, _ = _conv.conv2d_backward(
                grad,
                self._x,
                self.weight.value,
                stride=self.stride,
                padding=self.padding,
                need_grad_x=need_input_grad,
                grad_weight=self.weight.grad,
                grad_bias=self.bias.grad if self.bias is not None else None,
                need_grad_bias=self.bias is not None,
                accumulate=accumulate,
                grad_x=self._buffer("grad_x", self._x.shape, self._x) if need_input_grad else None,
            )
        return grad_x

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )


class MaxPool2d(Module):
    """Max pooling over NCHW inputs (stride defaults to the kernel size)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)

    def forward(self, x: Array) -> Array:
        self._shape = x.shape
        args = (self.kernel_size, self.stride, self.padding)
        shape = _pool.pool2d_shape("max_pool2d", x, *args)
        out, self._indices = _pool.max_pool2d(
            x,
            *args,
            out=self._buffer("y", shape, x),
            indices=self._buffer("indices", shape, x, "int64"),
        )
        return out

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        grad_x = self._buffer("grad_x", self._shape, grad)
        return _pool.max_pool2d_backward(grad, self._indices, self._shape, grad_x)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Average pooling over NCHW inputs (stride defaults to the kernel size)."""

    def __init__(
        self, kernel_size: Any, stride: Any = None, padding: Any = 0, count_include_pad: bool = True
    ) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x: Array) -> Array:
        self._shape = x.shape
        return _pool.avg_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.count_include_pad
        )

    def backward(self, grad: Array, need_input_grad: bool = True) -> Array | None:
        return _pool.avg_pool2d_backward(
            grad, self._shape, self.kernel_size, self.stride, self.padding, self.count_include_pad
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
