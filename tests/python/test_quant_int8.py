"""int8 kernels (seisoku.quant: Int8Weight, quantize_int8, int8_matmul, int8_linear): codes,
scales and int32 products bit for bit against NumPy int64 references on every CPU kernel this
machine runs (AVX-512 VNNI, AVX2, scalar), the fused epilogue bit for bit against its float32
formula, thread-count independence, argument errors, and the CUDA twin against the CPU."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from int8_reference import random_codes, ref_codes, ref_linear, ref_scale, ref_weight

from conftest import requires_cuda, to_device, to_host
from reference import num_threads
from seisoku import nn, quant

KERNELS = ["scalar", "avx2", "avx512_vnni"]
# (N, K, O): K not a multiple of 4, O not a multiple of 16, N below and above the row tiles.
SHAPES = [
    (1, 1, 1),
    (1, 784, 800),
    (3, 5, 17),
    (4, 64, 16),
    (7, 33, 50),
    (64, 130, 47),
    (9, 8, 129),
]


@pytest.fixture(params=KERNELS)
def kernel(request: pytest.FixtureRequest):
    if not quant.int8_kernel_supported(request.param):
        pytest.skip(f"this CPU cannot run the {request.param} kernel")
    old = quant.int8_kernel()
    quant.set_int8_kernel(request.param)
    try:
        yield request.param
    finally:
        quant.set_int8_kernel(old)


# ---- codes and scales ----


@pytest.mark.parametrize("per_channel", [True, False])
def test_weight_codes_and_scales_match_numpy(per_channel):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((37, 53)).astype(np.float32)
    w[3] = 0.0  # an all-zero row takes the scale 1
    iw = quant.Int8Weight(w, per_channel=per_channel)
    codes, scales = ref_weight(w, per_channel)
    np.testing.assert_array_equal(iw.codes, codes)
    np.testing.assert_array_equal(iw.scales, scales)
    assert iw.per_channel is per_channel
    assert iw.codes.min() >= -127
    np.testing.assert_array_equal(iw.dequantize(), codes.astype(np.float32) * scales.reshape(-1, 1))
    # Round trip error is at most half a step per row.
    step = scales.reshape(-1, 1) if per_channel else scales[0]
    assert np.all(np.abs(iw.dequantize() - w) <= step / 2 * (1 + 1e-6))


def test_quantize_int8_matches_numpy_with_ties_and_saturation(kernel):
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 300.0, -300.0, np.inf, -np.inf, 0.0], np.float32)
    np.testing.assert_array_equal(quant.quantize_int8(x, 1.0), ref_codes(x, 1.0))
    rng = np.random.default_rng(1)
    y = rng.standard_normal((50, 33)).astype(np.float32)
    y[7, 3] = -5.0  # the largest magnitude, negative
    assert quant.int8_max_abs(y) == 5.0
    for n in (1, 15, 17, 33, 100):  # vector tails
        assert quant.int8_max_abs(y.ravel()[:n]) == np.abs(y.ravel()[:n]).max()
        np.testing.assert_array_equal(
            quant.quantize_int8(y.ravel()[:n], 0.01), ref_codes(y.ravel()[:n], 0.01)
        )
    s = quant.int8_scale_of(quant.int8_max_abs(y))
    assert s == ref_scale(float(np.abs(y).max()))
    np.testing.assert_array_equal(quant.quantize_int8(y, s), ref_codes(y, s))


# ---- products ----


@pytest.mark.parametrize("n,k,o", SHAPES)
def test_int8_matmul_is_exact(kernel, n, k, o):
    rng = np.random.default_rng(n * 1000 + k + o)
    xq = random_codes(rng, (n, k))
    codes = random_codes(rng, (o, k))
    codes[0, :] = 127  # extreme rows: the largest sums
    xq[0, :] = -127
    w = quant.Int8Weight.from_codes(codes, np.ones(1, np.float32))
    got = quant.int8_matmul(xq, w)
    assert got.dtype == np.int32 and got.shape == (n, o)
    np.testing.assert_array_equal(got, xq.astype(np.int64) @ codes.astype(np.int64).T)


@pytest.mark.parametrize("n,k,o", SHAPES)
@pytest.mark.parametrize("relu", [False, True])
def test_int8_linear_epilogue_is_bit_exact(kernel, n, k, o, relu):
    rng = np.random.default_rng(7 + n + k + o)
    w = rng.standard_normal((o, k)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    iw = quant.Int8Weight(w, per_channel=True)
    xq = random_codes(rng, (n, k))
    x_scale = 0.0123
    got = quant.int8_linear(xq, x_scale, iw, bias, activation="relu" if relu else None)
    ref = ref_linear(xq, x_scale, iw.codes, iw.scales, bias, relu)
    np.testing.assert_array_equal(got, ref)
    # requantized in the epilogue: the int8 codes of the same float32 values (some saturate)
    out_scale = float(np.abs(ref).max()) / 100.0 + 1e-3
    got8 = quant.int8_linear(
        xq, x_scale, iw, bias, activation="relu" if relu else None, output_scale=out_scale
    )
    assert got8.dtype == np.int8
    np.testing.assert_array_equal(got8, ref_codes(ref, out_scale))
    assert (np.abs(got8) == 127).any() or ref.size == 0 or np.abs(ref).max() < 127 * out_scale


def test_kernels_agree_and_do_not_depend_on_threads():
    rng = np.random.default_rng(3)
    iw = quant.Int8Weight(rng.standard_normal((800, 784)).astype(np.float32))
    xq = random_codes(rng, (64, 784))
    results = []
    for name in KERNELS:
        if not quant.int8_kernel_supported(name):
            continue
        old = quant.int8_kernel()
        quant.set_int8_kernel(name)
        try:
            for threads in (1, 2):
                with num_threads(threads):
                    results.append(quant.int8_linear(xq, 0.01, iw, activation="relu"))
        finally:
            quant.set_int8_kernel(old)
    assert len(results) >= 2
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_kernel_switch_reports_and_rejects():
    assert quant.int8_kernel() in KERNELS
    assert quant.int8_kernel_supported("scalar")
    with pytest.raises(ValueError, match=r"\[set_int8_kernel\] argument 'name'"):
        quant.set_int8_kernel("sse9")


# ---- errors ----


def test_bad_arguments_are_value_errors():
    iw = quant.Int8Weight(np.ones((4, 6), np.float32))
    xq = np.zeros((2, 6), np.int8)
    with pytest.raises(ValueError, match=r"\[int8_linear\] argument 'xq' must have shape \(N, 6\)"):
        quant.int8_linear(np.zeros((2, 5), np.int8), 1.0, iw)
    with pytest.raises(ValueError, match=r"\[int8_linear\] argument 'x_scale' must be finite"):
        quant.int8_linear(xq, 0.0, iw)
    with pytest.raises(ValueError, match=r"\[int8_linear\] xq must have dtype int8"):
        quant.int8_linear(np.zeros((2, 6), np.float32), 1.0, iw)
    with pytest.raises(ValueError, match=r"\[int8_linear\] bias must have shape"):
        quant.int8_linear(xq, 1.0, iw, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"\[int8_linear\] argument 'activation'"):
        quant.int8_linear(xq, 1.0, iw, activation="tanh")
    with pytest.raises(ValueError, match=r"\[quantize_int8\] argument 'x' must not contain NaN"):
        quant.quantize_int8(np.array([1.0, np.nan], np.float32), 1.0)
    with pytest.raises(ValueError, match=r"\[quantize_int8\] argument 'scale' must be finite"):
        quant.quantize_int8(np.ones(3, np.float32), -1.0)
    for bad in (np.inf, -np.inf, np.nan):
        x = np.zeros(37, np.float32)
        x[35] = bad
        with pytest.raises(
            ValueError, match=r"\[int8_max_abs\] argument 'x' must be finite.*\[35\]"
        ):
            quant.int8_max_abs(x)
    w_err = r"\[Int8Weight\] argument "
    with pytest.raises(ValueError, match=w_err + "'weight' must be finite"):
        quant.Int8Weight(np.array([[1.0, np.nan]], np.float32))
    with pytest.raises(ValueError, match=w_err + "'weight' must be a non-empty 2-D"):
        quant.Int8Weight(np.ones(5, np.float32))
    with pytest.raises(ValueError, match=w_err + r"'codes' must lie in \[-127, 127\]"):
        quant.Int8Weight.from_codes(np.full((2, 2), -128, np.int8), np.ones(1, np.float32))
    with pytest.raises(ValueError, match=w_err + "'scales' must have shape"):
        quant.Int8Weight.from_codes(np.ones((3, 2), np.int8), np.ones(2, np.float32))
    with pytest.raises(ValueError, match=w_err + "'scales' must be finite and > 0"):
        quant.Int8Weight.from_codes(np.ones((1, 2), np.int8), np.zeros(1, np.float32))


# ---- the pieces of an int8 convolution ----

CONV_CASES = [  # (N, C, H, W), (kh, kw), stride (h, w), padding (h, w)
    ((2, 3, 7, 6), (3, 3), (2, 2), (1, 1)),
    ((1, 1, 5, 5), (1, 1), (1, 1), (0, 0)),
    ((3, 2, 4, 9), (2, 3), (1, 2), (0, 2)),
    ((1, 4, 3, 3), (3, 3), (1, 1), (2, 1)),
]


def im2col_reference(xq, kh, kw, sh, sw, ph, pw):
    n, _, h, w = xq.shape
    padded = np.pad(xq, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    rows = [
        padded[i, :, a * sh : a * sh + kh, b * sw : b * sw + kw].ravel()
        for i in range(n)
        for a in range(ho)
        for b in range(wo)
    ]
    return np.stack(rows).astype(np.int8), ho, wo


@pytest.mark.parametrize(("shape", "kernel", "stride", "pad"), CONV_CASES)
def test_im2col_and_rows_to_nchw_match_numpy(shape, kernel, stride, pad):
    rng = np.random.default_rng(3)
    xq = rng.integers(-127, 128, shape).astype(np.int8)
    cols = quant.int8_im2col(xq, *kernel, *stride, *pad)
    want, ho, wo = im2col_reference(xq, *kernel, *stride, *pad)
    np.testing.assert_array_equal(cols, want)
    rows = rng.standard_normal((shape[0] * ho * wo, 5)).astype(np.float32)
    y = quant.int8_rows_to_nchw(rows, shape[0], ho, wo)
    np.testing.assert_array_equal(y, rows.reshape(shape[0], ho, wo, 5).transpose(0, 3, 1, 2))


def test_requantizing_epilogue_errors_name_the_argument():
    iw = quant.Int8Weight(np.ones((3, 4), np.float32))
    xq = np.ones((2, 4), np.int8)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"\[int8_linear\] argument 'output_scale' must be"):
            quant.int8_linear(xq, 0.1, iw, output_scale=bad)
    with pytest.raises(ValueError, match=r"\[int8_linear\] out must have dtype int8"):
        quant.int8_linear(xq, 0.1, iw, output_scale=0.5, out=np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[QuantizedLinear\] argument 'output_scale' must be"):
        quant.QuantizedLinear(iw, output_scale=-2.0)
    dynamic = quant.QuantizedLinear(iw)
    with pytest.raises(ValueError, match=r"int8 codes, which need a static input_scale"):
        dynamic(xq)


def test_conv_pieces_errors_name_the_argument():
    xq = np.zeros((1, 2, 4, 4), np.int8)
    with pytest.raises(ValueError, match=r"\[int8_im2col\] argument 'xq' must have shape \(N, C"):
        quant.int8_im2col(np.zeros((2, 4, 4), np.int8), 3, 3)
    with pytest.raises(ValueError, match=r"\[int8_im2col\] xq must have dtype int8, got float32"):
        quant.int8_im2col(xq.astype(np.float32), 3, 3)
    with pytest.raises(ValueError, match=r"\[int8_im2col\] the window must have"):
        quant.int8_im2col(xq, 3, 3, 0, 1)
    with pytest.raises(ValueError, match=r"smaller than the 5x5 window"):
        quant.int8_im2col(xq, 5, 5)
    with pytest.raises(ValueError, match=r"\[int8_rows_to_nchw\] argument 'rows' must have shape"):
        quant.int8_rows_to_nchw(np.zeros((5, 3), np.float32), 1, 2, 2)


# ---- the CUDA twin ----


@requires_cuda
def test_cuda_twin_matches_cpu():
    device = "cuda"
    rng = np.random.default_rng(11)
    for n, k, o in SHAPES:
        iw = quant.Int8Weight(rng.standard_normal((o, k)).astype(np.float32))
        x = rng.standard_normal((n, k)).astype(np.float32)
        bias = rng.standard_normal(o).astype(np.float32)
        s = quant.int8_scale_of(quant.int8_max_abs(x))
        assert quant.int8_max_abs(to_device(x, device)) == quant.int8_max_abs(x)
        xq = quant.quantize_int8(x, s)
        np.testing.assert_array_equal(to_host(quant.quantize_int8(to_device(x, device), s)), xq)
        np.testing.assert_array_equal(
            to_host(quant.int8_matmul(to_device(xq, device), iw)), quant.int8_matmul(xq, iw)
        )
        got = quant.int8_linear(to_device(xq, device), s, iw, to_device(bias, device), "relu")
        np.testing.assert_array_equal(to_host(got), quant.int8_linear(xq, s, iw, bias, "relu"))
        got = quant.int8_linear(
            to_device(xq, device), s, iw, to_device(bias, device), "relu", output_scale=0.05
        )
        want = quant.int8_linear(xq, s, iw, bias, "relu", output_scale=0.05)
        np.testing.assert_array_equal(to_host(got), want)
    scales = np.abs(rng.standard_normal(6)).astype(np.float32) + 0.01
    x = rng.standard_normal((6, 40)).astype(np.float32) * 3
    for sc in (scales[:1], scales):
        y = quant.fake_quantize_int8(to_device(x, device), to_device(sc, device))
        np.testing.assert_array_equal(to_host(y), quant.fake_quantize_int8(x, sc))
        g = quant.fake_quantize_int8_backward(
            to_device(x, device), to_device(x, device), to_device(sc, device)
        )
        np.testing.assert_array_equal(to_host(g), quant.fake_quantize_int8_backward(x, x, sc))
    for shape, kernel, stride, pad in CONV_CASES:
        xq = rng.integers(-127, 128, shape).astype(np.int8)
        cols = quant.int8_im2col(xq, *kernel, *stride, *pad)
        got = quant.int8_im2col(to_device(xq, device), *kernel, *stride, *pad)
        np.testing.assert_array_equal(to_host(got), cols)
        rows = rng.standard_normal((cols.shape[0], 4)).astype(np.float32)
        n, ho = shape[0], (shape[2] + 2 * pad[0] - kernel[0]) // stride[0] + 1
        wo = cols.shape[0] // (n * ho)
        got = quant.int8_rows_to_nchw(to_device(rows, device), n, ho, wo)
        np.testing.assert_array_equal(to_host(got), quant.int8_rows_to_nchw(rows, n, ho, wo))


@requires_cuda
def test_quantized_conv2d_on_cuda_matches_cpu():
    rng = np.random.default_rng(12)
    conv = nn.Conv2d(3, 6, 3, stride=1, padding=1)
    conv.bias.value[...] = rng.standard_normal(6).astype(np.float32)
    x = rng.standard_normal((4, 3, 9, 8)).astype(np.float32)
    for scale in (0.0, 0.03):  # dynamic, static
        q = quant.QuantizedConv2d.from_conv2d(conv, activation="relu", input_scale=scale)
        np.testing.assert_array_equal(to_host(q(to_device(x, "cuda"))), q(x))


@pytest.mark.parametrize("name", ["scalar", "avx2"])
def test_environment_variable_picks_the_kernel(name):
    if not quant.int8_kernel_supported(name):
        pytest.skip(f"this CPU cannot run the {name} kernel")
    code = "from seisoku import quant; print(quant.int8_kernel())"
    env = {**os.environ, "SEISOKU_INT8_KERNEL": name}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == name
