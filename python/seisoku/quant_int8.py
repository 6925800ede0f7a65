"""int8 inference and quantization-aware training (re-exported by seisoku.quant).

Numbers: a value v is stored as the int8 code q = clamp(rint(v / s), -127, 127) with a scale s
(float32), and q stands for q * s. Weights are symmetric per output row (per_channel=True) or per
tensor, s = max|w| / 127. Activations have one scale per tensor: from each batch (dynamic, s =
max|x| / 127) or fixed from calibration data (static: an observer's max|x| over the calibration
set, 'minmax', or a percentile of |x|, 'percentile', which ignores rare outliers).

quantize(model, calibration_x) turns a Sequential's Linear and Conv2d layers into QuantizedLinear
and QuantizedConv2d (native int8 x int8 -> int32 products with a fused rescale / bias / ReLU
epilogue; AVX-512 VNNI or AVX2 on the CPU, dp4a on CUDA), fusing a ReLU that follows them.
prepare_qat(model) builds a model for quantization-aware training (FakeQuantize before each
Linear, QATLinear with fake-quantized weights and the straight-through estimator) that shares
its parameters with the float model; quantize() converts it as well.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from . import _core
from . import nn as _nn
from ._array import is_cuda_array

Array = Any

_cnn = _core.nn
Int8Weight = _core.Int8Weight
QuantizedLinear = _cnn.QuantizedLinear
QuantizedConv2d = _cnn.QuantizedConv2d
FakeQuantize = _cnn.FakeQuantize
QATLinear = _cnn.QATLinear
quantize_int8 = _core.quantize_int8
int8_linear = _core.int8_linear
int8_matmul = _core.int8_matmul
int8_max_abs = _core.int8_max_abs
int8_scale_of = _core.int8_scale_of
int8_kernel = _core.int8_kernel
set_int8_kernel = _core.set_int8_kernel
int8_kernel_supported = _core.int8_kernel_supported
fake_quantize_int8 = _core.fake_quantize_int8
fake_quantize_int8_backward = _core.fake_quantize_int8_backward
int8_im2col = _core.int8_im2col
int8_rows_to_nchw = _core.int8_rows_to_nchw

ACTIVATION_MODES = ("static", "dynamic")
OBSERVERS = ("minmax", "percentile")
_QUANTIZABLE = (_nn.Linear, _nn.Conv2d, QATLinear)
_CALIBRATION_BATCH = 512


def _fail(argument: str, must: str, got: Any) -> None:
    raise ValueError(f"[quantize] argument '{argument}' must be {must}, got {got!r}")


class _Observer:
    """The statistic of |x| a static input scale comes from, accumulated over batches."""

    def __init__(self, kind: str, percentile: float) -> None:
        self.kind = kind
        self.percentile = percentile
        self.max = 0.0
        self.samples: list[np.ndarray] = []

    def update(self, x: Array) -> None:
        a = np.abs(np.asarray(x.get() if is_cuda_array(x) else x, dtype=np.float32)).ravel()
        if a.size == 0:
            return
        if not np.isfinite(a).all():
            raise ValueError(
                "[quantize] a calibration batch produced NaN or infinite activations "
                "(check the model's weights and 'calibration_x')"
            )
        self.max = max(self.max, float(a.max()))
        if self.kind == "percentile":
            self.samples.append(a)

    def value(self) -> float:
        if self.kind == "minmax" or not self.samples:
            return self.max
        return float(np.percentile(np.concatenate(self.samples), self.percentile))


def _flatten(model: Any) -> list[Any]:
    """The layers of a Sequential in order (nested Sequentials opened), or [model]."""
    if isinstance(model, _nn.Sequential):
        out: list[Any] = []
        for layer in model:
            out += _flatten(layer)
        return out
    return [model]


def _check_calibration(x: Any, first: Any) -> np.ndarray:
    if is_cuda_array(x):
        x = x.get()
    if not isinstance(x, np.ndarray):
        _fail("calibration_x", "a NumPy or CuPy float array", type(x).__name__)
    if x.dtype.kind != "f":
        _fail("calibration_x", "a float array", f"dtype {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0 or x.size == 0:
        _fail("calibration_x", "a non-empty batch (N, ...) with N >= 1", f"shape {x.shape}")
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x.ravel()))[0])
        _fail("calibration_x", "finite", f"{x.ravel()[bad]} at flat index {bad}")
    if isinstance(first, (_nn.Linear, QATLinear)):
        k = first.weight.shape[1]
        if x.ndim != 2 or x.shape[1] != k:
            _fail("calibration_x", f"of shape (N, {k}) for the first Linear", f"shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _calibrate(layers: list[Any], x: np.ndarray, targets: set[int], kind: str, pct: float):
    """Runs x through the layers (evaluation mode) and observes the input of each layer whose
    index is in targets; returns {index: statistic of |input|}."""
    observers = {i: _Observer(kind, pct) for i in targets}
    for b in range(0, x.shape[0], _CALIBRATION_BATCH):
        h = x[b : b + _CALIBRATION_BATCH]
        for i, layer in enumerate(layers):
            if i in observers:
                observers[i].update(h)
            h = layer.forward(h)
    return {i: o.value() for i, o in observers.items()}


def _relu_follows(layers: list[Any], i: int) -> bool:
    return i + 1 < len(layers) and type(layers[i + 1]) is _nn.ReLU


def _convert(layer: Any, per_channel: bool, relu: bool, scale: float) -> Any:
    activation = "relu" if relu else None
    if isinstance(layer, _nn.Conv2d):
        return QuantizedConv2d.from_conv2d(
            layer, per_channel, activation=activation, input_scale=scale
        )
    if isinstance(layer, QATLinear):
        w = Int8Weight(layer.weight.value, per_channel)
        b = layer.bias.value if layer.bias is not None else None
        act = activation or layer.activation
        return QuantizedLinear(w, b, activation=act, input_scale=scale)
    return QuantizedLinear.from_linear(layer, per_channel, activation=activation, input_scale=scale)


def _chain(layers: list[Any]) -> list[Any]:
    """Each QuantizedLinear right before a QuantizedLinear with a static input scale rebuilt to
    write int8 codes at that scale (its epilogue requantizes)."""
    out = list(layers)
    for j in range(len(out) - 1):
        a, b = out[j], out[j + 1]
        if isinstance(a, QuantizedLinear) and isinstance(b, QuantizedLinear) and b.input_scale > 0:
            out[j] = QuantizedLinear(
                a.weight,
                a.bias,
                activation=a.activation,
                input_scale=a.input_scale,
                output_scale=b.input_scale,
            )
    return out


def _fusable(layer: Any) -> bool:
    """Whether the layer's own activation leaves room to fuse a following ReLU (identity)."""
    return getattr(layer, "activation", None) in (None, "identity") or isinstance(layer, _nn.Conv2d)


