"""The module system: every class of seisoku.nn is its native class; the gradient rule
(zero_grad marks, backward overwrites or adds); registration of parameters and children; Python
subclasses running inside native containers; state dictionaries, state files, pickling and
copying; reuse of result memory; the GIL released while a model runs."""

from __future__ import annotations

import copy
import os
import pickle
import re
import sys
import threading

import numpy as np
import pytest

import seisoku as sei
from gradcheck import (
    F64,
    assert_same_state,
    check_gradients,
    objective,
    rand,
    randomize_biases,
    weighted_sum,
)
from seisoku import _core, nn
from tolerance import assert_close

# ---- one implementation: the Python classes are the native ones -------------------------


def test_every_class_of_seisoku_nn_is_its_native_class():
    classes = [getattr(nn, name) for name in nn.__all__ if isinstance(getattr(nn, name), type)]
    assert len(classes) >= 28
    for cls in classes:
        native = getattr(_core.nn, cls.__name__)
        assert cls is native or issubclass(cls, native), cls
    assert issubclass(nn.Linear, nn.Module) and issubclass(nn.CrossEntropyLoss, nn.Loss)


# ---- the gradient rule -----------------------------------------------------------------------


@pytest.mark.parametrize("make", ["linear", "conv"])
def test_zero_grad_then_backward_overwrites_and_later_backwards_add(make):
    """zero_grad() only marks the gradients; the next backward writes them, later ones add."""
    if make == "linear":
        layer, x = nn.Linear(5, 3, activation="relu", dtype=F64), rand((4, 5), 30)
    else:
        layer, x = nn.Conv2d(2, 3, 3, padding=1, dtype=F64), rand((2, 2, 5, 5), 30)
    randomize_biases(layer)
    grad_y = rand(layer.forward(x).shape, 31)
    params = layer.parameters()
    layer.backward(grad_y)
    once = [p.grad.copy() for p in params]
    for p in params:
        p.grad[...] = np.nan  # stale contents that must never show through
    layer.zero_grad()
    assert all(p.grad_marked_zero for p in params)
    layer.forward(x)
    layer.backward(grad_y)
    for p, g in zip(params, once):
        assert not p.grad_marked_zero
        np.testing.assert_array_equal(p.grad, g)
    layer.forward(x)
    layer.backward(grad_y)  # no zero_grad: adds
    for p, g in zip(params, once):
        assert_close(p.grad, 2 * g, ops=2)


def test_zero_grad_reads_as_zeros_and_steps_see_zeros():
    layer = nn.Linear(3, 2, dtype=F64)
    randomize_biases(layer)
    layer.forward(rand((4, 3), 32))
    layer.backward(rand((4, 2), 33))
    before = [p.value.copy() for p in layer.parameters()]
    layer.zero_grad()
    # An optimizer reads .grad natively: the pending zeros must reach it.
    sei.optim.SGD(layer.parameters(), lr=0.5).step()
    for p, v in zip(layer.parameters(), before):
        np.testing.assert_array_equal(p.value, v)
        np.testing.assert_array_equal(p.grad, 0.0)
    layer.zero_grad()
    replacement = np.ones((2, 3))
    layer.weight.grad = replacement  # assigning a gradient clears the mark
    assert layer.weight.grad is replacement and not layer.weight.grad_marked_zero


def test_backward_mixing_marked_and_unmarked_gradients_adds_to_the_unmarked():
    layer = nn.Linear(3, 2, dtype=F64)
    x, grad_y = rand((4, 3), 34), rand((4, 2), 35)
    layer.forward(x)
    layer.backward(grad_y)
    gw, gb = layer.weight.grad.copy(), layer.bias.grad.copy()
    layer.zero_grad()
    layer.bias.grad[...] = 1.0  # reading .grad clears the bias's mark; its 1.0 must be kept
    layer.forward(x)
    layer.backward(grad_y)
    assert_close(layer.weight.grad, gw, ops=1)
    assert_close(layer.bias.grad, gb + 1.0, ops=1)


def test_failed_backward_leaves_zeroed_gradients_zero():
    layer = nn.Linear(3, 2)
    layer.forward(np.ones((4, 3), np.float32))
    layer.backward(np.ones((4, 2), np.float32))
    layer.zero_grad()
    layer.forward(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError):
        layer.backward(np.ones((4, 2), np.float64))  # wrong dtype
    np.testing.assert_array_equal(layer.weight.grad, 0.0)
    np.testing.assert_array_equal(layer.bias.grad, 0.0)


