"""What `seisoku info` reports: version, build options, CPU, BLAS, threads, CUDA, MPI."""

from __future__ import annotations

import importlib.util
import platform
import sys

import numpy as np

from . import _core, cuda


def _mpi_status() -> str:
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py not installed (pip install mpi4py mpich)"
    try:
        from mpi4py import MPI
    except Exception as e:  # a broken MPI install must not break `seisoku info`
        return f"mpi4py installed but MPI failed to load: {e}"
    version = MPI.Get_library_version().strip().splitlines()[0]
    return f"mpi4py {MPI.Get_version()} ({version})"


def collect() -> dict[str, str]:
    """All facts as a flat dict of strings."""
    b = dict(_core.build_info())
    info = {
        "seisoku": b["version"],
        "python": f"{platform.python_version()} ({sys.executable})",
        "numpy": np.__version__,
        "compiler": b["compiler"],
        "build: native CPU flags": b["native"],
        "build: OpenMP": b["openmp"],
        "build: CUDA kernels": b["cuda_built"]
        + (f" (archs {b['cuda_archs']})" if b["cuda_archs"] else ""),
        "CPU features compiled": b["cpu_features"],
        "CPU features present": b["cpu_supports"],
        "BLAS": b["blas"],
        "BLAS core type": b["blas_core"],
        "BLAS config": b["blas_config"].strip(),
        "threads": b["num_threads"],
    }
    if cuda.is_built():
        n = cuda.device_count()
        info["CUDA available"] = "yes" if n > 0 else "no (no device or driver)"
        for i in range(n):
            info[f"CUDA device {i}"] = cuda.get_device_name(i)
        if n > 0:
            try:
                info["cuBLAS"] = cuda.load_cublas()
            except RuntimeError as e:
                info["cuBLAS"] = str(e)
    else:
        info["CUDA available"] = "no (built without CUDA)"
    info["MPI"] = _mpi_status()
    return info
