"""Fixed-point quantization (seisoku.quant): codes against NumPy oracles (np.floor, np.rint
with ties to even, and floor(x * 2**n + u) with u from an independent NumPy Philox4x32-10),
saturation, exactness at 32 bits, thread and device independence, argument errors, and a
digits MLP stored in Q8.8."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import seisoku as sei
from conftest import to_device
from reference import assert_twin, num_threads, numpy_philox, snap
from seisoku import quant
from seisoku.quant import FixedPoint, dequantize_fixed, quantize_fixed

FLOATS = [np.float32, np.float64]
# (int_bits, frac_bits): every width, several splits.
FORMATS = [(8, 0), (4, 4), (1, 7), (8, 8), (12, 4), (1, 15), (16, 16), (1, 31), (24, 8), (32, 0)]


# ---- oracles ----


def code_range(int_bits: int, frac_bits: int) -> tuple[int, int]:
    b = int_bits + frac_bits
    return -(2 ** (b - 1)), 2 ** (b - 1) - 1


def oracle_codes(x: np.ndarray, int_bits: int, frac_bits: int, rounding: str) -> np.ndarray:
    """floor or rint (ties to even) of x * 2**frac_bits in float64 (exact: a power-of-two
    scaling of a float32 or float64), clipped to the code range, as int64."""
    s = np.asarray(x, np.float64) * 2.0**frac_bits
    r = np.floor(s) if rounding == "truncate" else np.rint(s)
    lo, hi = code_range(int_bits, frac_bits)
    return np.clip(r, lo, hi).astype(np.int64)


def philox_uniform(n: int, dtype, seed: int, offset: int) -> list[Fraction]:
    """The documented u of stochastic rounding, exactly: float32 element i takes word i of the
    stream, (w >> 8) 2**-24; float64 element i words 2i and 2i + 1,
    ((a >> 5) 2**26 + (b >> 6)) 2**-53."""
    per = 4 if dtype == np.float32 else 2
    words = (
        numpy_philox(seed, offset, np.arange((n + per - 1) // per)).reshape(-1).astype(np.uint64)
    )
    if dtype == np.float32:
        return [Fraction(int(w >> np.uint64(8)), 2**24) for w in words[:n]]
    a, b = words[0 : 2 * n : 2], words[1 : 2 * n : 2]
    return [
        Fraction(int(((x >> np.uint64(5)) << np.uint64(26)) | (y >> np.uint64(6))), 2**53)
        for x, y in zip(a, b)
    ]


def oracle_stochastic(
    x: np.ndarray, int_bits: int, frac_bits: int, seed: int, offset: int
) -> np.ndarray:
    """floor(x * 2**frac_bits + u) in exact rational arithmetic, clipped to the code range."""
    u = philox_uniform(x.size, x.dtype.type, seed, offset)
    lo, hi = code_range(int_bits, frac_bits)
    scale = 2**frac_bits
    codes = [
        min(max((Fraction(float(v)) * scale + ui).__floor__(), lo), hi)
        for v, ui in zip(x.ravel(), u)
    ]
    return np.array(codes, np.int64).reshape(x.shape)


def sample(int_bits: int, frac_bits: int, dtype, seed: int = 0, n: int = 600) -> np.ndarray:
    """Values across the format's range and past both ends, negatives, exact ties
    (k + 1/2) 2**-n, representable values and zeros."""
    rng = np.random.default_rng(seed)
    top = 2.0 ** (int_bits - 1)
    step = 2.0**-frac_bits
    parts = [
        rng.uniform(-1.3 * top, 1.3 * top, n),
        rng.normal(0.0, 0.05 * top, n // 2),
        rng.normal(0.0, 4 * step, n // 2),  # near zero, both signs
        (rng.integers(-(2**20), 2**20, 64) + 0.5) * step,  # ties
        rng.integers(-(2**20), 2**20, 32) * step,  # representable
        [0.0, -0.0, step / 3, -step / 3, top - step, -top, top, -top - step, 1e30, -1e30],
    ]
    return np.concatenate([np.asarray(p, np.float64) for p in parts]).astype(dtype)


# ---- the lecture's example ----


def test_lecture_example_q8_8_truncated():
    w = 0.12492940522023
    code = quantize_fixed(w, int_bits=8, frac_bits=8, rounding="truncate")
    assert code == 31 and code.dtype == np.int16
    assert format(int(code) & 0xFFFF, "016b") == "0000000000011111"  # 0000 0000 . 0001 1111
    value = dequantize_fixed(code, 8)
    assert value == 0.12109375 and value.dtype == np.float32
    for x in (np.float32(w), np.array(w, np.float32), np.array([w], np.float32), np.array([w])):
        c = quantize_fixed(x, 8, 8, "truncate")
        np.testing.assert_array_equal(c, np.full(np.shape(x), 31, np.int16))
        np.testing.assert_array_equal(dequantize_fixed(c, 8), np.full(np.shape(x), 0.12109375))
    assert quantize_fixed(w, 8, 8, "nearest") == 32  # 31.98 rounds up
    assert dequantize_fixed(31, 8, "float64") == 0.12109375


def test_fixed_point_format():
    f = FixedPoint()
    assert (f.int_bits, f.frac_bits, f.bits, str(f)) == (8, 8, 16, "Q8.8")
    assert f.dtype == np.int16 and f.scale == 256.0 and f.step == 2.0**-8
    assert (f.code_min, f.code_max, f.min, f.max) == (-32768, 32767, -128.0, 128.0 - 2.0**-8)
    assert FixedPoint(1, 7).dtype == np.int8 and FixedPoint(1, 7).max == 127 / 128
    assert FixedPoint(16, 16).dtype == np.int32 and FixedPoint(32, 0).min == -(2.0**31)
    with pytest.raises(
        ValueError, match=r"'int_bits' \+ 'frac_bits' must total 8, 16 or 32.*got 8 \+ 4 = 12"
    ):
        FixedPoint(8, 4)
    with pytest.raises(ValueError, match=r"'int_bits' must be >= 1.*got 0"):
        FixedPoint(0, 8)


# ---- every rounding mode against NumPy ----


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("rounding", ["truncate", "nearest"])
def test_deterministic_rounding_matches_numpy(fmt, dtype, rounding):
    x = sample(*fmt, dtype, seed=sum(fmt))
    codes = quantize_fixed(x, *fmt, rounding)
    assert codes.dtype == FixedPoint(*fmt).dtype and codes.shape == x.shape
    np.testing.assert_array_equal(codes.astype(np.int64), oracle_codes(x, *fmt, rounding))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("fmt", [(8, 0), (1, 7), (8, 8), (3, 13), (16, 16), (1, 31), (32, 0)])
def test_stochastic_rounding_matches_numpy_philox(fmt, dtype):
    x = sample(*fmt, dtype, seed=7, n=300)
    for seed, offset in [(0, 0), (12345, 3), (2**64 - 1, 2**63 + 5)]:
        codes = quantize_fixed(x, *fmt, "stochastic", seed=seed, offset=offset)
        np.testing.assert_array_equal(
            codes.astype(np.int64), oracle_stochastic(x, *fmt, seed, offset)
        )


def test_ties_go_to_even():
    step = 2.0**-8
    x = np.array([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, -3.5]) * step
    np.testing.assert_array_equal(quantize_fixed(x, 8, 8, "nearest"), [0, 2, 2, 4, 0, -2, -2, -4])
    np.testing.assert_array_equal(quantize_fixed(x, 8, 8, "truncate"), [0, 1, 2, 3, -1, -2, -3, -4])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("rounding", quant.ROUNDINGS)
@pytest.mark.parametrize("fmt", [(8, 0), (2, 6), (8, 8), (1, 15), (16, 16), (1, 31), (32, 0)])
def test_saturation_at_both_ends(fmt, rounding, dtype):
    f = FixedPoint(*fmt)
    big = float(np.finfo(dtype).max)
    x = np.array(
        [big, -big, f.max, f.min, f.max + f.step, f.min - f.step, 4 * f.max, 4 * f.min], dtype
    )
    codes = quantize_fixed(x, *fmt, rounding, seed=3, offset=1).astype(np.int64)
    lo, hi = f.code_min, f.code_max
    top_exact = float(dtype(f.max)) == f.max  # 2**31 - 1 is no float32
    np.testing.assert_array_equal(codes[[0, 1, 3, 4, 5, 6, 7]], [hi, lo, lo, hi, lo, hi, lo])
    if top_exact:
        assert codes[2] == hi


def test_32_bit_codes_from_float32_are_exact():
    # float32 cannot hold 2**31 - 1: the clamp compares with 2**31 and -2**31, both exact.
    below = np.nextafter(np.float32(2.0**31), np.float32(0))  # 2**31 - 128
    x = np.array(
        [2.0**31, below, -(2.0**31), np.nextafter(np.float32(-(2.0**31)), np.float32(0))],
        np.float32,
    )
    for rounding in quant.ROUNDINGS:
        np.testing.assert_array_equal(
            quantize_fixed(x, 32, 0, rounding, seed=1),
            [2**31 - 1, 2**31 - 128, -(2**31), -(2**31) + 128],
        )
    y = x * np.float32(2.0**-31)  # the same codes in Q1.31
    np.testing.assert_array_equal(
        quantize_fixed(y, 1, 31, "nearest"), quantize_fixed(x, 32, 0, "nearest")
    )
    tiny = np.array([1e-45, -1e-45, 2.0**-32, -(2.0**-32)], np.float32)  # subnormals and half steps
    np.testing.assert_array_equal(quantize_fixed(tiny, 1, 31, "truncate"), [0, -1, 0, -1])
    np.testing.assert_array_equal(quantize_fixed(tiny, 1, 31, "nearest"), [0, 0, 0, 0])


# ---- stochastic rounding: unbiased and reproducible ----


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("frac", [0.1, 0.5, 0.77])
def test_stochastic_rounding_is_unbiased(frac, dtype):
    n = 200_000
    value = (-3 + frac) * 2.0**-8  # between codes -3 and -2
    x = np.full(n, value, dtype)
    codes = quantize_fixed(x, 8, 8, "stochastic", seed=99, offset=4).astype(np.int64)
    assert set(np.unique(codes)) <= {-3, -2}
    p = float(np.mean(codes == -2))
    assert abs(p - frac) < 5 * np.sqrt(frac * (1 - frac) / n)
    mean = dequantize_fixed(codes.astype(np.int16), 8, "float64").mean()
    assert abs(mean - float(x[0])) < 5 * 2.0**-8 * np.sqrt(frac * (1 - frac) / n)


def test_stochastic_rounding_is_reproducible(restore_default_generator):
    x = sample(8, 8, np.float32, seed=5)
    a = quantize_fixed(x, 8, 8, "stochastic", seed=42, offset=7)
    np.testing.assert_array_equal(a, quantize_fixed(x, 8, 8, "stochastic", seed=42, offset=7))
    assert not np.array_equal(a, quantize_fixed(x, 8, 8, "stochastic", seed=42, offset=8))
    assert not np.array_equal(a, quantize_fixed(x, 8, 8, "stochastic", seed=43, offset=7))
    np.testing.assert_array_equal(
        quantize_fixed(x, 8, 8, "stochastic", seed=42),
        quantize_fixed(x, 8, 8, "stochastic", seed=42, offset=0),
    )
    # Without seed and offset: the default generator's seed and next offset.
    sei.manual_seed(42)
    first = quantize_fixed(x, 8, 8, "stochastic")
    second = quantize_fixed(x, 8, 8, "stochastic")
    np.testing.assert_array_equal(first, quantize_fixed(x, 8, 8, "stochastic", seed=42, offset=0))
    np.testing.assert_array_equal(second, quantize_fixed(x, 8, 8, "stochastic", seed=42, offset=1))
    assert sei.random.default_generator().offset == 2


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("rounding", quant.ROUNDINGS)
def test_codes_identical_for_one_and_two_threads(rounding, dtype):
    n = (1 << 17) + 13  # several parallel ranges and a ragged tail
    x = np.random.default_rng(1).normal(0.0, 40.0, n).astype(dtype)
    runs = []
    for threads in (1, 2):
        with num_threads(threads):
            runs.append(quantize_fixed(x, 8, 8, rounding, seed=11, offset=2))
            back = dequantize_fixed(runs[-1], 8, dtype)
    np.testing.assert_array_equal(runs[0], runs[1])
    ref = oracle_codes(x, 8, 8, rounding) if rounding != "stochastic" else None
    if ref is not None:
        np.testing.assert_array_equal(runs[0], ref)
    np.testing.assert_array_equal(back, runs[1].astype(np.float64) / 256)


# ---- dequantize ----


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dequantize_is_exact(dtype):
    for codes, frac in [
        (np.arange(-128, 128, dtype=np.int8), 7),
        (np.arange(-(2**15), 2**15, dtype=np.int16), 8),
        (np.random.default_rng(2).integers(-(2**24), 2**24, 5000).astype(np.int32), 31),
    ]:
        got = dequantize_fixed(codes, frac, dtype)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, codes.astype(np.float64) * 2.0**-frac)
    big = np.array(
        [2**31 - 1, -(2**31), 2**24 + 1, 2**25 + 3], np.int32
    )  # beyond float32's 24 bits
    np.testing.assert_array_equal(
        dequantize_fixed(big, 31, "float32"), big.astype(np.float32) * np.float32(2.0**-31)
    )
    np.testing.assert_array_equal(
        dequantize_fixed(big, 31, "float64"), big.astype(np.float64) * 2.0**-31
    )


def test_out_arguments():
    x = sample(8, 8, np.float32)
    out = np.empty(x.shape, np.int16)
    assert quantize_fixed(x, 8, 8, "nearest", out=out) is out
    np.testing.assert_array_equal(out, oracle_codes(x, 8, 8, "nearest"))
    back = np.empty(x.shape, np.float64)
    assert dequantize_fixed(out, 8, out=back) is back
    np.testing.assert_array_equal(back, out / 256.0)
    empty = quantize_fixed(np.empty((0, 3), np.float64), 4, 4)
    assert empty.shape == (0, 3) and empty.dtype == np.int8


# ---- bad input ----


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"x": np.array([1.0, np.nan], np.float32)},
            r"argument 'x' must be finite.*x\.flat\[1\] = nan",
        ),
        ({"x": np.array([np.inf, 1.0])}, r"argument 'x' must be finite.*x\.flat\[0\] = inf"),
        ({"x": np.array([0.0, 1.0, -np.inf])}, r"argument 'x' must be finite.*x\.flat\[2\] = -inf"),
        ({"x": float("nan")}, r"argument 'x' must be finite"),
        ({"int_bits": 12}, r"'int_bits' \+ 'frac_bits' must total 8, 16 or 32.*got 12 \+ 8 = 20"),
        ({"int_bits": 32, "frac_bits": 32}, r"must total 8, 16 or 32.*got 32 \+ 32 = 64"),
        ({"int_bits": 0, "frac_bits": 16}, r"argument 'int_bits' must be >= 1 .*got 0"),
        ({"int_bits": 17, "frac_bits": -1}, r"argument 'frac_bits' must be >= 0, got -1"),
        ({"int_bits": 8.0}, r"argument 'int_bits' must be an int.*got 8\.0"),
        (
            {"rounding": "up"},
            r"argument 'rounding' must be 'truncate', 'nearest' or 'stochastic', got 'up'",
        ),
        ({"rounding": None}, r"argument 'rounding' must be .*got None"),
        ({"x": np.array([1, 2], np.int32)}, r"x must have dtype float32, float64, got int32"),
        ({"out": np.empty(3, np.int16)}, r"x and out must have the same shape"),
        (
            {"out": np.empty(2, np.int32)},
            r"argument 'out' must have dtype int16 \(the codes of Q8\.8\), got int32",
        ),
        (
            {"seed": -1, "rounding": "stochastic"},
            r"argument 'seed' must be an int in \[0, 2\*\*64\), got -1",
        ),
        ({"x": np.ones((4, 4), np.float32)[:, ::2]}, r"'x'.*contiguous"),
        ({"x": "0.5"}, r"argument 'x'"),
        ({"x": True}, r"argument 'x'"),
    ],
)
def test_quantize_bad_arguments(kwargs, pattern):
    args = {
        "x": np.array([0.5, -0.25], np.float32),
        "int_bits": 8,
        "frac_bits": 8,
        "rounding": "nearest",
    }
    args.update(kwargs)
    x = args.pop("x")
    with pytest.raises(ValueError, match=pattern):
        quantize_fixed(x, **args)


@pytest.mark.parametrize(
    ("args", "kwargs", "pattern"),
    [
        (
            (np.array([1], np.int16), 16),
            {},
            r"argument 'frac_bits' must be in \[0, 15\] for int16 codes.*got 16",
        ),
        ((np.array([1], np.int8), -1), {}, r"argument 'frac_bits' must be in \[0, 7\].*got -1"),
        ((np.array([1], np.int64), 4), {}, r"codes must have dtype int8, int16, int32, got int64"),
        ((np.array([1.0]), 4), {}, r"codes must have dtype int8, int16, int32, got float64"),
        (
            (np.array([1], np.int16), 4),
            {"dtype": "int32"},
            r"argument 'dtype' must be float32 or float64",
        ),
        (
            (np.array([1], np.int16), 4),
            {"out": np.empty(2, np.float32)},
            r"codes and out must have the same shape",
        ),
        (
            (np.array([1], np.int16), 4),
            {"out": np.empty(1, np.float16)},
            r"out must have dtype float32, float64",
        ),
        ((2**40, 4), {}, r"argument 'codes' must be an int8, int16 or int32 array or an int"),
        ((1.5, 4), {}, r"argument 'codes' must be an int8, int16 or int32 array or an int"),
    ],
)
def test_dequantize_bad_arguments(args, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        dequantize_fixed(*args, **kwargs)


# ---- CUDA twins (the CPU kernel is the oracle) ----


def _device_cases():
    x32 = np.random.default_rng(3).normal(0.0, 30.0, 100_003).astype(np.float32)
    x64 = x32.astype(np.float64) * 1.000001
    x32[::997] = (np.arange(x32[::997].size) + 0.5) / 256  # ties

    def quantize(d):
        out = []
        for x in (x32, x64):
            for fmt in [(8, 8), (1, 7), (16, 16), (1, 31)]:
                for rounding in quant.ROUNDINGS:
                    out.append(
                        (snap(quantize_fixed(d(x), *fmt, rounding, seed=5, offset=2**40 + 1)), True)
                    )
        return out

    def dequantize(d):
        codes = np.random.default_rng(4).integers(-(2**31), 2**31, 50_001).astype(np.int32)
        return [
            (snap(dequantize_fixed(d(codes), 31, dt)), True) for dt in ("float32", "float64")
        ] + [(snap(dequantize_fixed(d(codes.astype(np.int8)), 3, "float32")), True)]

    return {"quantize_fixed": quantize, "dequantize_fixed": dequantize}


CASES = _device_cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_device_matches_cpu(device, case):
    fn = CASES[case]
    assert_twin(fn(lambda a: to_device(a, device)), fn(lambda a: a))


def test_device_nonfinite_names_the_first_index(device):
    x = np.zeros(70_000, np.float32)
    x[[40_000, 12_345, 69_999]] = [np.inf, np.nan, -np.inf]
    with pytest.raises(ValueError, match=r"argument 'x' must be finite.*x\.flat\[12345\]"):
        quantize_fixed(to_device(x, device), 8, 8, "stochastic", seed=1)


# ---- whole models ----


def _mlp(seed: int = 0):
    sei.manual_seed(seed)
    return sei.nn.Sequential(sei.nn.Linear(6, 5), sei.nn.ReLU(), sei.nn.Linear(5, 3))


def test_quantize_parameters_round_trip(tmp_path, restore_default_generator):
    model = _mlp()
    state = model.state_dict()
    q = quant.quantize_parameters(model, 8, 8)
    assert isinstance(q, quant.QuantizedState) and q.format == FixedPoint(8, 8)
    assert set(q.codes) == set(state)
    for name, v in state.items():
        np.testing.assert_array_equal(q.codes[name], oracle_codes(v, 8, 8, "nearest"))
    assert q.float_nbytes == sum(v.nbytes for v in state.values())
    assert q.nbytes * 2 == q.float_nbytes
    back = q.dequantize()
    for name, v in state.items():
        assert back[name].dtype == v.dtype
        assert np.max(np.abs(back[name] - v)) <= 2.0**-9
    quant.apply_quantized(model, q)
    for name, v in model.state_dict().items():
        np.testing.assert_array_equal(v, back[name])
    path = tmp_path / "q.npz"
    q.save(path)
    again = quant.QuantizedState.load(path)
    assert again.format == q.format and again.rounding == "nearest" and again.dtypes == q.dtypes
    for name in q.codes:
        np.testing.assert_array_equal(again.codes[name], q.codes[name])
        assert again.codes[name].dtype == np.int16
    q8 = quant.quantize_parameters(model, 1, 7, "stochastic", seed=3)
    assert q8.nbytes * 4 == q8.float_nbytes
    for k, (name, p) in enumerate(model.named_parameters()):
        np.testing.assert_array_equal(
            q8.codes[name], quantize_fixed(p.value, 1, 7, "stochastic", seed=3, offset=k)
        )


def test_quantized_state_files_and_errors(tmp_path):
    model = _mlp()
    q = quant.quantize_parameters(model)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match=r"bad\.npz is not a readable seisoku quantized_state"):
        quant.QuantizedState.load(bad)
    with pytest.raises(ValueError, match="no such file"):
        quant.QuantizedState.load(tmp_path / "missing.npz")
    other = tmp_path / "model.npz"
    model.save(other)
    with pytest.raises(ValueError, match=r"model\.npz"):
        quant.QuantizedState.load(other)
    with pytest.raises(ValueError, match=r"codes\['0.weight'\] must be a int16 array"):
        quant.QuantizedState(
            q.format, {**q.codes, "0.weight": q.codes["0.weight"].astype(np.int32)}, q.dtypes
        )
    with pytest.raises(ValueError, match="argument 'qstate' must be a QuantizedState"):
        quant.apply_quantized(model, {})
    model.named_parameters()[0][1].value[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"parameter '0.weight'.*argument 'x' must be finite"):
        quant.quantize_parameters(model)


def test_fixed_point_error_reports_the_round_trip():
    x = np.array([0.1, -0.3, 200.0, -0.001])
    e = quant.fixed_point_error(x, 8, 8, "nearest")
    assert e["saturated"] == 0.25
    assert e["max_abs_error"] == pytest.approx(200.0 - 127.99609375)
    small = quant.fixed_point_error(x[[0, 1, 3]], 8, 8, "truncate")
    assert 0 < small["max_abs_error"] < 2.0**-8 and small["saturated"] == 0.0


def test_digits_mlp_in_q8_8_keeps_its_accuracy():
    pytest.importorskip("sklearn")
    from sklearn.model_selection import train_test_split

    from seisoku.estimators import MLPClassifier

    x, y = sei.data.load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=0, stratify=y
    )
    est = MLPClassifier((64,), max_iter=30, batch_size=32, random_state=0).fit(x_train, y_train)
    float_acc = est.score(x_test, y_test)
    assert float_acc > 0.9
    q = quant.quantize_parameters(est.model_, 8, 8)
    assert q.nbytes * 2 == q.float_nbytes  # int16 codes: half of float32
    quant.apply_quantized(est.model_, q)
    q_acc = est.score(x_test, y_test)
    assert q_acc >= float_acc - 0.01
