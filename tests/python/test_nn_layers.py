"""nn layers and models: finite-difference gradients of whole models, parameter sharing,
PyTorch parity, dropout and DropConnect statistics, train/eval, state save/load,
initialisers, argument checks and CPU/GPU agreement."""

from __future__ import annotations

import numpy as np
import pytest

import seisoku as sei
from conftest import to_device, to_host
from gradcheck import (
    F64,
    assert_same_state,
    check_gradients,
    gradients,
    half_squared_error,
    objective,
    rand,
    randomize_biases,
    weighted_sum,
)
from seisoku import nn
from seisoku.nn import init
from tolerance import assert_close

# ---- finite-difference gradients of whole models ---------------------------------------


@pytest.mark.parametrize(
    "mode, training",
    [("inverted", True), ("lecture", True), ("inverted", False), ("lecture", False)],
)
def test_fused_linear_stack_gradients(mode, training):
    init_gen, masks = sei.Generator(11), sei.Generator(12)
    model = nn.Sequential(
        nn.Linear(
            6, 8, activation="relu", dropout=0.3, dropout_mode=mode, dtype=F64, generator=init_gen
        ),
        nn.Linear(8, 7, activation="tanh", dtype=F64, generator=init_gen),
        nn.Linear(7, 6, activation="sigmoid", dtype=F64, generator=init_gen),
        nn.Linear(6, 5, activation="leaky_relu", slope=0.1, dtype=F64, generator=init_gen),
        nn.Linear(5, 3, dtype=F64, generator=init_gen),
    )
    model[0].generator = masks
    model.train(training)
    randomize_biases(model)
    x = rand((5, 6), 1)
    evaluate = objective(model, weighted_sum(rand((5, 3), 2)), [masks])
    check_gradients(model, x, evaluate)


@pytest.mark.parametrize("mode", ["inverted", "lecture"])
@pytest.mark.parametrize("training", [True, False])
def test_module_stack_gradients(mode, training):
    init_gen, noise_gen, drop_gen = sei.Generator(21), sei.Generator(22), sei.Generator(23)

    def linear(a, b):
        return nn.Linear(a, b, dtype=F64, generator=init_gen)

    model = nn.Sequential(
        nn.Flatten(),
        nn.GaussianNoise(0.2, generator=noise_gen),
        linear(6, 8),
        nn.ReLU(),
        nn.Dropout(0.25, mode=mode, generator=drop_gen),
        linear(8, 8),
        nn.Tanh(),
        linear(8, 7),
        nn.Sigmoid(),
        linear(7, 6),
        nn.LeakyReLU(0.2),
        linear(6, 4),
        nn.Identity(),
        nn.Softmax(),
    )
    model.train(training)
    randomize_biases(model)
    x = rand((5, 2, 3), 3)
    evaluate = objective(model, weighted_sum(rand((5, 4), 4)), [noise_gen, drop_gen])
    check_gradients(model, x, evaluate)


def test_dropconnect_gradients_in_training():
    g1, g2, g3 = sei.Generator(31), sei.Generator(32), sei.Generator(33)
    model = nn.Sequential(
        nn.DropConnect(6, 7, p=0.4, activation="tanh", dtype=F64, generator=g1),
        nn.Linear(7, 5, activation="relu", dtype=F64, generator=g2),
        nn.DropConnect(5, 3, p=0.3, dtype=F64, generator=g3),
    )
    randomize_biases(model)
    x = rand((4, 6), 5)
    evaluate = objective(model, weighted_sum(rand((4, 3), 6)), [g1, g3])
    check_gradients(model, x, evaluate, entries=6)


def test_tied_autoencoder_gradients():
    ae = nn.AutoEncoder([8, 6, 4], noise_std=0.1, dtype=F64, generator=sei.Generator(41))
    noise = sei.Generator(42)
    ae.noise.generator = noise
    randomize_biases(ae)
    assert ae.decoder[0].weight is ae.encoder[1].weight
    assert ae.decoder[1].weight is ae.encoder[0].weight
    assert len(ae.parameters()) == 6  # 2 shared weights, 2 encoder and 2 decoder biases
    x = np.random.default_rng(7).uniform(0.0, 1.0, (5, 8))
    target = np.random.default_rng(8).uniform(0.0, 1.0, (5, 8))
    evaluate = objective(ae, half_squared_error(target), [noise])
    check_gradients(ae, x, evaluate, entries=6)


