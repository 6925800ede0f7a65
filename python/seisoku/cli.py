"""The `seisoku` command: `seisoku info`, `seisoku train`, `seisoku augment`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


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


def _load_config(path: str) -> dict:
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


def _recipe_from(args: argparse.Namespace):
    from .recipes import Recipe

    fields = Recipe.__dataclass_fields__
    values = {}
    if args.config:
        config = _load_config(args.config)
        unknown = sorted(set(config) - set(fields) - {"extra"})
        if unknown:
            raise SystemExit(f"seisoku train: unknown keys in {args.config}: {', '.join(unknown)}")
        values.update(config)
        if "hidden" in values:
            values["hidden"] = tuple(values["hidden"])
    for name in fields:
        v = getattr(args, name, None)
        if v is not None:
            values[name] = v
    return Recipe(**values)


def _cmd_train(args: argparse.Namespace) -> int:
    from .recipes import format_table, run, write_outputs

    recipe = _recipe_from(args)
    try:
        runs = {}
        if args.compare:
            summary, _, _ = run(recipe.unregularized(), progress=not args.no_progress)
            runs["unregularized"] = summary
        summary, history, model = run(recipe, progress=not args.no_progress)
        runs["regularized"] = summary
    except KeyboardInterrupt:
        print("seisoku train: interrupted", file=sys.stderr)
        return 130
    except (ValueError, ImportError) as e:
        print(f"seisoku train: {e}", file=sys.stderr)
        return 2
    print(format_table(runs))
    if summary["stop_reason"]:
        print(f"stopped: {summary['stop_reason']}")
    if args.out:
        for path in write_outputs(args.out, summary, history, model):
            print(f"wrote {path}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs if args.compare else summary, f, indent=2)
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seisoku", description="seisoku command line")
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="version, build options, CPU, BLAS, threads, CUDA, MPI")
    p_info.add_argument("--json", action="store_true", help="print the facts as JSON")
    p_info.set_defaults(func=_cmd_info)

    p_train = sub.add_parser(
        "train",
        help="train a regularized MLP on the built-in digits data and print a summary",
        description="Trains an MLP on scikit-learn's digits (70/30 stratified split, 15%% of "
        "the training part for validation and early stopping). Flags override --config.",
    )
    p_train.add_argument("--config", help="TOML file with any of the settings below")
    p_train.add_argument("--hidden", type=_ints, help="hidden sizes, e.g. 512,512")
    p_train.add_argument("--activation", choices=["relu", "leaky_relu", "tanh", "sigmoid"])
    p_train.add_argument("--dropout", type=float, help="dropout on hidden units")
    p_train.add_argument("--input-dropout", type=float, dest="input_dropout")
    p_train.add_argument("--input-noise", type=float, dest="input_noise", help="Gaussian std")
    p_train.add_argument("--label-smoothing", type=float, dest="label_smoothing")
    p_train.add_argument("--l2", type=float, help="coupled L2 penalty (weight decay)")
    p_train.add_argument("--l1", type=float, help="L1 penalty")
    p_train.add_argument("--max-norm", type=float, dest="max_norm", help="max-norm bound (0: off)")
    p_train.add_argument("--lr", type=float)
    p_train.add_argument("--momentum", type=float)
    p_train.add_argument("--epochs", type=int)
    p_train.add_argument("--batch-size", type=int, dest="batch_size")
    p_train.add_argument("--patience", type=int, help="early-stopping patience (epochs)")
    p_train.add_argument("--seed", type=int)
    p_train.add_argument("--device", choices=["cpu", "cuda"])
    p_train.add_argument("--out", help="folder for weights, history and the learning curve")
    p_train.add_argument("--json", help="write the summary as JSON to this path")
    p_train.add_argument(
        "--compare", action="store_true", help="also train without regularization, side by side"
    )
    p_train.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_train.set_defaults(func=_cmd_train)

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
