"""Fused optimizer steps: seisoku.optim against torch.optim (fused=True), on the CPU.

Cases (float32), each thread for thread (1 thread on each side) and for the whole machine
(both sides on every core), each side timed in a process of its own (see _timing):
* one 10M-parameter tensor (--quick: 4M): SGD with momentum and coupled L2 (20 B per
  parameter moved: read w, g, m; write w, m), Adam with coupled L2 and AdamW (28 B: read w,
  g, m, v; write w, m, v);
* 300 tensors of 10k to 50k parameters (9M in all; --quick: 100 tensors), where the cost per
  tensor shows: SGD-momentum and AdamW;
* (full run) a ResNet-50 + 12-layer transformer list of 306 tensors (64 to 4.2M parameters,
  39M in all); torch's foreach and for-loop steps as extra peers on the single tensor; the
  L1-proximal, elastic-net and max-norm variants against our plain step (target: at most
  1.2x) and against torch's fused step followed by the composed ops (softshrink, renorm_).

Checked first, in this process: from the same start, 5 steps of each side with fresh
gradients each step (the state built up, not one step from zero state); parameters and state
(momentum buffer; exp_avg and exp_avg_sq) must agree with torch's. Each timing process builds
its side the same way (5 steps) before timing.

Figures: our step (nonfinite="ignore": torch does not look for NaN either) against torch's
fused step; our default nonfinite="raise" (the check rides on the step's own pass) against our
"ignore" (target: within 5%); and the effective bandwidth (bytes an ideal single pass moves /
time) against the copy bandwidth measured at the same threads (the best of numpy.copyto,
single-threaded, and torch's copy_, counting 8 B per element read and written; target: at
least 90% of it), with the read-modify-write bandwidth (y += a x, 12 B per element: the
access pattern of a step) printed beside.

    python bench/bench_optim.py [--quick] [--json PATH]
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (
    CPU_WARMUP_S,
    Figure,
    Job,
    Worker,
    check_close,
    check_true,
    installed_version,
    machine_note,
    make_parser,
    report,
    skip,
    thread_counts,
    threads_label,
    time_pair_isolated,
    write_json,
)

BYTES = {"sgd": 20, "adam": 28, "adamw": 28}
CHECK_STEPS = 5
LR, MOMENTUM, L2, DECAY = 1e-3, 0.9, 1e-4, 1e-2
L1 = 0.1
# variant -> (our extra arguments, torch's coupled L2, the op composed after torch's step)
VARIANTS = {
    "L1 proximal": ({"l2": 0.0, "l1": L1}, 0.0, "softshrink"),
    "elastic net": ({"l1": L1}, L2, "softshrink"),
    "max-norm": ({"max_norm": 30.0}, L2, "renorm"),
}


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


def case_shapes(case: str, quick: bool) -> list[tuple[int, ...]]:
    if case == "single":
        return [(1000, 4000 if quick else 10000)]
    if case == "small":
        sizes = np.random.default_rng(7).integers(10_000, 50_001, 100 if quick else 300)
        return [(int(k),) for k in sizes]
    return resnet_transformer_shapes()


def case_label(case: str, shapes: list[tuple[int, ...]]) -> str:
    numel = sum(int(np.prod(s)) for s in shapes)
    what = {"single": "1 tensor", "small": f"{len(shapes)} tensors of 10k-50k"}
    return f"{what.get(case, f'{len(shapes)}-tensor CNN/transformer list')}, {numel / 1e6:.0f}M"


def gradients(shapes: list[tuple[int, ...]], step: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1000 + step)
    return [rng.standard_normal(s, dtype=np.float32) for s in shapes]


def start_values(shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s, dtype=np.float32) for s in shapes]


# ---- each side builds its own tensors and optimizer (a timing process imports only its own) ----


class Ours:
    """seisoku Parameters and optimizer of a case."""

    def __init__(self, shapes: list[tuple[int, ...]], kind: str, **extra: Any) -> None:
        from seisoku import optim
        from seisoku.nn.module import Parameter

        self.params = [Parameter(w, regularize=True) for w in start_values(shapes)]
        self.shapes = shapes
        if kind == "sgd":
            kw: dict[str, Any] = {"lr": LR, "momentum": MOMENTUM, "l2": L2}
            self.opt = optim.SGD(self.params, nonfinite="ignore", **{**kw, **extra})
        elif kind == "adam":
            self.opt = optim.Adam(self.params, lr=LR, l2=DECAY, nonfinite="ignore", **extra)
        else:
            self.opt = optim.AdamW(self.params, lr=LR, weight_decay=DECAY, nonfinite="ignore")

    def set_grads(self, step: int) -> None:
        for p, g in zip(self.params, gradients(self.shapes, step)):
            p.grad[...] = g

    def state(self, i: int) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.opt.state[self.params[i]].items() if k != "step"}


class Torch:
    """torch leaf tensors and optimizer of a case (`mode`: fused, foreach or loop); `post`:
    an op composed after every step (softshrink or renorm, for the penalty variants)."""

    def __init__(
        self,
        shapes: list[tuple[int, ...]],
        kind: str,
        mode: str = "fused",
        l2: float = L2,
        post: str | None = None,
    ) -> None:
        import torch

        self.params = [torch.from_numpy(w).requires_grad_(True) for w in start_values(shapes)]
        self.shapes = shapes
        flags = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}
        if kind == "sgd":
            self.opt = torch.optim.SGD(
                self.params, lr=LR, momentum=MOMENTUM, weight_decay=l2, **flags[mode]
            )
        else:
            cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
            self.opt = cls(self.params, lr=LR, weight_decay=DECAY, **flags[mode])
        self.post = post

    def step(self) -> None:
        import torch

        self.opt.step()
        if self.post is None:
            return
        with torch.no_grad():
            for t in self.params:
                if self.post == "softshrink":
                    t.copy_(torch.nn.functional.softshrink(t, LR * L1))
                else:
                    t.renorm_(2, 0, 30.0)

    def set_grads(self, step: int) -> None:
        import torch

        for p, g in zip(self.params, gradients(self.shapes, step)):
            p.grad = torch.from_numpy(g)

    def state(self, i: int) -> dict[str, np.ndarray]:
        names = {"momentum_buffer", "exp_avg", "exp_avg_sq"}
        return {k: v.numpy() for k, v in self.opt.state[self.params[i]].items() if k in names}


def build_up(side: Ours | Torch) -> None:
    """CHECK_STEPS steps with fresh gradients: the state is built up before timing."""
    for step in range(CHECK_STEPS):
        side.set_grads(step)
        side.opt.step() if isinstance(side, Ours) else side.step()


# ---- the job factories: each builds one side in its own process ----


def seisoku_step(
    case: str, kind: str, quick: bool, nonfinite: str = "ignore", extra: dict | None = None
) -> Callable[[], Any]:
    """seisoku's step of a case after CHECK_STEPS steps (the state built up)."""
    side = Ours(case_shapes(case, quick), kind, **(extra or {}))
    side.opt.nonfinite = nonfinite
    build_up(side)
    check_true(all(np.isfinite(p.value).all() for p in side.params), case, "non-finite values")
    return side.opt.step


