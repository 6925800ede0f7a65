"""Fixed-point quantization: weights stored as signed integer codes of a Qm.n format.

A format Qm.n (FixedPoint(int_bits=m, frac_bits=n)) has m integer bits, the sign bit
included, and n fraction bits; m + n is 8, 16 or 32, so the codes are int8, int16 or int32
and a code c stands for c * 2**-n. The lecture's example: the float32 weight
0.12492940522023 in Q8.8, truncated, is the code 31 = 0000 0000 . 0001 1111, i.e. 0.12109375.

quantize_fixed and dequantize_fixed are the native kernels (C++ and CUDA, bit-identical;
NumPy arrays on the CPU, CuPy arrays on the GPU). quantize_parameters stores a whole model's
parameters as codes (a QuantizedState: half the bytes of float32 in Q8.8), which
apply_quantized loads back into a model and save/load keep in an .npz file.

int8 inference (symmetric per-channel or per-tensor weights, dynamic or calibrated static
activation scales, native int8 kernels) and quantization-aware training live in
seisoku.quant_int8 and are re-exported here: quantize(model, calibration_x), prepare_qat(model),
QuantizedLinear, QuantizedConv2d, FakeQuantize, QATLinear, Int8Weight and the int8 ops.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from ._array import is_cuda_array
from ._state_file import load_state, save_state
from .random import default_generator

Array = Any  # numpy.ndarray or cupy.ndarray

ROUNDINGS = ("truncate", "nearest", "stochastic")
_KIND = "quantized_state"


@dataclass(frozen=True)
class FixedPoint:
    """The fixed-point format Q(int_bits).(frac_bits).

    int_bits counts the sign bit (>= 1), frac_bits >= 0, and int_bits + frac_bits is 8, 16
    or 32 (a ValueError naming the argument otherwise). Defaults: Q8.8, the lecture's 16-bit
    format.
    """

    int_bits: int = 8
    frac_bits: int = 8

    def __post_init__(self) -> None:
        _core.fixed_point_dtype(self.int_bits, self.frac_bits)  # validates

    @property
    def bits(self) -> int:
        """Total width of a code in bits (8, 16 or 32)."""
        return self.int_bits + self.frac_bits

    @property
    def dtype(self) -> np.dtype:
        """NumPy dtype of the codes: int8, int16 or int32."""
        return np.dtype(_core.fixed_point_dtype(self.int_bits, self.frac_bits))

    @property
    def scale(self) -> float:
        """2**frac_bits: codes per unit."""
        return float(2.0**self.frac_bits)

    @property
    def step(self) -> float:
        """2**-frac_bits: the value of one code step (the resolution)."""
        return float(2.0**-self.frac_bits)

    @property
    def code_min(self) -> int:
        """Smallest code, -2**(bits - 1)."""
        return -(2 ** (self.bits - 1))

    @property
    def code_max(self) -> int:
        """Largest code, 2**(bits - 1) - 1."""
        return 2 ** (self.bits - 1) - 1

    @property
    def min(self) -> float:
        """Smallest representable value, -2**(int_bits - 1)."""
        return self.code_min * self.step

    @property
    def max(self) -> float:
        """Largest representable value, 2**(int_bits - 1) - 2**-frac_bits."""
        return self.code_max * self.step

    def __str__(self) -> str:
        return f"Q{self.int_bits}.{self.frac_bits}"


def _is_scalar(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _stream(seed: int | None, offset: int | None, count: int = 1) -> tuple[int, int]:
    """(seed, first offset) of a stochastic draw: the default generator's seed and its next
    `count` offsets where not given; offset 0 for a given seed without an offset."""
    gen = default_generator()
    if seed is None:
        seed = gen.seed
        if offset is None:
            offset = gen.next_offset(count)
    return seed, 0 if offset is None else offset


def quantize_fixed(
    x: Array | float,
    int_bits: int = 8,
    frac_bits: int = 8,
    rounding: str = "nearest",
    *,
    seed: int | None = None,
    offset: int | None = None,
    out: Array | None = None,
) -> Array:
    """Signed fixed-point codes of x in the format Q(int_bits).(frac_bits).

    code = round(x * 2**frac_bits), clamped to [-2**(bits - 1), 2**(bits - 1) - 1] (bits =
    int_bits + frac_bits, 8, 16 or 32: int8, int16 or int32 codes). rounding: "truncate"
    (floor, toward -inf: the two's-complement bits of x cut after frac_bits), "nearest"
    (default; ties to even) or "stochastic" (floor(x * 2**frac_bits + u), u uniform in [0, 1)
    from the Philox stream (seed, offset); unbiased, reproducible, the same codes on CPU and
    GPU for any thread count). Without seed and offset a stochastic call takes the default
    generator's seed and next offset; a seed without an offset uses offset 0.

    x: float32 or float64 array (NumPy or CuPy, C-contiguous) or a real scalar (as float64;
    a scalar gives a NumPy integer). NaN or infinite elements are a ValueError naming 'x'.
    out: preallocated codes of x's shape and the format's dtype (default: a new array).
    Returns the codes.
    """
    scalar = _is_scalar(x)
    if scalar:
        x = np.asarray(x if isinstance(x, np.floating) else float(x))
    if rounding == "stochastic":
        seed, offset = _stream(seed, offset)
    result = _core.quantize_fixed(
        x,
        int_bits,
        frac_bits,
        rounding,
        0 if seed is None else seed,
        0 if offset is None else offset,
        out,
    )
    return result[()] if scalar and out is None else result


def dequantize_fixed(
    codes: Array | int, frac_bits: int, dtype: Any = "float32", out: Array | None = None
) -> Array:
    """Values of fixed-point codes: codes * 2**-frac_bits.

    codes: int8, int16 or int32 array (NumPy or CuPy) or an integer scalar (a Python int is
    taken as an int32 code); frac_bits in [0, bits - 1]. dtype: float32 (default) or float64
    of the result, unless out (float32 or float64, codes' shape) is given. Exact, except that
    int32 codes beyond 2**24 in magnitude round to nearest even in float32.
    """
    scalar = _is_scalar(codes)
    if scalar:
        if isinstance(codes, np.integer):
            codes = np.asarray(codes)
        elif isinstance(codes, numbers.Integral) and -(2**31) <= codes < 2**31:
            codes = np.asarray(codes, dtype=np.int32)
        else:
            raise ValueError(
                "[dequantize_fixed] argument 'codes' must be an int8, int16 or int32 array or "
                f"an int in [-2**31, 2**31), got {codes!r}"
            )
    result = _core.dequantize_fixed(codes, frac_bits, dtype, out)
    return result[()] if scalar and out is None else result


def fixed_point_error(
    x: Array, int_bits: int = 8, frac_bits: int = 8, rounding: str = "nearest"
) -> dict[str, float]:
    """How well x survives a round trip through the format (NumPy arrays): the largest and
    mean absolute error of dequantize_fixed(quantize_fixed(x)) in x's units, and the fraction
    of elements that saturated (their code at either end of the range)."""
    fmt = FixedPoint(int_bits, frac_bits)
    codes = quantize_fixed(x, int_bits, frac_bits, rounding)
    back = dequantize_fixed(codes, frac_bits, np.float64)
    err = np.abs(np.asarray(back) - np.asarray(x, dtype=np.float64))
    c = np.asarray(codes)
    return {
        "max_abs_error": float(err.max()) if err.size else 0.0,
        "mean_abs_error": float(err.mean()) if err.size else 0.0,
        "saturated": float(np.mean((c == fmt.code_min) | (c == fmt.code_max))) if c.size else 0.0,
    }


@dataclass
class QuantizedState:
    """A model's parameters as fixed-point codes (host NumPy arrays) of one format.

    codes: name -> codes (the format's dtype); dtypes: name -> the parameter's float dtype
    name, restored by dequantize(); rounding: how the codes were made.
    """

    format: FixedPoint
    codes: dict[str, np.ndarray]
    dtypes: dict[str, str]
    rounding: str = "nearest"

    def __post_init__(self) -> None:
        if not isinstance(self.format, FixedPoint):
            raise ValueError(f"[QuantizedState] format must be a FixedPoint, got {self.format!r}")
        if set(self.codes) != set(self.dtypes):
            raise ValueError(
                "[QuantizedState] codes and dtypes must name the same parameters, got "
                f"{sorted(self.codes)} and {sorted(self.dtypes)}"
            )
        for name, c in self.codes.items():
            if not isinstance(c, np.ndarray) or c.dtype != self.format.dtype:
                got = c.dtype if isinstance(c, np.ndarray) else type(c).__name__
                raise ValueError(
                    f"[QuantizedState] codes[{name!r}] must be a {self.format.dtype} array "
                    f"(the codes of {self.format}), got {got}"
                )
            if self.dtypes[name] not in ("float32", "float64"):
                raise ValueError(
                    f"[QuantizedState] dtypes[{name!r}] must be 'float32' or 'float64', "
                    f"got {self.dtypes[name]!r}"
                )

    @property
    def nbytes(self) -> int:
        """Bytes of the codes."""
        return int(sum(c.nbytes for c in self.codes.values()))

    @property
    def float_nbytes(self) -> int:
        """Bytes of the same parameters in their float dtypes."""
        return int(sum(c.size * np.dtype(self.dtypes[n]).itemsize for n, c in self.codes.items()))

    def dequantize(self) -> dict[str, np.ndarray]:
        """The state dict of the stored values (each in its parameter's float dtype), for
        Module.load_state_dict."""
        f = self.format.frac_bits
        return {n: dequantize_fixed(c, f, self.dtypes[n]) for n, c in self.codes.items()}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the codes and the format to an .npz file atomically (no pickle)."""
        save_state(
            path,
            {
                "int_bits": self.format.int_bits,
                "frac_bits": self.format.frac_bits,
                "rounding": self.rounding,
                "dtypes": dict(self.dtypes),
                "codes": dict(self.codes),
            },
            _KIND,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> QuantizedState:
        """Read a file written by save(); a missing, corrupt or foreign file is a ValueError
        naming it."""
        state = load_state(path, _KIND)
        try:
            fmt = FixedPoint(int(state["int_bits"]), int(state["frac_bits"]))
            codes = {str(k): v for k, v in state["codes"].items()}
            dtypes = {str(k): str(v) for k, v in state["dtypes"].items()}
            rounding = str(state["rounding"])
            return cls(fmt, codes, dtypes, rounding)
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise ValueError(
                f"{os.fspath(path)} is not a readable seisoku {_KIND} file: {e}"
            ) from None


def quantize_parameters(
    model: Any,
    int_bits: int = 8,
    frac_bits: int = 8,
    rounding: str = "nearest",
    *,
    seed: int | None = None,
    offset: int | None = None,
) -> QuantizedState:
    """Every parameter of a seisoku.nn.Module as fixed-point codes (see quantize_fixed).

    Parameters are quantized where they live (CPU or GPU) and the codes kept on the host.
    Stochastic rounding gives parameter k (in named_parameters order) the stream offset
    offset + k. NaN or infinite weights are a ValueError naming the parameter.
    """
    fmt = FixedPoint(int_bits, frac_bits)
    params = list(model.named_parameters())
    if rounding == "stochastic":
        seed, offset = _stream(seed, offset, max(1, len(params)))
    codes: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for k, (name, p) in enumerate(params):
        v = p.value
        try:
            c = quantize_fixed(
                v,
                fmt.int_bits,
                fmt.frac_bits,
                rounding,
                seed=seed,
                offset=None if offset is None else offset + k,
            )
        except ValueError as e:
            raise ValueError(f"[quantize_parameters] parameter {name!r}: {e}") from None
        codes[name] = c.get() if is_cuda_array(c) else c
        dtypes[name] = np.dtype(v.dtype).name
    return QuantizedState(fmt, codes, dtypes, rounding)


def apply_quantized(model: Any, qstate: QuantizedState, strict: bool = True) -> Any:
    """Load the values stored in qstate into the model's parameters (Module.load_state_dict:
    names, shapes and dtypes must match); returns the model."""
    if not isinstance(qstate, QuantizedState):
        raise ValueError(
            f"[apply_quantized] argument 'qstate' must be a QuantizedState, got "
            f"{type(qstate).__name__}"
        )
    model.load_state_dict(qstate.dequantize(), strict=strict)
    return model


from .quant_int8 import (  # noqa: E402  (int8 inference and QAT, re-exported)
    FakeQuantize,
    Int8Weight,
    QATLinear,
    QuantizedConv2d,
    QuantizedLinear,
    fake_quantize_int8,
    fake_quantize_int8_backward,
    int8_im2col,
    int8_kernel,
    int8_kernel_supported,
    int8_linear,
    int8_matmul,
    int8_max_abs,
    int8_rows_to_nchw,
    int8_scale_of,
    model_nbytes,
    prepare_qat,
    quantize,
    quantize_int8,
    set_int8_kernel,
)

__all__ = [
    "ROUNDINGS",
    "FakeQuantize",
    "FixedPoint",
    "Int8Weight",
    "QATLinear",
    "QuantizedConv2d",
    "QuantizedLinear",
    "QuantizedState",
    "apply_quantized",
    "dequantize_fixed",
    "fake_quantize_int8",
    "fake_quantize_int8_backward",
    "fixed_point_error",
    "int8_im2col",
    "int8_kernel",
    "int8_kernel_supported",
    "int8_linear",
    "int8_matmul",
    "int8_max_abs",
    "int8_rows_to_nchw",
    "int8_scale_of",
    "model_nbytes",
    "prepare_qat",
    "quantize",
    "quantize_fixed",
    "quantize_int8",
    "quantize_parameters",
    "set_int8_kernel",
]
