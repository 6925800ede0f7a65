"""`seisoku train --quantize int8` end to end on the built-in digits (CNN and MLP): the int8
model's test accuracy and stored bytes are reported beside the float32 model's."""

from __future__ import annotations

import json

import pytest

from seisoku.cli import main

SMALL = ["--epochs", "3", "--channels", "4,8", "--hidden", "16", "--no-progress"]


@pytest.fixture(autouse=True)
def _needs_sklearn() -> None:
    pytest.importorskip("sklearn")  # the built-in digits come with scikit-learn


@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_quantize_int8_reports_accuracy_and_size(tmp_path, capsys, model):
    summary = tmp_path / "summary.json"
    args = ["train", *SMALL, "--model", model, "--quantize", "int8", "--json", str(summary)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "test accuracy, quantized" in printed and "model bytes, quantized" in printed
    result = json.loads(summary.read_text())
    assert result["quantize"] == "int8"
    assert abs(result["test_accuracy_quantized"] - result["test_accuracy"]) <= 0.02
    # int8 codes plus float32 scales and biases: a little over a quarter of float32
    ratio = result["model_bytes"] / result["model_bytes_float32"]
    assert 0.25 < ratio < 0.4
