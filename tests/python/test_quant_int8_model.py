"""int8 models (seisoku.quant.quantize, QuantizedLinear, QuantizedConv2d) and quantization-aware
training (FakeQuantize, QATLinear, prepare_qat): layer outputs bit for bit against NumPy
references of the documented pipeline, quantized models close to their float models, the
straight-through gradient against NumPy and finite differences (and torch's fake quantization
where installed), copies, and argument errors."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from int8_reference import ref_codes, ref_linear, ref_scale

import seisoku as sei
from seisoku import nn, quant


def mlp(sizes=(20, 32, 16, 5), seed=0) -> nn.Sequential:
    sei.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    rng = np.random.default_rng(seed)
    for layer in model:
        if isinstance(layer, nn.Linear):
            layer.bias.value[...] = rng.standard_normal(layer.bias.shape).astype(np.float32) * 0.1
    return model


def inputs(n=64, k=20, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, k)).astype(np.float32)


# ---- layers ----


@pytest.mark.parametrize("static", [False, True])
def test_quantized_linear_follows_the_documented_pipeline(static):
    rng = np.random.default_rng(0)
    lin = nn.Linear(30, 12, activation="relu")
    lin.bias.value[...] = rng.standard_normal(12).astype(np.float32)
    x = rng.standard_normal((9, 30)).astype(np.float32)
    scale = 0.02 if static else 0.0
    q = quant.QuantizedLinear.from_linear(lin, input_scale=scale)
    assert q.activation == "relu"
    y = q(x)
    s = np.float32(scale) if static else ref_scale(float(np.abs(x).max()))
    assert q.last_input_scale == pytest.approx(float(s))
    ref = ref_linear(ref_codes(x, s), s, q.weight.codes, q.weight.scales, lin.bias.value, True)
    np.testing.assert_array_equal(y, ref)
    with pytest.raises(ValueError, match="inference-only"):
        q.backward(np.ones_like(y))


def test_quantized_conv2d_matches_numpy_im2col():
    rng = np.random.default_rng(2)
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    conv.bias.value[...] = rng.standard_normal(5).astype(np.float32)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    q = quant.QuantizedConv2d.from_conv2d(conv, activation="relu")
    y = q(x)
    s = ref_scale(float(np.abs(x).max()))
    xq = np.pad(ref_codes(x, s), ((0, 0), (0, 0), (1, 1), (1, 1)))
    oh, ow = y.shape[2], y.shape[3]
    cols = np.stack(
        [
            xq[n, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].ravel()
            for n in range(2)
            for i in range(oh)
            for j in range(ow)
        ]
    )
    ref = ref_linear(cols, s, q.weight.codes, q.weight.scales, conv.bias.value, True)
    ref = ref.reshape(2, oh, ow, 5).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(y, ref)
    # and close to the float convolution
    f = conv(x)
    assert np.abs(np.maximum(f, 0) - y).max() < 0.05 * np.abs(f).max()


# ---- quantize() ----


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("activation", ["static", "dynamic"])
def test_quantized_mlp_is_close_to_float(per_channel, activation):
    model = mlp()
    x = inputs()
    q = quant.quantize(model, x, per_channel=per_channel, activation=activation)
    kinds = [type(m).__name__ for m in q]
    assert kinds == ["QuantizedLinear"] * 3  # the ReLUs are fused
    assert [m.activation for m in q] == ["relu", "relu", None]
    assert all((m.input_scale > 0) == (activation == "static") for m in q)
    f = model(x)
    y = q(x)
    assert np.abs(y - f).max() < 0.05 * np.abs(f).max()
    assert np.mean(np.argmax(y, 1) == np.argmax(f, 1)) > 0.9
    # int8 codes, float32 scales (per row or one) and float32 biases
    shapes = [(32, 20), (16, 32), (5, 16)]
    expect = sum(o * k + 4 * (o if per_channel else 1) + 4 * o for o, k in shapes)
    assert quant.model_nbytes(q) == expect


@pytest.mark.parametrize("per_channel", [True, False])
def test_chained_int8_layers_pass_codes_and_give_the_same_bits(per_channel):
    """chain=True (default): each int8 Linear before another writes int8 codes at the next
    layer's input scale; the model's output is bit for bit the unchained one's, and each
    hand-over equals quantize_int8 of the float32 output."""
    model, x = mlp(), inputs()
    plain = quant.quantize(model, x, per_channel=per_channel, chain=False)
    chained = quant.quantize(model, x, per_channel=per_channel)
    scales = [q.input_scale for q in chained]
    assert [q.output_scale for q in chained] == [*scales[1:], 0.0]
    assert all(q.output_scale == 0.0 for q in plain)
    h_plain, h = x, x
    for a, b in zip(plain, chained, strict=True):
        h_plain, h = np.array(a(h_plain)), np.array(b(h))
        if b.output_scale > 0:
            assert h.dtype == np.int8
            np.testing.assert_array_equal(h, quant.quantize_int8(h_plain, b.output_scale))
    assert h.dtype == np.float32
    np.testing.assert_array_equal(h, h_plain)
    np.testing.assert_array_equal(chained(x), plain(x))
    # dynamic scales: nothing to chain
    assert all(q.output_scale == 0.0 for q in quant.quantize(model, activation="dynamic"))
    with pytest.raises(ValueError, match="argument 'chain'"):
        quant.quantize(model, x, chain="yes")
    copied = pickle.loads(pickle.dumps(chained))
    np.testing.assert_array_equal(copied(x), plain(x))


def test_static_scales_come_from_the_observers():
    model = mlp()
    x = inputs(200)
    x[0, 0] = 40.0  # one outlier
    q_max = quant.quantize(model, x)
    q_pct = quant.quantize(model, x, observer="percentile", percentile=99.0)
    assert q_max[0].input_scale == pytest.approx(float(ref_scale(40.0)))
    expect = float(ref_scale(float(np.percentile(np.abs(x), 99.0))))
    assert q_pct[0].input_scale == pytest.approx(expect, rel=1e-6)
    # the second layer observes the first layer's output
    h = model[1](model[0](x))
    assert q_max[1].input_scale == pytest.approx(float(ref_scale(float(np.abs(h).max()))))


def test_quantize_keeps_other_layers_and_the_float_model():
    model = nn.Sequential(
        nn.Linear(20, 16),
        nn.Tanh(),
        nn.Dropout(0.3),
        nn.Sequential(nn.Linear(16, 8, activation="relu"), nn.Linear(8, 3, activation="tanh")),
    )
    before = model.state_dict()
    q = quant.quantize(model, inputs())
    kinds = [type(m).__name__ for m in q]
    assert kinds == ["QuantizedLinear", "Tanh", "Dropout", "QuantizedLinear", "Linear"]
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    f = model(inputs())
    assert np.abs(q(inputs()) - f).max() < 0.05


def test_quantized_model_copies_and_pickles():
    q = quant.quantize(mlp(), inputs())
    x = inputs(5, seed=9)
    for other in (copy.deepcopy(q), pickle.loads(pickle.dumps(q))):
        np.testing.assert_array_equal(other(x), q(x))
    assert "QuantizedLinear(20, 32, per_channel=True" in repr(q)


def test_quantize_errors_name_the_argument():
    model = mlp()
    x = inputs()
    err = r"\[quantize\] argument "
    with pytest.raises(ValueError, match=err + "'calibration_x' must be finite"):
        bad = x.copy()
        bad[3, 4] = np.nan
        quant.quantize(model, bad)
    with pytest.raises(ValueError, match=err + "'calibration_x' must be a non-empty"):
        quant.quantize(model, x[:0])
    with pytest.raises(ValueError, match=err + r"'calibration_x' must be of shape \(N, 20\)"):
        quant.quantize(model, x[:, :7])
    with pytest.raises(ValueError, match=err + "'calibration_x' must be a calibration batch"):
        quant.quantize(model)
    with pytest.raises(ValueError, match=err + "'activation' must be 'static' or 'dynamic'"):
        quant.quantize(model, x, activation="weekly")
    with pytest.raises(ValueError, match=err + "'observer' must be"):
        quant.quantize(model, x, observer="median")
    with pytest.raises(ValueError, match=err + r"'percentile' must be a number in \(0, 100\]"):
        quant.quantize(model, x, observer="percentile", percentile=0)
    with pytest.raises(ValueError, match=err + "'model' has nothing to quantize"):
        quant.quantize(nn.Sequential(nn.ReLU(), nn.Tanh()), x)
    with pytest.raises(ValueError, match=err + "'model' must be a seisoku.nn.Module"):
        quant.quantize([model], x)
    q = quant.quantize(model, activation="dynamic")  # no calibration needed
    with pytest.raises(ValueError, match=r"\[QuantizedLinear\] argument 'x' must have shape"):
        q(np.ascontiguousarray(x[:, :5]))


# ---- quantization-aware training ----


def test_fake_quantize_forward_and_ste_backward_match_numpy():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((8, 30)) * 3).astype(np.float32)
    fq = quant.FakeQuantize(scale=0.02)
    y = fq(x)
    s = np.float32(0.02)
    np.testing.assert_array_equal(y, ref_codes(x, s).astype(np.float32) * s)
    g = rng.standard_normal(x.shape).astype(np.float32)
    gx = fq.backward(g)
    inside = np.abs(np.rint(x * (np.float32(1) / s))) <= 127
    assert 0 < inside.mean() < 1  # some clipped, some not
    np.testing.assert_array_equal(gx, np.where(inside, g, 0))
    # per-row scales (weights)
    rows = (np.abs(rng.standard_normal(8)) + 0.01).astype(np.float32)
    got = quant.fake_quantize_int8(x, rows)
    ref = np.stack(
        [ref_codes(r, sc).astype(np.float32) * sc for r, sc in zip(x, rows, strict=True)]
    )
    np.testing.assert_array_equal(got, ref)


def test_fake_quantize_matches_torch_where_installed():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((6, 50)) * 4).astype(np.float32)
    s = 0.03
    t = torch.tensor(x, requires_grad=True)
    ty = torch.fake_quantize_per_tensor_affine(t, s, 0, -127, 127)
    g = rng.standard_normal(x.shape).astype(np.float32)
    ty.backward(torch.tensor(g))
    fq = quant.FakeQuantize(0.1, s)
    np.testing.assert_allclose(fq(x), ty.detach().numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(fq.backward(g), t.grad.numpy())


def test_fake_quantize_observes_with_a_moving_average():
    fq = quant.FakeQuantize(momentum=0.25)
    fq(np.full((2, 3), 2.0, np.float32))
    assert fq.observed_max == 2.0
    fq(np.full((2, 3), 6.0, np.float32))
    assert fq.observed_max == pytest.approx(0.75 * 2.0 + 0.25 * 6.0)
    fq.eval()
    fq(np.full((2, 3), 100.0, np.float32))
    assert fq.observed_max == pytest.approx(3.0)
    assert fq.scale == pytest.approx(float(ref_scale(3.0)))


def test_qat_linear_gradients_against_numpy_and_finite_differences():
    rng = np.random.default_rng(6)
    lin = nn.Linear(7, 4)
    lin.bias.value[...] = rng.standard_normal(4).astype(np.float32)
    qat = quant.QATLinear(lin.weight, lin.bias, activation="relu")
    assert qat.weight is lin.weight or np.shares_memory(qat.weight.value, lin.weight.value)
    x = rng.standard_normal((5, 7)).astype(np.float32)
    c = rng.standard_normal((5, 4)).astype(np.float32)
    wq = quant.fake_quantize_int8(lin.weight.value, np.asarray(qat_scales(lin.weight.value)))
    y = qat(x)
    z = x @ wq.T + lin.bias.value
    np.testing.assert_allclose(y, np.maximum(z, 0), rtol=1e-5, atol=1e-6)
    qat.zero_grad()
    gx = qat.backward(c)
    gz = c * (z > 0)
    np.testing.assert_allclose(gx, gz @ wq, rtol=1e-5, atol=1e-6)
    # the straight-through estimator: dL/dW = dL/dWq
    np.testing.assert_allclose(lin.weight.grad, gz.T @ x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lin.bias.grad, gz.sum(0), rtol=1e-5, atol=1e-6)
    # dL/dx by central differences in float64 (the layer is linear in x for fixed W)
    x64, eps = x.astype(np.float64), 1e-3
    for i, j in [(0, 0), (2, 3), (4, 6)]:
        d = np.zeros_like(x64)
        d[i, j] = eps
        lp = np.sum(c * np.maximum((x64 + d) @ wq.T.astype(np.float64) + lin.bias.value, 0))
        lm = np.sum(c * np.maximum((x64 - d) @ wq.T.astype(np.float64) + lin.bias.value, 0))
        assert gx[i, j] == pytest.approx((lp - lm) / (2 * eps), rel=1e-3, abs=1e-4)


def qat_scales(w: np.ndarray) -> list[np.float32]:
    return [ref_scale(float(np.abs(r).max())) for r in w]


def test_prepare_qat_trains_and_converts_without_calibration():
    x, labels = sei.data.load_digits()
    x = x.astype(np.float32)
    model = mlp((64, 32, 10), seed=3)
    qat = quant.prepare_qat(model)
    assert [type(m).__name__ for m in qat] == ["FakeQuantize", "QATLinear", "ReLU"] * 1 + [
        "FakeQuantize",
        "QATLinear",
    ]
    opt = sei.optim.SGD(qat.parameters(), lr=0.1, momentum=0.9)
    loss = nn.CrossEntropyLoss()
    first = None
    for _epoch in range(5):
        for b in range(0, 1500, 100):
            qat.zero_grad()
            value = float(loss(qat(x[b : b + 100]), labels[b : b + 100]))
            first = value if first is None else first
            qat.backward(loss.backward())
            opt.step()
    assert value < 0.5 * first
    q = quant.quantize(qat)  # static scales from the FakeQuantize observers
    assert all(m.input_scale > 0 for m in q if isinstance(m, quant.QuantizedLinear))
    assert q[0].input_scale == pytest.approx(qat[0].scale)
    test_x, test_y = x[1500:], labels[1500:]
    qat.eval()
    acc_qat = np.mean(np.argmax(qat(test_x), 1) == test_y)
    acc_int8 = np.mean(np.argmax(q(test_x), 1) == test_y)
    assert acc_qat > 0.8 and abs(acc_int8 - acc_qat) < 0.02
    # the float model shares the trained parameters
    np.testing.assert_array_equal(model[0].weight.value, qat[1].weight.value)
    with pytest.raises(ValueError, match=r"\[prepare_qat\] argument 'model' has no float32 Linear"):
        quant.prepare_qat(nn.Sequential(nn.ReLU()))


def test_conv_and_qat_layers_copy_and_pickle():
    rng = np.random.default_rng(8)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(3 * 5 * 5, 4))
    x = rng.standard_normal((3, 2, 5, 5)).astype(np.float32)
    q = quant.quantize(model, x)
    assert [type(m).__name__ for m in q] == ["QuantizedConv2d", "Flatten", "QuantizedLinear"]
    qat = quant.prepare_qat(nn.Sequential(nn.Linear(6, 4, activation="relu"), nn.Linear(4, 2)))
    qat(rng.standard_normal((5, 6)).astype(np.float32))  # observes a scale
    qat.eval()
    h = rng.standard_normal((2, 6)).astype(np.float32)
    for m, inp in ((q, x), (qat, h)):
        for other in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
            np.testing.assert_array_equal(other(inp), m(inp))
    assert pickle.loads(pickle.dumps(qat))[0].observed_max == qat[0].observed_max
