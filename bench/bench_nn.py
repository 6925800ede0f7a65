"""Neural-network layers: seisoku against PyTorch on the CPU, measured in the same run.

One function per figure; main runs them all. Each figure checks seisoku's results against
PyTorch in float64 first, then times both, PyTorch with torch.set_num_threads set to
seisoku's thread count.

  conv2d fwd+bwd LeNet batch: the two LeNet-5 convolutions on a batch of 128 (--quick: 32)
    float32 images: conv 1->6 5x5 padding 2 on 28x28, then conv 6->16 5x5 on 14x14; forward
    with bias, then backward to grad_x, grad_weight and grad_bias of both. Both libraries
    allocate their outputs and gradients each step (PyTorch through autograd, its .grad
    reset to None before each step). In images/s.

    python bench/bench_nn.py [--quick] [--json PATH]
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import seisoku
from _timing import CPU_WARMUP_S, Figure, check_close, machine_note, make_parser, report, time_fn
from seisoku.nn import _conv

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
            y = _conv.conv2d(x, wt, b, padding=p)
            results.append((y, *_conv.conv2d_backward(g, x, wt, padding=p)))
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
    t_ours = time_fn(ours, **options)
    t_peer = time_fn(peer, **options)
    return Figure(name, batch / t_ours, batch / t_peer, "torch", "images/s")


FIGURES: tuple[Callable[[bool], Figure], ...] = (conv2d_lenet,)


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