def multihead_model(drop: sei.Generator) -> nn.MultiHead:
    gen = sei.Generator(51)
    trunk = nn.Sequential(
        nn.Linear(5, 6, activation="tanh", dtype=F64, generator=gen),
        nn.Dropout(0.2, generator=drop),
    )
    head_a = nn.Linear(6, 3, activation="sigmoid", dtype=F64, generator=gen)
    head_b = nn.Sequential(
        nn.Linear(6, 4, activation="relu", dtype=F64, generator=gen),
        nn.Linear(4, 2, dtype=F64, generator=gen),
    )
    model = nn.MultiHead(trunk, {"a": head_a, "b": head_b})
    randomize_biases(model)
    return model


@pytest.mark.parametrize("heads", [("a", "b"), ("a",), ("b",)])
def test_multihead_gradients(heads):
    drop = sei.Generator(52)
    model = multihead_model(drop)
    shapes = {"a": (4, 3), "b": (4, 2)}
    weights = {h: rand(shapes[h], 60 + i) for i, h in enumerate(heads)}
    evaluate = objective(model, weighted_sum(weights), [drop])
    analytic = check_gradients(model, rand((4, 5), 9), evaluate)
    for name, grad in analytic.items():
        head = name.split(".")[0]
        if head in shapes and head not in heads:
            assert not grad.any(), f"{name} has a gradient though its head had none"


def test_multihead_backward_leaves_head_gradients_alone():
    model = nn.MultiHead(
        nn.Linear(3, 4, dtype=F64), {"a": nn.Flatten(), "b": nn.Linear(4, 2, dtype=F64)}
    )
    model.forward(rand((2, 3), 31))
    grad_a, grad_b = rand((2, 4), 32), rand((2, 2), 33)
    keep = grad_a.copy()
    model.backward({"a": grad_a, "b": grad_b})
    np.testing.assert_array_equal(grad_a, keep)


@pytest.mark.parametrize("ord", [1, 2])
def test_activity_regularization_gradients(ord):
    gen = sei.Generator(61)
    model = nn.Sequential(
        nn.Linear(5, 6, activation="tanh", dtype=F64, generator=gen),
        nn.ActivityRegularization(0.3, ord=ord),
        nn.Linear(6, 4, dtype=F64, generator=gen),
        nn.ActivityRegularization(0.2, ord=ord),
        nn.Linear(4, 3, dtype=F64, generator=gen),
    )
    randomize_biases(model)
    evaluate = objective(model, weighted_sum(rand((5, 3), 10)), penalty=model.penalty)
    check_gradients(model, rand((5, 5), 11), evaluate)
    assert model.penalty() > 0


def test_tie_penalty_gradients():
    gen = sei.Generator(71)
    model = nn.Sequential(
        nn.Linear(4, 4, activation="tanh", dtype=F64, generator=gen),
        nn.Linear(4, 4, activation="tanh", dtype=F64, generator=gen),
        nn.Linear(4, 2, dtype=F64, generator=gen),
    )
    model.tie = nn.Tie(model[0].weight, model[1].weight, 0.7)
    randomize_biases(model)
    assert len(model.parameters()) == 6  # the Tie registers no parameters of its own
    evaluate = objective(model, weighted_sum(rand((3, 2), 12)), penalty=model.apply_penalties)
    check_gradients(model, rand((3, 4), 13), evaluate, entries=6)
    diff = model[0].weight.value - model[1].weight.value
    assert model.penalty() == pytest.approx(0.7 * float(np.sum(diff * diff)), rel=1e-12)


# ---- penalties against references ------------------------------------------------------


