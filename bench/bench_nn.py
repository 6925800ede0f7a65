"""Neural-network layers and training steps: seisoku against PyTorch on the CPU.

Every figure names its thread count; seisoku and PyTorch always run with the same number
(torch.set_num_threads). Each figure first checks the very path it times against PyTorch,
then times ours and the peer's alternately in this process (best of the rounds). The two
training steps are also timed with each side alone in a process of its own (this script
with --worker), started from the environment this script was given: seisoku sets
OMP_WAIT_POLICY=PASSIVE at import unless it is set, which reaches no PyTorch process. In
this process both libraries run on one OpenMP runtime (they ship the same libgomp.so.1;
PyTorch's is loaded first, with the given settings), so only the processes of their own
show each side with its own settings.

  mlp 784-800-800-10 train step: ReLU, dropout 0.5 on both hidden layers, cross-entropy
    with label smoothing 0.1 (PyTorch's convention on both sides), batch 128, SGD with
    momentum 0.9 and coupled weight decay 1e-4 on the weights (biases exempt): seisoku's
    nn.mlp + seisoku.optim.SGD against torch.nn with torch.optim.SGD(fused=True), eager and
    torch.compile (of the whole step: zero_grad, forward, loss, backward, optimizer step).
    The faster PyTorch is the peer; both are printed. On 1 thread (thread for thread) and on
    every core. Check: 3 training steps in train mode (dropout on; the backward goes
    through the sparse products) against the same model in float64 PyTorch with seisoku's
    dropout masks (drawn with seisoku.nn.functional.dropout on ones with the layers' seed
    and offsets) and the same initial weights: losses, every gradient and every parameter
    after each step. In samples/s.

  mlp 64-64-64-10 step (batch 32): ReLU, dropout 0.1, cross-entropy, SGD momentum 0.9, on
    1 thread; dominated by the per-call overhead, so it measures the layers' Python and
    binding cost against torch eager (fused SGD) on the same model. Checked as above. In
    microseconds per step.

  linear 800->800 batch 128 products, P% nonzeros: the forward and backward products of one
    Linear as the MLP's hidden layer (out = x @ W.T, grad_x = g @ W, grad_W = g.T @ x; no
    bias) with x and g exactly P% nonzero, P in 30, 40, 45, 50, 60: seisoku's Linear
    (seisoku.nn.functional.linear and linear_backward, which multiply over the nonzeros where
    that pays) against torch.mm, and against seisoku's dense path forced on the same values
    (seisoku.gemm: the tiled OpenBLAS products Linear falls back to; the "vs dense" figure,
    whose ratio must not fall below 0.97 anywhere in the band). All outputs preallocated.
    Checked against float64 products first. On every core and on 1 thread. In samples/s.

  conv2d fwd+bwd LeNet batch: the two LeNet-5 convolutions on a batch of 128 (--quick: 32)
    float32 images: conv 1->6 5x5 padding 2 on 28x28, then conv 6->16 5x5 on 14x14; forward
    with bias, then backward to grad_x, grad_weight and grad_bias of both. Both libraries
    allocate their outputs and gradients each step (PyTorch through autograd, its .grad reset
    to None before each step). Checked against float64 PyTorch. In images/s.

--quick (for smoke runs; well under a minute) leaves out torch.compile, the processes of
their own, the 1-thread MLP and products, and the 45% and 60% products, and times briefly.

    python bench/bench_nn.py [--quick] [--json PATH]
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from typing import Any, Callable

# The environment as given, for processes of their own: seisoku's import adds to it.
USER_ENV = dict(os.environ)
# A worker (see Worker) loads one side only: seisoku and PyTorch ship the same OpenMP runtime
# name (libgomp.so.1), so a process runs whichever of the two loads first, with the wait
# policy it started with, for both.
WORKER = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--worker" else None
torch: Any = None
if WORKER != "seisoku":
    try:  # first: in this process the OpenMP runtime is PyTorch's, with the given settings
        import torch
    except ImportError:
        pass

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (  # noqa: E402
    CPU_WARMUP_S,
    Figure,
    check_close,
    check_true,
    machine_note,
    make_parser,
    time_fn,
)

if WORKER is None or WORKER == "seisoku":
    import seisoku
    from seisoku.nn import functional as F  # noqa: N812

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
# (C_in, H, W, C_out, k, padding) of the LeNet-5 convolutions.
LENET_CONVS = ((1, 28, 28, 6, 5, 2), (6, 14, 14, 16, 5, 0))
# The training steps: sizes, batch, dropout, label smoothing, lr, momentum, weight decay.
MLPS = {
    "mlp": ((784, 800, 800, 10), 128, 0.5, 0.1, 0.01, 0.9, 1e-4),
    "small": ((64, 64, 64, 10), 32, 0.1, 0.0, 0.01, 0.9, 0.0),
}
BATCHES = 8  # distinct batches a step cycles through


def _torch(threads: int) -> Any:
    if torch is None:
        raise SystemExit("bench_nn.py needs PyTorch as the peer: pip install torch")
    torch.set_num_threads(threads)
    return torch


def _threads(n: int) -> None:
    seisoku.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def _timing_options(quick: bool) -> dict[str, Any]:
    return {
        "warmup": 2 if quick else 3,
        "repeats": 3 if quick else 10,
        "min_time_s": 0.05 if quick else 0.5,
        "warmup_s": 0.1 if quick else CPU_WARMUP_S,
    }


def _rounds(
    fns: dict[str, Callable[[], Any]], quick: bool, goal: float | None = None
) -> dict[str, float]:
    """Seconds per call of each fn, timed in turns: after a warm-up, each fn in turn runs a
    few calls (about 20 ms), round after round, until each has run for `goal` seconds
    (default 3 * min_time_s, --quick: min_time_s); the best turn of each. A slow spell on a
    shared machine then spoils some turns of every fn instead of all of one."""
    options = _timing_options(quick)
    number = {}
    for name, fn in fns.items():
        time_fn(fn, warmup=options["warmup"], repeats=1, warmup_s=options["warmup_s"])
        number[name] = max(1, round(0.02 / max(time_fn(fn, warmup=0, repeats=3), 1e-9)))
    best = dict.fromkeys(fns, float("inf"))
    spent = dict.fromkeys(fns, 0.0)
    if goal is None:
        goal = options["min_time_s"] * (1 if quick else 3)
    while min(spent.values()) < goal:
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(number[name]):
                fn()
            seconds = time.perf_counter() - start
            best[name] = min(best[name], seconds / number[name])
            spent[name] += seconds
    return best


def _threads_label(threads: int) -> str:
    return f"{threads} thread{'s' if threads > 1 else ''}"


def _line(text: str) -> None:
    print(text, flush=True)


# ---- the training steps -------------------------------------------------------------------


def mlp_data(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """BATCHES batches of uniform inputs and class targets for MLPS[kind]."""
    sizes, batch = MLPS[kind][:2]
    rng = np.random.default_rng(7)
    xs = rng.random((BATCHES, batch, sizes[0]), dtype=np.float32)
    return xs, rng.integers(0, sizes[-1], (BATCHES, batch))


def seisoku_training(kind: str) -> tuple[Any, Any, Callable[[int], Any]]:
    """(model, its Generator, step(i)): one seisoku training step on batch i."""
    sizes, _, p, smoothing, lr, momentum, wd = MLPS[kind]
    xs, ys = mlp_data(kind)
    gen = seisoku.Generator(2024)
    model = seisoku.nn.mlp(sizes, dropout=p, generator=gen)
    loss = seisoku.nn.CrossEntropyLoss(smoothing, convention="uniform")
    # coupled L2 (torch's weight_decay) on the weights; biases are exempt by default
    opt = seisoku.optim.SGD(model.parameters(), lr=lr, momentum=momentum, l2=wd)
    model.train()

    def step(i: int) -> Any:
        model.zero_grad()
        value = loss(model(xs[i]), ys[i])
        model.backward(loss.backward(), need_input_grad=False)
        opt.step()
        return value

    return model, gen, step


def torch_training(kind: str, mode: str, threads: int) -> Callable[[int], Any]:
    """step(i): one PyTorch training step on batch i, eager or compiled (mode 'compile')."""
    tc = _torch(threads)
    sizes, _, p, smoothing, lr, momentum, wd = MLPS[kind]
    xs, ys = (tc.from_numpy(a) for a in mlp_data(kind))
    tc.manual_seed(0)
    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(tc.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [tc.nn.ReLU(), tc.nn.Dropout(p)]
    model = tc.nn.Sequential(*layers).train()
    decay = [w for n, w in model.named_parameters() if n.endswith("weight")]
    rest = [b for n, b in model.named_parameters() if n.endswith("bias")]
    groups = [{"params": decay, "weight_decay": wd}, {"params": rest}]
    opt = tc.optim.SGD(groups, lr=lr, momentum=momentum, fused=True)
    lossf = tc.nn.CrossEntropyLoss(label_smoothing=smoothing)

    def train_step(x: Any, y: Any) -> Any:
        opt.zero_grad(set_to_none=True)
        value = lossf(model(x), y)
        value.backward()
        opt.step()
        return value

    if mode == "compile":
        logging.getLogger("torch").setLevel(logging.ERROR)  # compile-time notes on stderr
        tc._dynamo.reset()
        train_step = tc.compile(train_step)
    return lambda i: train_step(xs[i], ys[i])


def check_training(kind: str, model: Any, gen: Any, step: Callable[[int], Any]) -> None:
    """3 steps of seisoku's timed training step against float64 PyTorch given seisoku's
    dropout masks and initial weights: losses, gradients and parameters after each step."""
    tc = _torch(seisoku.get_num_threads())
    name = f"{kind} training check"
    sizes, batch, p, smoothing, lr, momentum, wd = MLPS[kind]
    xs, ys = mlp_data(kind)
    linears = [model[i] for i in range(len(sizes) - 1)]

    def t64(a: np.ndarray) -> Any:
        return tc.tensor(a, dtype=tc.float64, requires_grad=True)

    weights = [t64(lin.weight.value) for lin in linears]
    biases = [t64(lin.bias.value) for lin in linears]
    opt = tc.optim.SGD(
        [{"params": weights, "weight_decay": wd}, {"params": biases}], lr=lr, momentum=momentum
    )
    lossf = tc.nn.CrossEntropyLoss(label_smoothing=smoothing)
    for i in range(3):
        first = gen.offset
        ours = float(step(i))
        hidden = len(sizes) - 2
        check_true(
            gen.offset - first == hidden,
            name,
            f"the layers drew {gen.offset - first} dropout offsets, expected one per hidden layer",
        )
        # the mask and scale of hidden layer j: dropout of ones with that layer's stream
        masks = [
            F.dropout(np.ones((batch, sizes[j + 1]), np.float32), p, gen.seed, first + j)
            for j in range(hidden)
        ]
        opt.zero_grad()
        h = tc.from_numpy(xs[i]).double()
        for j, (w, b) in enumerate(zip(weights, biases)):
            h = h @ w.T + b
            if j < hidden:
                h = tc.relu(h) * tc.from_numpy(masks[j]).double()
        ref = lossf(h, tc.from_numpy(ys[i]))
        ref.backward()
        check_close(ours, ref.item(), 1e-5, 1e-6, f"{name}: loss at step {i + 1}")
        pairs = [(f"layer {j} weight", lin.weight, weights[j]) for j, lin in enumerate(linears)]
        pairs += [(f"layer {j} bias", lin.bias, biases[j]) for j, lin in enumerate(linears)]
        for at, param, tp in pairs:
            e = tp.grad.numpy()
            scale = float(np.abs(e).max()) or 1.0
            check_close(param.grad, e, 1e-3, 1e-4 * scale, f"{name}: {at} gradient, step {i + 1}")
        opt.step()
        for at, param, tp in pairs:
            e = tp.detach().numpy()
            scale = float(np.abs(e).max()) or 1.0
            check_close(param.value, e, 1e-5, 1e-5 * scale, f"{name}: {at} after step {i + 1}")


def _cycle(step: Callable[[int], Any]) -> Callable[[], None]:
    state = {"i": 0}

    def run() -> None:
        state["i"] = (state["i"] + 1) % BATCHES
        step(state["i"])

    return run


class Worker:
    """One side of a training step alone in a process of its own (this script with
    --worker), started from the environment the benchmark was given; time() asks it for the
    best turn of its step over min_time_s (see _rounds)."""

    def __init__(self, side: str, kind: str, threads: int, quick: bool) -> None:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", side, kind, str(threads)]
        self.proc = subprocess.Popen(
            [*cmd, *(["--quick"] if quick else [])],
            env=USER_ENV,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.side = side
        self._read()  # "ready": built, compiled and warmed up

    def _read(self) -> str:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            code = self.proc.wait()
            raise SystemExit(f"bench_nn.py worker {self.side} ended early (exit {code})")
        return line.strip()

    def time(self) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write("time\n")
        self.proc.stdin.flush()
        return float(self._read())

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()


def worker_main(side: str, kind: str, threads: int, quick: bool) -> None:
    """The --worker loop: build the step, print ready, then one time per 'time' line."""
    if side == "seisoku":
        seisoku.set_num_threads(threads)
        step = seisoku_training(kind)[2]
    else:
        step = torch_training(kind, "compile" if side == "torch.compile" else "eager", threads)
    run = _cycle(step)
    for _ in range(3):
        run()
    print("ready", flush=True)
    for line in sys.stdin:  # each request: a third of what _rounds gives a side in one process
        if line.strip() == "time":
            best = _rounds({"step": run}, quick, _timing_options(quick)["min_time_s"])
            print(repr(best["step"]), flush=True)


def training_figures(kind: str, threads: int, quick: bool) -> list[tuple[Figure, int]]:
    """The training step of MLPS[kind] on `threads` threads: in this process, then (unless
    quick) each side in a process of its own; the faster PyTorch is the peer."""
    _threads(threads)
    sizes, batch = MLPS[kind][:2]
    label = "-".join(map(str, sizes))
    model, gen, step = seisoku_training(kind)
    check_training(kind, model, gen, step)
    sides = {"seisoku": _cycle(step), "torch eager": _cycle(torch_training(kind, "eager", threads))}
    if not quick and kind == "mlp":
        sides["torch.compile"] = _cycle(torch_training(kind, "compile", threads))
    for run in sides.values():
        run()
    runs = {"in one process": _rounds(sides, quick)}
    if not quick:
        names = {"seisoku": "seisoku", "torch eager": "torch", "torch.compile": "torch.compile"}
        workers = [Worker(names[s], kind, threads, quick) for s in sides]
        best = dict.fromkeys(sides, float("inf"))
        try:
            for _ in range(3):
                for side, worker in zip(sides, workers):
                    best[side] = min(best[side], worker.time())
        finally:
            for worker in workers:
                worker.close()
        runs["each in its own process"] = best
    figures = []
    for how, t in runs.items():
        peer = min((s for s in t if s != "seisoku"), key=lambda s: t[s])
        where = f"{_threads_label(threads)}, {how}"
        if kind == "mlp":
            name = f"mlp {label} train step ({where})"
            value = {s: batch / v for s, v in t.items()}
            unit = "samples/s"
        else:
            name = f"mlp {label} step, batch {batch} ({where})"
            value = {s: v * 1e6 for s, v in t.items()}
            unit = "us"
        others = ", ".join(f"{s} {value[s]:.1f} {unit}" for s in t if s != "seisoku")
        _line(f"{name}: seisoku {value['seisoku']:.1f} {unit}; {others}")
        figures.append((Figure(name, value["seisoku"], value[peer], peer, unit), threads))
    return figures


# ---- one Linear's products across the density band ------------------------------------------


def _exact_share(rng: np.random.Generator, shape: tuple[int, int], share: float) -> np.ndarray:
    """Normal values with exactly round(share * size) nonzeros, at random places."""
    size = shape[0] * shape[1]
    keep = np.zeros(size, bool)
    keep[rng.permutation(size)[: round(share * size)]] = True
    values = rng.standard_normal(size) + np.sign(rng.standard_normal(size))  # none is 0
    return np.where(keep, values, 0.0).astype(np.float32).reshape(shape)


def linear_band(threads: int, quick: bool) -> list[tuple[Figure, int]]:
    """The Linear figures: ours against torch.mm and against seisoku's dense path."""
    tc = _torch(threads)
    _threads(threads)
    batch, fin, fout = 128, 800, 800
    rng = np.random.default_rng(11)
    w = (rng.standard_normal((fout, fin)) / np.sqrt(fin)).astype(np.float32)
    figures = []
    for pct in (30, 40, 50) if quick else (30, 40, 45, 50, 60):
        x = _exact_share(rng, (batch, fin), pct / 100)
        g = _exact_share(rng, (batch, fout), pct / 100)
        outs = [np.empty((batch, fout), np.float32), np.empty_like(x), np.empty_like(w)]
        dense = [np.empty_like(a) for a in outs]

        def ours(x: np.ndarray = x, g: np.ndarray = g, o: list[np.ndarray] = outs) -> None:
            F.linear(x, w, out=o[0])
            F.linear_backward(g, x, w, grad_weight=o[2], grad_x=o[1])

        def dense_path(x: np.ndarray = x, g: np.ndarray = g, o: list[np.ndarray] = dense) -> None:
            seisoku.gemm(x, w, o[0], trans_b=True)
            seisoku.gemm(g, w, o[1])
            seisoku.gemm(g, x, o[2], trans_a=True)

        tx, tw, tg = (tc.from_numpy(a) for a in (x, w, g))
        tout = [tc.empty(a.shape) for a in outs]

        def peer(tx: Any = tx, tw: Any = tw, tg: Any = tg, o: list[Any] = tout) -> None:
            tc.mm(tx, tw.t(), out=o[0])
            tc.mm(tg, tw, out=o[1])
            tc.mm(tg.t(), tx, out=o[2])

        name = f"linear 800->800 batch 128 products, {pct}% nonzeros ({_threads_label(threads)})"
        ours()
        dense_path()
        x64, w64, g64 = (a.astype(np.float64) for a in (x, w, g))
        for what, e in zip(("out", "grad_x", "grad_weight"), (x64 @ w64.T, g64 @ w64, g64.T @ x64)):
            i = ("out", "grad_x", "grad_weight").index(what)
            tol = 1e-5 * float(np.abs(e).max())
            check_close(outs[i], e, 1e-4, tol, f"{name}: {what} (against float64)")
            check_close(dense[i], e, 1e-4, tol, f"{name}: dense {what} (against float64)")
        t = _rounds({"ours": ours, "dense": dense_path, "torch": peer}, quick)
        rate = {k: batch / v for k, v in t.items()}
        _line(
            f"{name}: seisoku {rate['ours']:.0f} samples/s, its dense path "
            f"{rate['dense']:.0f} ({t['ours'] / t['dense']:.3f}x its time), "
            f"torch {rate['torch']:.0f}"
        )
        figures.append((Figure(name, rate["ours"], rate["torch"], "torch", "samples/s"), threads))
        dense_fig = Figure(
            f"{name} vs dense", rate["ours"], rate["dense"], "seisoku dense", "samples/s"
        )
        figures.append((dense_fig, threads))
    return figures