def quantize(
    model: Any,
    calibration_x: Array | None = None,
    *,
    per_channel: bool = True,
    activation: str = "static",
    observer: str = "minmax",
    percentile: float = 99.99,
    chain: bool = True,
) -> Any:
    """A new model with the Linear, Conv2d and QATLinear layers replaced by int8 layers.

    model: a seisoku.nn.Sequential (nested ones are opened; the result is one Sequential of the
    same layers in order) or a single Linear / Conv2d. A ReLU right after a converted layer is
    fused into its epilogue; FakeQuantize layers (from prepare_qat) are dropped, their scales
    becoming the static input scales of the layer after them. Linear layers whose activation is
    not identity or relu, and every other layer (pooling, Flatten, Dropout, ...), stay as they
    are (the same objects, shared with the model, and like the result set to evaluation mode);
    the model's parameters are not changed.

    calibration_x: float array (N, ...) of model inputs (NumPy or CuPy; N >= 1, finite),
        required for activation='static' unless every converted layer follows a FakeQuantize.
    per_channel: one weight scale per output row (default True) or one per tensor.
    activation: 'static' (input scales fixed from calibration, default) or 'dynamic' (each
        batch's max|x| / 127; calibration_x unused).
    observer: 'minmax' (max|x| over the calibration set, default) or 'percentile' (that
        percentile of |x|: outliers clip instead of widening the scale).
    percentile: in (0, 100], default 99.99.
    chain: with static scales, an int8 Linear directly followed by another hands it int8 codes:
        its epilogue requantizes its output to the next layer's input scale, so no float32
        output is written and quantized again between them (default True; the results are the
        same bits either way). The last int8 layer, and any before a layer kept in float,
        writes float32.
    Returns a seisoku.nn.Sequential in evaluation mode (or the single converted layer).
    """
    if not isinstance(model, _nn.Module):
        _fail("model", "a seisoku.nn.Module", type(model).__name__)
    if activation not in ACTIVATION_MODES:
        _fail("activation", "'static' or 'dynamic'", activation)
    if observer not in OBSERVERS:
        _fail("observer", "'minmax' or 'percentile'", observer)
    if not isinstance(per_channel, (bool, np.bool_)):
        _fail("per_channel", "True or False", per_channel)
    if not isinstance(chain, (bool, np.bool_)):
        _fail("chain", "True or False", chain)
    if (
        not isinstance(percentile, numbers.Real)
        or isinstance(percentile, bool)
        or not 0.0 < float(percentile) <= 100.0
    ):
        _fail("percentile", "a number in (0, 100]", percentile)
    layers = _flatten(model)
    plan: list[tuple[int, Any]] = []  # (index, its FakeQuantize or None)
    for i, layer in enumerate(layers):
        if isinstance(layer, _QUANTIZABLE) and (
            isinstance(layer, _nn.Conv2d)
            or getattr(layer, "activation", None) in (None, "identity", "relu")
        ):
            if isinstance(layer, _nn.Linear) and layer.p > 0 and layer.dropout_mode == "lecture":
                continue
            fq = layers[i - 1] if i > 0 and isinstance(layers[i - 1], FakeQuantize) else None
            plan.append((i, fq))
    if not plan:
        raise ValueError(
            "[quantize] argument 'model' has nothing to quantize: no Linear (activation None or "
            f"'relu'), Conv2d or QATLinear layer in {type(model).__name__}"
        )
    scales = {i: 0.0 for i, _ in plan}
    if activation == "static":
        need = {i for i, fq in plan if fq is None or calibration_x is not None}
        if need and calibration_x is None:
            _fail("calibration_x", "a calibration batch for activation='static'", None)
        if need:
            x = _check_calibration(calibration_x, layers[0])
            was_training = [m.training for m in layers]
            for m in layers:
                m.eval()
            try:
                stats = _calibrate(layers, x, need, observer, float(percentile))
            finally:
                for m, t in zip(layers, was_training, strict=True):
                    m._set_training(t)
            for i, v in stats.items():
                scales[i] = int8_scale_of(v)
        for i, fq in plan:
            if i not in need:
                scales[i] = fq.scale
    out: list[Any] = []
    converted = {i for i, _ in plan}
    skip = set()
    for i, layer in enumerate(layers):
        if i in skip:
            continue
        if isinstance(layer, FakeQuantize) and i + 1 in converted:
            continue
        if i in converted:
            relu = _relu_follows(layers, i) and _fusable(layer)
            if relu:
                skip.add(i + 1)
            out.append(_convert(layer, bool(per_channel), relu, scales[i]))
        else:
            out.append(layer)
    if chain:
        out = _chain(out)
    result = _nn.Sequential(*out) if isinstance(model, _nn.Sequential) or len(out) > 1 else out[0]
    result.eval()
    return result


