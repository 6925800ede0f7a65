"""The README's Python examples run as written, in order, in one namespace (as a reader pastes
them into one session). Names the prose leaves to the reader (`batches`, `forward_backward`,
`epoch`, and 28x28 images for the augmentation example) are defined before the block that uses
them."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def python_blocks() -> list[str]:
    with open(README, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def reader_context(block: str, ns: dict) -> None:
    """What the reader supplies for a block that uses placeholders."""
    if "for x, y in batches" in block:
        rng = np.random.default_rng(0)
        ns["batches"] = [(rng.random((8, 64), dtype=np.float32), np.arange(8) % 10)]

        def forward_backward(model, x, y):
            loss = ns["nn"].CrossEntropyLoss()
            value = loss(model(x), y)
            model.backward(loss.backward())
            return value

        ns["forward_backward"] = forward_backward
    if "sample_offset=epoch" in block:
        ns["epoch"] = 0
        ns["x"] = np.random.default_rng(1).random((16, 1, 28, 28), dtype=np.float32)
        ns["y"] = np.arange(16) % 10


def test_readme_python_examples_run(tmp_path, monkeypatch) -> None:
    blocks = python_blocks()
    assert len(blocks) >= 6, "the README's Python examples were not found"
    monkeypatch.chdir(tmp_path)  # the examples write history.csv, ckpt.npz, grid.png
    ns: dict = {"__name__": "readme"}
    for i, block in enumerate(blocks, 1):
        reader_context(block, ns)
        try:
            exec(compile(block, f"README.md python block {i}", "exec"), ns)
        except Exception as e:
            pytest.fail(f"README python block {i} failed: {type(e).__name__}: {e}\n{block}")
    # What the examples promise: a trained model, a checkpoint and the augmentation grid.
    assert len(ns["history"].epochs) > 0 and ns["history"].epochs[-1]["val_accuracy"] > 0.8
    assert (tmp_path / "ckpt.npz").exists() and (tmp_path / "grid.png").exists()
    assert ns["x_aug"].shape == ns["x"].shape