def torch_step(
    case: str, kind: str, quick: bool, mode: str = "fused", l2: float = L2, post: str | None = None
) -> Callable[[], Any]:
    """torch's step of a case after CHECK_STEPS steps."""
    side = Torch(case_shapes(case, quick), kind, mode, l2, post)
    build_up(side)
    check_true(all(bool(p.isfinite().all()) for p in side.params), case, "non-finite values")
    return side.step


def memory_op(pattern: str, library: str, n: int) -> Callable[[], Any]:
    """A copy (numpy.copyto, torch copy_) or y += a x (seisoku.axpy, torch add_) of n float32."""
    x = np.ones(n, dtype=np.float32)
    y = np.ones(n, dtype=np.float32)
    if library == "numpy":
        return lambda: np.copyto(y, x)
    if library == "seisoku":
        import seisoku

        return lambda: seisoku.axpy(1e-9, x, y)
    import torch

    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    if pattern == "copy":
        return lambda: ty.copy_(tx)
    return lambda: ty.add_(tx, alpha=1e-9)


# ---- the check against torch, in this process ----


def check_against_torch(ours: Ours, theirs: Torch, what: str) -> None:
    """After the same CHECK_STEPS steps, parameters and state must agree (float32 roundings)."""
    build_up(ours)
    build_up(theirs)
    for i, (p, t) in enumerate(zip(ours.params, theirs.params)):
        check_close(p.value, t.detach().numpy(), rtol=1e-5, atol=1e-6, what=f"{what} param {i}")
        mine = ours.state(i)
        for k, v in theirs.state(i).items():
            check_close(mine[k], v, rtol=1e-5, atol=1e-6, what=f"{what} state {k} of param {i}")