def prepare_qat(model: Any, *, per_channel: bool = True, momentum: float = 0.1) -> Any:
    """A model for quantization-aware training that shares its parameters with `model`.

    Each Linear (activation None or 'relu', no dropout) of a Sequential becomes FakeQuantize
    (its input fake-quantized to int8 with an observed scale, exponential moving average with
    `momentum`, default 0.1) followed by QATLinear (the weight fake-quantized per output row,
    per_channel=True, or per tensor); other layers are kept (the same objects). Fine-tune the
    returned model (its parameters are the model's), then quantize() it: the FakeQuantize scales
    become static input scales. Gradients use the straight-through estimator.
    """
    if not isinstance(model, _nn.Module):
        raise ValueError(
            "[prepare_qat] argument 'model' must be a seisoku.nn.Module, got "
            f"{type(model).__name__}"
        )
    out: list[Any] = []
    found = False
    for layer in _flatten(model):
        if (
            type(layer) is _nn.Linear
            and layer.activation in ("identity", "relu")
            and layer.p == 0
            and layer.weight.dtype == np.float32
        ):
            act = "relu" if layer.activation == "relu" else None
            out += [
                FakeQuantize(momentum),
                QATLinear(layer.weight, layer.bias, activation=act, per_channel=per_channel),
            ]
            found = True
        else:
            out.append(layer)
    if not found:
        raise ValueError(
            "[prepare_qat] argument 'model' has no float32 Linear (activation None or 'relu', "
            "no dropout) to train for quantization"
        )
    return _nn.Sequential(*out)