@pytest.mark.parametrize("ord", [1, 2])
def test_activity_regularization_matches_reference(ord):
    lam, x, grad = 0.4, rand((6, 5), 14), rand((6, 5), 15)
    layer = nn.ActivityRegularization(lam, ord=ord)
    assert layer.penalty() == 0.0
    assert layer.forward(x) is x
    keep = grad.copy()
    out = layer.backward(grad)
    np.testing.assert_array_equal(grad, keep)  # the incoming gradient is not modified
    n = x.shape[0]
    if ord == 1:
        expected_grad, expected = grad + lam / n * np.sign(x), lam / n * np.abs(x).sum()
    else:
        expected_grad, expected = grad + 2 * lam / n * x, lam / n * (x * x).sum()
    assert_close(out, expected_grad, ops=4)
    assert layer.penalty() == pytest.approx(expected, rel=1e-12)


# ---- parameter sharing and regularization flags ----------------------------------------


def test_shared_weight_accumulates_both_gradients():
    gen = sei.Generator(81)
    first = nn.Linear(4, 4, activation="tanh", dtype=F64, generator=gen)
    second = nn.Linear(4, 4, activation="sigmoid", weight=first.weight)
    shared = nn.Sequential(first, second)
    randomize_biases(shared)
    assert second.weight is first.weight
    assert [n for n, _ in shared.named_parameters()] == ["0.weight", "0.bias", "1.bias"]
    assert list(shared.state_dict()) == ["0.weight", "0.bias", "1.bias"]

    untied = nn.Sequential(
        nn.Linear(4, 4, activation="tanh", dtype=F64),
        nn.Linear(4, 4, activation="sigmoid", dtype=F64),
    )
    for layer, source in zip(untied, shared):
        layer.weight.value[...] = source.weight.value
        layer.bias.value[...] = source.bias.value

    x, grad_y = rand((5, 4), 16), rand((5, 4), 17)
    for model in (shared, untied):
        model.zero_grad()
        model.forward(x)
        model.backward(grad_y)
    expected = untied[0].weight.grad + untied[1].weight.grad
    assert_close(first.weight.grad, expected, ops=8)
    check_gradients(shared, x, objective(shared, weighted_sum(grad_y)))


def test_regularize_flags():
    layer = nn.Linear(3, 2)
    assert layer.weight.regularize is True
    assert layer.bias.regularize is False
    assert nn.Parameter(np.zeros(3), regularize=True).regularize is True
    assert nn.Parameter(np.zeros((2, 3)), regularize=False).regularize is False
    assert nn.Parameter(np.zeros((2, 3))).regularize is True


# ---- PyTorch parity --------------------------------------------------------------------


def torch_copy(torch, model: nn.Sequential):
    """The same MLP (ReLU hidden layers) as torch modules, weights copied."""
    layers = []
    for i, layer in enumerate(model):
        t = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(layer.weight.value))
            t.bias.copy_(torch.from_numpy(layer.bias.value))
        layers.append(t)
        if i < len(model) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def parity_setup():
    model = nn.mlp([10, 16, 12, 5], dtype=F64, generator=sei.Generator(91))
    randomize_biases(model)
    x = rand((8, 10), 18)
    y = np.random.default_rng(19).integers(0, 5, 8).astype(np.int64)
    return model, x, y


