"""The `seisoku` command: `seisoku info`, `seisoku train`, `seisoku augment`, `seisoku bench`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

DEFAULT_INTERRUPT_CHECKPOINT = "seisoku-train-checkpoint.npz"


class _TrainError(Exception):
    """A `seisoku train` error to print as one line and exit with status 2."""


def _cmd_info(args: argparse.Namespace) -> int:
    from . import info

    facts = info.collect()
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        print(f"{key:<{width}}  {value}")
    return 0


def _ints(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return sizes


def _load_config(path: str) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise SystemExit(f"seisoku train: cannot read config {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise SystemExit(f"seisoku train: config {path} is not valid TOML: {e}") from None


def _given_settings(args: argparse.Namespace) -> dict[str, Any]:
    from .recipes import RECIPE_FIELDS

    return {n: getattr(args, n) for n in RECIPE_FIELDS if getattr(args, n, None) is not None}


def _recipe_from(args: argparse.Namespace) -> Any:
    from .recipes import RECIPE_FIELDS, Recipe

    values: dict[str, Any] = {}
    if args.config:
        config = _load_config(args.config)
        unknown = sorted(set(config) - set(RECIPE_FIELDS))
        if unknown:
            raise SystemExit(f"seisoku train: unknown keys in {args.config}: {', '.join(unknown)}")
        values.update(config)
    values.update(_given_settings(args))
    try:
        return Recipe(**values)
    except ValueError as e:
        where = f" (config {args.config} and flags)" if args.config else ""
        raise _TrainError(f"{e}{where}") from None


def _checkpoint_plan(args: argparse.Namespace) -> tuple[str, int | None, bool]:
    """(path, every, at_end): an explicit --checkpoint or one in --out is written every
    --checkpoint-every epochs and at the end; otherwise only Ctrl-C writes one, in the
    current folder."""
    if args.checkpoint:
        return args.checkpoint, args.checkpoint_every, True
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        return os.path.join(args.out, "checkpoint.npz"), args.checkpoint_every, True
    if args.resume:
        return args.resume, None, False
    return DEFAULT_INTERRUPT_CHECKPOINT, None, False


def _train(args: argparse.Namespace) -> int:
    from . import recipes

    if args.ensemble or args.members is not None:
        from .ensemble import _run

        return _run.main(args, _recipe_from(args))
    int8 = args.quantize == "int8"  # evaluated after the run (seisoku.quant_int8)
    args.quantize = None if int8 else args.quantize
    if args.resume:
        given = sorted(_given_settings(args)) + (["config"] if args.config else [])
        if given:
            raise _TrainError(
                "--resume continues with the checkpoint's own settings; drop "
                + ", ".join("--" + g.replace("_", "-") for g in given)
            )
        if args.compare:
            raise _TrainError("--resume cannot be combined with --compare")
        recipe = recipes.recipe_from_checkpoint(args.resume)
    else:
        recipe = _recipe_from(args)
    if args.labels_per_class is not None or args.semi:
        from . import semi_run

        if args.labels_per_class is None or args.resume or args.compare or args.out:
            raise _TrainError(
                "--semi needs --labels-per-class N and cannot be combined with --resume, "
                "--compare or --out"
            )
        return semi_run.main(args, recipe)
    path, every, at_end = _checkpoint_plan(args)
    progress = not args.no_progress
    runs = {}
    if args.compare:
        try:
            summary, _, _ = recipes.run(recipe.unregularized(), progress)
        except KeyboardInterrupt:
            print(
                "seisoku train: interrupted (the --compare baseline run keeps no checkpoint)",
                file=sys.stderr,
            )
            return 130
        runs["unregularized"] = summary
    try:
        summary, history, model = recipes.run(
            recipe,
            progress,
            checkpoint=path,
            checkpoint_every=every,
            checkpoint_at_end=at_end,
            resume=args.resume,
        )
    except KeyboardInterrupt:
        if os.path.exists(path):
            print(
                f"seisoku train: interrupted; checkpoint written to {path}\n"
                f"continue with: seisoku train --resume {path}",
                file=sys.stderr,
            )
        else:
            print("seisoku train: interrupted before a checkpoint was written", file=sys.stderr)
        return 130
    if int8:
        from .quant_int8 import int8_recipe_summary

        summary.update(int8_recipe_summary(model, recipe))
    runs["regularized"] = summary
    print(recipes.format_table(runs))
    if summary["stop_reason"]:
        kept = summary["best_epoch"]
        note = f"; kept the weights of epoch {kept}" if kept is not None else ""
        print(f"stopped: {summary['stop_reason']}{note}")
    if args.out:
        written = recipes.write_outputs(args.out, summary, history, model)
        for p in written:
            print(f"wrote {p}")
        if not any(p.endswith(".png") for p in written):
            print("no learning_curve.png: matplotlib is not installed (pip install matplotlib)")
    if args.json:
        from ._state_file import atomic_write

        with atomic_write(args.json, "w") as f:
            json.dump(runs if args.compare else summary, f, indent=2)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from . import get_num_threads, set_num_threads

    threads = get_num_threads()
    try:
        set_num_threads(args.threads)
        if getattr(args, "parallel", None):
            from .distributed import train_parallel

            return train_parallel(args, _train)
        return _train(args)
    except (_TrainError, ValueError, ImportError, OSError) as e:
        print(f"seisoku train: {e}", file=sys.stderr)
        return 2
    finally:
        set_num_threads(threads)


def _cmd_augment(args: argparse.Namespace) -> int:
    import numpy as np

    from . import augment as sa
    from .data import load_digits

    if not args.show:
        print("seisoku augment: nothing to do (pass --show to write a picture)", file=sys.stderr)
        return 2
    try:
        x, y = load_digits(images=True)
    except ImportError as e:
        print(f"seisoku augment: {e}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    pick = np.sort(rng.choice(len(x), size=min(args.samples, len(x)), replace=False))
    # The 8x8 digits, upsampled to 28x28 (bicubic) like the MNIST digits the seed works on.
    size = 28
    upsample = sa.Compose(
        [sa.RandomResizedCrop(size, scale=(1, 1), ratio=(1, 1), interpolation="bicubic")],
        layout="NCHW",
    )
    images = np.clip(upsample(np.ascontiguousarray(x[pick])), 0.0, 1.0)
    try:
        pipeline = sa.Compose(
            [
                sa.RandomCrop(size, padding=2),
                sa.RandomRotation(args.degrees, skip_labels=(6, 9) if args.degrees >= 90 else ()),
                sa.ElasticDistortion(args.alpha, args.sigma),
                sa.Cutout(1, 6, p=args.cutout),
            ],
            seed=args.seed,
            layout="NCHW",
        )
        path = pipeline.save_grid(args.out, images, versions=args.versions, labels=y[pick])
    except ValueError as e:
        print(f"seisoku augment: {e}", file=sys.stderr)
        return 2
    print(
        f"wrote {path}: {len(pick)} digits (labels {', '.join(map(str, y[pick]))}), "
        f"original then {args.versions} augmented draws per row"
    )
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from . import benchmark
    from ._state_file import atomic_write

    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    try:
        directory = benchmark.find_bench_dir(args.bench_dir)
        if args.list:
            for name, path in benchmark.list_benchmarks(directory):
                print(f"{name}  {path}")
            return 0
        if args.readme:
            benchmark.check_readme(args.readme)  # before the run, not after minutes of it
        if args.from_json:
            record = benchmark.load_record(args.from_json)
        else:
            record = benchmark.run(
                quick=not args.full, only=only, device=args.device, bench_dir=directory
            )
    except (OSError, ValueError) as e:
        print(f"seisoku bench: {e}", file=sys.stderr)
        return 2
    if args.note:
        record["note"] = args.note
    os.makedirs(args.out, exist_ok=True)
    table = benchmark.markdown_table(record)
    written = []
    for path, text in [
        (os.path.join(args.out, "results.json"), json.dumps(record, indent=1) + "\n"),
        (os.path.join(args.out, "results.md"), table),
        (args.json, json.dumps(record, indent=1) + "\n"),
        (args.markdown, table),
    ]:
        if path:
            with atomic_write(path, "w") as f:
                f.write(text)
            written.append(path)
    chart = benchmark.write_chart(record, os.path.join(args.out, "ratios.png"))
    if chart:
        written.append(chart)
    elif record["rows"]:
        print("no ratios.png: matplotlib is not installed (pip install matplotlib)")
    if args.readme:
        benchmark.update_readme(args.readme, table)
        written.append(args.readme)
    for p in written:
        print(f"wrote {p}")
    ran = [n for n, b in record["benchmarks"].items() if b["status"] == "ran"]
    failed = [n for n, b in record["benchmarks"].items() if b["status"] == "failed"]
    print(
        f"seisoku bench: {len(record['rows'])} figures from {len(ran)} "
        + ("benchmark" if len(ran) == 1 else "benchmarks")
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seisoku", description="seisoku command line")
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="version, build options, CPU, BLAS, threads, CUDA, MPI")
    p_info.add_argument("--json", action="store_true", help="print the facts as JSON")
    p_info.set_defaults(func=_cmd_info)

    p = sub.add_parser(
        "train",
        help="train a regularized MLP or CNN on the built-in digits data and print a summary",
        description="Trains on scikit-learn's 8x8 digits (70/30 stratified split, 15%% of the "
        "training part held out for validation and early stopping) and prints train / "
        "validation / test accuracy, the generalization gap and the best epoch. Settings "
        "come from the defaults (the tuned recipe), then --config, then flags. Ctrl-C writes "
        "a checkpoint that --resume continues exactly.",
    )
    p.add_argument(
        "--config",
        help="TOML file with any of the settings below (keys as the "
        "flag names with underscores, e.g. label_smoothing = 0.1)",
    )
    m = p.add_argument_group("model")
    m.add_argument("--model", choices=["mlp", "cnn"], help="MLP (default) or small CNN")
    m.add_argument("--hidden", type=_ints, help="hidden Linear sizes, e.g. 512,512")
    m.add_argument("--channels", type=_ints, help="cnn: 3x3 convolution channels, e.g. 32,64")
    m.add_argument("--activation", choices=["relu", "leaky_relu", "tanh", "sigmoid"])
    r = p.add_argument_group("regularization (0 turns one off)")
    r.add_argument("--dropout", type=float, help="dropout probability on hidden units")
    r.add_argument("--input-dropout", type=float, dest="input_dropout")
    r.add_argument("--dropconnect", type=float, help="DropConnect probability of hidden layers")
    r.add_argument("--input-noise", type=float, dest="input_noise", help="Gaussian std on inputs")
    r.add_argument(
        "--hidden-noise", type=float, dest="hidden_noise", help="Gaussian std on hidden units"
    )
    r.add_argument(
        "--label-smoothing",
        type=float,
        dest="label_smoothing",
        help="epsilon (true class 1 - eps, others eps / 9)",
    )
    r.add_argument("--l2", type=float, help="coupled L2 penalty")
    r.add_argument("--weight-decay", type=float, dest="weight_decay", help="decoupled decay")
    r.add_argument("--l1", type=float, help="L1 penalty (proximal)")
    r.add_argument("--max-norm", type=float, dest="max_norm", help="per-unit max-norm bound")
    r.add_argument("--shift", type=int, help="random image shifts of up to this many pixels")
    r.add_argument("--rotate", type=float, help="random rotations of up to this many degrees")
    r.add_argument("--elastic", type=float, help="elastic distortion alpha in pixels")
    r.add_argument(
        "--elastic-sigma", type=float, dest="elastic_sigma", help="elastic smoothing in pixels"
    )
    r.add_argument("--cutout", type=int, help="one zeroed square of this side per image")
    r.add_argument(
        "--patience", type=int, help="early stopping: evaluations without improvement (0: off)"
    )
    r.add_argument(
        "--eval-period",
        type=int,
        dest="eval_period",
        help="early stopping: evaluate every this many epochs",
    )
    r.add_argument(
        "--retrain-on-all",
        action="store_const",
        const=True,
        dest="retrain_on_all",
        help="after early stopping, retrain on train + validation data for the "
        "number of steps found",
    )
    q = p.add_argument_group("lightweighting")
    q.add_argument(
        "--quantize",
        choices=["none", "q8.8", "int8"],
        help="after training, store the parameters as 16-bit fixed point (Q8.8, 8 integer and "
        "8 fraction bits, rounded to nearest), or convert the model to int8 (per-channel "
        "weights, input scales calibrated on the training data), and report its test "
        "accuracy and size",
    )
    q.add_argument(
        "--distill-from",
        dest="distill_from",
        metavar="TEACHER.npz",
        help="train on the soft outputs of a teacher: the weights.npz of a `seisoku train "
        "--out DIR` run with the same --seed (its summary.json beside it gives the architecture)",
    )
    q.add_argument(
        "--prune",
        type=float,
        metavar="FRACTION",
        help="prune the weights by magnitude in 8 rounds to this fraction of zeros, fine-tuning "
        "between and after them (early stopping is off)",
    )
    q.add_argument("--temperature", type=float, help="distillation softmax temperature (4)")
    q.add_argument("--alpha", type=float, help="distillation: weight of the teacher's loss (0.9)")
    o = p.add_argument_group("optimization")
    o.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    o.add_argument("--lr", type=float, help="learning rate")
    o.add_argument("--momentum", type=float, help="SGD momentum")
    o.add_argument("--schedule", choices=["none", "cosine", "step"], help="learning-rate schedule")
    o.add_argument("--warmup", type=int, help="epochs of linear learning-rate warm-up")
    o.add_argument("--epochs", type=int)
    o.add_argument("--batch-size", type=int, dest="batch_size")
    o.add_argument("--seed", type=int)
    o.add_argument("--device", choices=["cpu", "cuda"])
    o.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (default 1: the digits networks are too small to gain from more, "
        "and on a busy machine extra threads cost several times their gain)",
    )
    e = p.add_argument_group("ensembles")
    e.add_argument(
        "--ensemble",
        choices=["bagging", "adaboost", "snapshot"],
        help="train an ensemble of the network (members train --epochs epochs each without "
        "the schedule and early stopping; snapshot: --epochs in all) and print its test "
        "accuracy beside the average member's and a single model's",
    )
    e.add_argument(
        "--members", type=int, help="ensemble members (default 5; bagging trains --threads at once)"
    )
    s = p.add_argument_group("semi-supervised (seisoku.semi_run)")
    s.add_argument(
        "--labels-per-class",
        type=int,
        dest="labels_per_class",
        help="keep only N labels per class of the training part, the rest unlabeled, and "
        "print the labels-only baseline beside the semi-supervised run",
    )
    s.add_argument(
        "--semi",
        choices=["pseudo", "consistency", "self_training"],
        help="semi-supervised method with --labels-per-class (default consistency: FixMatch)",
    )
    io = p.add_argument_group("outputs and reliability")
    io.add_argument(
        "--out",
        help="folder for weights.npz, history.csv/.json, summary.json, "
        "learning_curve.png and checkpoint.npz",
    )
    io.add_argument("--json", help="write the summary as JSON to this path")
    io.add_argument(
        "--compare", action="store_true", help="also train without regularization, side by side"
    )
    io.add_argument(
        "--checkpoint",
        help="checkpoint file (default: checkpoint.npz in --out; "
        f"without --out, Ctrl-C writes {DEFAULT_INTERRUPT_CHECKPOINT})",
    )
    io.add_argument(
        "--checkpoint-every",
        type=int,
        default=10,
        dest="checkpoint_every",
        help="epochs between checkpoint writes (default 10)",
    )
    io.add_argument("--resume", help="continue an interrupted run from its checkpoint")
    io.add_argument("--no-progress", action="store_true", help="no progress bar")
    from .distributed import PARALLEL_MODES

    io.add_argument(
        "--parallel",
        choices=sorted(PARALLEL_MODES),
        help="train over the processes of `mpirun -n N` (data: synchronous data parallel; "
        "async: parameter server; pipeline: model split into stages)",
    )
    mp = p.add_argument_group("--parallel data, async and pipeline")
    mp.add_argument(
        "--transport",
        choices=["auto", "mpi", "staged", "nccl"],
        help="data: how GPU gradients travel (default auto: CUDA-aware MPI, else staged "
        "through pinned host memory; nccl through CuPy)",
    )
    mp.add_argument("--staleness", type=int, help="async: staleness bound k (default: none)")
    mp.add_argument("--micro-batches", type=int, dest="micro_batches", help="pipeline (4)")
    mp.add_argument("--pipeline-schedule", choices=["1f1b", "gpipe"], dest="pipeline_schedule")
    mp.add_argument("--split", help="pipeline: 'balanced' (default) or layer indices, e.g. 3,6")
    p.set_defaults(func=_cmd_train)
    p_aug = sub.add_parser(
        "augment",
        help="augment the built-in digits and write a PNG grid (--show)",
        description="Augments scikit-learn's digits (upsampled to 28x28) with random crop "
        "(padding 2), rotation, elastic distortion and cutout in one batch call, and writes a "
        "PNG: each row one digit, the original then augmented draws.",
    )
    p_aug.add_argument("--show", action="store_true", help="write the picture")
    p_aug.add_argument("--out", default="augment.png", help="PNG path (default augment.png)")
    p_aug.add_argument("--samples", type=int, default=8, help="digits, one per row (default 8)")
    p_aug.add_argument("--versions", type=int, default=6, help="draws per digit (default 6)")
    p_aug.add_argument("--degrees", type=float, default=15.0, help="rotation range +-degrees")
    p_aug.add_argument("--alpha", type=float, default=34.0, help="elastic alpha in pixels")
    p_aug.add_argument("--sigma", type=float, default=4.0, help="elastic sigma in pixels")
    p_aug.add_argument("--cutout", type=float, default=0.5, help="cutout probability")
    p_aug.add_argument("--seed", type=int, default=0)
    p_aug.set_defaults(func=_cmd_augment)

    p_bench = sub.add_parser(
        "bench",
        help="run the benchmarks against NumPy, PyTorch and others; write JSON and a chart",
        description="Runs the benchmarks shipped with seisoku (bench/bench_*.py), each in a "
        "process of its own, and prints the machine they ran on. Each figure is checked "
        "against a reference before it is timed; a benchmark whose peer is not installed "
        "(pip install 'seisoku[bench]') is skipped. Writes results.json, results.md and "
        "ratios.png (ratio > 1: seisoku better) into --out.",
    )
    p_bench.add_argument(
        "--full", action="store_true", help="full sizes and repeats (default: quick, a few minutes)"
    )
    p_bench.add_argument("--only", help="comma-separated benchmarks to run, e.g. random,gemm")
    p_bench.add_argument(
        "--out", default="seisoku-bench", help="folder for the outputs (default seisoku-bench)"
    )
    p_bench.add_argument("--json", help="also write the record as JSON to this path")
    p_bench.add_argument("--markdown", help="also write the Markdown table to this path")
    p_bench.add_argument(
        "--readme",
        help="replace the table between the seisoku bench markers in this README",
    )
    p_bench.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p_bench.add_argument(
        "--bench-dir", dest="bench_dir", help="folder of bench_*.py (default: the shipped one)"
    )
    p_bench.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p_bench.add_argument(
        "--note",
        help="a sentence on the run for the table's caption (e.g. how busy the machine was)",
    )
    p_bench.add_argument(
        "--from",
        dest="from_json",
        metavar="JSON",
        help="write the outputs from the results.json of an earlier run instead of running",
    )
    p_bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
