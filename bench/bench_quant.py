"""int8 inference: seisoku's int8 layers against its own float32 path and PyTorch dynamic int8.

  int8 linear 784->800 and 800->800, batch 1 and 64: seisoku.quant.QuantizedLinear (per-channel
    int8 weights packed once; the input quantized per batch, dynamic, as PyTorch's; int8 x int8
    -> int32 products on AVX-512 VNNI or AVX2, chosen at run time; fused rescale and bias)
    against the float32 seisoku.nn.Linear of the same weights (peer "seisoku float32") and
    against torch.ao.quantization.quantize_dynamic of the same torch.nn.Linear (peer "torch",
    its fastest engine on this CPU, under torch.inference_mode).
  int8 mlp 784-800-800-10, batch 1 and 64: the same for the whole model (ReLU fused into the
    int8 epilogue); plus seisoku's static int8 (input scales calibrated beforehand, each
    layer's epilogue requantizing its output to int8 codes for the next, checked bit for bit
    against the same model handing float32 between layers) against float32.
  digits accuracy: an MLP 64-128-10 trained on the digits data, tested in float32, in int8
    (static, per channel, calibrated on the training set) and in Q8.8 fixed point; the two
    quantized accuracies are printed beside float32 (target: within 0.3 points).

Checks first: each int8 layer's output bit for bit against a NumPy oracle of the documented
pipeline (scale max|x| / 127, codes rint(x / s) clamped to [-127, 127], exact int32 products,
float32 epilogue), the int8 models within 5% of the float model's largest logit, PyTorch's
dynamic model likewise. Same threads on both sides (1 thread, then every core), in this
process, alternating rounds, best round of each. Times in microseconds per call, inputs
preallocated, outputs allocated by each side.

    python bench/bench_quant.py [--quick] [--json PATH]
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np

from _timing import (
    CPU_WARMUP_S,
    Figure,
    installed_version,
    make_parser,
    report,
    skip,
    thread_counts,
    threads_label,
    time_pair,
    use_threads,
    write_json,
)


def oracle_linear(x: np.ndarray, codes: np.ndarray, scales: np.ndarray, bias, relu: bool):
    """The documented int8 pipeline in NumPy (dynamic input scale)."""
    m = float(np.abs(x).max())
    s = np.float32(1.0) if m == 0 else np.float32(np.float64(m) / 127.0)
    xq = np.clip(np.rint(x * (np.float32(1) / s)), -127, 127).astype(np.int64)
    acc = xq @ codes.astype(np.int64).T
    y = acc.astype(np.float32) * (s * scales.astype(np.float32))
    if bias is not None:
        y = y + bias
    return np.where(y > 0, y, np.float32(0)) if relu else y


def check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"bench_quant: check failed: {what}")


def torch_model(sei_layers: list[Any], torch: Any) -> Any:
    """A torch.nn.Sequential with the weights of seisoku Linear layers (ReLU between them)."""
    mods: list[Any] = []
    for i, lin in enumerate(sei_layers):
        t = torch.nn.Linear(lin.in_features, lin.out_features)
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(np.array(lin.weight.value)))
            t.bias.copy_(torch.from_numpy(np.array(lin.bias.value)))
        mods.append(t)
        if i + 1 < len(sei_layers):
            mods.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*mods).eval()
    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def digits_accuracy(sei: Any, quick: bool) -> list[Figure]:
    """Float32, int8 and Q8.8 test accuracy of an MLP trained on the digits data (in %)."""
    from seisoku import nn, quant

    x, y = sei.data.load_digits()
    train, test = sei.data.stratified_split(y, 0.3, seed=0)
    sei.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128, activation="relu"), nn.Linear(128, 10))
    opt = sei.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = sei.train.Trainer(model, nn.CrossEntropyLoss(), opt, progress=False)
    trainer.fit(x[train], y[train], epochs=10 if quick else 40, batch_size=32)
    model.eval()

    def accuracy(m: Any) -> float:
        return 100.0 * float(np.mean(np.argmax(m(x[test]), axis=1) == y[test]))

    acc_float = accuracy(model)
    acc_int8 = accuracy(quant.quantize(model, x[train]))
    kept = model.state_dict()
    quant.apply_quantized(model, quant.quantize_parameters(model, 8, 8))
    acc_q88 = accuracy(model)
    model.load_state_dict(kept)
    print(
        f"digits test accuracy: float32 {acc_float:.2f}%, int8 {acc_int8:.2f}% "
        f"({acc_int8 - acc_float:+.2f} points), Q8.8 {acc_q88:.2f}% "
        f"({acc_q88 - acc_float:+.2f} points); target: within 0.3 points",
        flush=True,
    )
    return [
        Figure("digits accuracy int8", acc_int8, acc_float, "seisoku float32", "%"),
        Figure("digits accuracy Q8.8", acc_q88, acc_float, "seisoku float32", "%"),
    ]


def main() -> None:
    args = make_parser(__doc__.splitlines()[0]).parse_args()
    if args.device != "cpu":
        raise SystemExit("bench_quant.py measures the CPU int8 kernels (--device cpu)")
    if installed_version("torch") is None:
        skip("torch is not installed (pip install torch)")
    import torch

    import seisoku as sei
    from seisoku import nn, quant

    print(
        f"seisoku {sei.__version__} int8 kernel {quant.int8_kernel()}, "
        f"torch {torch.__version__} quantized engine {torch.backends.quantized.engine}",
        flush=True,
    )
    rng = np.random.default_rng(0)
    sei.manual_seed(0)
    linears = {
        "784->800": nn.Linear(784, 800),
        "800->800": nn.Linear(800, 800),
    }
    mlp_layers = [
        nn.Linear(784, 800, activation="relu"),
        nn.Linear(800, 800, activation="relu"),
        nn.Linear(800, 10),
    ]
    for lin in [*linears.values(), *mlp_layers]:
        lin.bias.value[...] = rng.standard_normal(lin.out_features).astype(np.float32) * 0.1
    mlp = nn.Sequential(*mlp_layers)
    mlp.eval()
    batches = (1, 64)
    calib = rng.random((256, 784), dtype=np.float32)
    inputs = {
        b: {k: rng.random((b, int(k.split("->")[0])), dtype=np.float32) for k in linears}
        for b in batches
    }
    mlp_inputs = {b: rng.random((b, 784), dtype=np.float32) for b in batches}

    # ---- checks ----
    q_lin = {k: quant.QuantizedLinear.from_linear(v) for k, v in linears.items()}
    t_lin = {k: torch_model([v], torch) for k, v in linears.items()}
    for b in batches:
        for k, q in q_lin.items():
            x = inputs[b][k]
            ref = oracle_linear(x, q.weight.codes, q.weight.scales, q.bias, False)
            check(np.array_equal(q(x), ref), f"int8 linear {k} batch {b} against the NumPy oracle")
    q_mlp = quant.quantize(mlp, activation="dynamic")
    q_mlp_static = quant.quantize(mlp, calib)  # int8 codes handed from layer to layer
    q_mlp_unchained = quant.quantize(mlp, calib, chain=False)
    t_mlp = torch_model(mlp_layers, torch)
    for b in batches:
        x = mlp_inputs[b]
        f = mlp(x)
        top = float(np.abs(f).max())
        with torch.inference_mode():
            tt = t_mlp(torch.from_numpy(x)).numpy()
        check(
            np.array_equal(q_mlp_static(x), q_mlp_unchained(x)),
            f"mlp static int8 batch {b}: int8 hand-over between layers = float32 hand-over",
        )
        for name, got in (("dynamic", q_mlp(x)), ("static", q_mlp_static(x)), ("torch", tt)):
            err = float(np.abs(got - f).max())
            check(err < 0.05 * top, f"mlp {name} int8 batch {b}: max error {err:.3g} vs {top:.3g}")
    print("checked: int8 layers bit for bit against NumPy; int8 models near float32", flush=True)

    options = dict(
        warmup=3,
        warmup_s=CPU_WARMUP_S,
        repeats=5 if args.quick else 20,
        min_time_s=0.05 if args.quick else 0.3,
    )
    rounds = 2 if args.quick else 4
    figures: list[Figure] = []

    def pair(
        name: str, ours: Callable[[], Any], peer: Callable[[], Any], peer_name: str, threads: int
    ) -> None:
        t_ours, t_peer = time_pair(ours, peer, rounds=rounds, **options)
        fig = Figure(name, t_ours * 1e6, t_peer * 1e6, peer_name, "us", threads=threads)
        report([fig])
        figures.append(fig)

    def torch_call(model: Any, x: np.ndarray) -> Callable[[], Any]:
        tx = torch.from_numpy(x)

        def run() -> Any:
            with torch.inference_mode():
                return model(tx)

        return run

    for threads in thread_counts():
        print(f"-- {threads_label(threads)} --", flush=True)
        with use_threads(threads, sei, torch):
            for b in batches:
                for k in linears:
                    x = inputs[b][k]
                    name = f"int8 linear {k} batch {b}"
                    ours = lambda q=q_lin[k], x=x: q(x)  # noqa: E731
                    pair(name, ours, lambda f=linears[k], x=x: f(x), "seisoku float32", threads)
                    pair(name, ours, torch_call(t_lin[k], x), "torch", threads)
                x = mlp_inputs[b]
                name = f"int8 mlp 784-800-800-10 batch {b}"
                ours = lambda x=x: q_mlp(x)  # noqa: E731
                floats = lambda x=x: mlp(x)  # noqa: E731
                pair(name, ours, floats, "seisoku float32", threads)
                pair(name, ours, torch_call(t_mlp, x), "torch", threads)
                pair(
                    f"{name} static",
                    lambda x=x: q_mlp_static(x),
                    floats,
                    "seisoku float32",
                    threads,
                )
    figures += digits_accuracy(sei, args.quick)
    report(figures[-2:])
    if args.json:
        write_json(figures, args.json)


if __name__ == "__main__":
    sys.exit(main())