# ---- registration and Python subclasses ------------------------------------------------------


class Scale(nn.Module):
    """y = x * w (w per feature), written in Python with NumPy."""

    def __init__(self, features: int, factor: float = 1.5) -> None:
        super().__init__()
        self.factor = factor
        self.w = nn.Parameter(np.linspace(0.5, 1.5, features), "w")

    def forward(self, x):
        self.x = x
        return x * self.w.value * self.factor

    def backward(self, grad, need_input_grad=True):
        self.w.grad[...] += (grad * self.x).sum(axis=0) * self.factor
        return grad * self.w.value * self.factor if need_input_grad else None


def python_in_the_middle() -> nn.Sequential:
    gen = sei.Generator(201)
    model = nn.Sequential(
        nn.Linear(5, 6, activation="tanh", dtype=F64, generator=gen),
        Scale(6),
        nn.Linear(6, 3, dtype=F64, generator=gen),
    )
    randomize_biases(model)
    return model


def test_python_module_between_native_layers_has_exact_gradients():
    model = python_in_the_middle()
    assert [n for n, _ in model.named_parameters()] == [
        "0.weight",
        "0.bias",
        "1.w",
        "2.weight",
        "2.bias",
    ]
    check_gradients(model, rand((4, 5), 202), objective(model, weighted_sum(rand((4, 3), 203))))


def test_python_module_lives_as_long_as_its_container():
    model = nn.Sequential(nn.Linear(3, 3, dtype=F64), Scale(3, factor=2.0))
    x = rand((2, 3), 204)
    expected = model(x).copy()
    del model[1].w  # unregistering works through the container's child too
    model[1].w = nn.Parameter(np.linspace(0.5, 1.5, 3), "w")
    import gc

    gc.collect()
    np.testing.assert_array_equal(model(x), expected)  # the Python part is alive
    assert model[1].factor == 2.0 and isinstance(model[1], Scale)


def test_python_module_errors_reach_the_caller():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("broken forward")

    class NoArray(nn.Module):
        def forward(self, x):
            return [1, 2]

    for module, error, match in (
        (Broken(), RuntimeError, "broken forward"),
        (NoArray(), ValueError, "NumPy or CuPy array"),
        (nn.Module(), ValueError, "must define forward"),
    ):
        model = nn.Sequential(nn.Linear(2, 2), module)
        with pytest.raises(error, match=match):
            model(np.ones((1, 2), np.float32))


def test_assignment_registers_and_replaces():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    model.extra = nn.Linear(3, 1)
    model.scale = nn.Parameter(np.ones(1, np.float32))
    assert [n for n, _ in model.named_modules()] == ["", "0", "1", "extra"]
    names = [n for n, _ in model.named_parameters()]
    assert names == ["scale", "0.weight", "0.bias", "extra.weight", "extra.bias"]
    with pytest.raises(AttributeError, match="a native module takes Parameters and modules"):
        model.scale = 3.0  # a native module has no plain attributes
    model.scale = None  # None removes what was attached
    assert "scale" not in dict(model.named_parameters())
    del model.extra
    assert [n for n, _ in model.named_modules()] == ["", "0", "1"]
    layer = model[0]
    new_weight = nn.Parameter(np.zeros((3, 2), np.float32))
    layer.weight = new_weight  # a property: the layer's own weight slot
    assert layer.weight is new_weight and dict(model.named_parameters())["0.weight"] is new_weight
    with pytest.raises(ValueError, match="shared weight has shape"):
        layer.weight = nn.Parameter(np.zeros((2, 3), np.float32))
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        model.missing  # noqa: B018


def test_sequential_indexing_and_append():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    assert len(model) == 2 and isinstance(model[-1], nn.ReLU) and list(model) == model.layers
    assert model.append(nn.Linear(3, 1)) is model and len(model) == 3
    with pytest.raises(IndexError):
        model[3]
    with pytest.raises(ValueError, match=r"\[Sequential\] argument 1 must be a seisoku.nn.Module"):
        nn.Sequential(nn.ReLU(), "relu")


