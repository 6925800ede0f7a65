"""seisoku's thread count is its own: other users of the process's OpenMP runtime (PyTorch,
which loads the same libgomp.so.1, or a direct omp_set_num_threads) neither change it nor
are changed by it."""

from __future__ import annotations

import ctypes
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

import seisoku as sei

has_torch = importlib.util.find_spec("torch") is not None
requires_torch = pytest.mark.skipif(not has_torch, reason="needs PyTorch")
linux_only = pytest.mark.skipif(
    not os.path.isdir("/proc/self/task"), reason="counts threads through /proc/self/task"
)


def loaded_libgomp() -> ctypes.CDLL | None:
    """The libgomp this process has loaded (seisoku's OpenMP runtime), or None."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = {line.split()[-1] for line in f if "libgomp" in line}
    except OSError:
        return None
    return ctypes.CDLL(sorted(paths)[0]) if paths else None


def run_python(code: str, **env: str) -> list[str]:
    """Run code in a fresh interpreter (this one's environment plus env); its stdout lines."""
    full_env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    full_env.update(env)
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


# Counts the threads of the process around one seisoku fill that is large enough to run in
# parallel: an OpenMP region of n threads starts n - 1 workers the first time.
COUNT_WORKERS = textwrap.dedent("""
    def workers_started_by(fn):
        before = len(os.listdir("/proc/self/task"))
        fn()
        return len(os.listdir("/proc/self/task")) - before

    x = np.empty(1 << 22, np.float32)
    gen = seisoku.Generator(0)
    print(workers_started_by(lambda: gen.uniform(out=x)))
""")


def test_set_num_threads_round_trips_and_rejects_bad_counts():
    before = sei.get_num_threads()
    try:
        sei.set_num_threads(3)
        assert sei.get_num_threads() == 3
        with pytest.raises(ValueError, match=r"\[set_num_threads\] n must be .*got 0"):
            sei.set_num_threads(0)
        assert sei.get_num_threads() == 3
    finally:
        sei.set_num_threads(before)


def test_default_count_comes_from_omp_num_threads_or_the_cores():
    code = "import seisoku; print(seisoku.get_num_threads())"
    assert run_python(code, OMP_NUM_THREADS="3") == ["3"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert run_python(code) == [str(cores)]


def test_omp_set_num_threads_and_seisoku_leave_each_other_alone():
    gomp = loaded_libgomp()
    if gomp is None:
        pytest.skip("seisoku was built without OpenMP (no libgomp loaded)")
    before, omp_before = sei.get_num_threads(), gomp.omp_get_max_threads()
    try:
        sei.set_num_threads(2)
        gomp.omp_set_num_threads(1)
        assert sei.get_num_threads() == 2
        gomp.omp_set_num_threads(3)
        sei.set_num_threads(1)
        assert gomp.omp_get_max_threads() == 3
        assert sei.get_num_threads() == 1
    finally:
        gomp.omp_set_num_threads(omp_before)
        sei.set_num_threads(before)


@requires_torch
def test_torch_set_num_threads_leaves_seisoku_alone_and_the_reverse():
    import torch

    before, torch_before = sei.get_num_threads(), torch.get_num_threads()
    try:
        sei.set_num_threads(2)
        torch.set_num_threads(1)
        assert sei.get_num_threads() == 2
        torch.set_num_threads(3)
        sei.set_num_threads(1)
        assert torch.get_num_threads() == 3
        assert sei.get_num_threads() == 1
    finally:
        torch.set_num_threads(torch_before)
        sei.set_num_threads(before)


@requires_torch
def test_default_count_is_not_taken_from_torch():
    code = """
        import torch
        torch.set_num_threads(1)
        import seisoku
        print(seisoku.get_num_threads(), torch.get_num_threads())
    """
    assert run_python(code, OMP_NUM_THREADS="3") == ["3", "1"]


@requires_torch
@linux_only
def test_seisoku_regions_keep_its_count_after_torch_sets_one_thread():
    code = """
        import os
        import numpy as np
        import seisoku
        import torch
        seisoku.set_num_threads(2)
        torch.set_num_threads(1)
    """
    assert run_python(textwrap.dedent(code) + COUNT_WORKERS) == ["1"]


@linux_only
def test_seisoku_regions_keep_its_count_after_omp_set_num_threads():
    code = """
        import ctypes
        import os
        import numpy as np
        import seisoku
        with open("/proc/self/maps") as f:
            gomp = sorted({line.split()[-1] for line in f if "libgomp" in line})
        seisoku.set_num_threads(2)
        if gomp:
            ctypes.CDLL(gomp[0]).omp_set_num_threads(1)
    """
    expected = ["1"] if sei.build_info()["openmp"] == "yes" else ["0"]
    assert run_python(textwrap.dedent(code) + COUNT_WORKERS) == expected


def _policy_after_import(**env: str) -> list[str]:
    """OMP_WAIT_POLICY and GOMP_SPINCOUNT after `import seisoku` in a fresh interpreter whose
    environment has neither, plus env."""
    code = """
        import os
        import seisoku
        print(os.environ.get("OMP_WAIT_POLICY", "-"), os.environ.get("GOMP_SPINCOUNT", "-"))
    """
    full_env = {
        k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    }
    full_env.update(env)
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_import_sets_a_short_spin_then_sleep_unless_the_user_chose():
    assert _policy_after_import() == ["PASSIVE", "10000"]
    assert _policy_after_import(OMP_WAIT_POLICY="ACTIVE") == ["ACTIVE", "-"]
    assert _policy_after_import(GOMP_SPINCOUNT="0") == ["-", "0"]