def test_mlp_matches_torch():
    torch = pytest.importorskip("torch")
    model, x, y = parity_setup()
    tmodel = torch_copy(torch, model)

    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1, convention="uniform")
    model.zero_grad()
    logits = model.forward(x)
    loss = loss_fn(logits, y)
    model.backward(loss_fn.backward())

    tlogits = tmodel(torch.from_numpy(x))
    tloss = torch.nn.CrossEntropyLoss(label_smoothing=0.1)(tlogits, torch.from_numpy(y))
    tloss.backward()

    np.testing.assert_allclose(logits, tlogits.detach().numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(float(loss), tloss.item(), rtol=1e-10)
    tparams = [p for m in tmodel if isinstance(m, torch.nn.Linear) for p in (m.weight, m.bias)]
    for p, tp in zip(model.parameters(), tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_sgd_steps_match_torch():
    torch = pytest.importorskip("torch")
    model, x, y = parity_setup()
    tmodel = torch_copy(torch, model)
    lr, steps = 0.1, 5
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1, convention="uniform")
    tloss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    optimizer = torch.optim.SGD(tmodel.parameters(), lr=lr)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(steps):
        model.zero_grad()
        loss = loss_fn(model.forward(x), y)
        model.backward(loss_fn.backward())
        for p in model.parameters():
            sei.axpy(-lr, p.grad, p.value)

        optimizer.zero_grad()
        tloss = tloss_fn(tmodel(tx), ty)
        tloss.backward()
        optimizer.step()
        np.testing.assert_allclose(float(loss), tloss.item(), rtol=1e-10)
    tparams = [p for m in tmodel if isinstance(m, torch.nn.Linear) for p in (m.weight, m.bias)]
    for p, tp in zip(model.parameters(), tparams):
        np.testing.assert_allclose(p.value, tp.detach().numpy(), rtol=1e-10, atol=1e-13)


# ---- dropout and DropConnect -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["inverted", "lecture"])
def test_dropout_statistics_and_scaling(mode):
    p = 0.3
    layer = nn.Dropout(p, mode=mode, generator=sei.Generator(101))
    x = np.random.default_rng(20).uniform(1.0, 2.0, (400, 250))
    y = layer.forward(x)
    kept = y != 0
    sigma = np.sqrt(p * (1 - p) / x.size)
    assert abs(kept.mean() - (1 - p)) < 5 * sigma
    scale = 1 / (1 - p) if mode == "inverted" else 1.0
    assert_close(y[kept], x[kept] * scale)
    assert not np.array_equal(layer.forward(x) != 0, kept)  # a fresh mask each forward

    layer.eval()
    expected = x if mode == "inverted" else x * (1 - p)
    assert_close(layer.forward(x), expected)


@pytest.mark.parametrize("mode", ["inverted", "lecture"])
@pytest.mark.parametrize("training", [True, False])
def test_fused_dropout_matches_dropout_module(mode, training):
    p, x = 0.4, rand((30, 6), 21).astype(np.float32)
    fused = nn.Linear(
        6, 50, activation="tanh", dropout=p, dropout_mode=mode, generator=sei.Generator(102)
    )
    plain = nn.Linear(6, 50, activation="tanh", weight=fused.weight)
    plain.bias = fused.bias
    randomize_biases(fused)
    drop = nn.Dropout(p, mode=mode, generator=sei.Generator(9, offset=4))
    fused.generator = sei.Generator(9, offset=4)
    for m in (fused, drop):
        m.train(training)
    y_fused = fused.forward(x)
    y_split = drop.forward(plain.forward(x))
    assert_close(y_fused, y_split, ops=2)
    if training:
        assert (y_fused == 0).mean() > 0.3


def test_dropconnect_mask_rate():
    p, n_in, n_out = 0.3, 200, 150
    layer = nn.DropConnect(n_in, n_out, p=p, bias=False, dtype=F64, generator=sei.Generator(103))
    masked = layer.forward(np.eye(n_in)).T  # identity inputs give the masked weights
    w = layer.weight.value
    kept = masked != 0
    sigma = np.sqrt(p * (1 - p) / w.size)
    assert abs(kept.mean() - (1 - p)) < 5 * sigma
    np.testing.assert_array_equal(masked[kept], w[kept])  # DropConnect does not rescale
    again = layer.forward(np.eye(n_in)).T
    assert not np.array_equal(again != 0, kept)


def test_dropconnect_eval_mean_uses_expected_weights():
    p = 0.3
    layer = nn.DropConnect(7, 5, p=p, activation="tanh", dtype=F64, generator=sei.Generator(104))
    randomize_biases(layer)
    layer.eval()
    x = rand((6, 7), 22)
    w, b = layer.weight.value, layer.bias.value
    assert_close(layer.forward(x), np.tanh(x @ ((1 - p) * w).T + b), ops=16)


def test_dropconnect_eval_gaussian_approximates_monte_carlo():
    p, draws = 0.5, 4000
    layer = nn.DropConnect(
        40,
        6,
        p=p,
        activation="tanh",
        inference="gaussian",
        samples=draws,
        dtype=F64,
        generator=sei.Generator(105),
    )
    randomize_biases(layer, scale=0.3)
    x = rand((5, 40), 23)
    layer.eval()
    gaussian = layer.forward(x)
    layer.inference = "mean"
    mean = layer.forward(x)
    layer.train()
    monte_carlo = np.mean([layer.forward(x) for _ in range(draws)], axis=0)
    gaussian_error = np.abs(gaussian - monte_carlo).max()
    assert gaussian_error < 0.06
    assert gaussian_error < np.abs(mean - monte_carlo).max()  # better than the mean weights


# ---- train / eval ----------------------------------------------------------------------


def test_train_eval_propagate_to_all_submodules():
    trunk = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5))
    heads = {"a": nn.Sequential(nn.GaussianNoise(1.0), nn.Linear(4, 2)), "b": nn.Linear(4, 1)}
    model = nn.MultiHead(trunk, heads)
    model.tie = nn.Tie(heads["a"][1].weight, heads["a"][1].weight, 0.1)
    modules = [m for _, m in model.named_modules()]
    assert len(modules) == 9
    assert model.eval() is model
    assert not any(m.training for m in modules)
    assert model.train() is model
    assert all(m.training for m in modules)
    model.train(False)
    assert not any(m.training for m in modules)


