"""Helpers of the tests that configure, build and run C++ programs against the installed
package (test_cpp.py, test_cpp_mpi.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def skip_or_fail(reason: str) -> None:
    """Skip for a missing tool, or fail when SEISOKU_REQUIRE_CPP_TESTS=1."""
    if os.environ.get("SEISOKU_REQUIRE_CPP_TESTS") == "1":
        pytest.fail(f"{reason} (SEISOKU_REQUIRE_CPP_TESTS=1)")
    pytest.skip(reason)


def run(
    cmd: list[str], timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """cmd's completed process (output captured); a test failure past `timeout` seconds."""
    try:
        return subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as e:
        output = "".join(
            x.decode(errors="replace") if isinstance(x, bytes) else x
            for x in (e.stdout or "", e.stderr or "")
        )
        pytest.fail(f"timed out after {timeout} s: {' '.join(cmd)}\n{output}")


def report(proc: subprocess.CompletedProcess) -> str:
    """The command, its exit status and its output, for an assertion message."""
    return f"$ {' '.join(proc.args)}\n(exit {proc.returncode})\n{proc.stdout}\n{proc.stderr}"
