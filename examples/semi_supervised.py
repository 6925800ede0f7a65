"""Semi-supervised learning on the digits with 10 labels per class: seisoku's methods beside
scikit-learn's SelfTrainingClassifier and LabelSpreading on the same splits.

    PYTHONPATH=<site> python3 examples/semi_supervised.py [--seeds 0,1,2] [--json out.json]

The digits (1,797 8x8 images) are split 70/30 (stratified, seed 0); from the 1,258 training
images 10 per class are labeled (drawn by the seed), the other 1,158 are unlabeled, and every
method is scored on the 539 test images. Rows:

  labels only (CNN)        the CNN on the 100 labeled images, with the weak augmentation
  labels only (MLP)        a 64-128-10 MLP on them (the network of the DAE row)
  pseudo (CNN)             Lee's pseudo-labels (seisoku.semi.PseudoLabeler)
  FixMatch (CNN)           seisoku.semi_consistency, threshold 0.7, mu 7, 500 epochs,
                           distribution alignment over 128 steps, weights averaged (EMA 0.999)
  self-training (CNN)      seisoku.semi_selftrain.self_training, 3 rounds, threshold 0.95
  DAE pretraining (MLP)    denoising autoencoder on all 1,258 rows, then fine-tuning
  sklearn SelfTraining     SelfTrainingClassifier(SVC(probability=True, gamma='scale'))
  sklearn LabelSpreading   LabelSpreading(kernel='knn', n_neighbors=7)

The CNN: two 3x3 convolutions (16, 32 channels), a 2x2 max pool, Linear 512-128-10; SGD with
momentum 0.9, learning rate 0.03 cosine-annealed, L2 5e-4. Weak augmentation: random shifts of
one pixel; strong: shifts, rotations of up to 30 degrees, one 4x4 cutout.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

import seisoku as sei
from seisoku import data, nn, optim
from seisoku.callbacks import LRSchedule
from seisoku.estimators import SemiSupervisedClassifier
from seisoku.optim import lr_scheduler
from seisoku.semi_run import digit_pipelines
from seisoku.train import Trainer


def split(seed: int) -> tuple[np.ndarray, ...]:
    """(x, y, labeled indices, y with -1 on unlabeled rows, training indices, test indices)."""
    x, y = data.load_digits()
    tr, te = data.stratified_split(y, 0.3, seed=0)
    rng = np.random.default_rng(seed)
    lab = np.concatenate([rng.choice(tr[y[tr] == c], 10, replace=False) for c in range(10)])
    ys = np.full(y.shape, -1)
    ys[lab] = y[lab]
    return x, y, lab, ys, tr, te


def labels_only(x, y, lab, te, seed: int, network: str, epochs: int) -> float:
    est = SemiSupervisedClassifier(network=network, image_shape=(1, 8, 8), random_state=seed)
    shape = (1, 8, 8) if network == "cnn" else None
    model = est._model(64, 10, shape)
    opt = optim.SGD(model.parameters(), lr=0.03, momentum=0.9, l2=5e-4)
    sched = LRSchedule(lr_scheduler.CosineAnnealingLR(opt, epochs))
    t = Trainer(model, nn.CrossEntropyLoss(), opt, [sched], progress=False)
    weak, _ = digit_pipelines(1, seed)
    xin = x.reshape(-1, 1, 8, 8) if network == "cnn" else x
    hook = weak.trainer_hook(None if network == "cnn" else (1, 8, 8))
    t.fit(xin[lab], y[lab], epochs=epochs, batch_size=16, augment=hook, seed=seed)
    return t.evaluate(xin[te], y[te])["accuracy"]


def ours(method: str, network: str, x, y, ys, tr, te, seed: int, **kw) -> float:
    clf = SemiSupervisedClassifier(
        method=method,
        network=network,
        image_shape=(1, 8, 8),
        random_state=seed,
        **kw,
    )
    return clf.fit(x[tr], ys[tr]).score(x[te], y[te])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--json", help="write the accuracies as JSON to this path")
    ap.add_argument("--only", help="comma-separated row names to run (default: all)")
    args = ap.parse_args()
    import warnings

    # SVC(probability=True) is deprecated in scikit-learn 1.9 but is SelfTrainingClassifier's
    # usual base estimator; the warning says nothing about the figures.
    warnings.filterwarnings("ignore", category=FutureWarning)
    from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier
    from sklearn.svm import SVC

    rows = {
        "labels only (CNN)": lambda s, d: labels_only(d[0], d[1], d[2], d[5], s, "cnn", 300),
        "labels only (MLP)": lambda s, d: labels_only(d[0], d[1], d[2], d[5], s, "mlp", 300),
        "pseudo (CNN)": lambda s, d: ours(
            "pseudo", "cnn", d[0], d[1], d[3], d[4], d[5], s, epochs=60, batch_size=32
        ),
        "FixMatch (CNN)": lambda s, d: ours(
            "consistency",
            "cnn",
            *(d[0], d[1], d[3], d[4], d[5], s),
            threshold=0.7,
            epochs=500,
            distribution_alignment=128,
            ema_decay=0.999,
        ),
        "self-training (CNN)": lambda s, d: ours(
            "self_training",
            "cnn",
            *(d[0], d[1], d[3], d[4], d[5], s),
            threshold=0.95,
            rounds=3,
            epochs=30,
            batch_size=32,
        ),
        "DAE pretraining (MLP)": lambda s, d: ours(
            "dae", "mlp", d[0], d[1], d[3], d[4], d[5], s, epochs=150
        ),
        "sklearn SelfTraining": lambda s, d: (
            SelfTrainingClassifier(SVC(probability=True, gamma="scale", random_state=s))
            .fit(d[0][d[4]], d[3][d[4]])
            .score(d[0][d[5]], d[1][d[5]])
        ),
        "sklearn LabelSpreading": lambda s, d: (
            LabelSpreading(kernel="knn", n_neighbors=7)
            .fit(d[0][d[4]], d[3][d[4]])
            .score(d[0][d[5]], d[1][d[5]])
        ),
    }
    if args.only:
        keep = set(args.only.split(","))
        rows = {k: v for k, v in rows.items() if k in keep}
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"digits, 10 labels per class; {platform.machine()} {_cpu()}; seisoku {sei.__version__}")
    results: dict[str, list[float]] = {}
    for name, fn in rows.items():
        accs, start = [], time.perf_counter()
        for s in seeds:
            accs.append(float(fn(s, split(s))))
        results[name] = accs
        cells = "  ".join(f"{100 * a:5.1f}" for a in accs)
        secs = time.perf_counter() - start
        print(f"{name:<24} {cells}   mean {100 * np.mean(accs):5.1f}   ({secs:.0f} s)", flush=True)
    if "labels only (CNN)" in results:
        base = np.array(results["labels only (CNN)"])
        for name, accs in results.items():
            if name != "labels only (CNN)":
                gain = 100 * (np.array(accs) - base)
                print(
                    f"gain over labels only (CNN), {name}: " + " ".join(f"{g:+.1f}" for g in gain)
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seeds": seeds, "test_accuracy": results}, f, indent=2)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