# ---- figures ----


class Run:
    """The workers of a run (one per library) and the timing options."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.timing: dict[str, Any] = {
            "warmup": 2 if quick else 3,
            "repeats": 5 if quick else 20,
            "warmup_s": 0.05 if quick else CPU_WARMUP_S,
            "rounds": 1 if quick else 3,
        }
        self.workers = {lib: Worker() for lib in ("seisoku", "torch", "numpy")}

    def pair(self, ours: Job, peer: Job) -> tuple[float, float]:
        """Seconds of ours and of the peer, each in its library's process, alternating."""
        side = {("seisoku",): "seisoku", ("torch",): "torch", (): "numpy"}
        a, b = self.workers[side[ours.libraries]], self.workers[side[peer.libraries]]
        result = time_pair_isolated(ours, peer, ours_worker=a, peer_worker=b, **self.timing)
        a.forget(ours)
        b.forget(peer)
        return result

    def close(self) -> None:
        for w in self.workers.values():
            w.close()


def job(factory: str, threads: int, side: str, **kw: Any) -> Job:
    """A Job of this module's `factory` run in `side`'s process (seisoku, torch or numpy)."""
    return Job("bench_optim", factory, kw, threads, (side,) if side != "numpy" else ())


def bandwidths(run: Run, threads: int) -> tuple[float, float]:
    """(copy GB/s, read-modify-write GB/s) at `threads` threads on 256 MB arrays (--quick:
    64 MB), the better of the two libraries of each."""
    n = (16 if run.quick else 64) * 1024 * 1024
    t_np, t_torch = run.pair(
        job("memory_op", threads, "numpy", pattern="copy", library="numpy", n=n),
        job("memory_op", threads, "torch", pattern="copy", library="torch", n=n),
    )
    t_axpy, t_add = run.pair(
        job("memory_op", threads, "seisoku", pattern="rmw", library="seisoku", n=n),
        job("memory_op", threads, "torch", pattern="rmw", library="torch", n=n),
    )
    return 8 * n / min(t_np, t_torch) / 1e9, 12 * n / min(t_axpy, t_add) / 1e9