# ---- conv2d --------------------------------------------------------------------------------


def conv2d_lenet(threads: int, quick: bool) -> tuple[Figure, int]:
    """conv2d fwd+bwd LeNet batch: seisoku against torch.nn.functional.conv2d + autograd."""
    tc = _torch(threads)
    _threads(threads)
    name = f"conv2d fwd+bwd LeNet batch ({_threads_label(threads)})"
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

    def torch_step(dtype: Any) -> tuple[Callable[[], None], list[tuple[Any, ...]]]:
        tensors = []
        for x, wt, b, g, p in layers:
            tx, tw, tb = (tc.tensor(a, dtype=dtype, requires_grad=True) for a in (x, wt, b))
            tensors.append((tx, tw, tb, tc.tensor(g, dtype=dtype), p, []))

        def step() -> None:
            for tx, tw, tb, tg, p, out in tensors:
                tx.grad = tw.grad = tb.grad = None
                y = tc.nn.functional.conv2d(tx, tw, tb, padding=p)
                y.backward(tg)
                out[:] = [y]

        return step, tensors

    ref_step, ref = torch_step(tc.float64)
    ref_step()
    for li, (mine, (tx, tw, tb, _, _, out)) in enumerate(zip(ours(), ref)):
        expected = (out[0], tx.grad, tw.grad, tb.grad)
        for what, a, e in zip(("out", "grad_x", "grad_weight", "grad_bias"), mine, expected):
            e = e.detach().numpy()
            scale = float(np.abs(e).max())
            check_close(a, e, 1e-4, 1e-4 * scale, f"{name}: conv{li + 1} {what} (against torch)")
    t = _rounds({"ours": ours, "torch": torch_step(tc.float32)[0]}, quick)
    return Figure(name, batch / t["ours"], batch / t["torch"], "torch", "images/s"), threads