def model_nbytes(model: Any) -> int:
    """Bytes a model stores: int8 codes, scales and float32 biases of its quantized layers,
    plus the float parameters of every other layer."""
    total = 0
    for layer in _flatten(model):
        if isinstance(layer, (QuantizedLinear, QuantizedConv2d)):
            total += int(layer.nbytes)
        else:
            total += sum(
                int(np.dtype(p.dtype).itemsize) * int(np.prod(p.shape)) for p in layer.parameters()
            )
    return total


def int8_summary(model: Any, train_x: Array, test_x: Array, test_y: Array) -> dict[str, Any]:
    """The int8 figures of a trained classifier: the model quantized (static, per channel,
    calibrated on train_x), its test accuracy and stored bytes (model_bytes) beside the float32
    model's (model_bytes_float32)."""
    host = [np.asarray(a.get() if is_cuda_array(a) else a) for a in (train_x, test_x, test_y)]
    q = quantize(model, host[0])
    logits = np.concatenate(
        [q(host[1][b : b + _CALIBRATION_BATCH]) for b in range(0, len(host[1]), _CALIBRATION_BATCH)]
    )
    accuracy = float(np.mean(np.argmax(logits, axis=1) == host[2]))
    floats = sum(
        int(np.dtype(p.dtype).itemsize) * int(np.prod(p.shape)) for p in model.parameters()
    )
    return {
        "test_accuracy_quantized": accuracy,
        "model_bytes": model_nbytes(q),
        "model_bytes_float32": floats,
    }


def int8_recipe_summary(model: Any, recipe: Any) -> dict[str, Any]:
    """int8_summary of a model trained by seisoku.recipes.run(recipe) (`seisoku train
    --quantize int8`): calibrated on the recipe's training split, tested on its test split,
    with "quantize": "int8"."""
    from .recipes import _split_digits

    sets = _split_digits(recipe)
    return {"quantize": "int8", **int8_summary(model, sets["train"][0], *sets["test"])}


__all__ = [
    "ACTIVATION_MODES",
    "OBSERVERS",
    "FakeQuantize",
    "Int8Weight",
    "QATLinear",
    "QuantizedConv2d",
    "QuantizedLinear",
    "fake_quantize_int8",
    "fake_quantize_int8_backward",
    "int8_im2col",
    "int8_kernel",
    "int8_kernel_supported",
    "int8_linear",
    "int8_matmul",
    "int8_max_abs",
    "int8_recipe_summary",
    "int8_rows_to_nchw",
    "int8_scale_of",
    "int8_summary",
    "model_nbytes",
    "prepare_qat",
    "quantize",
    "quantize_int8",
    "set_int8_kernel",
]
