"""Builds tests/cpp against the installed C++ package and runs it with ctest.

Skipped when cmake or GoogleTest is missing, unless SEISOKU_REQUIRE_CPP_TESTS=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import seisoku

REPO_ROOT = Path(__file__).resolve().parents[2]
CPP_TESTS = REPO_ROOT / "tests" / "cpp"


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("SEISOKU_REQUIRE_CPP_TESTS") == "1":
        pytest.fail(f"{reason} (SEISOKU_REQUIRE_CPP_TESTS=1)")
    pytest.skip(reason)


def _run(cmd: list[str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as e:
        output = "".join(
            x.decode(errors="replace") if isinstance(x, bytes) else x
            for x in (e.stdout or "", e.stderr or "")
        )
        pytest.fail(f"timed out after {timeout} s: {' '.join(cmd)}\n{output}")


def _report(proc: subprocess.CompletedProcess) -> str:
    return f"$ {' '.join(proc.args)}\n(exit {proc.returncode})\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def cpp_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cmake = shutil.which("cmake")
    if cmake is None:
        _skip_or_fail("cmake is not on PATH")
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
    proc = _run(configure, timeout=300)
    if proc.returncode != 0:
        if "Could NOT find GTest" in proc.stdout + proc.stderr:
            _skip_or_fail("GoogleTest not found by CMake (install libgtest-dev)")
        pytest.fail("configuring tests/cpp failed\n" + _report(proc))
    proc = _run([cmake, "--build", str(build), "-j", "2"], timeout=600)
    assert proc.returncode == 0, "building tests/cpp failed\n" + _report(proc)
    return build


@pytest.mark.slow
def test_ctest_suite(cpp_build: Path) -> None:
    ctest = shutil.which("ctest")
    assert ctest is not None, "ctest is not on PATH next to cmake"
    proc = _run([ctest, "--output-on-failure", "--timeout", "300"], timeout=600, cwd=cpp_build)
    assert proc.returncode == 0, _report(proc)


@pytest.mark.slow
def test_cpp_example(cpp_build: Path) -> None:
    proc = _run([str(cpp_build / "seisoku_example")], timeout=60, cwd=cpp_build)
    assert proc.returncode == 0, _report(proc)
    assert "OK" in proc.stdout.splitlines(), _report(proc)