def main() -> None:
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    if args.device != "cpu":
        raise SystemExit("bench_optim.py compares against PyTorch on the CPU (--device cpu)")
    torch_version = installed_version("torch")
    if torch_version is None:
        skip("torch is not installed (pip install torch)")
    note = machine_note()
    if note:
        print(note, flush=True)
    import seisoku
    from seisoku import _core

    features = dict(_core.build_info())["cpu_features"]
    print(
        f"seisoku {seisoku.__version__} (CPU features compiled: {features}), torch "
        f"{torch_version}; each side in a process of its own",
        flush=True,
    )
    kinds = ("sgd", "adamw") if args.quick else ("sgd", "adam", "adamw")
    cases = [("single", k) for k in kinds] + [("small", "sgd"), ("small", "adamw")]
    if not args.quick:
        cases += [("list", "sgd"), ("list", "adamw")]
    for case, kind in cases:
        shapes = case_shapes(case, args.quick)
        check_against_torch(Ours(shapes, kind), Torch(shapes, kind), f"{kind} {case}")
    figures: list[Figure] = []
    lines: list[str] = []
    run = Run(args.quick)

    def add(fig: Figure) -> None:
        report([fig])
        figures.append(fig)

    try:
        for threads in thread_counts():
            tag = threads_label(threads)
            copy_bw, rmw_bw = bandwidths(run, threads)
            lines.append(f"{tag}: copy {copy_bw:.1f} GB/s, read-modify-write {rmw_bw:.1f} GB/s")
            print(lines[-1], flush=True)
            for case, kind in cases:
                shapes = case_shapes(case, args.quick)
                numel = sum(int(np.prod(s)) for s in shapes)
                name = f"{kind} {case_label(case, shapes)} f32"
                kw = {"case": case, "kind": kind, "quick": args.quick}
                ours = job("seisoku_step", threads, "seisoku", **kw)
                t_ours, t_peer = run.pair(ours, job("torch_step", threads, "torch", **kw))
                add(
                    Figure(
                        f"{name}: step",
                        t_ours * 1e3,
                        t_peer * 1e3,
                        "torch fused",
                        "ms",
                        threads=threads,
                    )
                )
                gbps = BYTES[kind] * numel / t_ours / 1e9
                add(
                    Figure(
                        f"{name}: effective bandwidth",
                        gbps,
                        copy_bw,
                        "copy bandwidth",
                        "GB/s",
                        threads=threads,
                    )
                )
                checked = job("seisoku_step", threads, "seisoku", nonfinite="raise", **kw)
                t_raise, t_ignore = run.pair(checked, ours)
                add(
                    Figure(
                        f"{name}: nonfinite='raise' step",
                        t_raise * 1e3,
                        t_ignore * 1e3,
                        "seisoku, nonfinite='ignore'",
                        "ms",
                        threads=threads,
                    )
                )
                lines.append(
                    f"{name}, {tag}: {gbps:.1f} GB/s = {gbps / copy_bw:.0%} of the copy "
                    f"(target >= 90%), {gbps / rmw_bw:.0%} of read-modify-write; torch fused "
                    f"{BYTES[kind] * numel / t_peer / 1e9:.1f} GB/s; 'raise' "
                    f"{t_raise / t_ignore:.3f}x 'ignore' (target <= 1.05)"
                )
                if case == "single" and threads > 1 and not args.quick:
                    for mode in ("foreach", "loop"):
                        _, t_mode = run.pair(
                            ours, job("torch_step", threads, "torch", mode=mode, **kw)
                        )
                        add(
                            Figure(
                                f"{name}: step",
                                t_ours * 1e3,
                                t_mode * 1e3,
                                f"torch {mode}",
                                "ms",
                                threads=threads,
                            )
                        )
        if not args.quick:
            penalty_variants(run, add, lines)
    finally:
        run.close()
    for line in lines:
        print(line)
    if args.json:
        write_json(figures, args.json)


def penalty_variants(run: Run, add: Callable[[Figure], None], lines: list[str]) -> None:
    """L1-proximal, elastic net and max-norm on the single tensor (SGD-momentum, whole
    machine), checked against torch's fused step followed by the composed op, timed against
    it and against our plain step."""
    threads = thread_counts()[-1]
    shapes = case_shapes("single", False)
    kw = {"case": "single", "kind": "sgd", "quick": False}
    for vname, (extra, l2, post) in VARIANTS.items():
        ours, theirs = Ours(shapes, "sgd", **extra), Torch(shapes, "sgd", l2=l2, post=post)
        build_up(ours)
        build_up(theirs)
        for i, (p, t) in enumerate(zip(ours.params, theirs.params)):
            check_close(p.value, t.detach().numpy(), rtol=1e-5, atol=1e-6, what=f"sgd {vname} {i}")
        del ours, theirs
        mine = job("seisoku_step", threads, "seisoku", extra=extra, **kw)
        t_ours, t_comp = run.pair(mine, job("torch_step", threads, "torch", l2=l2, post=post, **kw))
        t_ours2, t_plain = run.pair(mine, job("seisoku_step", threads, "seisoku", **kw))
        name = f"sgd {vname} {case_label('single', shapes)} f32"
        add(
            Figure(
                f"{name}: step",
                t_ours * 1e3,
                t_comp * 1e3,
                "torch fused + composed",
                "ms",
                threads=threads,
            )
        )
        add(
            Figure(
                f"{name}: step vs our plain step",
                t_ours2 * 1e3,
                t_plain * 1e3,
                "seisoku plain",
                "ms",
                threads=threads,
            )
        )
        lines.append(
            f"{name}, {threads_label(threads)}: {t_ours2 / t_plain:.2f}x our plain step "
            "(target <= 1.2x)"
        )


if __name__ == "__main__":
    main()
