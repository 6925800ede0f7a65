"""`seisoku train --ensemble KIND --members N`: an ensemble of the recipe's network on the
built-in digits, with its baselines (the average member and one model) beside it."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..random import manual_seed
from ..train import Trainer
from ._bagging import Bagging
from ._boosting import AdaBoost
from ._members import default_jobs
from ._snapshot import SnapshotEnsemble
from ._voting import Ensemble

#: The ensembles `seisoku train --ensemble` builds.
KINDS = ("bagging", "adaboost", "snapshot")


def check_members(value: Any, option: str = "--members") -> int:
    """value as a member count >= 1, or ValueError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"argument '{option}' must be an int >= 1, got {value!r}")
    return int(value)


def _check_recipe(recipe: Any) -> None:
    unsupported = [
        name
        for name, on in (
            ("--prune", bool(recipe.prune)),
            ("--quantize", recipe.quantize != "none"),
            ("--distill-from", bool(recipe.distill_from)),
            ("--retrain-on-all", bool(recipe.retrain_on_all)),
        )
        if on
    ]
    if unsupported:
        raise ValueError(f"--ensemble cannot be combined with {', '.join(unsupported)}")


def run_ensemble(
    recipe: Any, kind: str, members: int, *, jobs: int = 1, progress: bool = True
) -> dict[str, Any]:
    """Train a `kind` ensemble of `members` copies of the recipe's network on the digits
    split of `seisoku train` and return its summary: test accuracy of the ensemble, of each
    member, of the average member and of a single model trained like one member on the whole
    training part, with seconds for each.

    Members train recipe.epochs epochs each (snapshot: recipe.epochs in all, split into
    `members` cosine cycles, and the single model one cosine cycle over the same epochs) with
    the recipe's network, optimizer, label smoothing and augmentation, at its learning rate
    without its schedule and early stopping (the validation part is left unused). Bagging
    trains up to `jobs` members at once in worker processes."""
    from .. import recipes

    if kind not in KINDS:
        raise ValueError(f"argument '--ensemble' must be one of {', '.join(KINDS)}, got {kind!r}")
    members = check_members(members)
    jobs = check_members(jobs, "jobs")
    _check_recipe(recipe)
    sets = recipes._to_device(recipes._split_digits(recipe), recipe.device)
    (x, y), (xt, yt) = sets["train"], sets["test"]
    hook = recipes._augmentation(recipe)
    fit_kwargs = {"augment": hook} if hook is not None else {}
    loss_of = recipes.nn.CrossEntropyLoss

    def build(seed: int) -> tuple[Any, Any, Any]:
        manual_seed(seed)
        model = recipes.build_model(recipe)
        return model, loss_of(recipe.label_smoothing), recipes.build_optimizer(recipe, model)

    def accuracy(model: Any) -> float:
        return Ensemble([model]).score(xt, yt)

    common = {"epochs": recipe.epochs, "batch_size": recipe.batch_size, "seed": recipe.seed}
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    if kind == "bagging":
        ens: Any = Bagging(
            build, members, n_jobs=min(jobs, members), progress=progress,
            fit_kwargs=fit_kwargs, **common,
        ).fit(x, y)  # fmt: skip
        extra["oob_score"] = ens.oob_score_
    elif kind == "adaboost":
        ens = AdaBoost(
            build, members, voting="hard", progress=progress, fit_kwargs=fit_kwargs, **common
        ).fit(x, y)
        extra["alphas"] = [float(a) for a in ens.alphas_]
        extra["stop_reason"] = ens.stop_reason_
    else:
        per_cycle = max(1, recipe.epochs // members)
        model, loss, opt = build(recipe.seed)
        ens = SnapshotEnsemble(
            model, loss, opt, members, epochs_per_cycle=per_cycle,
            batch_size=recipe.batch_size, seed=recipe.seed, progress=progress,
            fit_kwargs=fit_kwargs,
        ).fit(x, y)  # fmt: skip
    seconds = time.perf_counter() - start
    member_acc = [accuracy(m) for m in ens.members_]

    start = time.perf_counter()
    if kind == "adaboost":
        single = member_acc[0]  # the first member: uniform weights on all the training part
    elif kind == "bagging":
        model, loss, opt = build(recipe.seed)
        Trainer(model, loss, opt, progress=False).fit(x, y, **common, **fit_kwargs)
        single = accuracy(model)
    else:
        model, loss, opt = build(recipe.seed)
        one = SnapshotEnsemble(
            model, loss, opt, 1, epochs_per_cycle=per_cycle * members,
            batch_size=recipe.batch_size, seed=recipe.seed, progress=False,
            fit_kwargs=fit_kwargs,
        ).fit(x, y)  # fmt: skip
        single = accuracy(one.members_[0])
    single_seconds = time.perf_counter() - start
    if kind == "adaboost":
        single_seconds = seconds / len(member_acc)
    return {
        "ensemble": kind,
        "members": len(ens.members_),
        "voting": ens.ensemble_.voting,
        "test_accuracy": ens.score(xt, yt),
        "member_test_accuracies": member_acc,
        "average_member_test_accuracy": float(np.mean(member_acc)),
        "single_test_accuracy": single,
        "seconds": seconds,
        "single_seconds": single_seconds,
        "recipe": recipe.to_dict(),
        **extra,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a small table: the ensemble, then its baselines, test accuracy and
    error, and the error ratios."""
    kind, n = summary["ensemble"], summary["members"]
    single = (
        "single model (first member)"
        if kind == "adaboost"
        else "single model (one cosine cycle)"
        if kind == "snapshot"
        else "single model (all training data)"
    )
    rows = [
        (f"{kind} ensemble, {n} members ({summary['voting']} voting)", "test_accuracy"),
        ("average member", "average_member_test_accuracy"),
        (single, "single_test_accuracy"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':<{width}}  test accuracy  test error"]
    for label, key in rows:
        acc = summary[key]
        lines.append(f"{label:<{width}}  {acc:>13.4f}  {1 - acc:>10.4f}")
    err = 1 - summary["test_accuracy"]
    for label, key in (
        ("average member", "average_member_test_accuracy"),
        ("single model", "single_test_accuracy"),
    ):
        base = 1 - summary[key]
        ratio = f"{err / base:.2f}" if base > 0 else "-"
        lines.append(f"ensemble error / {label} error: {ratio}")
    if "oob_score" in summary:
        lines.append(f"out-of-bag accuracy: {summary['oob_score']:.4f}")
    if "alphas" in summary:
        alphas = ", ".join(f"{a:.2f}" for a in summary["alphas"])
        lines.append(f"member weights (alpha): {alphas}; {summary['stop_reason']}")
    lines.append(
        f"time: ensemble {summary['seconds']:.1f} s, single model {summary['single_seconds']:.1f} s"
    )
    return "\n".join(lines)


def main(args: Any, recipe: Any) -> int:
    """The `seisoku train --ensemble` command: argparse's namespace and the recipe."""
    import json

    if args.ensemble is None:
        raise ValueError("argument '--members' needs --ensemble bagging|adaboost|snapshot")
    for flag, given in (
        ("--resume", args.resume),
        ("--compare", args.compare),
        ("--out", args.out),
        ("--checkpoint", args.checkpoint),
    ):
        if given:
            raise ValueError(f"--ensemble cannot be combined with {flag}")
    members = check_members(args.members if args.members is not None else 5)
    jobs = min(members, max(1, int(args.threads)), default_jobs())
    summary = run_ensemble(recipe, args.ensemble, members, jobs=jobs, progress=not args.no_progress)
    print(format_summary(summary))
    if args.json:
        from .._state_file import atomic_write

        with atomic_write(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 0
