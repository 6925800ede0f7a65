"""Ensembles and multi-task learning on scikit-learn's digits (70/30 stratified split), for
several seeds: each figure beside its baseline measured in the same run.

* bagging: test error of 5 bagged MLPs (64-256-10, batches of 8, each on a bootstrap sample
  of 80% of the training rows) against their average member's;
* adaboost: test error of SAMME over 10 weak MLPs (64-4-10, 10 epochs of Adam) against one
  such member (the first, trained on uniform weights), with the sample weights acting per
  sample (the default) and normalized per batch;
* snapshot: test error of a 5-cycle snapshot ensemble against one run of the same epochs
  under one cosine cycle, and the time of the two runs;
* parallel: seconds to train 4 bagged MLPs (64-256-256-10) two at a time in worker
  processes (one kernel thread each) against one after another (seisoku on both cores), and
  two threads for comparison;
* multitask: the main task's (digit) test accuracy of a shared trunk against a separate
  single-task model of the same size, and of uncertainty and GradNorm weights against the
  best static weights of a grid (examples/multitask.py; skipped where that file is absent).

Before timing, the parallel members are checked to equal the sequential ones bit for bit,
and the ensembles' probabilities to equal a NumPy mean of their members' softmax outputs.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import Figure, check_close, check_true, machine_threads, make_parser, report


def split(seed: int):
    from seisoku import data

    x, y = data.load_digits()
    train, test = data.stratified_split(y, 0.3, seed=seed)
    return x[train], y[train], x[test], y[test]


def mlp_factory(sizes, lr, opt="sgd"):
    import seisoku
    from seisoku import nn, optim

    def build(seed: int):
        model = nn.mlp(sizes, generator=seisoku.Generator(seed))
        if opt == "adam":
            return model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=lr)
        return model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    return build


def error(model_or_ens, x, y) -> float:
    if hasattr(model_or_ens, "score"):
        return 1.0 - model_or_ens.score(x, y)
    model_or_ens.eval()
    return float((model_or_ens.forward(x).argmax(axis=1) != y).mean())


def check_soft_voting(ens, x) -> None:
    logits = np.stack([np.asarray(m.forward(x), dtype=np.float64) for m in ens.members_])
    z = np.exp(logits - logits.max(axis=2, keepdims=True))
    check_close(ens.predict_proba(x), (z / z.sum(axis=2, keepdims=True)).mean(0), 1e-5, 1e-6,
                "soft voting against the NumPy mean of softmax")  # fmt: skip


def bagging(seed: int, epochs: int) -> list[Figure]:
    from seisoku.ensemble import Bagging

    x, y, xt, yt = split(seed)
    bag = Bagging(mlp_factory([64, 256, 10], 0.1), 5, epochs=epochs, batch_size=8, seed=seed,
                  max_samples=0.8, n_jobs=machine_threads(), progress=False).fit(x, y)  # fmt: skip
    check_soft_voting(bag, xt)
    avg = float(np.mean([error(m, xt, yt) for m in bag.members_]))
    name = f"bagging 5 MLPs 64-256-10 (80% samples), test error, seed {seed}"
    return [Figure(name, error(bag, xt, yt), avg, "average member", "error",
                   higher_is_better=False, threads=1)]  # fmt: skip


def adaboost(seed: int, epochs: int) -> list[Figure]:
    from seisoku.ensemble import AdaBoost

    x, y, xt, yt = split(seed)
    figures = []
    for per_sample in (True, False):
        ab = AdaBoost(mlp_factory([64, 4, 10], 0.01, "adam"), 10, epochs=epochs, seed=seed,
                      progress=False, per_sample_weights=per_sample).fit(x, y)  # fmt: skip
        how = "per-sample weights" if per_sample else "weights normalized per batch"
        name = f"adaboost {len(ab.members_)} MLPs 64-4-10, {how}, test error, seed {seed}"
        first = error(ab.members_[0], xt, yt)
        figures.append(
            Figure(name, error(ab, xt, yt), first, "one member", "error", False, threads=1)
        )
    return figures


def snapshot(seed: int, epochs: int) -> list[Figure]:
    from seisoku.ensemble import SnapshotEnsemble

    x, y, xt, yt = split(seed)
    runs = {}
    for cycles in (5, 1):
        model, loss, opt = mlp_factory([64, 128, 10], 0.05)(seed)
        start = time.perf_counter()
        snap = SnapshotEnsemble(model, loss, opt, cycles, epochs_per_cycle=epochs // cycles,
                                seed=seed, progress=False).fit(x, y)  # fmt: skip
        runs[cycles] = (snap, time.perf_counter() - start)
    check_soft_voting(runs[5][0], xt)
    return [
        Figure(f"snapshot 5 cycles of {epochs // 5} epochs, test error, seed {seed}",
               error(runs[5][0], xt, yt), error(runs[1][0].members_[0], xt, yt),
               "one run, one cosine cycle", "error", higher_is_better=False, threads=1),
        Figure(f"snapshot 5 cycles, training time, seed {seed}", runs[5][1], runs[1][1],
               "one run, one cosine cycle", "s", threads=1),
    ]  # fmt: skip


def parallel(seed: int, epochs: int, rounds: int) -> list[Figure]:
    import seisoku
    from seisoku.ensemble import Bagging

    x, y, _, _ = split(seed)
    build = mlp_factory([64, 256, 256, 10], 0.05)
    cores = machine_threads()

    def fit(jobs: int, backend: str, threads: int) -> tuple[Bagging, float]:
        seisoku.set_num_threads(threads)
        start = time.perf_counter()
        bag = Bagging(build, 4, epochs=epochs, seed=seed, n_jobs=jobs, backend=backend,
                      progress=False).fit(x, y)  # fmt: skip
        return bag, time.perf_counter() - start

    runs = (
        ("sequential", 1, "thread", cores),
        ("sequential, 1 thread", 1, "thread", 1),
        ("process", cores, "process", cores),
        ("thread", cores, "thread", cores),
    )
    best = dict.fromkeys([r[0] for r in runs], np.inf)
    ref = None
    for _ in range(rounds):  # alternating rounds, best of each
        for name, jobs, backend, threads in runs:
            bag, seconds = fit(jobs, backend, threads)
            best[name] = min(best[name], seconds)
            if ref is None:
                ref = bag
            else:
                same = all(
                    np.array_equal(np.asarray(p.value), np.asarray(q.value))
                    for a, b in zip(ref.members_, bag.members_)
                    for p, q in zip(a.parameters(), b.parameters())
                )
                check_true(same, f"{name} members", "differ from the sequential ones")
    seisoku.set_num_threads(1)
    what = f"bagging 4 MLPs 64-256-256-10, {epochs} epochs"
    return [
        Figure(f"{what}, {cores} worker processes", best["process"], best["sequential"],
               f"one after another on {cores} threads", "s", threads=cores),
        Figure(f"{what}, {cores} worker processes", best["process"],
               best["sequential, 1 thread"], "one after another on 1 thread", "s",
               threads=cores, peer_threads=1),
        Figure(f"{what}, {cores} threads", best["thread"], best["sequential"],
               f"one after another on {cores} threads", "s", threads=cores),
    ]  # fmt: skip


def load_example():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, os.pardir, "examples", "multitask.py")
    if not os.path.isfile(path):
        return None
    spec = importlib.util.spec_from_file_location("multitask_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def multitask(example, seed: int, epochs: int) -> list[Figure]:
    results = example.run(seed, epochs)
    name, best = example.best_static(results)
    digit = {k: v["digit"] for k, v in results.items()}
    return [
        Figure(f"multitask digit accuracy, shared trunk ({name}), seed {seed}", best,
               digit["separate"], "separate single-task model", "accuracy", threads=1),
        Figure(f"multitask digit accuracy, uncertainty weights, seed {seed}",
               digit["uncertainty"], best, f"best static ({name})", "accuracy", threads=1),
        Figure(f"multitask digit accuracy, GradNorm weights, seed {seed}", digit["gradnorm"],
               best, f"best static ({name})", "accuracy", threads=1),
    ]  # fmt: skip


def main() -> None:
    args = make_parser(__doc__.split("\n")[0]).parse_args()
    if args.device != "cpu":
        from _timing import skip

        skip("bench_ensemble runs on the CPU only")
    try:
        import sklearn  # noqa: F401  (the digits)
    except ImportError:
        from _timing import skip

        skip("the digits need scikit-learn: pip install scikit-learn")
    import seisoku

    seeds = [0] if args.quick else [0, 1, 2]
    scale = 4 if args.quick else 1
    example = load_example()
    figures: list[Figure] = []
    for seed in seeds:
        seisoku.set_num_threads(1)
        part = (
            bagging(seed, 30 // scale) + adaboost(seed, 10 // scale) + snapshot(seed, 40 // scale)
        )
        if example is not None:
            part += multitask(example, seed, 60 // scale)
        report(part)
        figures += part
    part = parallel(0, 20 // scale, 1 if args.quick else 2)
    report(part, None)
    figures += part
    if example is None:
        print("multitask: skipped (examples/multitask.py is not beside this bench folder)")
    if args.json:
        from _timing import write_json

        write_json(figures, args.json)


if __name__ == "__main__":
    main()
