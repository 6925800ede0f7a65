"""Fused optimizer steps: torch.optim parity, every penalty against its formula, max-norm,
exempt biases, clipping, groups, reports, state resume, CPU/CUDA twins (bad input and
non-finite gradients: test_optim_input.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import to_device, to_host
from reference import grads_for, make_params, num_threads, set_grads
from seisoku import optim
from seisoku.nn import Parameter
from seisoku.nn import functional as nnf


def soft_threshold(x, tau):
    return np.sign(x) * np.maximum(np.abs(x) - tau, 0)


# -- parity with torch.optim ------------------------------------------------------------

PARITY = [
    ("SGD", {"lr": 0.1}, "SGD", {"lr": 0.1}),
    (
        "SGD",
        {"lr": 0.1, "momentum": 0.9, "l2": 0.01},
        "SGD",
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01},
    ),
    (
        "SGD",
        {"lr": 0.1, "momentum": 0.9, "nesterov": True, "l2": 0.01},
        "SGD",
        {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    ),
    (
        "SGD",
        {"lr": 0.05, "momentum": 0.8, "dampening": 0.3},
        "SGD",
        {"lr": 0.05, "momentum": 0.8, "dampening": 0.3},
    ),
    ("Adam", {"lr": 0.01, "l2": 0.01}, "Adam", {"lr": 0.01, "weight_decay": 0.01}),
    # PyTorch's own names mean what they mean there.
    (
        "SGD",
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01},
        "SGD",
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01},
    ),
    ("Adam", {"lr": 0.01, "weight_decay": 0.01}, "Adam", {"lr": 0.01, "weight_decay": 0.01}),
    (
        "Adam",
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
        "AdamW",
        {"lr": 0.01, "weight_decay": 0.1},
    ),
    (
        "Adam",
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "amsgrad": True},
        "Adam",
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "amsgrad": True},
    ),
    ("Adam", {"lr": 0.01, "betas": (0.3, 0.9)}, "Adam", {"lr": 0.01, "betas": (0.3, 0.9)}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}, "AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    (
        "AdamW",
        {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True},
        "AdamW",
        {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True},
    ),
    ("RMSprop", {"lr": 0.01, "l2": 0.01}, "RMSprop", {"lr": 0.01, "weight_decay": 0.01}),
    (
        "RMSprop",
        {"lr": 0.01, "alpha": 0.9, "eps": 1e-6, "momentum": 0.9, "centered": True},
        "RMSprop",
        {"lr": 0.01, "alpha": 0.9, "eps": 1e-6, "momentum": 0.9, "centered": True},
    ),
    (
        "Adagrad",
        {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "l2": 0.01},
        "Adagrad",
        {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 0.01},
    ),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ours,okw,theirs,tkw", PARITY)
def test_torch_parity_20_steps(ours, okw, theirs, tkw, dtype) -> None:
    torch = pytest.importorskip("torch")
    ps = make_params(dtype=dtype)
    tps = [torch.nn.Parameter(torch.tensor(p.value.copy())) for p in ps]
    # torch penalizes every parameter; so does a group with regularize=True.
    opt = getattr(optim, ours)([{"params": ps, "regularize": True}], **okw)
    topt = getattr(torch.optim, theirs)(tps, **tkw, foreach=False)
    for t in range(20):
        gs = grads_for(t, dtype=dtype)
        set_grads(ps, gs)
        for tp, g in zip(tps, gs):
            tp.grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
    for p, tp in zip(ps, tps):
        ref = tp.detach().numpy()
        if dtype == np.float64:
            np.testing.assert_allclose(p.value, ref, rtol=1e-10, atol=1e-12)
        else:
            # float32: torch's kernels contract into fma, ours round every operation; after 20
            # steps the difference stays within 1e-6 of the tensor's scale.
            err = np.max(np.abs(p.value.astype(np.float64) - ref)) / np.max(np.abs(ref))
            assert err <= 1e-6, f"{ours} {p.name}: relative difference {err:.3g}"


def test_torch_parity_clip_grad_norm_over_groups() -> None:
    torch = pytest.importorskip("torch")
    ps = make_params(dtype=np.float64)
    tps = [torch.nn.Parameter(torch.tensor(p.value.copy())) for p in ps]
    opt = optim.SGD(
        [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.05}],
        lr=0.1,
        momentum=0.9,
        clip_grad_norm=1.5,
    )
    topt = torch.optim.SGD(
        [{"params": tps[:2]}, {"params": tps[2:], "lr": 0.05}], lr=0.1, momentum=0.9
    )
    for t in range(5):
        gs = grads_for(t, dtype=np.float64)
        set_grads(ps, gs)
        for tp, g in zip(tps, gs):
            tp.grad = torch.tensor(g.copy())
        norm = torch.nn.utils.clip_grad_norm_(tps, 1.5)
        opt.step()
        topt.step()
        assert opt.last_grad_norm == pytest.approx(float(norm), rel=1e-12)
        for p, g in zip(ps, gs):  # the gradients themselves are not rewritten
            np.testing.assert_array_equal(p.grad, g)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.value, tp.detach().numpy(), rtol=1e-10, atol=1e-12)


# -- penalties against their formulas ----------------------------------------------------


def test_proximal_l1_is_the_soft_threshold_with_exact_zeros(device: str) -> None:
    ps = make_params(device)
    w0 = [to_host(p.value).copy() for p in ps]
    gs = grads_for(0)
    set_grads(ps, gs, device)
    lr, l1 = np.float32(0.1), 2.0
    opt = optim.SGD(ps, lr=float(lr), l1=l1)
    opt.step()
    tau = np.float32(float(lr) * l1)
    zeros = 0
    for p, w, g in zip(ps, w0, gs):
        got = to_host(p.value)
        if p.value.ndim >= 2:
            expect = soft_threshold(w + (-lr) * g, tau).astype(np.float32)
            np.testing.assert_array_equal(got, expect)
            zeros += int(np.sum(got == 0))
            assert np.all((got == 0) == (np.abs(w + (-lr) * g) <= tau))
        else:  # biases are exempt
            np.testing.assert_array_equal(got, w + (-lr) * g)
    assert zeros > 0
    sp = opt.sparsity()
    assert sum(v["numel"] - v["nonzero"] for v in sp.values()) == zeros


def test_proximal_l1_adam_threshold_scales_with_the_preconditioner() -> None:
    ps = make_params(dtype=np.float64)
    w0 = [p.value.copy() for p in ps]
    gs = grads_for(0, dtype=np.float64)
    set_grads(ps, gs)
    lr, l1, b1, b2, eps = 0.05, 0.5, 0.9, 0.999, 1e-8
    optim.Adam(ps, lr=lr, l1=l1).step()
    for p, w, g in zip(ps, w0, gs):
        m = (1 - b1) * g
        v = (1 - b2) * g * g
        denom = np.sqrt(v) / math.sqrt(1 - b2) + eps
        upd = w - lr / (1 - b1) * m / denom
        expect = soft_threshold(upd, lr * l1 / denom) if p.value.ndim >= 2 else upd
        np.testing.assert_allclose(p.value, expect, rtol=1e-12, atol=1e-15)


def test_elastic_net_and_l1_subgradient_formulas(device: str) -> None:
    lr, l1, l2 = 0.1, 0.3, 0.2
    for mode in ("proximal", "subgradient"):
        ps = make_params(device, dtype=np.float64)
        w0 = [to_host(p.value).copy() for p in ps]
        gs = grads_for(0, dtype=np.float64)
        set_grads(ps, gs, device)
        opt = optim.SGD(ps, lr=lr, l1=l1, l2=l2, l1_mode=mode)
        omega = sum(l1 * np.abs(w).sum() + l2 / 2 * (w * w).sum() for w in w0 if w.ndim >= 2)
        assert opt.penalty() == pytest.approx(omega, rel=1e-12)
        opt.step()
        for p, w, g in zip(ps, w0, gs):
            if w.ndim < 2:
                expect = w - lr * g
            elif mode == "proximal":
                expect = soft_threshold(w - lr * (g + l2 * w), lr * l1)
            else:
                expect = w - lr * (g + l2 * w + l1 * np.sign(w))
            np.testing.assert_allclose(to_host(p.value), expect, rtol=1e-13, atol=1e-15)


def test_penalty_gradient_is_what_the_step_adds() -> None:
    """Central differences of penalty() equal the gradient the step folds in (float64)."""
    ps = make_params(dtype=np.float64, shapes=[(4, 3)])
    l1, l2, eps = 0.3, 0.7, 1e-6
    opt = optim.SGD(ps, lr=1.0, l1=l1, l2=l2, l1_mode="subgradient")
    w = ps[0].value
    fd = np.empty_like(w)
    for idx in np.ndindex(w.shape):
        old = w[idx]
        w[idx] = old + eps
        up = opt.penalty()
        w[idx] = old - eps
        down = opt.penalty()
        w[idx] = old
        fd[idx] = (up - down) / (2 * eps)
    w0 = w.copy()
    ps[0].grad[...] = 0.0
    opt.step()  # lr 1, zero loss gradient: w - w_new is the penalty gradient
    np.testing.assert_allclose(w0 - ps[0].value, fd, rtol=1e-6, atol=1e-8)


def test_decoupled_weight_decay(device: str) -> None:
    ps = make_params(device, dtype=np.float64)
    w0 = [to_host(p.value).copy() for p in ps]
    gs = grads_for(0, dtype=np.float64)
    set_grads(ps, gs, device)
    optim.SGD(ps, lr=0.1, weight_decay=0.5, decoupled_weight_decay=True).step()
    for p, w, g in zip(ps, w0, gs):
        decay = 1 - 0.1 * 0.5 if w.ndim >= 2 else 1.0
        np.testing.assert_allclose(to_host(p.value), w * decay - 0.1 * g, rtol=1e-14)
    with pytest.raises(ValueError, match="always decoupled"):
        optim.AdamW(ps, decoupled_weight_decay=False)


@pytest.mark.parametrize("cls", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_weight_decay_is_coupled_as_in_torch(cls) -> None:
    # SGD(weight_decay=x) is SGD(l2=x): the same bits after a few steps, and the same penalty.
    runs = []
    for kw in ({"weight_decay": 0.03}, {"l2": 0.03}, {"l2": 0.01, "weight_decay": 0.02}):
        ps = make_params(dtype=np.float64)
        opt = getattr(optim, cls)(ps, lr=0.05, **kw)
        for t in range(3):
            set_grads(ps, grads_for(t, dtype=np.float64))
            opt.step()
        runs.append(([p.value.copy() for p in ps], opt.penalty()))
    for values, penalty in runs[1:]:
        for a, b in zip(runs[0][0], values):
            np.testing.assert_allclose(a, b, rtol=1e-15, atol=0)
        assert penalty == pytest.approx(runs[0][1], rel=1e-14)


def test_max_norm_none_is_off_and_zero_is_an_error() -> None:
    ps = make_params()
    with pytest.raises(ValueError, match=r"max_norm must be None \(off\) or > 0, got 0"):
        optim.SGD(ps, lr=0.1, max_norm=0).step()
    optim.SGD(ps, lr=0.1, max_norm=None).step()


@pytest.mark.parametrize(
    "shape,axis", [((33, 70), 0), ((6, 3, 3, 3), 0), ((20, 9), 1), ((4, 5, 6), -2)]
)
def test_max_norm_holds_after_every_step(device: str, shape, axis) -> None:
    c = 1.5
    rng = np.random.default_rng(3)
    w = rng.standard_normal(shape).astype(np.float32)
    units = shape[axis]
    factor = np.where(np.arange(units) % 2 == 0, 0.02, 1.0).astype(np.float32)
    w = np.moveaxis(np.moveaxis(w, axis, -1) * factor, -1, axis).copy()  # half the units small
    ps = [Parameter(to_device(w.copy(), device))]
    ref = [Parameter(w.copy())]
    opt = optim.SGD(ps, lr=0.01, momentum=0.9, max_norm=c, max_norm_axis=axis)
    plain = optim.SGD(ref, lr=0.01, momentum=0.9)
    for t in range(6):
        gs = grads_for(t, shapes=[shape], seed=5)
        set_grads(ps, gs, device)
        set_grads(ref, gs)
        ref[0].value[...] = to_host(ps[0].value)  # same start: compare one step
        opt.step()
        plain.step()
        got = np.moveaxis(to_host(ps[0].value), axis, 0).reshape(units, -1).astype(np.float64)
        upd = np.moveaxis(ref[0].value, axis, 0).reshape(units, -1).astype(np.float64)
        norms = np.linalg.norm(got, axis=1)
        assert np.all(norms <= c * (1 + 1e-6)), norms.max()
        un = np.linalg.norm(upd, axis=1)
        over = un > c
        assert t > 0 or (over.any() and (~over).any())
        np.testing.assert_array_equal(got[~over], upd[~over])
        np.testing.assert_allclose(
            got[over], upd[over] * (c / un[over])[:, None], rtol=2e-6, atol=1e-7
        )


def test_max_norm_project_function(device: str) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 8, 3))
    x = to_device(w.copy(), device)
    optim.max_norm_project(x, 1.0, axis=1)
    cols = np.linalg.norm(np.moveaxis(w, 1, 0).reshape(8, -1), axis=1)
    expect = w * np.minimum(1.0, 1.0 / cols)[None, :, None]
    np.testing.assert_allclose(to_host(x), expect, rtol=1e-14)
    with pytest.raises(ValueError, match=r"\[max_norm_project\]"):
        optim.max_norm_project(x, -1.0)
    with pytest.raises(ValueError, match=r"\[max_norm_project\]"):
        optim.max_norm_project(x, 1.0, axis=3)


def test_exempt_biases_untouched_by_penalties(device: str) -> None:
    kw = {"l2": 0.3, "l1": 0.2, "weight_decay": 0.1, "max_norm": 0.01}
    ps = make_params(device)
    plain = make_params(device)
    gs = grads_for(0)
    for q in (ps, plain):
        set_grads(q, gs, device)
    optim.SGD(ps, lr=0.1, momentum=0.9, **kw).step()
    optim.SGD(plain, lr=0.1, momentum=0.9).step()
    for p, q in zip(ps, plain):
        if p.value.ndim == 1:
            np.testing.assert_array_equal(to_host(p.value), to_host(q.value))
        else:
            assert not np.array_equal(to_host(p.value), to_host(q.value))
    # A group may override: biases penalized too, or nothing penalized.
    ps2 = make_params(device)
    set_grads(ps2, gs, device)
    optim.SGD([{"params": ps2, "regularize": True}], lr=0.1, momentum=0.9, **kw).step()
    assert not np.array_equal(to_host(ps2[2].value), to_host(plain[2].value))
    ps3 = make_params(device)
    set_grads(ps3, gs, device)
    optim.SGD([{"params": ps3, "regularize": False}], lr=0.1, momentum=0.9, **kw).step()
    for p, q in zip(ps3, plain):
        np.testing.assert_array_equal(to_host(p.value), to_host(q.value))


def test_parameter_regularize_flag_is_read_every_step() -> None:
    ps = make_params(shapes=[(3, 4)])
    opt = optim.SGD(ps, lr=0.1, l1=100.0)
    ps[0].regularize = False
    w0 = ps[0].value.copy()
    ps[0].grad[...] = 0
    opt.step()
    np.testing.assert_array_equal(ps[0].value, w0)
    ps[0].regularize = True
    opt.step()
    assert np.all(ps[0].value == 0)


def test_clip_value(device: str) -> None:
    ps = make_params(device, dtype=np.float64)
    ref = make_params("cpu", dtype=np.float64)
    gs = grads_for(0, dtype=np.float64)
    set_grads(ps, gs, device)
    set_grads(ref, [np.clip(g, -0.5, 0.5) for g in gs])
    optim.Adam(ps, lr=0.01, clip_value=0.5).step()
    optim.Adam(ref, lr=0.01).step()
    for p, q in zip(ps, ref):
        np.testing.assert_allclose(to_host(p.value), q.value, rtol=1e-14)


def test_param_groups_have_their_own_settings() -> None:
    ps = make_params()
    a, b = make_params(), make_params()
    opt = optim.SGD(
        [{"params": ps[:2], "lr": 0.2, "l2": 0.1}, {"params": ps[2:], "momentum": 0.5}], lr=0.05
    )
    oa = optim.SGD(a[:2], lr=0.2, l2=0.1)
    ob = optim.SGD(b[2:], lr=0.05, momentum=0.5)
    for t in range(3):
        gs = grads_for(t)
        for q in (ps, a, b):
            set_grads(q, gs)
        opt.step()
        oa.step()
        ob.step()
    for p, q in zip(ps, a[:2] + b[2:]):
        np.testing.assert_array_equal(p.value, q.value)
    assert opt.param_groups[0]["lr"] == 0.2 and opt.param_groups[1]["momentum"] == 0.5


def test_changed_hyper_parameters_take_effect() -> None:
    ps = make_params(shapes=[(4, 4)])
    opt = optim.SGD(ps, lr=0.1)
    ps[0].grad[...] = 1.0
    w0 = ps[0].value.copy()
    opt.param_groups[0]["lr"] = 0.5
    opt.step()
    np.testing.assert_allclose(ps[0].value, w0 - 0.5, rtol=1e-6)
    opt.param_groups[0]["momentum"] = 0.9  # adds a momentum buffer
    opt.step()
    assert "momentum_buffer" in opt.state[ps[0]]


def test_penalty_and_sparsity_reports(device: str) -> None:
    ps = make_params(device, dtype=np.float64)
    ps[0].value[0, :] = 0.0
    opt = optim.SGD(ps, lr=0.1, l1=0.2, l2=0.4)
    hosts = [to_host(p.value) for p in ps]
    omega = sum(0.2 * np.abs(w).sum() + 0.2 * (w * w).sum() for w in hosts if w.ndim >= 2)
    assert opt.penalty() == pytest.approx(omega, rel=1e-12)
    sp = opt.sparsity()
    assert list(sp) == ["p0", "p1", "p2", "p3"]
    assert sp["p0"]["nonzero"] == hosts[0].size - 5 and sp["p0"]["numel"] == hosts[0].size
    assert sp["p0"]["zero_fraction"] == pytest.approx(5 / hosts[0].size)
    assert sp["p2"]["regularized"] is False and sp["p0"]["regularized"] is True


def test_zero_grad() -> None:
    ps = make_params()
    set_grads(ps, grads_for(0))
    optim.Adam(ps).zero_grad()
    assert all(np.all(p.grad == 0) for p in ps)


def test_replaced_arrays_are_followed() -> None:
    ps = make_params(shapes=[(3, 3)])
    opt = optim.SGD(ps, lr=1.0)
    ps[0].grad[...] = 1.0
    opt.step()
    ps[0].grad = np.full((3, 3), 2.0, np.float32)
    new_value = np.zeros((3, 3), np.float32)
    ps[0].value = new_value
    opt.step()
    np.testing.assert_array_equal(new_value, -2.0)


def test_thread_count_does_not_change_results() -> None:
    shapes = [(300, 257), (40000,), (129, 3, 3, 3)]
    results = []
    for threads in (1, 3):
        with num_threads(threads):
            ps = make_params(shapes=shapes, seed=4)
            opt = optim.Adam(
                [{"params": ps, "regularize": True}],
                lr=0.01,
                l1=1e-3,
                max_norm=2.0,
                clip_grad_norm=10.0,
            )
            for t in range(3):
                set_grads(ps, grads_for(t, shapes=shapes))
                opt.step()
            results.append(([p.value.copy() for p in ps], opt.penalty(), opt.last_grad_norm))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_array_equal(a, b)
    assert results[0][1:] == results[1][1:]


# -- state ------------------------------------------------------------------------------

RESUME = [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "l2": 1e-2, "max_norm": 2.0}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "l1": 1e-3}),
    ("AdamW", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}),
]


@pytest.mark.parametrize("name,kw", RESUME)
def test_resume_gives_exactly_the_same_steps(device: str, name, kw) -> None:
    def run(ps, opt, sched, steps):
        for t in steps:
            set_grads(ps, grads_for(t), device)
            opt.step()
            sched.step()

    ps = make_params(device)
    opt = getattr(optim, name)(ps, **kw)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20)
    run(ps, opt, sched, range(10))
    saved_w = [to_host(p.value).copy() for p in ps]
    saved_opt = opt.state_dict()
    saved_sched = sched.state_dict()
    run(ps, opt, sched, range(10, 20))

    ps2 = make_params(device, seed=99)
    for p, w in zip(ps2, saved_w):
        p.value[...] = to_device(w, device)
    opt2 = getattr(optim, name)(ps2, **kw)
    sched2 = optim.lr_scheduler.CosineAnnealingLR(opt2, T_max=20)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    run(ps2, opt2, sched2, range(10, 20))
    for p, q in zip(ps, ps2):
        np.testing.assert_array_equal(to_host(p.value), to_host(q.value))
    s1, s2 = opt.state_dict(), opt2.state_dict()
    for i in s1["state"]:
        for k, v in s1["state"][i].items():
            np.testing.assert_array_equal(v, s2["state"][i][k])
    assert s1["state"][0]["step"] == 20


def test_state_dict_is_a_copy() -> None:
    ps = make_params(shapes=[(2, 2)])
    opt = optim.SGD(ps, lr=0.1, momentum=0.9)
    ps[0].grad[...] = 1.0
    opt.step()
    sd = opt.state_dict()
    before = sd["state"][0]["momentum_buffer"].copy()
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["momentum_buffer"], before)


def test_load_state_dict_rejects_mismatches_and_changes_nothing() -> None:
    ps = make_params()
    opt = optim.Adam(ps, lr=0.01)
    set_grads(ps, grads_for(0))
    opt.step()
    sd = opt.state_dict()
    other = optim.Adam(make_params(shapes=[(2, 2)]), lr=0.5)
    with pytest.raises(ValueError, match="parameters saved"):
        other.load_state_dict(sd)
    assert other.param_groups[0]["lr"] == 0.5
    bad = opt.state_dict()
    bad["state"][1]["exp_avg"] = np.zeros((9, 9), np.float32)
    with pytest.raises(ValueError, match="does not match"):
        opt.load_state_dict(bad)
    bad = opt.state_dict()
    del bad["state"][0]["exp_avg_sq"]
    with pytest.raises(ValueError, match="exp_avg_sq"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})
    after = opt.state_dict()
    for i in sd["state"]:
        np.testing.assert_array_equal(sd["state"][i]["exp_avg"], after["state"][i]["exp_avg"])


# -- composition with the nn penalties and training ----------------------------------------


def test_step_composes_with_tying_and_activity_penalties(device: str) -> None:
    lam = 0.25
    ps = make_params(device, dtype=np.float64, shapes=[(4, 5), (4, 5)])
    ref = make_params("cpu", dtype=np.float64, shapes=[(4, 5), (4, 5)])
    gs = grads_for(0, shapes=[(4, 5), (4, 5)], dtype=np.float64)
    set_grads(ps, gs, device)
    nnf.tying_penalty(ps[0].value, ps[1].value, lam, ps[0].grad, ps[1].grad)
    x = to_device(np.linspace(-1, 1, 20).reshape(4, 5), device)
    nnf.activity_penalty(x, lam, 1, ps[0].grad)  # an activity penalty on a layer output
    d = ref[0].value - ref[1].value
    set_grads(ref, [gs[0] + 2 * lam * d + lam / 4 * np.sign(to_host(x)), gs[1] - 2 * lam * d])
    optim.SGD(ps, lr=0.1, momentum=0.9, l2=0.01).step()
    optim.SGD(ref, lr=0.1, momentum=0.9, l2=0.01).step()
    for p, q in zip(ps, ref):
        np.testing.assert_allclose(to_host(p.value), q.value, rtol=1e-13)


@pytest.mark.parametrize("cls", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_trains_a_small_mlp(device: str, cls) -> None:
    """A 2-layer MLP (nn kernels) learns a separable problem with penalties on."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 10)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    xd, yd = to_device(x, device), to_device(y, device)
    w1 = Parameter(to_device((rng.standard_normal((32, 10)) * 0.3).astype(np.float32), device))
    b1 = Parameter(to_device(np.zeros(32, np.float32), device))
    w2 = Parameter(to_device((rng.standard_normal((2, 32)) * 0.3).astype(np.float32), device))
    b2 = Parameter(to_device(np.zeros(2, np.float32), device))
    params = [w1, b1, w2, b2]
    lr = {"SGD": 0.5, "Adam": 0.02, "AdamW": 0.02, "RMSprop": 0.01, "Adagrad": 0.2}[cls]
    extra = {"momentum": 0.9} if cls == "SGD" else {}
    opt = getattr(optim, cls)(params, lr=lr, l2=1e-4, l1=1e-5, max_norm=4.0, **extra)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        h = nnf.linear(xd, w1.value, b1.value, activation="relu")
        z = nnf.linear(h, w2.value, b2.value)
        res = nnf.cross_entropy(z, yd)
        losses.append(float(to_host(res.loss)))
        gh = nnf.linear_backward(res.grad, h, w2.value, grad_weight=w2.grad, grad_bias=b2.grad)
        gz1 = nnf.bias_act_dropout_backward(gh, h, activation="relu")
        nnf.linear_backward(
            gz1, xd, w1.value, need_grad_x=False, grad_weight=w1.grad, grad_bias=b1.grad
        )
        opt.step()
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    assert np.all(np.linalg.norm(to_host(w1.value), axis=1) <= 4.0 * (1 + 1e-6))