def test_gaussian_noise_train_and_eval():
    std = 0.5
    layer = nn.GaussianNoise(std, generator=sei.Generator(106))
    x = rand((300, 200), 24)
    noise = layer.forward(x) - x
    assert abs(noise.std() - std) < 0.02 * std
    assert abs(noise.mean()) < 0.02 * std
    layer.eval()
    np.testing.assert_array_equal(layer.forward(x), x)


# ---- initialisers ----------------------------------------------------------------------


def test_fans():
    assert init.fans((6, 4)) == (4, 6)
    assert init.fans((8, 3, 5, 5)) == (75, 200)
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.fans((5,))


@pytest.mark.parametrize("shape", [(400, 300), (64, 16, 3, 3)])
def test_he_normal_std(shape):
    w = init.he_normal(shape, dtype=F64, generator=sei.Generator(131))
    fan_in, _ = init.fans(shape)
    std = np.sqrt(2.0 / fan_in)
    assert w.shape == shape and w.dtype == np.float64
    assert abs(w.std() / std - 1) < 0.03
    assert abs(w.mean()) < 0.03 * std


def test_glorot_uniform_bounds():
    shape = (300, 200)
    w = init.glorot_uniform(shape, dtype=F64, generator=sei.Generator(132))
    bound = np.sqrt(6.0 / (300 + 200))
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound
    assert abs(w.var() / (bound**2 / 3) - 1) < 0.03


def test_linear_default_initialisers():
    gen = sei.Generator(133)
    relu = nn.Linear(300, 400, activation="relu", dtype=F64, generator=gen)
    assert abs(relu.weight.value.std() / np.sqrt(2.0 / 300) - 1) < 0.03
    tanh = nn.Linear(300, 200, activation="tanh", dtype=F64, generator=gen)
    bound = np.sqrt(6.0 / 500)
    assert np.abs(tanh.weight.value).max() <= bound
    assert np.abs(tanh.weight.value).max() > 0.99 * bound
    assert not relu.bias.value.any() and not tanh.bias.value.any()


def test_manual_seed_gives_identical_models(restore_default_generator):
    sei.manual_seed(1234)
    first = nn.mlp([5, 7, 3], dropout=0.2)
    sei.manual_seed(1234)
    second = nn.mlp([5, 7, 3], dropout=0.2)
    third = nn.mlp([5, 7, 3], dropout=0.2)
    assert_same_state(second, first.state_dict())
    assert not np.array_equal(third[0].weight.value, first[0].weight.value)
    x = rand((4, 5), 28).astype(np.float32)
    sei.manual_seed(99)
    y_first = first.forward(x)
    sei.manual_seed(99)
    np.testing.assert_array_equal(second.forward(x), y_first)  # same dropout masks too


