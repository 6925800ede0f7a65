"""Neural-network layers: seisoku against PyTorch on the CPU, measured in the same run.

One function per figure; main runs them all. Each figure checks seisoku's results against
PyTorch in float64 first, then times both, PyTorch with torch.set_num_threads set to
seisoku's thread count, alternating for three rounds and keeping each side's best.

  conv2d fwd+bwd LeNet batch: the two LeNet-5 convolutions on a batch of 128 (--quick: 32)
    float32 images: conv 1->6 5x5 padding 2 on 28x28, then conv 6->16 5x5 on 14x14; forward
    with bias, then backward to grad_x, grad_weight and grad_bias of both. Both libraries
    allocate their outputs and gradients each step (PyTorch through autograd, its .grad
    reset to None before each step). In images/s.

  mlp train step: an MLP 784-800-800-10 (ReLU, dropout 0.5 on both hidden layers), cross-
    entropy with label smoothing 0.1 (PyTorch's convention on both sides), batch 128,
    forward + backward + an SGD step with coupled weight decay 1e-4 on the weights (seisoku:
    one fused seisoku.optim.SGD step over all parameters). In samples/s. The inputs are
    uniform, so the first layer's forward product is dense on both sides; after ReLU and
    dropout about a quarter of the hidden values (and of the gradients behind them) are
    nonzero, and seisoku's Linear multiplies those products over the nonzeros only, where
    PyTorch multiplies densely.

  linear fwd+bwd sparse activations: one 800 -> 800 float32 Linear on a batch of 128 whose
    input and output gradient are a quarter nonzero, as after ReLU and dropout 0.5 (the MLP's
    hidden layer): forward, then grad_x and grad_weight into preallocated arrays (PyTorch:
    torch.nn.functional.linear and autograd, .grad reset to None before each step). seisoku
    multiplies over the nonzeros only. In samples/s.

  dropout fwd 10M: inverted dropout p=0.5 on 10M float32 values into a preallocated output
    (PyTorch: torch.nn.functional.dropout, which allocates). In ms; the line after it gives
    the memory-bandwidth bound (8 bytes per element) measured with numpy.copyto.

    python bench/bench_nn.py [--quick] [--json PATH]
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import seisoku
from _timing import (
    CPU_WARMUP_S,
    Figure,
    check_close,
    machine_note,
    make_parser,
    report,
    time_fn,
    time_pair,
)
from seisoku.nn import functional as F  # noqa: N812

# (C_in, H, W, C_out, k, padding) of the LeNet-5 convolutions.
LENET_CONVS = ((1, 28, 28, 6, 5, 2), (6, 14, 14, 16, 5, 0))


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise SystemExit("bench_nn.py needs PyTorch as the peer: pip install torch") from e
    torch.set_num_threads(seisoku.get_num_threads())
    return torch


def _timing_options(quick: bool) -> dict[str, Any]:
    return {
        "warmup": 2 if quick else 3,
        "repeats": 3 if quick else 10,
        "min_time_s": 0.05 if quick else 0.5,
        "warmup_s": 0.1 if quick else CPU_WARMUP_S,
    }


def conv2d_lenet(quick: bool) -> Figure:
    """conv2d fwd+bwd LeNet batch: seisoku against torch.nn.functional.conv2d + autograd."""
    torch = _torch()
    name = "conv2d fwd+bwd LeNet batch"
    batch = 32 if quick else 128
    rng = np.random.default_rng(1234)
    layers = []
    for c, h, w, o, k, p in LENET_CONVS:
        x = rng.standard_normal((batch, c, h, w), dtype=np.float32)
        wt = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
        b = rng.standard_normal(o, dtype=np.float32)
        g = rng.standard_normal((batch, o, h + 2 * p - k + 1, w + 2 * p - k + 1), dtype=np.float32)
        layers.append((x, wt, b, g, p))

    def ours() -> list[Any]:
        results = []
        for x, wt, b, g, p in layers:
            y = F.conv2d(x, wt, b, padding=p)
            results.append((y, *F.conv2d_backward(g, x, wt, padding=p)))
        return results

    def torch_step(
        dtype: Any,
    ) -> tuple[Callable[[], None], list[tuple[Any, ...]]]:
        tensors = []
        for x, wt, b, g, p in layers:
            tx, tw, tb = (torch.tensor(a, dtype=dtype, requires_grad=True) for a in (x, wt, b))
            tensors.append((tx, tw, tb, torch.tensor(g, dtype=dtype), p, []))

        def step() -> None:
            for tx, tw, tb, tg, p, out in tensors:
                tx.grad = tw.grad = tb.grad = None
                y = torch.nn.functional.conv2d(tx, tw, tb, padding=p)
                y.backward(tg)
                out[:] = [y]

        return step, tensors

    # Check against PyTorch in float64 before timing.
    ref_step, ref = torch_step(torch.float64)
    ref_step()
    for li, (mine, (tx, tw, tb, _, _, out)) in enumerate(zip(ours(), ref)):
        expected = (out[0], tx.grad, tw.grad, tb.grad)
        for what, a, e in zip(("out", "grad_x", "grad_weight", "grad_bias"), mine, expected):
            e = e.detach().numpy()
            scale = float(np.abs(e).max())
            check_close(a, e, 1e-4, 1e-4 * scale, f"{name}: conv{li + 1} {what} (against torch)")

    peer, _ = torch_step(torch.float32)
    options = _timing_options(quick)
    t_ours, t_peer = time_pair(ours, peer, **options)
    return Figure(name, batch / t_ours, batch / t_peer, "torch", "images/s")


def mlp_train_step(quick: bool) -> Figure:
    """mlp train step: seisoku.nn MLP against the same torch.nn model, one SGD step each."""
    torch = _torch()
    batch, sizes = 128, (784, 800, 800, 10)
    steps = 4 if quick else 16
    rng = np.random.default_rng(7)
    xs = rng.random((steps, batch, sizes[0]), dtype=np.float32)
    ys = rng.integers(0, sizes[-1], (steps, batch))
    seisoku.manual_seed(0)
    model = seisoku.nn.mlp(sizes, dropout=0.5)
    loss = seisoku.nn.CrossEntropyLoss(0.1, convention="uniform")
    params = model.parameters()
    lr, wd = 0.01, 1e-4

    tmodel = torch.nn.Sequential(
        torch.nn.Linear(784, 800),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(800, 800),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(800, 10),
    )
    with torch.no_grad():  # same starting weights
        for tl, sl in zip([tmodel[0], tmodel[3], tmodel[6]], [model[0], model[1], model[2]]):
            tl.weight.copy_(torch.from_numpy(sl.weight.value))
            tl.bias.copy_(torch.from_numpy(sl.bias.value))
    decay = [p for n, p in tmodel.named_parameters() if n.endswith("weight")]
    rest = [p for n, p in tmodel.named_parameters() if n.endswith("bias")]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": wd}, {"params": rest}], lr=lr)
    tloss = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    txs, tys = torch.from_numpy(xs), torch.from_numpy(ys)

    # Check: without dropout both compute the same loss and gradients.
    model.eval()
    tmodel.eval()
    model.zero_grad()
    ours_loss = float(loss(model(xs[0]), ys[0]))
    model.backward(loss.backward(), need_input_grad=False)
    out = tloss(tmodel(txs[0]), tys[0])
    opt.zero_grad()
    out.backward()
    check_close(ours_loss, out.item(), 1e-5, 1e-6, "mlp loss")
    check_close(model[0].weight.grad, tmodel[0].weight.grad.numpy(), 1e-3, 1e-6, "mlp grad")
    model.train()
    tmodel.train()

    # The same SGD step: coupled L2 (torch's weight_decay) on the weights, biases exempt, one
    # fused multi-tensor call. Neither side looks for NaN gradients.
    opt_ours = seisoku.optim.SGD(params, lr=lr, l2=wd, nonfinite="ignore")
    state = {"i": 0}

    def ours() -> None:
        i = state["i"] = (state["i"] + 1) % steps
        model.zero_grad()
        loss(model(xs[i]), ys[i])
        model.backward(loss.backward(), need_input_grad=False)
        opt_ours.step()

    def peer() -> None:
        i = state["i"] = (state["i"] + 1) % steps
        opt.zero_grad()
        tloss(tmodel(txs[i]), tys[i]).backward()
        opt.step()

    options = _timing_options(quick)
    t_ours, t_peer = time_pair(ours, peer, **options)
    return Figure(
        "mlp 784-800-800-10 train step", batch / t_ours, batch / t_peer, "torch", "samples/s"
    )


def linear_sparse(quick: bool) -> Figure:
    """linear fwd+bwd sparse activations: seisoku's Linear products against torch's."""
    torch = _torch()
    name = "linear fwd+bwd sparse activations"
    batch, fin, fout = 128, 800, 800
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((batch, fin)) * (rng.random((batch, fin)) < 0.25)).astype(np.float32)
    w = (rng.standard_normal((fout, fin)) / np.sqrt(fin)).astype(np.float32)
    g = (rng.standard_normal((batch, fout)) * (rng.random((batch, fout)) < 0.25)).astype(np.float32)
    out, grad_x, grad_w = np.empty((batch, fout), np.float32), np.empty_like(x), np.empty_like(w)

    def ours() -> None:
        seisoku.nn.functional.linear(x, w, out=out)
        seisoku.nn.functional.linear_backward(g, x, w, grad_weight=grad_w, grad_x=grad_x)

    def torch_step(dtype: Any) -> tuple[Callable[[], None], list[Any]]:
        tx, tw = (torch.tensor(a, dtype=dtype, requires_grad=True) for a in (x, w))
        tg = torch.tensor(g, dtype=dtype)
        result: list[Any] = []

        def step() -> None:
            tx.grad = tw.grad = None
            y = torch.nn.functional.linear(tx, tw)
            y.backward(tg)
            result[:] = [y, tx.grad, tw.grad]

        return step, result

    ref_step, ref = torch_step(torch.float64)
    ref_step()
    ours()
    for what, mine, expected in zip(("out", "grad_x", "grad_weight"), (out, grad_x, grad_w), ref):
        e = expected.detach().numpy()
        check_close(mine, e, 1e-4, 1e-4 * float(np.abs(e).max()), f"{name}: {what} (against torch)")
    peer, _ = torch_step(torch.float32)
    options = _timing_options(quick)
    t_ours, t_peer = time_pair(ours, peer, **options)
    xd, gd = x + (x == 0), g + (g == 0)  # every entry nonzero: the dense products run

    def dense() -> None:
        seisoku.nn.functional.linear(xd, w, out=out)
        seisoku.nn.functional.linear_backward(gd, xd, w, grad_weight=grad_w, grad_x=grad_x)

    t_dense = time_fn(dense, **options)
    print(
        f"{name}: seisoku with every entry nonzero (dense products) {batch / t_dense:.0f} "
        f"samples/s; the sparse path is {t_dense / t_ours:.2f}x that",
        flush=True,
    )
    return Figure(name, batch / t_ours, batch / t_peer, "torch", "samples/s")


def dropout_10m(quick: bool) -> Figure:
    """dropout fwd 10M: seisoku's inverted dropout against torch.nn.functional.dropout."""
    torch = _torch()
    n = 1_000_000 if quick else 10_000_000
    x = np.random.default_rng(3).random(n, dtype=np.float32) + 0.5
    out = np.empty_like(x)
    seisoku.nn.functional.dropout(x, 0.5, 1, 0, out=out)
    kept = out != 0
    check_close(out[kept], 2 * x[kept], 1e-7, 0.0, "dropout kept values")
    rate = kept.mean()
    if abs(rate - 0.5) > 6 * np.sqrt(0.25 / n):
        raise SystemExit(f"dropout keep rate {rate} is not 0.5")
    tx = torch.from_numpy(x)
    counter = {"k": 0}

    def ours() -> None:
        counter["k"] += 1
        seisoku.nn.functional.dropout(x, 0.5, 1, counter["k"], out=out)

    options = _timing_options(quick)
    t_ours, t_peer = time_pair(ours, lambda: torch.nn.functional.dropout(tx, 0.5), **options)
    t_copy = time_fn(lambda: np.copyto(out, x), **options)
    print(
        f"dropout bandwidth bound (numpy.copyto of {n} float32): {t_copy * 1e3:.2f} ms; "
        f"seisoku at {t_copy / t_ours:.0%} of it",
        flush=True,
    )
    return Figure(f"dropout fwd {n // 1_000_000}M f32", t_ours * 1e3, t_peer * 1e3, "torch", "ms")


FIGURES: tuple[Callable[[bool], Figure], ...] = (
    mlp_train_step,
    linear_sparse,
    dropout_10m,
    conv2d_lenet,
)


def main() -> None:
    """Parse the options, run every figure and report."""
    parser = make_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    if args.device != "cpu":
        raise SystemExit("bench_nn.py compares against PyTorch on the CPU only (--device cpu)")
    note = machine_note()
    if note:
        print(note, flush=True)
    torch = _torch()
    print(
        f"seisoku {seisoku.__version__} threads {seisoku.get_num_threads()}; "
        f"torch {torch.__version__} threads {torch.get_num_threads()}",
        flush=True,
    )
    report([figure(args.quick) for figure in FIGURES], args.json)


if __name__ == "__main__":
    main()