# -- CUDA twins ----------------------------------------------------------------------------

TWINS = [
    (
        "SGD",
        {"lr": 0.1, "momentum": 0.9, "nesterov": True, "l2": 1e-2, "l1": 1e-2, "max_norm": 3.0},
    ),
    (
        "SGD",
        {
            "lr": 0.1,
            "l1": 1e-2,
            "l1_mode": "subgradient",
            "weight_decay": 0.1,
            "max_norm": 2.0,
            "max_norm_axis": 1,
            "clip_value": 1.0,
        },
    ),
    ("Adam", {"lr": 0.01, "amsgrad": True, "l1": 1e-2, "max_norm": 3.0, "clip_grad_norm": 5.0}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True, "l1": 1e-3}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "l2": 1e-2}),
]


@pytest.mark.requires_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", TWINS)
def test_cuda_twin_equals_cpu(name, kw, dtype) -> None:
    from conftest import cuda_ready

    if not cuda_ready():
        pytest.skip("needs a CUDA device and CuPy")
    shapes = [(300, 257), (70000,), (129, 3, 3, 3), (5,), (1, 20000)]
    out = {}
    for device in ("cpu", "cuda"):
        ps = make_params(device, dtype=dtype, shapes=shapes, seed=7)
        # 1-D parameters have no axis 1: their group projects along axis 0.
        second = {"params": ps[3:], "regularize": True}
        if kw.get("max_norm_axis", 0) != 0:
            second["max_norm_axis"] = 0
        opt = getattr(optim, name)([{"params": ps[:3]}, second], **kw)
        for t in range(4):
            set_grads(ps, grads_for(t, shapes=shapes, dtype=dtype), device)
            opt.step()
        out[device] = (
            [to_host(p.value) for p in ps],
            opt.state_dict(),
            opt.penalty(),
            opt.sparsity(),
        )
    for a, b in zip(out["cpu"][0], out["cuda"][0]):
        np.testing.assert_allclose(b, a, rtol=1e-6 if dtype == np.float32 else 1e-13, atol=1e-7)
    for i, entry in out["cpu"][1]["state"].items():
        for k, v in entry.items():
            np.testing.assert_allclose(out["cuda"][1]["state"][i][k], v, rtol=1e-5, atol=1e-7)
    assert out["cuda"][2] == pytest.approx(out["cpu"][2], rel=1e-9)
    assert out["cuda"][3] == out["cpu"][3]