# ---- state: state_dict, save / load ----------------------------------------------------


def state_model(seed: int) -> nn.Sequential:
    model = nn.mlp([6, 5, 3], dtype=F64, generator=sei.Generator(seed))
    randomize_biases(model, seed=seed)
    return model


def test_state_dict_round_trip():
    source, target = state_model(111), state_model(112)
    x = rand((4, 6), 25)
    state = source.state_dict()
    state["0.weight"][...] = 0.0  # a copy: changing it leaves the model alone
    assert source[0].weight.value.any()
    target.load_state_dict(source.state_dict())
    np.testing.assert_array_equal(target.forward(x), source.forward(x))


def test_save_load_round_trip(tmp_path):
    source, target = state_model(113), state_model(114)
    path = tmp_path / "model.npz"
    source.save(path)
    target.load(path)
    x = rand((4, 6), 26)
    np.testing.assert_array_equal(target.forward(x), source.forward(x))
    target.load(str(path))
    assert_same_state(target, source.state_dict())


def test_save_is_atomic(tmp_path, monkeypatch):
    model = state_model(115)
    path = tmp_path / "model.npz"
    model.save(path)
    model.save(path)  # overwrite
    assert os.listdir(tmp_path) == ["model.npz"]
    saved = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert os.listdir(tmp_path) == ["model.npz"]  # no temp file left, old file intact
    assert path.read_bytes() == saved


def corrupt_random_bytes(real: bytes) -> bytes:
    return np.random.default_rng(27).integers(0, 256, 600, dtype=np.uint8).tobytes()