# ---- main ----------------------------------------------------------------------------------


def report_figures(figures: list[tuple[Figure, int]], json_path: str | None) -> None:
    """One line per figure; with json_path, the figures as JSON (each with its threads)."""
    records = []
    for fig, threads in figures:
        _line(
            f"{fig.name}: ours {fig.ours:.1f} {fig.unit}, {fig.peer_name} {fig.peer:.1f} "
            f"{fig.unit}, ratio {fig.ratio:.2f}"
        )
        records.append({**fig.as_dict(), "threads": threads})
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(records, f, indent=1)
            f.write("\n")


def main() -> None:
    """Parse the options, run every figure and report."""
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        side, kind, threads = sys.argv[2], sys.argv[3], int(sys.argv[4])
        worker_main(side, kind, threads, "--quick" in sys.argv[5:])
        return
    parser = make_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    if args.device != "cpu":
        raise SystemExit("bench_nn.py compares against PyTorch on the CPU only (--device cpu)")
    note = machine_note()
    if note:
        _line(note)
    tc = _torch(CORES)
    _line(
        f"seisoku {seisoku.__version__}, torch {tc.__version__}; {CORES} cores; "
        f"OMP_WAIT_POLICY as given: {USER_ENV.get('OMP_WAIT_POLICY', 'unset')}"
    )
    figures = training_figures("mlp", CORES, args.quick)
    if not args.quick and CORES > 1:
        figures += training_figures("mlp", 1, args.quick)
    figures += training_figures("small", 1, args.quick)
    figures += linear_band(CORES, args.quick)
    if not args.quick and CORES > 1:
        figures += linear_band(1, args.quick)
    figures.append(conv2d_lenet(CORES, args.quick))
    report_figures(figures, args.json)


if __name__ == "__main__":
    main()
