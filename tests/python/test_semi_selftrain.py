"""seisoku.semi_selftrain, semi_estimator and semi_run: self-training rounds, denoising
autoencoder pretraining, the scikit-learn estimator with y = -1, the labeled subset and the
`seisoku train --labels-per-class N --semi ...` command."""

from __future__ import annotations

import numpy as np
import pytest

import seisoku as sei
from seisoku import data, nn, optim
from seisoku.semi_run import labeled_subset
from seisoku.semi_selftrain import dae_classifier, pretrain_dae, self_training
from seisoku.train import Trainer


def _blobs(n: int = 300, labeled: int = 12, seed: int = 0):
    x, y = data.make_blobs(n, 3, 5, spread=1.2, seed=seed)
    ys = np.full(n, -1)
    ys[:labeled] = y[:labeled]
    return x, y, ys


def _build() -> Trainer:
    m = nn.mlp([5, 16, 3], generator=sei.Generator(0))
    return Trainer(m, nn.CrossEntropyLoss(), optim.SGD(m.parameters(), lr=0.05), progress=False)


# -- self-training ---------------------------------------------------------------------------
def test_rounds_add_confident_rows_with_their_predicted_labels() -> None:
    x, y, ys = _blobs()
    r = self_training(_build, x, ys, rounds=4, threshold=0.9, epochs=30, batch_size=8)
    assert r.labeled[0] == 12 and len(r.labeled) == len(r.added) + 1
    assert r.labeled[1:] == list(np.cumsum(r.added) + 12)
    new = (r.labels != -1) & (ys == -1)
    assert new.sum() == sum(r.added) > 100
    assert (r.labels[new] == y[new]).mean() > 0.95  # well separated blobs
    np.testing.assert_array_equal(r.labels[:12], ys[:12])
    assert r.trainer.steps > 0 and r.stop_reason


def test_k_best_caps_each_round_and_an_oracle_threshold_stops() -> None:
    x, _, ys = _blobs()
    r = self_training(_build, x, ys, rounds=3, threshold=0.5, k_best=7, epochs=20)
    assert r.added == [7, 7]
    r = self_training(_build, x, ys, rounds=5, threshold=1.0, epochs=2)
    assert r.added == [0] and "no unlabeled row reached threshold" in r.stop_reason


def test_self_training_bad_input() -> None:
    x, _, ys = _blobs()
    with pytest.raises(ValueError, match=r"\[self_training\] argument 'threshold' must be in"):
        self_training(_build, x, ys, threshold=0.0)
    with pytest.raises(ValueError, match=r"argument 'rounds' must be an int >= 1"):
        self_training(_build, x, ys, rounds=0)
    with pytest.raises(ValueError, match=r"argument 'k_best' must be None or an int >= 1"):
        self_training(_build, x, ys, k_best=0)
    with pytest.raises(ValueError, match=r"argument 'y' must have at least one labeled row"):
        self_training(_build, x, np.full(300, -1))


# -- denoising autoencoder -----------------------------------------------------------------------
def test_dae_learns_to_reconstruct_and_its_encoder_is_fine_tuned() -> None:
    pytest.importorskip("sklearn")
    x = data.load_digits()[0][:400]
    ae0 = nn.AutoEncoder([64, 32], noise_std=0.3, tied=False, generator=sei.Generator(0))
    ae0.eval()
    before = float(np.mean((ae0(x) - x) ** 2))
    ae = pretrain_dae(x, [64, 32], noise_std=0.3, epochs=20, seed=0)
    ae.eval()
    after = float(np.mean((ae(x) - x) ** 2))
    assert after < 0.5 * before
    clf = dae_classifier(ae, 10, generator=sei.Generator(1))
    assert clf(x[:3]).shape == (3, 10)
    assert clf[0] is ae.encoder or clf[0].state_dict().keys() == ae.encoder.state_dict().keys()
    w = ae.encoder[0].weight
    clf[0][0].weight.value[...] += 1.0
    np.testing.assert_array_equal(ae.encoder[0].weight.value, w.value)  # shared parameters