def corrupt_truncated(real: bytes) -> bytes:
    return real[: len(real) // 2]


def corrupt_empty(real: bytes) -> bytes:
    return b""


def corrupt_flipped_byte(real: bytes) -> bytes:
    at = real.find(b"\x93NUMPY") + 200  # inside the first array's data (CRC-checked)
    return real[:at] + bytes([real[at] ^ 0xFF]) + real[at + 1 :]


@pytest.mark.parametrize(
    "corrupt",
    [
        corrupt_random_bytes,
        corrupt_truncated,
        corrupt_empty,
        corrupt_flipped_byte,
    ],
)
def test_load_corrupt_file_raises(tmp_path, corrupt):
    model = state_model(116)
    good = tmp_path / "good.npz"
    model.save(good)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(corrupt(good.read_bytes()))
    before = model.state_dict()
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        model.load(bad)
    assert_same_state(model, before)


def test_load_npy_file_raises_value_error(tmp_path):
    model = state_model(117)
    path = tmp_path / "array.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        model.load(path)


def bad_shape(state):
    state["1.bias"] = np.zeros(4)


def bad_dtype(state):
    state["1.bias"] = state["1.bias"].astype(np.float32)


def missing_key(state):
    del state["1.bias"]


def extra_key(state):
    state["2.weight"] = np.zeros((3, 3))


@pytest.mark.parametrize("spoil", [bad_shape, bad_dtype, missing_key, extra_key])
def test_load_mismatched_state_raises_and_changes_nothing(tmp_path, spoil):
    model = state_model(118)
    before = model.state_dict()
    state = state_model(119).state_dict()  # valid values for every other entry
    spoil(state)
    with pytest.raises(ValueError, match=r"\[load_state_dict\]"):
        model.load_state_dict(state)
    assert_same_state(model, before)
    path = tmp_path / "spoiled.npz"
    np.savez(path, **state)
    with pytest.raises(ValueError, match=r"\[load_state_dict\]"):
        model.load(path)
    assert_same_state(model, before)


def test_load_not_strict_skips_missing_and_unexpected():
    model, source = state_model(120), state_model(121)
    keep_bias = model[1].bias.value.copy()
    state = source.state_dict()
    del state["1.bias"]
    state["unused"] = np.zeros(2)
    model.load_state_dict(state, strict=False)
    np.testing.assert_array_equal(model[0].weight.value, source[0].weight.value)
    np.testing.assert_array_equal(model[1].bias.value, keep_bias)


# ---- pickling and copying ------------------------------------------------------------------


def test_pickles_and_copies_keep_values_sharing_modes_and_attributes():
    ae = nn.AutoEncoder([6, 4, 2], noise_std=0.1, dtype=F64, generator=sei.Generator(205))
    model = nn.Sequential(ae.encoder, Scale(2), nn.Dropout(0.3, generator=sei.Generator(206)))
    model.tie = nn.Tie(model[0][0].weight, model[0][0].weight, 0.5)
    model.eval()
    x = rand((3, 6), 207)
    expected = model(x).copy()
    for twin in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert not twin.training and not twin[2].training
        np.testing.assert_array_equal(twin(x), expected)
        assert twin.tie.a is twin[0][0].weight  # sharing survives
        assert twin[0][0].weight is not model[0][0].weight  # a copy, not the same memory
        assert twin[2].generator.state_dict() == model[2].generator.state_dict()
    ae2 = copy.deepcopy(ae)
    assert ae2.decoder[1].weight is ae2.encoder[0].weight


def test_pickles_leave_out_the_memory_of_the_last_forward():
    model = nn.mlp((6, 8, 2))
    before = len(pickle.dumps(model))
    model(rand((4096, 6)).astype(np.float32))
    assert len(pickle.dumps(model)) == before
    out = pickle.loads(pickle.dumps(model))(rand((4, 6)).astype(np.float32))
    assert out.flags.writeable and out.shape == (4, 2)


def test_losses_pickle_and_repr():
    loss = nn.CrossEntropyLoss(label_smoothing=0.2, convention="uniform")
    twin = pickle.loads(pickle.dumps(loss))
    assert (twin.label_smoothing, twin.convention) == (0.2, "uniform")
    assert "label_smoothing=0.2" in repr(loss)


# ---- reused result memory --------------------------------------------------------------------


def test_training_steps_reuse_result_memory():
    model = nn.mlp((12, 16, 16, 3), dropout=0.5)
    loss = nn.CrossEntropyLoss()
    x, y = rand((8, 12), seed=1).astype(np.float32), np.arange(8) % 3
    outputs, grads = set(), set()
    for _ in range(6):
        model.zero_grad()
        out = model(x)
        loss(out, y)
        gx = model.backward(loss.backward())
        outputs.add(out.ctypes.data)
        grads.add(gx.ctypes.data)
        del out, gx
    assert len(outputs) <= 2 and len(grads) <= 2  # alternating between two arrays at most


def test_held_outputs_are_never_overwritten():
    model = nn.mlp((12, 16, 16, 3))
    model.eval()
    xs = [rand((5, 12), seed=s).astype(np.float32) for s in range(5)]
    held = [model(x) for x in xs]  # every output kept by the caller
    views = [model(x)[1:] for x in xs]  # views keep their base alive too
    for x, h, v in zip(xs, held, views):
        expect = model(x).copy()
        np.testing.assert_array_equal(h, expect)
        np.testing.assert_array_equal(v, expect[1:])
    assert len({h.ctypes.data for h in held}) == len(held)


def test_cnn_training_with_reused_memory_matches_fresh_arrays():
    # The same CNN trained twice from the same start: once as one Sequential (the layers reuse
    # their memory), once layer by layer from Python keeping every output and input gradient
    # alive, so that no memory is ever reused.
    def build():
        sei.manual_seed(3)
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.3),
            nn.Flatten(),
            nn.Linear(4 * 4 * 4, 3),
        )

    x = rand((6, 1, 8, 8), seed=2).astype(np.float32)
    y = np.arange(6) % 3
    finals = []
    for keep in (False, True):
        model, loss = build(), nn.CrossEntropyLoss()
        sei.manual_seed(5)  # same dropout masks in both runs
        kept = []
        for _ in range(4):
            model.zero_grad()
            if keep:
                h = x
                for layer in model:
                    h = layer(h)
                    kept.append(h)
                loss(h, y)
                g = loss.backward()
                for layer in reversed(model.layers):
                    g = layer.backward(g)
                    kept.append(g)
            else:
                loss(model(x), y)
                model.backward(loss.backward())
            for p in model.parameters():
                p.value -= 0.1 * p.grad
        finals.append([p.value.copy() for p in model.parameters()])
    for a, b in zip(*finals):
        np.testing.assert_array_equal(a, b)


# ---- the GIL -------------------------------------------------------------------------------