# ---- bad arguments ---------------------------------------------------------------------


def tie_mismatched():
    nn.Tie(nn.Linear(3, 4).weight, nn.Linear(4, 3).weight, 0.1)


def shared_weight_wrong_shape():
    nn.Linear(4, 3, weight=nn.Linear(3, 4).weight)


def input_wrong_width():
    nn.Linear(4, 3).forward(np.zeros((2, 5), np.float32))


def input_float64_to_float32_layer():
    nn.Linear(4, 3).forward(np.zeros((2, 4)))


def input_float64_to_float32_layer_without_bias():
    nn.Linear(4, 3, bias=False).forward(np.zeros((2, 4)))


BAD_ARGUMENTS = {
    "linear_zero_inputs": (lambda: nn.Linear(0, 3), "in_features"),
    "linear_gelu": (lambda: nn.Linear(3, 3, activation="gelu"), "activation"),
    "linear_dropout_one": (lambda: nn.Linear(3, 3, dropout=1.0), "dropout"),
    "linear_unknown_init": (lambda: nn.Linear(3, 3, init="xavier"), "init"),
    "dropout_one": (lambda: nn.Dropout(1.0), r"\[Dropout\] argument 'p' must be"),
    "dropout_negative": (lambda: nn.Dropout(-0.1), r"\[Dropout\] argument 'p' must be"),
    "dropout_mode": (lambda: nn.Dropout(0.5, mode="seed"), r"\[Dropout\] argument 'mode'"),
    "dropconnect_inference": (lambda: nn.DropConnect(3, 3, inference="x"), "inference"),
    "noise_negative_std": (lambda: nn.GaussianNoise(-1), "std"),
    "activity_ord_3": (lambda: nn.ActivityRegularization(0.1, ord=3), "ord"),
    "tie_mismatched_shapes": (tie_mismatched, "one shape"),
    "shared_weight_wrong_shape": (shared_weight_wrong_shape, "shared weight"),
    "input_wrong_width": (input_wrong_width, r"\[linear\]"),
    "input_float64": (input_float64_to_float32_layer, "dtype"),
    "input_float64_no_bias": (input_float64_to_float32_layer_without_bias, "dtype"),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_arguments_raise_value_error(case):
    make, message = BAD_ARGUMENTS[case]
    with pytest.raises(ValueError, match=message):
        make()


def test_linear_rejects_empty_batch():
    layer = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"\[linear\].*empty batch"):
        layer.forward(np.zeros((0, 4), np.float32))


# ---- CUDA against CPU ------------------------------------------------------------------


def test_mlp_on_device_matches_cpu(device):
    masks = sei.Generator(141)
    model = nn.mlp([12, 16, 8, 4], dropout=0.25, dtype=F64, generator=sei.Generator(142))
    for layer in model:
        layer.generator = masks
    randomize_biases(model)
    x, grad_y = rand((9, 12), 29), rand((9, 4), 30)
    start = masks.state_dict()

    model.zero_grad()
    y_cpu = model.forward(x)
    gx_cpu = model.backward(grad_y)
    grads_cpu = gradients(model)

    masks.load_state_dict(start)
    model.to(device)
    assert all(p.device == device for p in model.parameters())
    model.zero_grad()
    y = model.forward(to_device(x, device))
    gx = model.backward(to_device(grad_y, device))
    np.testing.assert_allclose(to_host(y), y_cpu, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(to_host(gx), gx_cpu, rtol=1e-10, atol=1e-13)
    for name, grad in gradients(model).items():
        np.testing.assert_allclose(grad, grads_cpu[name], rtol=1e-10, atol=1e-13, err_msg=name)
    model.to("cpu")
    assert all(p.device == "cpu" for p in model.parameters())
