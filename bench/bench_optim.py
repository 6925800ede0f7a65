"""Fused optimizer steps: seisoku.optim against torch.optim (fused=True) in the same run.

Cases (float32):
* one 10M-parameter tensor (--quick: 1M): SGD-momentum with coupled L2 (20 B/param moved:
  read w, g, m; write w, m) and AdamW (28 B/param), against torch's fused=True step, with
  torch's foreach and for-loop steps as extra peers;
* a ResNet-50 + 12-layer transformer list of 306 tensors (64 to 4.2M elements, 39M in all;
  --quick: the first 60 tensors), same two optimizers, against torch fused;
* the L1-proximal, elastic-net and max-norm variants on the 10M tensor (shape (2500, 4000),
  max-norm over its rows), against the plain step (target: at most 1.2x) and against torch's
  fused step followed by the composed ops (softshrink, renorm_).

Each case is checked against torch after one step, then timed: ours and the peer alternate
for three rounds and each keeps its best, so a slow spell of a shared machine hits both.
The effective bandwidth (bytes moved by an ideal single pass / time) is reported beside the
machine's measured streaming read-modify-write bandwidth (y += a * x on 3 x 256 MB, the best
of seisoku.axpy and torch's add_). seisoku steps with nonfinite="ignore" (torch does not look
for NaN either); the default nonfinite="raise" (one more read of the gradients) is reported
as its own line.

    python bench/bench_optim.py [--quick] [--json PATH] [--device cpu|cuda] [--threads N]
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
    require_cuda,
    sync_for,
    time_fn,
    time_pair,
)
from seisoku import optim
from seisoku.nn.module import Parameter

BYTES = {"sgd": 20, "adamw": 28}


def resnet_transformer_shapes() -> list[tuple[int, ...]]:
    """A ResNet-50 (conv + BN + fc) and a 12-layer d=256 transformer with a 16K-token embedding."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]
    cin = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            for co, ci, k in ((width, cin, 1), (width, width, 3), (4 * width, width, 1)):
                shapes += [(co, ci, k, k), (co,), (co,)]
            if b == 0:
                shapes += [(4 * width, cin, 1, 1), (4 * width,), (4 * width,)]
            cin = 4 * width
    shapes += [(1000, 2048), (1000,)]
    d, ff = 256, 1024
    shapes.append((16384, d))
    for _ in range(12):
        shapes += [(3 * d, d), (3 * d,), (d, d), (d,), (ff, d), (ff,), (d, ff), (d,)]
        shapes += [(d,), (d,), (d,), (d,)]
    return shapes


class Case:
    """The same tensors for seisoku (Parameters) and torch (leaf tensors with .grad)."""

    def __init__(self, shapes: list[tuple[int, ...]], device: str, seed: int = 0) -> None:
        import torch

        rng = np.random.default_rng(seed)
        self.w0 = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
        self.g0 = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
        self.xp = np if device == "cpu" else require_cuda()
        tdev = "cpu" if device == "cpu" else "cuda"
        self.ours = []
        for w, g in zip(self.w0, self.g0):
            p = Parameter(self.xp.asarray(w.copy()), regularize=True)
            p.grad[...] = self.xp.asarray(g)
            self.ours.append(p)
        self.theirs = []
        for w, g in zip(self.w0, self.g0):
            t = torch.tensor(w, device=tdev).requires_grad_(True)
            t.grad = torch.tensor(g, device=tdev)
            self.theirs.append(t)
        self.numel = sum(w.size for w in self.w0)

    def reset(self) -> None:
        import torch

        with torch.no_grad():
            for p, t, w in zip(self.ours, self.theirs, self.w0):
                p.value[...] = self.xp.asarray(w)
                t.copy_(torch.from_numpy(w))


def ours_opt(kind: str, params: list[Parameter], extra: dict[str, Any]) -> optim.Optimizer:
    if kind == "sgd":
        kw = {"lr": 1e-3, "momentum": 0.9, "l2": 1e-4, **extra}
        return optim.SGD(params, nonfinite="ignore", **kw)
    return optim.AdamW(params, lr=1e-3, weight_decay=1e-2, nonfinite="ignore", **extra)


def torch_opt(kind: str, params: list[Any], mode: str, l2: float = 1e-4) -> Any:
    import torch

    flags = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}
    if kind == "sgd":
        return torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=l2, **flags[mode])
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2, **flags[mode])


def check_one_step(
    case: Case, ours: Callable[[], Any], theirs: Callable[[], Any], what: str
) -> None:
    """One step of each from the same start must agree (float32 rounding of one update)."""
    case.reset()
    ours()
    theirs()
    for p, t in zip(case.ours, case.theirs):
        check_close(p.value, t.detach().cpu().numpy(), rtol=2e-5, atol=2e-6, what=what)
    case.reset()


def bandwidth(device: str, sync: Any) -> float:
    """Measured streaming read-modify-write bandwidth, GB/s (y += a * x, 12 B per element)."""
    import torch

    n = 64 * 1024 * 1024
    xp = np if device == "cpu" else require_cuda()
    x = xp.ones(n, dtype=np.float32)
    y = xp.ones(n, dtype=np.float32)
    t_ours = time_fn(
        lambda: seisoku.axpy(1e-9, x, y), warmup=3, repeats=10, sync=sync, warmup_s=CPU_WARMUP_S
    )
    tdev = "cpu" if device == "cpu" else "cuda"
    tx = torch.ones(n, device=tdev)
    ty = torch.ones(n, device=tdev)
    t_torch = time_fn(
        lambda: ty.add_(tx, alpha=1e-9), warmup=3, repeats=10, sync=sync, warmup_s=CPU_WARMUP_S
    )
    return 12 * n / min(t_ours, t_torch) / 1e9