def test_a_model_runs_with_the_gil_released():
    # With a switch interval far longer than the test, a waiting Python thread gets the GIL only
    # when the running thread releases it: woken just before the model runs, it must have run by
    # the time the model returns.
    model = nn.mlp((512, 1024, 1024, 10))
    x = rand((256, 512)).astype(np.float32)
    model(x)
    wake, ran = threading.Event(), threading.Event()

    def other():
        wake.wait()
        ran.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    thread = threading.Thread(target=other)
    try:
        thread.start()
        wake.set()
        model(x)
        ran_during_forward = ran.is_set()
    finally:
        sys.setswitchinterval(old)
        thread.join()
    assert ran_during_forward


def test_models_train_in_parallel_threads_as_they_do_alone():
    def train(seed: int) -> list[np.ndarray]:
        gen = sei.Generator(seed)
        model = nn.mlp((20, 32, 4), dropout=0.2, generator=gen)
        opt = sei.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loss = nn.CrossEntropyLoss(label_smoothing=0.1)
        rng = np.random.default_rng(seed)
        x, y = rng.random((64, 20), dtype=np.float32), rng.integers(0, 4, 64)
        for _ in range(30):
            model.zero_grad()
            loss(model(x), y)
            model.backward(loss.backward(), need_input_grad=False)
            opt.step()
        return [p.value.copy() for p in model.parameters()]

    alone = [train(s) for s in range(4)]
    results: dict[int, list[np.ndarray]] = {}
    threads = [threading.Thread(target=lambda s=s: results.update({s: train(s)})) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in range(4):
        for a, b in zip(alone[s], results[s]):
            np.testing.assert_array_equal(a, b)


# ---- the rules a module keeps (one path, one thread, structure, cycles) ------------------


def test_python_subclasses_in_reference_cycles_are_collected():
    import gc
    import weakref

    class Loop(nn.Module):
        def __init__(self):
            super().__init__()
            self.hook = self.forward  # a cycle through the instance's own __dict__
            self.w = nn.Parameter(np.ones(3, np.float32))

        def forward(self, x):
            return x

    class MyLoss(nn.Loss):
        def __init__(self):
            super().__init__()
            self.me = self

    for make in (Loop, MyLoss):
        obj = make()
        ref = weakref.ref(obj)
        del obj
        gc.collect()
        assert ref() is None, make.__name__


def test_native_layers_cannot_be_subclassed_or_given_attributes():
    with pytest.raises(TypeError):

        class Twice(nn.Linear):
            pass

    layer = nn.Linear(2, 2)
    with pytest.raises(AttributeError):
        layer.tag = "lost"  # a native layer has no dict that could silently lose it


def test_a_module_used_by_another_thread_at_the_same_time_is_an_error():
    inside, release = threading.Event(), threading.Event()

    class Wait(nn.Module):
        def forward(self, x):
            inside.set()
            release.wait(30)
            return x

    model = nn.Sequential(nn.Linear(3, 3), Wait())
    x = np.ones((2, 3), np.float32)
    thread = threading.Thread(target=lambda: model(x))
    thread.start()
    try:
        assert inside.wait(30)
        with pytest.raises(ValueError, match=r"\[Sequential\] is running in another thread"):
            model(x)
    finally:
        release.set()
        thread.join()
    assert model(x).shape == (2, 3)  # free again


def test_cycles_and_repeated_modules_are_rejected():
    a = nn.Sequential(nn.ReLU())
    b = nn.Sequential(a)
    with pytest.raises(ValueError, match="cannot contain itself"):
        a.append(b)
    lin = nn.Linear(4, 4, activation="relu")
    with pytest.raises(ValueError, match="appears twice in the model"):
        nn.Sequential(lin, nn.Tanh(), lin)
    with pytest.raises(ValueError, match="appears twice in the model"):
        nn.Sequential(nn.Sequential(lin), lin)
    with pytest.raises(ValueError, match="appears twice in the model"):
        nn.MultiHead(lin, {"a": lin})
    with pytest.raises(ValueError, match="cannot contain itself"):
        a.loop = a
    ae = nn.AutoEncoder([6, 4, 2])
    with pytest.raises(ValueError, match="evaluation mode"):
        ae.encode(np.ones((2, 6), np.float32))
    assert ae.eval().encode(np.ones((2, 6), np.float32)).shape == (2, 2)


def test_a_models_structure_is_not_changed_by_assignment():
    lin = nn.Linear(3, 2)
    for name in ("bias", "weight"):
        with pytest.raises(AttributeError):
            delattr(lin, name)
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
    mh = nn.MultiHead(nn.Linear(3, 4), {"a": nn.Linear(4, 2)})
    with pytest.raises(ValueError, match="'a' is part of the MultiHead's structure"):
        mh.a = nn.Linear(4, 2)
    seq = nn.Sequential(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="'0' is part of the Sequential's structure"):
        setattr(seq, "0", None)
    with pytest.raises(ValueError, match="structure"):
        delattr(seq, "0")
    seq.extra = nn.ReLU()  # attached, so removable
    del seq.extra
    assert [n for n, _ in seq.named_modules()] == ["", "0"]


def test_pickles_keep_each_modules_own_mode():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.Linear(3, 1))
    model.train()
    model[1].eval()
    for twin in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert [m.training for _, m in twin.named_modules()] == [True, True, False, True]


