"""`seisoku train` end to end on the built-in digits, with few epochs: outputs, --compare,
TOML config, Ctrl-C and --resume (same weights as an uninterrupted run), NaN losses, and
clear errors for bad values, configs and checkpoints."""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np
import pytest

from seisoku import recipes
from seisoku.cli import main
from seisoku.train import Callback

SMALL = ["--epochs", "3", "--channels", "4,8", "--hidden", "16", "--no-progress"]


@pytest.fixture(autouse=True)
def _needs_sklearn() -> None:
    pytest.importorskip("sklearn")  # the built-in digits come with scikit-learn


def test_train_writes_summary_and_outputs(tmp_path, capsys):
    out, summary = tmp_path / "run", tmp_path / "summary.json"
    args = ["train", *SMALL]
    assert main([*args, "--out", str(out), "--json", str(summary)]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "generalization gap" in printed
    result = json.loads(summary.read_text())
    assert 0.3 < result["test_accuracy"] <= 1.0  # chance is 0.1
    assert result["epochs_run"] == 3
    assert result["recipe"]["hidden"] == [16] and result["recipe"]["model"] == "cnn"
    for name in ("weights.npz", "history.csv", "history.json", "summary.json", "checkpoint.npz"):
        assert (out / name).is_file(), name
    history = json.loads((out / "history.json").read_text())
    assert len(history["epochs"]) == 3 and history["best_epoch"] + 1 == result["best_epoch"]
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(out / "weights.npz") as weights:
        assert weights["0.weight"].shape == (4, 1, 3, 3)  # the first 3x3 convolution


def test_quantize_q88_reports_accuracy_and_size_of_the_stored_codes(tmp_path, capsys):
    from seisoku import quant

    out, summary = tmp_path / "run", tmp_path / "summary.json"
    args = ["train", *SMALL, "--quantize", "q8.8", "--out", str(out), "--json", str(summary)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "test accuracy, quantized" in printed and "model bytes, quantized" in printed
    result = json.loads(summary.read_text())
    with np.load(out / "weights.npz") as w:
        weights = {k: w[k] for k in w.files}
    n_values = sum(v.size for v in weights.values())
    assert result["model_bytes"] == 2 * n_values  # int16 codes
    assert result["model_bytes_float32"] == 4 * n_values
    assert abs(result["test_accuracy_quantized"] - result["test_accuracy"]) <= 0.01
    # The stored codes are the weights rounded to the nearest multiple of 2^-8.
    stored = quant.QuantizedState.load(str(out / "weights.q8.8.npz")).dequantize()
    for name, v in weights.items():
        np.testing.assert_array_equal(stored[name], np.clip(np.rint(v * 256), -32768, 32767) / 256)
    # Without --quantize the rows and fields are absent.
    assert main(["train", *SMALL, "--json", str(summary)]) == 0
    assert "quantized" not in capsys.readouterr().out
    assert "test_accuracy_quantized" not in json.loads(summary.read_text())
    with pytest.raises(SystemExit) as e:  # argparse names the choices
        main(["train", *SMALL, "--quantize", "q4.4"])
    assert e.value.code == 2 and "invalid choice: 'q4.4'" in capsys.readouterr().err


def test_distill_from_a_teacher_run(tmp_path, capsys):
    teacher = tmp_path / "teacher"
    assert main(["train", *SMALL, "--out", str(teacher)]) == 0
    capsys.readouterr()
    summary = tmp_path / "student.json"
    student = ["train", "--epochs", "10", "--model", "mlp", "--hidden", "32", "--no-progress"]
    args = [*student, "--distill-from", str(teacher / "weights.npz"), "--json", str(summary)]
    assert main([*args, "--temperature", "3", "--alpha", "0.7"]) == 0
    assert "teacher test accuracy" in capsys.readouterr().out
    result = json.loads(summary.read_text())
    teacher_result = json.loads((teacher / "summary.json").read_text())
    # The CNN teacher, fed the MLP student's rows as images, scores what its own run scored.
    assert result["teacher_test_accuracy"] == teacher_result["test_accuracy"]
    assert result["recipe"]["temperature"] == 3 and result["recipe"]["alpha"] == 0.7
    assert 0.3 < result["test_accuracy"] <= 1.0
    # Another seed is another split: refused. A corrupt teacher file names the path.
    assert main([*student, "--seed", "1", "--distill-from", str(teacher)]) == 2
    assert "seed 0" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "weights.npz").write_bytes(b"not an archive")
    (bad / "summary.json").write_text((teacher / "summary.json").read_text())
    assert main([*student, "--distill-from", str(bad / "weights.npz")]) == 2
    assert str(bad / "weights.npz") in capsys.readouterr().err
    assert main([*student, "--distill-from", str(tmp_path / "none.npz")]) == 2
    assert "summary.json" in capsys.readouterr().err
    assert main([*student, "--distill-from", str(teacher), "--alpha", "1.5"]) == 2
    assert "alpha" in capsys.readouterr().err


def test_prune_reaches_the_target_and_quantizes(tmp_path, capsys):
    from seisoku import quant

    out, summary = tmp_path / "run", tmp_path / "summary.json"
    args = ["train", "--epochs", "16", "--model", "mlp", "--hidden", "64", "--no-progress"]
    assert (
        main(
            [
                *args,
                "--prune",
                "0.8",
                "--quantize",
                "q8.8",
                "--out",
                str(out),
                "--json",
                str(summary),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "weights nonzero" in printed
    result = json.loads(summary.read_text())
    assert result["weights_nonzero_fraction"] == pytest.approx(0.2, abs=1e-3)
    assert result["best_epoch"] is None  # no early stopping while pruning
    with np.load(out / "weights.npz") as w:
        weights = [w[k] for k in w.files if k.endswith("weight")]
    zeros = sum(int((v == 0).sum()) for v in weights) / sum(v.size for v in weights)
    assert zeros == pytest.approx(0.8, abs=1e-3)
    # The stored Q8.8 codes keep the pruned weights at exactly zero.
    stored = quant.QuantizedState.load(str(out / "weights.q8.8.npz")).dequantize()
    for name in ("0.weight", "1.weight"):
        with np.load(out / "weights.npz") as w:
            assert np.all(stored[name][w[name] == 0] == 0)
    assert 0.3 < result["test_accuracy"] <= 1.0
    for bad in ("1.0", "-0.1", "nan"):
        assert main([*args, "--prune", bad]) == 2
        assert "prune" in capsys.readouterr().err


def test_compare_prints_both_runs(capsys):
    assert main(["train", *SMALL, "--compare", "--model", "mlp", "--hidden", "32"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.split() == ["unregularized", "regularized"]


def test_config_file_and_its_errors(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text('model = "mlp"\nhidden = [32]\nepochs = 2\ndropout = 0.1\n')
    summary = tmp_path / "s.json"
    assert main(["train", "--config", str(good), "--no-progress", "--json", str(summary)]) == 0
    assert json.loads(summary.read_text())["recipe"]["dropout"] == 0.1
    bad = tmp_path / "bad.toml"
    bad.write_text("hidden = [32\n")
    with pytest.raises(SystemExit, match="not valid TOML"):
        main(["train", "--config", str(bad)])
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("hiden = [32]\n")
    with pytest.raises(SystemExit, match=r"unknown keys.*hiden"):
        main(["train", "--config", str(unknown)])
    with pytest.raises(SystemExit, match="cannot read config"):
        main(["train", "--config", str(tmp_path / "missing.toml")])


def test_bad_values_exit_with_a_message(tmp_path, capsys):
    assert main(["train", "--epochs", "2", "--dropout", "1.5", "--no-progress"]) == 2
    assert "dropout must be a number in [0.0, 1.0), got 1.5" in capsys.readouterr().err
    assert main(["train", "--shift", "5"]) == 2
    assert "shift must be at most 3" in capsys.readouterr().err
    assert main(["train", "--rotate", "-3"]) == 2
    assert "rotate must be a number in [0.0, 180.0], got -3.0" in capsys.readouterr().err
    assert main(["train", "--cutout", "9"]) == 2
    assert "cutout must be at most 8 pixels" in capsys.readouterr().err
    assert main(["train", "--elastic", "2", "--elastic-sigma", "0"]) == 2
    assert "elastic_sigma must be a number in (0.0, inf), got 0.0" in capsys.readouterr().err
    typed = tmp_path / "typed.toml"
    typed.write_text('hidden = 32\nlr = "fast"\n')
    assert main(["train", "--config", str(typed)]) == 2
    assert f"hidden must be a list of positive ints, got 32 (config {typed}" in (
        capsys.readouterr().err
    )


def test_recipe_augmentation_is_the_named_transforms():
    x = np.random.default_rng(0).uniform(0, 1, (40, 64)).astype(np.float32)
    assert recipes._augmentation(recipes.Recipe(shift=0)) is None
    # A cutout of side 8 zeroes a square (clipped at the border: at least 4x4 pixels) and
    # leaves the rest; a shift pads with zeros, so the sum never grows and some pixels move.
    cut = recipes._augmentation(recipes.Recipe(shift=0, cutout=8))(x, 0)
    zeroed = cut == 0
    np.testing.assert_array_equal(cut[~zeroed], x[~zeroed])
    assert zeroed.sum(axis=1).min() >= 16
    shift = recipes._augmentation(recipes.Recipe(shift=1))
    moved = shift(x, 3)
    assert moved.shape == x.shape and not np.array_equal(moved, x)
    assert np.all(moved.sum(axis=1) <= x.sum(axis=1) + 1e-4)
    np.testing.assert_array_equal(shift(x, 3), moved)  # the draws depend on (seed, step)
    # Rotations of 90 degrees or more leave 6 and 9 alone.
    turn = recipes._augmentation(recipes.Recipe(shift=0, rotate=180))
    labels = np.arange(40) % 10
    turned = turn(x, 1, labels)
    upside = np.isin(labels, (6, 9))
    np.testing.assert_array_equal(turned[upside], x[upside])
    assert not np.array_equal(turned[~upside], x[~upside])


def test_train_with_rotation_elastic_and_cutout(capsys):
    args = ["train", *SMALL, "--rotate", "10", "--elastic", "1.5", "--cutout", "2"]
    assert main(args) == 0
    assert "test accuracy" in capsys.readouterr().out


class InterruptAt(Callback):
    """Sends the process a real SIGINT (Ctrl-C) after optimizer step `step`."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, trainer, step, logs):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_writes_a_checkpoint_and_resume_ends_with_the_same_weights(
    tmp_path, capsys, monkeypatch
):
    args = ["train", *SMALL, "--model", "mlp", "--hidden", "32", "--dropout", "0.3"]
    full = tmp_path / "full"
    assert main([*args, "--out", str(full)]) == 0
    real_run = recipes.run

    def run_with(stop_at):
        return lambda *a, **kw: real_run(*a, callbacks=[InterruptAt(stop_at)], **kw)

    ckpt = tmp_path / "ckpt.npz"
    monkeypatch.setattr(recipes, "run", run_with(50))  # 34 steps per epoch: inside epoch 2
    capsys.readouterr()
    assert main([*args, "--checkpoint", str(ckpt)]) == 130
    err = capsys.readouterr().err
    assert f"checkpoint written to {ckpt}" in err and f"--resume {ckpt}" in err
    monkeypatch.setattr(recipes, "run", run_with(-1))  # the same callbacks, no interrupt
    resumed = tmp_path / "resumed"
    assert main(["train", "--resume", str(ckpt), "--out", str(resumed), "--no-progress"]) == 0
    assert "interrupted" not in capsys.readouterr().out
    with np.load(full / "weights.npz") as a, np.load(resumed / "weights.npz") as b:
        assert a.files == b.files
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])
    assert main(["train", "--resume", str(ckpt), "--lr", "0.1"]) == 2
    assert "drop --lr" in capsys.readouterr().err


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip archive")
    assert main(["train", "--resume", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad} is not a readable seisoku checkpoint file" in err
    assert "Traceback" not in err
    assert main(["train", "--resume", str(tmp_path / "none.npz")]) == 2
    assert "none.npz: no such file" in capsys.readouterr().err


def test_nan_loss_stops_with_a_message_and_keeps_finite_weights(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", *SMALL, "--model", "mlp", "--lr", "1e6", "--schedule", "none"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "stopped: " in printed and "nan" in printed
    with np.load(out / "weights.npz") as weights:
        assert all(np.isfinite(weights[k]).all() for k in weights.files)


def test_missing_optional_dependencies_are_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    assert "no learning_curve.png: matplotlib is not installed" in capsys.readouterr().out
    assert not (tmp_path / "run" / "learning_curve.png").exists()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    assert main(["train", *SMALL]) == 2
    assert "load_digits needs scikit-learn: pip install" in capsys.readouterr().err


def test_retrain_on_all_runs_the_best_step_count(tmp_path):
    summary = tmp_path / "s.json"
    assert main(["train", *SMALL, "--retrain-on-all", "--json", str(summary)]) == 0
    result = json.loads(summary.read_text())
    assert result["best_step"] == 34 * result["best_epoch"]  # 1069 samples, batches of 32
    assert result["retrained_steps"] == result["best_step"]
    assert main(["train", *SMALL, "--retrain-on-all", "--patience", "0"]) == 2
