"""`seisoku train --ensemble KIND --members N`: the summary with its baselines for each kind,
figures recomputed from the JSON, and clear errors for bad --members and combinations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seisoku.cli import main

SMALL = ["--model", "mlp", "--hidden", "16", "--epochs", "4", "--no-progress"]


@pytest.fixture(autouse=True)
def _needs_sklearn() -> None:
    pytest.importorskip("sklearn")  # the built-in digits come with scikit-learn


@pytest.mark.parametrize("kind", ["bagging", "adaboost", "snapshot"])
def test_ensemble_summary_has_its_baselines(kind, tmp_path, capsys) -> None:
    path = tmp_path / "summary.json"
    args = ["train", *SMALL, "--ensemble", kind, "--members", "2", "--threads", "2"]
    assert main([*args, "--json", str(path)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(path.read_text())
    assert summary["ensemble"] == kind
    assert 1 <= summary["members"] <= 2
    accs = summary["member_test_accuracies"]
    assert len(accs) == summary["members"]
    assert summary["average_member_test_accuracy"] == pytest.approx(np.mean(accs))
    for key in ("test_accuracy", "average_member_test_accuracy", "single_test_accuracy"):
        assert 0.2 < summary[key] <= 1.0  # chance is 0.1
        assert f"{summary[key]:.4f}" in printed
    assert f"{kind} ensemble, {summary['members']} members" in printed
    assert "average member" in printed and "single model" in printed
    base = 1 - summary["average_member_test_accuracy"]
    if base > 0:
        ratio = (1 - summary["test_accuracy"]) / base
        assert f"ensemble error / average member error: {ratio:.2f}" in printed
    if kind == "adaboost":
        assert summary["single_test_accuracy"] == accs[0]
        assert "member weights (alpha)" in printed
    if kind == "bagging":
        assert 0.0 <= summary["oob_score"] <= 1.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ensemble", "bagging", "--members", "0"], "argument '--members' must be an int >= 1"),
        (["--ensemble", "adaboost", "--members", "-3"], "'--members' must be an int >= 1, got -3"),
        (["--members", "3"], "argument '--members' needs --ensemble"),
        (["--ensemble", "snapshot", "--compare"], "--ensemble cannot be combined with --compare"),
        (["--ensemble", "bagging", "--prune", "0.5"], "--ensemble cannot be combined with --prune"),
        (["--ensemble", "bagging", "--epochs", "0"], "epochs must be an int >= 1, got 0"),
    ],
)  # fmt: skip
def test_bad_ensemble_options_are_one_line_errors(extra, message, capsys) -> None:
    assert main(["train", "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seisoku train: ") and message in err


@pytest.mark.parametrize("value", ["x", "2.5"])
def test_members_must_be_an_int(value, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["train", "--ensemble", "bagging", "--members", value])
    assert e.value.code == 2
    assert f"argument --members: invalid int value: '{value}'" in capsys.readouterr().err
