"""Shared fixtures: `device` runs a test on every device present (cpu always, cuda when
seisoku has CUDA, a GPU is visible and CuPy is installed)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import seisoku


def cuda_ready() -> bool:
    return seisoku.cuda.is_available() and importlib.util.find_spec("cupy") is not None


requires_cuda = pytest.mark.skipif(not cuda_ready(), reason="needs a CUDA device and CuPy")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.requires_cuda)])
def device(request: pytest.FixtureRequest) -> str:
    if request.param == "cuda" and not cuda_ready():
        pytest.skip("needs a CUDA device and CuPy")
    return request.param


def to_device(x: np.ndarray, device: str):
    """x on `device` (a CuPy array for cuda)."""
    if device == "cuda":
        import cupy

        return cupy.asarray(x)
    return x


def to_host(x) -> np.ndarray:
    """x as a NumPy array."""
    if hasattr(x, "__cuda_array_interface__"):
        return x.get()
    return np.asarray(x)


@pytest.fixture
def restore_default_generator():
    """Put the process-wide generator back after a test that reseeds it."""
    saved = seisoku.random.default_generator().state_dict()
    yield
    seisoku.random.default_generator().load_state_dict(saved)
