"""`seisoku train` end to end on the built-in digits, with few epochs."""

from __future__ import annotations

import json

import pytest

from seisoku.cli import main


@pytest.fixture(autouse=True)
def _needs_sklearn() -> None:
    pytest.importorskip("sklearn")  # the built-in digits come with scikit-learn


def test_train_writes_summary_and_outputs(tmp_path, capsys):
    out, summary = tmp_path / "run", tmp_path / "summary.json"
    args = ["train", "--epochs", "3", "--hidden", "64", "--no-progress"]
    assert main([*args, "--out", str(out), "--json", str(summary)]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "generalization gap" in printed
    result = json.loads(summary.read_text())
    assert 0.5 < result["test_accuracy"] <= 1.0
    assert result["epochs_run"] == 3
    assert result["recipe"]["hidden"] == [64]
    for name in ("weights.npz", "history.csv", "history.json", "summary.json"):
        assert (out / name).is_file(), name
    assert len(json.loads((out / "history.json").read_text())) == 3


def test_compare_prints_both_runs(capsys):
    assert main(["train", "--epochs", "2", "--hidden", "32", "--no-progress", "--compare"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "unregularized" in header and "regularized" in header


def test_config_file_and_its_errors(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text("hidden = [32]\nepochs = 2\ndropout = 0.1\n")
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


def test_bad_values_exit_with_a_message(capsys):
    assert main(["train", "--epochs", "2", "--dropout", "1.5", "--no-progress"]) == 2
    assert "dropout" in capsys.readouterr().err
