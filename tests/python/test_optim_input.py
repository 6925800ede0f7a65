"""Fused optimizer steps on bad input (hyper-parameters, groups, gradient shapes and dtypes)
and on NaN/Inf gradients (the three nonfinite policies)."""

from __future__ import annotations

import numpy as np
import pytest

import seisoku
from conftest import to_host
from reference import grads_for, make_params, num_threads, set_grads
from seisoku import optim
from seisoku.nn import Parameter

# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"lr": -0.1}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"l2": -1.0}, "l2"),
        ({"l1": -1.0}, "l1"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"max_norm": -1.0}, "max_norm"),
        ({"clip_value": 0.0}, "clip_value"),
        ({"momentum": -0.5}, "momentum"),
        ({"nesterov": True}, "nesterov"),
        ({"dampening": 2.0}, "dampening"),
        ({"l1_mode": "lasso"}, "l1_mode"),
        ({"clip_grad_norm": -1.0}, "clip_grad_norm"),
        ({"nonfinite": "panic"}, "nonfinite"),
        ({"lr": "fast"}, "lr"),
    ],
)
def test_bad_hyper_parameters(kw, match) -> None:
    with pytest.raises(ValueError, match=r"\[optim_step\].*" + match):
        optim.SGD(make_params(), **kw)


@pytest.mark.parametrize(
    "cls,kw,match",
    [
        ("Adam", {"betas": (1.0, 0.9)}, "beta1"),
        ("Adam", {"betas": (0.9, -0.1)}, "beta2"),
        ("Adam", {"eps": -1.0}, "eps"),
        ("RMSprop", {"alpha": 1.5}, "alpha"),
        ("Adagrad", {"lr_decay": -1.0}, "lr_decay"),
        ("Adagrad", {"initial_accumulator_value": -1.0}, "initial_accumulator"),
    ],
)
def test_bad_hyper_parameters_per_optimizer(cls, kw, match) -> None:
    with pytest.raises(ValueError, match=r"\[optim_step\].*" + match):
        getattr(optim, cls)(make_params(), **kw)


def test_bad_groups() -> None:
    ps = make_params()
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([])
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([ps[0], ps[0]])
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([{"params": ps[:2]}, {"params": ps[1:]}])
    with pytest.raises(ValueError, match="unknown parameter group key"):
        optim.SGD([{"params": ps, "momentun": 0.9}])
    with pytest.raises(ValueError, match=r"\.value and \.grad"):
        optim.SGD([np.zeros(3)])
    opt = optim.SGD([ps[0]], lr=0.1, max_norm=1.0, max_norm_axis=2)
    with pytest.raises(ValueError, match=r"\[optim_step\] max_norm_axis 2 is out of range"):
        opt.step()


class PlainParameter:
    """Any object with .value and .grad arrays can be optimized (its arrays checked each step)."""

    def __init__(self, value, name: str) -> None:
        self.value, self.name = value, name
        self.grad = seisoku._array.array_module(value).zeros_like(value)


def test_mismatched_gradient_shape_or_dtype(device: str) -> None:
    ps = [PlainParameter(p.value.copy(), p.name) for p in make_params(device)]
    opt = optim.SGD(ps, lr=0.1)
    xp = seisoku._array.array_module(ps[0].value)
    good = ps[1].grad
    ps[1].grad = xp.zeros((9,), dtype=np.float32)
    with pytest.raises(ValueError, match=r"\[optim_step\].*'p1'.*same shape"):
        opt.step()
    ps[1].grad = xp.zeros(good.shape, dtype=np.float64)
    with pytest.raises(ValueError, match=r"\[optim_step\].*same dtype"):
        opt.step()
    ps[1].grad = xp.asfortranarray(xp.zeros(good.shape[::-1], dtype=np.float32).T)
    if ps[1].grad.ndim > 1 and not ps[1].grad.flags.c_contiguous:
        with pytest.raises(ValueError, match=r"\[optim_step\].*C-contiguous"):
            opt.step()
    ps[1].grad = good
    ps2 = [Parameter(np.zeros((2, 2), np.float32)), Parameter(np.zeros((2, 2), np.float64))]
    with pytest.raises(ValueError, match=r"\[optim_step\].*one dtype"):
        optim.SGD(ps2).step()
    # A seisoku.nn Parameter refuses a gradient that does not fit its value at once.
    native = make_params(device)[1]
    with pytest.raises(ValueError, match=r"\[Parameter\] grad and value must have the same shape"):
        native.grad = xp.zeros((9,), dtype=np.float32)
    with pytest.raises(ValueError, match=r"\[Parameter\] grad and value must have the same dtype"):
        native.grad = xp.zeros(native.shape, dtype=np.float64)