def main() -> None:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, help="CPU threads of seisoku and torch (default: all)"
    )
    args = parser.parse_args()
    import torch

    device = args.device
    sync = sync_for(device)
    if args.threads:
        seisoku.set_num_threads(args.threads)
    if device == "cpu":
        torch.set_num_threads(seisoku.get_num_threads())
    note = machine_note()
    if note:
        print(note)
    reps = 5 if args.quick else 20
    n_single = 1_000_000 if args.quick else 10_000_000
    bw = bandwidth(device, sync)
    print(
        f"device {device}, seisoku threads {seisoku.get_num_threads()}, torch threads "
        f"{torch.get_num_threads()}; measured read-modify-write bandwidth {bw:.1f} GB/s"
    )
    figures: list[Figure] = []
    ratios: list[str] = []

    def timed(fn: Callable[[], Any]) -> float:
        return time_fn(fn, warmup=3, repeats=reps, sync=sync, warmup_s=CPU_WARMUP_S) * 1e3

    def timed_pair(a: Callable[[], Any], b: Callable[[], Any]) -> tuple[float, float]:
        """ms of a and of b, alternating for three rounds, each side's best."""
        ta, tb = time_pair(a, b, warmup=3, repeats=reps, sync=sync, warmup_s=CPU_WARMUP_S)
        return ta * 1e3, tb * 1e3

    def gbps(kind: str, numel: int, ms: float) -> float:
        return BYTES[kind] * numel / (ms * 1e-3) / 1e9

    cases = {
        "10M tensor" if not args.quick else "1M tensor": [(n_single // 4000, 4000)],
        "306-tensor CNN/transformer list": resnet_transformer_shapes()[
            : 60 if args.quick else None
        ],
    }
    for label, shapes in cases.items():
        case = Case(shapes, device)
        for kind in ("sgd", "adamw"):
            ours = ours_opt(kind, case.ours, {})
            fused = torch_opt(kind, case.theirs, "fused")
            name = f"{kind} {label} ({len(shapes)} tensors, {case.numel / 1e6:.1f}M params)"
            check_one_step(case, ours.step, fused.step, name)
            t_ours, t_fused = timed_pair(ours.step, fused.step)
            figures.append(Figure(f"{name} step", t_ours, t_fused, "torch fused", "ms"))
            figures.append(
                Figure(
                    f"{name} effective bandwidth",
                    gbps(kind, case.numel, t_ours),
                    gbps(kind, case.numel, t_fused),
                    "torch fused",
                    "GB/s",
                )
            )
            ratios.append(
                f"{name}: ours {gbps(kind, case.numel, t_ours):.1f} GB/s = "
                f"{gbps(kind, case.numel, t_ours) / bw:.0%} of measured, torch fused "
                f"{gbps(kind, case.numel, t_fused):.1f} GB/s = "
                f"{gbps(kind, case.numel, t_fused) / bw:.0%}"
            )
            checked = ours_opt(kind, case.ours, {})
            checked.nonfinite = "raise"
            t_checked, t_fused_again = timed_pair(checked.step, fused.step)
            figures.append(
                Figure(
                    f"{name} step, nonfinite='raise'",
                    t_checked,
                    t_fused_again,
                    "torch fused",
                    "ms",
                )
            )
            if label.endswith("tensor"):
                for mode in ("foreach", "loop"):
                    peer = torch_opt(kind, case.theirs, mode)
                    figures.append(
                        Figure(f"{name} step", t_ours, timed(peer.step), f"torch {mode}", "ms")
                    )
            case.reset()
        if not label.endswith("tensor"):
            continue
        # Penalty variants on the single tensor (SGD-momentum + L2 as the plain step).
        import torch.nn.functional as tf

        plain = ours_opt("sgd", case.ours, {})
        l1 = 0.1
        tau = 1e-3 * l1

        def shrink(t: Any, tau: float = tau) -> Any:
            return t.copy_(tf.softshrink(t, tau))

        variants = {  # our extra arguments, torch's coupled L2, torch's composed op after its step
            "L1 proximal": ({"l2": 0.0, "l1": l1}, 0.0, shrink),
            "elastic net": ({"l1": l1}, 1e-4, shrink),
            "max-norm": ({"max_norm": 30.0}, 1e-4, lambda t: t.renorm_(2, 0, 30.0)),
        }
        for vname, (extra, l2, post) in variants.items():
            ours = ours_opt("sgd", case.ours, extra)
            fused = torch_opt("sgd", case.theirs, "fused", l2=l2)

            def composed(
                fused: Any = fused, post: Callable[[Any], Any] = post, case: Case = case
            ) -> None:
                fused.step()
                with torch.no_grad():
                    for t in case.theirs:
                        post(t)

            check_one_step(case, ours.step, composed, f"sgd {vname}")
            t_ours, t_plain = timed_pair(ours.step, plain.step)
            t_comp = timed(composed)
            figures.append(
                Figure(f"sgd {vname} {label} step", t_ours, t_comp, "torch fused + composed", "ms")
            )
            figures.append(
                Figure(
                    f"sgd {vname} {label} step vs our plain step",
                    t_ours,
                    t_plain,
                    "seisoku plain",
                    "ms",
                )
            )
            ratios.append(
                f"sgd {vname}: {t_ours / t_plain:.2f}x our plain step (target <= 1.2x), "
                f"{gbps('sgd', case.numel, t_ours):.1f} GB/s effective = "
                f"{gbps('sgd', case.numel, t_ours) / bw:.0%} of measured"
            )
            case.reset()
    report(figures, args.json)
    for line in ratios:
        print(line)


if __name__ == "__main__":
    main()
