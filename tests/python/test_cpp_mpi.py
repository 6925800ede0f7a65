"""Builds examples/cpp/distributed_mlp.cpp against the installed C++ package and MPI, and runs it
with ``mpiexec -n 2``: bucketed data-parallel training and a 2-stage pipeline (GPipe and 1F1B),
each checked against a single-process run.

Skipped when MPI is absent (no mpiexec, mpicxx or mpi.h). With MPI present, a failure to build or
run fails the test; a missing cmake skips it unless SEISOKU_REQUIRE_CPP_TESTS=1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cpp_build import REPO_ROOT, report, run, skip_or_fail

import seisoku

EXAMPLES = REPO_ROOT / "examples" / "cpp"
TOLERANCE = 1e-5


def _mpi_header(mpicxx: str) -> Path | None:
    """mpi.h in the include folders that mpicxx passes (MPICH: -show, Open MPI: -showme)."""
    for flag in ("-show", "-showme"):
        try:
            proc = subprocess.run(
                [mpicxx, flag], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode != 0:
            continue
        folders = [Path(a[2:]) for a in proc.stdout.split() if a.startswith("-I")]
        folders += [Path("/usr/include"), Path("/usr/local/include")]
        for folder in folders:
            if (folder / "mpi.h").is_file():
                return folder / "mpi.h"
    return None


@pytest.fixture(scope="module")
def mpi_example(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    mpiexec, mpicxx = shutil.which("mpiexec"), shutil.which("mpicxx")
    if mpiexec is None or mpicxx is None:
        pytest.skip("MPI is not installed (no mpiexec or mpicxx on PATH)")
    if _mpi_header(mpicxx) is None:
        pytest.skip(f"MPI is not installed ({mpicxx} names no folder with mpi.h)")
    cmake = shutil.which("cmake")
    if cmake is None:
        skip_or_fail("cmake is not on PATH")
    build = tmp_path_factory.mktemp("cpp_mpi") / "build"
    configure = [
        cmake,
        "-S",
        str(EXAMPLES),
        "-B",
        str(build),
        f"-DCMAKE_PREFIX_PATH={seisoku.cmake_prefix_path()}",
        f"-DMPI_CXX_COMPILER={mpicxx}",
        "-DCMAKE_BUILD_TYPE=Release",
    ]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    proc = run(configure, timeout=300)
    assert proc.returncode == 0, "configuring examples/cpp failed\n" + report(proc)
    assert "Could NOT find MPI" not in proc.stdout + proc.stderr, (
        "CMake did not find the MPI that mpicxx belongs to\n" + report(proc)
    )
    proc = run(
        [cmake, "--build", str(build), "--target", "seisoku_distributed_mlp", "-j", "2"],
        timeout=600,
    )
    assert proc.returncode == 0, "building seisoku_distributed_mlp failed\n" + report(proc)
    return mpiexec, build / "seisoku_distributed_mlp"


@pytest.mark.slow
def test_distributed_mlp_matches_one_process(mpi_example: tuple[str, Path]) -> None:
    mpiexec, exe = mpi_example
    # One thread per rank: two ranks share the machine's cores, and MPICH busy-polls.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = run([mpiexec, "-n", "2", str(exe)], timeout=180, cwd=exe.parent, env=env)
    assert proc.returncode == 0, report(proc)
    lines = proc.stdout.splitlines()
    assert "OK" in lines, report(proc)
    # The program checks itself; read its figures again so that a wrong check cannot pass.
    diffs = [float(x) for x in re.findall(r"max \|w - w_single\| = (\S+?),? ", proc.stdout)]
    assert len(diffs) == 4, report(proc)  # 2 data-parallel runs, gpipe, 1f1b
    assert all(d <= TOLERANCE for d in diffs), report(proc)
    parallel = [line for line in lines if line.startswith("data parallel")]
    assert len(parallel) == 2, report(proc)
    for line in parallel:
        found = re.search(r"(\d+) buckets \((\d+) started during backward\)", line)
        assert found is not None, line
        buckets, early = found.groups()
        assert int(buckets) == 3 and int(early) == 2, line
        moved = float(re.search(r"weights moved by up to (\S+),", line).group(1))
        assert moved > 0.01, line
        assert re.search(r"to 0$", line), line  # broadcast: every rank holds rank 0's parameters
    one_f_one_b = next(line for line in lines if line.startswith("pipeline 1f1b"))
    assert "in flight per stage 2, 1;" in one_f_one_b, one_f_one_b
    gpipe = next(line for line in lines if line.startswith("pipeline gpipe"))
    assert "in flight per stage 4, 4;" in gpipe, gpipe