# p0..p2 finite; p3, p4 (40000: more than one thread's range) and p5 (max-norm rows of 257) get
# non-finite gradient values; the elements (p5: the row) holding them must stay as they were.
RAISE_SHAPES = [(7, 5), (3, 4, 2, 2), (6,), (33, 70), (40000,), (300, 257)]
BAD_AT = {3: [5 * 70 + 7], 4: [16390, 16391, 39999], 5: [100 * 257 + 3]}
UNCHANGED = {3: [5 * 70 + 7], 4: [16390, 16391, 39999], 5: list(range(100 * 257, 101 * 257))}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(
    "name,kw",
    [
        ("Adam", {"lr": 0.1, "amsgrad": True, "l1": 1e-3}),
        ("SGD", {"lr": 0.1, "momentum": 0.9}),
        ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True}),
        ("Adagrad", {"lr": 0.1}),
    ],
)
def test_nonfinite_gradient_raise_steps_every_finite_element(
    device, name, kw, bad, threads
) -> None:
    """nonfinite="raise" without clipping checks in the step's own pass: every element with a
    finite gradient is stepped (as by a step from finite gradients), an element with NaN/Inf
    (under fused max-norm: its row) keeps its value and state, the tensors holding one keep their
    step counts, and the error names the first of them; the same for any thread count."""
    ps, ref = make_params(device, shapes=RAISE_SHAPES), make_params("cpu", shapes=RAISE_SHAPES)
    opts = [
        getattr(optim, name)(
            [{"params": q[:5]}, {"params": q[5:], "max_norm": 3.0, "regularize": True}], **kw
        )
        for q in (ps, ref)
    ]
    with num_threads(threads):
        for q, opt, dev in ((ps, opts[0], device), (ref, opts[1], "cpu")):
            set_grads(q, grads_for(0, shapes=RAISE_SHAPES), dev)
            opt.step()  # state built up before the bad step
        before = [to_host(p.value).copy() for p in ps]
        state_before = opts[0].state_dict()["state"]
        gs = grads_for(1, shapes=RAISE_SHAPES)
        set_grads(ref, gs)
        opts[1].step()  # the reference: the same step from finite gradients
        for i, at in BAD_AT.items():
            gs[i].reshape(-1)[at] = bad
        gs[4].reshape(-1)[16391] = np.nan
        set_grads(ps, gs, device)
        with pytest.raises(
            ValueError,
            match=r"\[optim_step\] the gradient of 'p3' .* holds 1 non-finite value\(s\) "
            r"\(NaN or Inf\) \(2 more tensor\(s\) too\)",
        ):
            opts[0].step()
    state, ref_state = opts[0].state_dict()["state"], opts[1].state_dict()["state"]
    for i, (p, q, w) in enumerate(zip(ps, ref, before)):
        kept = np.zeros(w.size, bool)
        kept[UNCHANGED.get(i, [])] = True
        got = to_host(p.value).ravel()
        assert np.isfinite(got).all() and state[i]["step"] == (1 if kept.any() else 2), p.name
        for sel, want, want_state in ((~kept, q.value, ref_state), (kept, w, state_before)):
            np.testing.assert_array_equal(got[sel], want.ravel()[sel], err_msg=p.name)
            for k in (k for k in state[i] if k != "step"):
                np.testing.assert_array_equal(
                    state[i][k].ravel()[sel], want_state[i][k].ravel()[sel]
                )
    set_grads(ps, grads_for(2, shapes=RAISE_SHAPES), device)
    opts[0].step()  # the next step with finite gradients goes on from there
    assert [e["step"] for e in opts[0].state_dict()["state"].values()] == [3, 3, 3, 2, 2, 2]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kw", [{"clip_grad_norm": 1.0}, {"nonfinite": "skip"}])
def test_nonfinite_gradient_all_or_nothing(device: str, kw, bad) -> None:
    """raise with clip_grad_norm (the norm pass reads every gradient first) and skip change
    nothing: parameters, state and step counts."""
    ps = make_params(device)
    opt = optim.Adam(ps, lr=0.1, **kw)
    set_grads(ps, grads_for(0), device)
    opt.step()
    before = [to_host(p.value).copy() for p in ps] + [opt.state_dict()["state"]]
    gs = grads_for(1)
    gs[3][5, 7] = bad
    set_grads(ps, gs, device)
    if "clip_grad_norm" in kw:
        with pytest.raises(ValueError, match=r"\[optim_step\] the gradient of 'p3'.*non-finite"):
            opt.step()
    else:
        opt.step()
        assert opt.skipped_steps == 1
    for p, w in zip(ps, before):
        np.testing.assert_array_equal(to_host(p.value), w)
    for i, entry in opt.state_dict()["state"].items():
        for k in ("step", "exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(entry[k], before[-1][i][k])


def test_nonfinite_gradient_ignore(device: str) -> None:
    ps = make_params(device)
    gs = grads_for(0)
    gs[0][0, 0] = np.nan
    set_grads(ps, gs, device)
    optim.SGD(ps, lr=0.1, nonfinite="ignore").step()
    w = to_host(ps[0].value)
    assert np.isnan(w[0, 0]) and np.isfinite(np.delete(w.ravel(), 0)).all()