def test_pretrain_dae_bad_input() -> None:
    x = np.zeros((8, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"\[pretrain_dae\] argument 'noise_std' must be finite"):
        pretrain_dae(x, [4, 2], noise_std=-1.0)
    with pytest.raises(ValueError, match=r"\[pretrain_dae\] argument 'x' must be flat rows"):
        pretrain_dae(x.reshape(8, 2, 2), [4, 2])


# -- estimator ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["pseudo", "consistency", "self_training", "dae"])
def test_estimator_accepts_minus_one_and_original_class_labels(method: str) -> None:
    pytest.importorskip("sklearn")
    from seisoku.estimators import SemiSupervisedClassifier

    x, y, ys = _blobs(240, 15)
    labels = np.array([3, 7, 11])
    yy = np.where(ys == -1, -1, labels[np.maximum(ys, 0)])
    clf = SemiSupervisedClassifier(method=method, hidden_layer_sizes=(16,), epochs=15, rounds=2)
    clf.fit(x, yy)
    np.testing.assert_array_equal(clf.classes_, labels)
    assert clf.n_features_in_ == 5
    p = clf.predict_proba(x)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    # The DAE reconstructs through a sigmoid (inputs in [0, 1]); these blobs reach +-6.
    assert clf.score(x, labels[y]) > (0.7 if method == "dae" else 0.8)
    assert set(clf.predict(x)) <= set(labels)


def test_estimator_bad_input() -> None:
    pytest.importorskip("sklearn")
    from seisoku.estimators import SemiSupervisedClassifier

    x, _, ys = _blobs(60, 6)
    with pytest.raises(ValueError, match=r"argument 'y' must have at least one labeled row"):
        SemiSupervisedClassifier().fit(x, np.full(60, -1))
    with pytest.raises(ValueError, match=r"argument 'threshold' must be in \(0, 1\], got 1.5"):
        SemiSupervisedClassifier(threshold=1.5).fit(x, ys)
    with pytest.raises(ValueError, match=r"argument 'method' must be one of"):
        SemiSupervisedClassifier(method="graph").fit(x, ys)
    with pytest.raises(ValueError, match=r"argument 'image_shape' must be \(C, H, W\)"):
        SemiSupervisedClassifier(image_shape=(1, 2, 2)).fit(x, ys)
    with pytest.raises(ValueError, match=r"argument 'image_shape' must be given"):
        SemiSupervisedClassifier(network="cnn").fit(x, ys)
    with pytest.raises(ValueError, match=r"argument 'y' must hold labels >= 0"):
        SemiSupervisedClassifier().fit(x, np.where(ys == 0, -2, ys))
    with pytest.raises(ValueError, match=r"\[SemiSupervisedClassifier\] argument 'ema_decay'"):
        SemiSupervisedClassifier(ema_decay=1.0).fit(x, ys)
    with pytest.raises(ValueError, match=r"argument 'distribution_alignment' must be an int >= 0"):
        SemiSupervisedClassifier(distribution_alignment=-2).fit(x, ys)


def test_estimator_passes_ema_and_alignment_to_the_consistency_trainer() -> None:
    pytest.importorskip("sklearn")
    from seisoku.estimators import SemiSupervisedClassifier

    x, _, ys = _blobs(240, 15)
    clf = SemiSupervisedClassifier(
        hidden_layer_sizes=(16,), epochs=3, ema_decay=0.9, distribution_alignment=5
    )
    clf.fit(x, ys)
    t = clf.trainer_
    assert t.ema.decay == 0.9 and t.ema.updates == t.steps and t.distribution_alignment == 5
    assert len(t._means) == 5
    for name, v in t.model.state_dict().items():  # predictions use the averages
        np.testing.assert_array_equal(v, t.ema.averages[name].astype(np.float32))


# -- labels per class and the command ------------------------------------------------------------
def test_labeled_subset_draws_n_per_class() -> None:
    y = np.repeat(np.arange(4), [5, 6, 7, 8])
    idx = labeled_subset(y, 3, seed=0)
    assert np.bincount(y[idx]).tolist() == [3, 3, 3, 3]
    np.testing.assert_array_equal(idx, labeled_subset(y, 3, seed=0))
    with pytest.raises(ValueError, match=r"argument 'labels_per_class' must be at most 5 \(class"):
        labeled_subset(y, 6, seed=0)
    with pytest.raises(ValueError, match=r"argument 'labels_per_class' must be an int >= 1"):
        labeled_subset(y, 0, seed=0)


SMALL = ["--model", "mlp", "--hidden", "32", "--epochs", "3", "--no-progress"]


@pytest.mark.parametrize("method", ["consistency", "pseudo", "self_training"])
def test_cli_labels_per_class_prints_the_baseline_beside(tmp_path, capsys, method: str) -> None:
    pytest.importorskip("sklearn")
    import json

    from seisoku.cli import main

    out = tmp_path / "semi.json"
    args = ["train", *SMALL, "--labels-per-class", "5", "--semi", method, "--json", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "labels only" in text and method in text and "gain over labels only" in text
    runs = json.loads(out.read_text())["runs"]
    assert set(runs) == {"labels only", method}
    assert 0.0 <= runs[method]["test_accuracy"] <= 1.0
    # The training part of the recipe's split (1,069 rows) less 5 labels for each digit.
    assert runs[method]["labeled_rows"] == 50 and runs[method]["unlabeled_rows"] == 1019


def test_cli_labels_per_class_errors(capsys) -> None:
    pytest.importorskip("sklearn")
    from seisoku.cli import main

    assert main(["train", *SMALL, "--labels-per-class", "500"]) == 2
    assert "argument 'labels_per_class' must be at most" in capsys.readouterr().err
    assert main(["train", *SMALL, "--semi", "pseudo"]) == 2
    assert "--semi needs --labels-per-class" in capsys.readouterr().err
