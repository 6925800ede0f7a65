"""Builds tests/cpp against the installed C++ package and runs it with ctest.

Skipped when cmake or GoogleTest is missing, unless SEISOKU_REQUIRE_CPP_TESTS=1.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from cpp_build import REPO_ROOT, report, run, skip_or_fail

import seisoku
import seisoku as sei
from seisoku import nn

CPP_TESTS = REPO_ROOT / "tests" / "cpp"


@pytest.fixture(scope="module")
def cpp_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cmake = shutil.which("cmake")
    if cmake is None:
        skip_or_fail("cmake is not on PATH")
    build = tmp_path_factory.mktemp("cpp") / "build"
    configure = [
        cmake,
        "-S",
        str(CPP_TESTS),
        "-B",
        str(build),
        f"-DCMAKE_PREFIX_PATH={seisoku.cmake_prefix_path()}",
        "-DCMAKE_BUILD_TYPE=Release",
    ]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    proc = run(configure, timeout=300)
    if proc.returncode != 0:
        if "Could NOT find GTest" in proc.stdout + proc.stderr:
            skip_or_fail("GoogleTest not found by CMake (install libgtest-dev)")
        pytest.fail("configuring tests/cpp failed\n" + report(proc))
    proc = run([cmake, "--build", str(build), "-j", "2"], timeout=600)
    assert proc.returncode == 0, "building tests/cpp failed\n" + report(proc)
    return build


@pytest.mark.slow
def test_ctest_suite(cpp_build: Path) -> None:
    ctest = shutil.which("ctest")
    assert ctest is not None, "ctest is not on PATH next to cmake"
    proc = run([ctest, "--output-on-failure", "--timeout", "300"], timeout=600, cwd=cpp_build)
    assert proc.returncode == 0, report(proc)


@pytest.mark.slow
def test_cpp_example(cpp_build: Path) -> None:
    proc = run([str(cpp_build / "seisoku_example")], timeout=60, cwd=cpp_build)
    assert proc.returncode == 0, report(proc)
    assert "OK" in proc.stdout.splitlines(), report(proc)


def _same_bits_models():
    """The two models of tests/cpp/same_bits.cpp, built in the same order from Generator(42)."""
    gen = sei.Generator(42)
    mlp = nn.Sequential(
        nn.Linear(64, 48, activation="relu", dropout=0.2, generator=gen),
        nn.DropConnect(48, 32, p=0.3, activation="relu", generator=gen),
        nn.Linear(32, 10, generator=gen),
    )
    gen = sei.Generator(42)
    cnn = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, generator=gen),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25, generator=gen),
        nn.Flatten(),
        nn.DropConnect(64, 16, p=0.2, activation="relu", generator=gen),
        nn.Linear(16, 10, generator=gen),
    )
    return {"mlp": (mlp, (64,)), "cnn": (cnn, (1, 8, 8))}


@pytest.mark.slow
def test_python_and_cpp_training_give_the_same_bits(cpp_build: Path, tmp_path: Path) -> None:
    proc = run([str(cpp_build / "seisoku_same_bits"), str(tmp_path)], timeout=300)
    assert proc.returncode == 0, report(proc)
    x = sei.Generator(1234).uniform((256, 64))
    y = (sei.Generator(4321).uniform((256,), dtype="float64") * 10).astype(np.int64)
    for name, (model, shape) in _same_bits_models().items():
        loss = nn.CrossEntropyLoss(0.1)
        opt = sei.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, l2=1e-4, max_norm=3.0)
        xs = x.reshape((256, *shape))
        for t in range(200):
            first = (t * 32) % 256
            model.zero_grad()
            loss(model(xs[first : first + 32]), y[first : first + 32])
            model.backward(loss.backward(), need_input_grad=False)
            opt.step()
        ours = np.concatenate([p.value.ravel() for p in model.parameters()])
        theirs = np.fromfile(tmp_path / f"{name}.bin", dtype=np.float32)
        assert theirs.size == ours.size, name
        assert np.isfinite(ours).all() and np.abs(ours).max() > 0.1, name
        np.testing.assert_array_equal(ours.view(np.uint32), theirs.view(np.uint32), err_msg=name)
