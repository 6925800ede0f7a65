"""`seisoku info` and the package's build facts."""

from __future__ import annotations

import json
import subprocess
import sys

import seisoku as sei
from seisoku.cli import main


def test_info_json_has_every_fact(capsys):
    assert main(["info", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    for key in (
        "seisoku",
        "BLAS",
        "BLAS core type",
        "threads",
        "build: CUDA kernels",
        "CUDA available",
        "MPI",
        "CPU features compiled",
    ):
        assert key in facts, key
    assert facts["seisoku"] == sei.__version__
    assert facts["BLAS"].startswith("OpenBLAS")
    assert facts["threads"] == str(sei.get_num_threads())
    # The running CPU has every instruction set the build used (else it could not run it).
    present = facts["CPU features present"]
    if present != "unknown":
        compiled = facts["CPU features compiled"]
        assert compiled == "baseline" or set(compiled.split()) <= set(present.split())


def test_info_runs_as_a_command():
    r = subprocess.run(
        [sys.executable, "-m", "seisoku.cli", "info"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "BLAS core type" in r.stdout
    assert "CUDA available" in r.stdout


def test_cuda_state_is_consistent():
    built = sei.cuda.is_built()
    info = sei.build_info()
    assert info["cuda_built"] == ("yes" if built else "no")
    if not sei.cuda.is_available():
        assert sei.cuda.device_count() == 0


def test_unknown_command_exits_with_usage_error(capsys):
    try:
        main(["frobnicate"])
    except SystemExit as e:
        assert e.code == 2
    else:
        raise AssertionError("an unknown command must exit with status 2")