def test_tied_layer_follows_a_replaced_source_weight():
    src = nn.Linear(4, 3)
    tied = nn.TiedLinear(src)
    src.weight = nn.Parameter(np.ones((3, 4), np.float32))
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(tied(x), x @ np.ones((3, 4), np.float32))
    assert tied.weight is src.weight
    twin = pickle.loads(pickle.dumps(nn.Sequential(src, tied)))
    assert twin[1].weight is twin[0].weight
    ones = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(twin(ones), tied(src(ones)))


def test_a_failed_forward_keeps_the_state_of_the_last_good_one():
    gen = sei.Generator(8)
    layer = nn.Linear(6, 3, dropout=0.5, dtype=F64, generator=gen)
    x, g = rand((4, 6), 1), rand((4, 3), 2)
    layer.forward(x)
    expected = layer.backward(g).copy()
    with pytest.raises(ValueError):
        layer.forward(rand((4, 5), 3))
    np.testing.assert_array_equal(layer.backward(g), expected)


def test_backward_checks_the_forwards_shape():
    for layer in (nn.Dropout(0.5), nn.GaussianNoise(0.1)):
        with pytest.raises(ValueError, match="backward needs a forward first"):
            layer.backward(np.ones((2, 4), np.float32))
        layer(np.ones((2, 4), np.float32))
        with pytest.raises(ValueError, match="grad must have the shape of the forward's input"):
            layer.backward(np.ones((5, 7), np.float32))


def test_small_semantics():
    assert nn.Flatten()(np.zeros((0, 3, 2), np.float32)).shape == (0, 6)
    model = nn.Sequential(nn.Linear(2, 2))
    assert [n for n, _ in model.named_parameters("enc")] == ["enc.0.weight", "enc.0.bias"]
    x = nn.Flatten()(np.zeros((2, 3, 4), np.float32))
    z = x.view(np.int32).reshape(2, 3, 4)
    assert nn.GaussianNoise(0.1).eval()(z).dtype == np.int32  # the array it came from, as it is
    assert nn.Linear(np.int64(4), 3).in_features == 4 and nn.Dropout(np.float32(0.5)).p == 0.5
    ord_must = r"\[ActivityRegularization\] argument 'ord' must be an int in \[1, 2\]"
    with pytest.raises(ValueError, match=ord_must):
        nn.ActivityRegularization(0.1, ord=2**32 + 1)
    with pytest.raises(ValueError, match=r"\[Linear\] argument 'dropout_mode' must be"):
        nn.Linear(2, 2, dropout_mode="x")
    with pytest.raises(ValueError, match=r"\[Dropout\] argument 'mode' must be"):
        nn.Dropout(0.5, mode="x")
    with pytest.raises(ValueError, match=r"\[Linear\] argument 'in_features' must be an int"):
        nn.Linear(True, 2)


def test_gaussian_inference_is_deterministic_and_leaves_the_training_masks_alone():
    gen = sei.Generator(4)
    layer = nn.DropConnect(8, 5, p=0.3, activation="tanh", inference="gaussian", generator=gen)
    x = rand((3, 8), 5).astype(np.float32)
    before = gen.offset
    first, second = layer.eval()(x).copy(), layer(x).copy()
    np.testing.assert_array_equal(first, second)
    assert gen.offset == before
