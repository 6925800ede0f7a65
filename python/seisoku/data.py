"""Built-in data: scikit-learn's bundled 8x8 digits, synthetic sets, and a stratified split."""

from __future__ import annotations

from typing import Any

import numpy as np


def _require_sklearn() -> Any:
    try:
        import sklearn.datasets
    except ImportError as e:
        raise ImportError(
            "seisoku.data.load_digits needs scikit-learn: pip install 'seisoku[train]' "
            "(or pip install scikit-learn)"
        ) from e
    return sklearn.datasets


def load_digits(images: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The 1797 handwritten digits bundled with scikit-learn (no download).

    Returns (X, y): X float32 in [0, 1], shape (1797, 64), or (1797, 1, 8, 8) with
    images=True; y int64 labels 0-9.
    """
    d = _require_sklearn().load_digits()
    x = (d.data / 16.0).astype(np.float32)
    if images:
        x = x.reshape(-1, 1, 8, 8)
    return np.ascontiguousarray(x), d.target.astype(np.int64)


def make_blobs(
    n: int = 600, classes: int = 3, features: int = 2, spread: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around random centres: (X float32 (n, features), y int64)."""
    if n < classes or classes < 2 or features < 1:
        raise ValueError(
            f"need n >= classes >= 2 and features >= 1, got {n}, {classes}, {features}"
        )
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (classes, features))
    y = np.arange(n) % classes
    x = centres[y] + rng.normal(0, spread, (n, features))
    return x.astype(np.float32), y.astype(np.int64)


def make_regression(
    n: int = 400, features: int = 2, noise: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A smooth nonlinear target, y = sin(2 x0) + x1**2 (+ the mean of further features)
    plus N(0, noise**2), of inputs uniform on [-1, 1]: (X float32 (n, features), y float32)."""
    if n < 1 or features < 2 or not noise >= 0:
        raise ValueError(f"need n >= 1, features >= 2 and noise >= 0, got {n}, {features}, {noise}")
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, features))
    y = np.sin(2 * x[:, 0]) + x[:, 1] ** 2
    if features > 2:
        y = y + x[:, 2:].mean(axis=1)
    y = y + rng.normal(0.0, noise, n)
    return x.astype(np.float32), y.astype(np.float32)


def stratified_split(
    y: np.ndarray, test_size: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with each class split in the proportion test_size."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        k = round(len(idx) * test_size)
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
