"""Shared by the nn tests: random data, objectives over a model's output, and the check of a
model's analytic gradients (every parameter and the input) against central differences."""

from __future__ import annotations

import numpy as np

from conftest import to_host
from seisoku import nn

F64 = "float64"

# Central differences in float64 with step 1e-6: truncation ~1e-12, rounding ~1e-10 * |f|.
FD_STEP = 1e-6
FD_RTOL = 1e-6
FD_ATOL = 1e-8


def rand(shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def randomize_biases(model: nn.Module, seed: int = 100, scale: float = 0.2) -> None:
    """Biases start at zero; give them values so that their gradients are tested too."""
    for i, p in enumerate(model.parameters()):
        if p.value.ndim == 1:
            p.value[...] = rand(p.shape, seed + i, scale)


def weighted_sum(weights):
    """Objective sum(G * y) (a dict of heads: summed over the heads in `weights`)."""

    def loss(y):
        if isinstance(weights, dict):
            value = sum(float(np.sum(g * y[k])) for k, g in weights.items())
            return value, {k: g.copy() for k, g in weights.items()}
        return float(np.sum(weights * y)), weights.copy()

    return loss


def half_squared_error(target):
    """Objective 0.5 * ||y - target||**2."""

    def loss(y):
        diff = y - target
        return 0.5 * float(np.sum(diff * diff)), diff

    return loss


def objective(model: nn.Module, loss, generators=(), penalty=None):
    """evaluate(x) -> (loss(model(x)) [+ penalty()], gradient w.r.t. x); parameter gradients
    are left in Parameter.grad. Every generator is put back to its present state before each
    forward, so that stochastic layers draw the same masks and noise on every evaluation."""
    states = [g.state_dict() for g in generators]

    def evaluate(x):
        for g, s in zip(generators, states):
            g.load_state_dict(s)
        model.zero_grad()
        value, grad_y = loss(model.forward(x))
        grad_x = model.backward(grad_y)
        if penalty is not None:
            value += float(penalty())
        return value, grad_x

    return evaluate


def some_indices(shape, count, rng):
    """Up to `count` distinct random multi-indices into an array of `shape`."""
    size = int(np.prod(shape))
    flat = rng.choice(size, size=min(count, size), replace=False)
    return [tuple(int(i) for i in np.unravel_index(f, shape)) for f in flat]


def check_gradients(model: nn.Module, x: np.ndarray, evaluate, entries: int = 4, seed: int = 0):
    """Compare the analytic gradients of evaluate's objective (a few random entries of every
    parameter and of the input x) with central differences."""
    _, grad_x = evaluate(x)
    analytic = {name: p.grad.copy() for name, p in model.named_parameters()}
    rng = np.random.default_rng(seed)

    def central(array, idx):
        old = array[idx]
        array[idx] = old + FD_STEP
        up, _ = evaluate(x)
        array[idx] = old - FD_STEP
        down, _ = evaluate(x)
        array[idx] = old
        return (up - down) / (2 * FD_STEP)

    checks = [(name, p.value, analytic[name]) for name, p in model.named_parameters()]
    checks.append(("input", x, grad_x))
    for name, array, grad in checks:
        for idx in some_indices(array.shape, entries, rng):
            numeric = central(array, idx)
            np.testing.assert_allclose(
                grad[idx], numeric, rtol=FD_RTOL, atol=FD_ATOL, err_msg=f"{name}{list(idx)}"
            )
    return analytic


def gradients(model: nn.Module) -> dict[str, np.ndarray]:
    return {name: to_host(p.grad).copy() for name, p in model.named_parameters()}


def assert_same_state(model: nn.Module, state: dict[str, np.ndarray]) -> None:
    """model.state_dict() holds exactly `state` (names in order, bits)."""
    current = model.state_dict()
    assert list(current) == list(state)
    for name in state:
        np.testing.assert_array_equal(current[name], state[name], err_msg=name)
