"""Learning-rate schedules against torch.optim.lr_scheduler, resume, and bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

from seisoku import optim
from seisoku.nn.module import Parameter
from seisoku.optim import lr_scheduler as sched


def make_opt(lr: float = 0.1) -> optim.SGD:
    ps = [Parameter(np.zeros((2, 2), np.float32)), Parameter(np.zeros(2, np.float32))]
    return optim.SGD([{"params": ps[:1]}, {"params": ps[1:], "lr": lr / 2}], lr=lr)


def torch_opt(torch, lr: float = 0.1):
    ps = [torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2))]
    return torch.optim.SGD([{"params": ps[:1]}, {"params": ps[1:], "lr": lr / 2}], lr=lr)


def trace(s, opt, n: int) -> list[list[float]]:
    out = [[g["lr"] for g in opt.param_groups]]
    for _ in range(n):
        s.step()
        out.append([g["lr"] for g in opt.param_groups])
    return out


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (lambda o: sched.StepLR(o, 3, gamma=0.5), lambda t, o: t.StepLR(o, 3, gamma=0.5)),
        (
            lambda o: sched.CosineAnnealingLR(o, 10, eta_min=0.01),
            lambda t, o: t.CosineAnnealingLR(o, 10, eta_min=0.01),
        ),
        (
            lambda o: sched.LinearWarmup(o, 5, start_factor=0.2),
            lambda t, o: t.LinearLR(o, start_factor=0.2, end_factor=1.0, total_iters=5),
        ),
        (
            lambda o: sched.LinearWarmup(o, 4, 0.1, after=sched.CosineAnnealingLR(o, 12)),
            lambda t, o: t.SequentialLR(
                o,
                [t.LinearLR(o, 0.1, 1.0, total_iters=4), t.CosineAnnealingLR(o, 12)],
                milestones=[4],
            ),
        ),
    ],
)
def test_matches_torch(ours, theirs) -> None:
    torch = pytest.importorskip("torch")
    opt = make_opt()
    s = ours(opt)
    topt = torch_opt(torch)
    ts = theirs(torch.optim.lr_scheduler, topt)
    got = trace(s, opt, 25)
    expect = [[g["lr"] for g in topt.param_groups]]
    for _ in range(25):
        topt.step()
        ts.step()
        expect.append([g["lr"] for g in topt.param_groups])
    np.testing.assert_allclose(got, expect, rtol=1e-9, atol=1e-12)
    assert s.get_last_lr() == got[-1]


def test_closed_forms() -> None:
    opt = make_opt(1.0)
    s = sched.StepLR(opt, 2, gamma=0.1)
    assert s.lr_at(5) == pytest.approx([0.01, 0.005])
    c = sched.CosineAnnealingLR(make_opt(1.0), 4)
    assert c.lr_at(2) == pytest.approx([0.5, 0.25])
    w = sched.LinearWarmup(make_opt(1.0), 10, start_factor=0.0)
    assert w.lr_at(0) == [0.0, 0.0] and w.lr_at(5) == pytest.approx([0.5, 0.25])
    assert w.lr_at(10) == [1.0, 0.5]


def test_resume_continues_exactly() -> None:
    opt = make_opt()
    s = sched.LinearWarmup(opt, 3, after=sched.StepLR(opt, 2, gamma=0.5))
    for _ in range(5):
        s.step()
    state = s.state_dict()
    rest = [s.step() or s.get_last_lr() for _ in range(6)]
    opt2 = make_opt()
    s2 = sched.LinearWarmup(opt2, 3, after=sched.StepLR(opt2, 2, gamma=0.5))
    s2.load_state_dict(state)
    assert [g["lr"] for g in opt2.param_groups] == state["_last_lr"]
    rest2 = [s2.step() or s2.get_last_lr() for _ in range(6)]
    assert rest == rest2


def test_schedule_drives_the_optimizer_step() -> None:
    p = Parameter(np.zeros((1, 1), np.float64))
    opt = optim.SGD([p], lr=1.0)
    s = sched.StepLR(opt, 1, gamma=0.5)
    for _ in range(3):
        p.grad[...] = 1.0
        opt.step()
        s.step()
    assert p.value[0, 0] == pytest.approx(-(1.0 + 0.5 + 0.25))


@pytest.mark.parametrize(
    "make",
    [
        lambda o: sched.StepLR(o, 0),
        lambda o: sched.StepLR(o, 2, gamma=-1.0),
        lambda o: sched.CosineAnnealingLR(o, 0),
        lambda o: sched.CosineAnnealingLR(o, 5, eta_min=-1.0),
        lambda o: sched.LinearWarmup(o, 0),
        lambda o: sched.LinearWarmup(o, 3, start_factor=2.0),
        lambda o: sched.LinearWarmup(o, 3, after=sched.StepLR(make_opt(), 2)),
        lambda o: sched.StepLR(object(), 2),
    ],
)
def test_bad_arguments(make) -> None:
    with pytest.raises(ValueError):
        make(make_opt())
