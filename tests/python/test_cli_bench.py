"""`seisoku bench` on a small folder of fake benchmarks (fast), the shipped benchmark folder,
and the helpers of bench/_timing.py that every benchmark uses."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from seisoku import benchmark
from seisoku.cli import main

has_matplotlib = importlib.util.find_spec("matplotlib") is not None

FAKE_BENCHMARKS = {
    # Two figures through the real helpers: thread for thread and on two threads.
    "bench_alpha.py": """
        import sys
        from _timing import Figure, make_parser, report
        args = make_parser("alpha").parse_args()
        print("alpha sizes:", "quick" if args.quick else "full")
        report(
            [
                Figure("alpha op", 4.0, 2.0, "peerlib", "Mvalues/s", threads=1),
                Figure("alpha op", 2.0, 8.0, "peerlib", "ms", threads=2, peer_threads=1),
            ],
            args.json,
        )
    """,
    # A peer that is not installed, said the standard way and the plain way.
    "bench_beta.py": """
        from _timing import skip
        skip("needs peerlib (pip install peerlib)")
    """,
    "bench_gamma.py": """
        import a_peer_library_that_is_not_installed_anywhere
    """,
    # A wrong result.
    "bench_delta.py": """
        raise SystemExit("delta op: result is wrong at 3 of 10 elements")
    """,
}


@pytest.fixture
def fake_dir(tmp_path):
    """A benchmark folder: the shipped _timing.py and the fake benchmarks above."""
    folder = tmp_path / "bench"
    folder.mkdir()
    shutil.copy(os.path.join(benchmark.find_bench_dir(), "_timing.py"), folder)
    for name, code in FAKE_BENCHMARKS.items():
        (folder / name).write_text(textwrap.dedent(code))
    return folder


def load_record(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_bench_merges_rows_skips_missing_peers_and_reports_failures(fake_dir, tmp_path, capsys):
    out, js, md = tmp_path / "out", tmp_path / "r.json", tmp_path / "r.md"
    args = ["bench", "--bench-dir", str(fake_dir), "--only", "alpha,beta,gamma,delta,mask"]
    # delta's wrong result fails the command, after every other benchmark has run.
    assert main([*args, "--out", str(out), "--json", str(js), "--markdown", str(md)]) == 1
    printed = capsys.readouterr().out
    timing = benchmark.load_timing()
    machine_line = next(line for line in printed.splitlines() if line.startswith("machine: "))
    assert timing.cpu_model() in machine_line and "GB/s" in machine_line
    assert "OpenBLAS core" in machine_line
    assert "alpha sizes: quick" in printed  # quick by default, in a process of its own
    assert "failed: delta" in printed
    record = load_record(js)
    assert record == load_record(out / "results.json")
    assert record["mode"] == "quick" and record["machine"]["cores"] >= 1
    assert record["machine"]["copy_gbs"] > 0
    rows = record["rows"]
    assert [(r["benchmark"], r["name"], r["threads"], r["peer_threads"]) for r in rows] == [
        ("alpha", "alpha op", 1, 1),
        ("alpha", "alpha op", 2, 1),
    ]
    assert [r["ratio"] for r in rows] == [2.0, 4.0]  # 4/2 Mvalues/s; 8 ms / 2 ms
    status = {n: (b["status"], b["reason"]) for n, b in record["benchmarks"].items()}
    assert list(status) == ["alpha", "beta", "gamma", "delta", "mask"]
    assert status["alpha"] == ("ran", "")
    assert status["beta"] == ("skipped", "needs peerlib (pip install peerlib)")
    assert status["gamma"][0] == "skipped" and "No module named" in status["gamma"][1]
    assert status["delta"][0] == "failed" and "result is wrong at 3 of 10" in status["delta"][1]
    assert status["mask"] == ("skipped", "no bench_mask.py")
    table = md.read_text()
    assert table == (out / "results.md").read_text()
    assert "| alpha | alpha op | 1 thread | 4 Mvalues/s | peerlib | 2 Mvalues/s | 2.00x |" in table
    assert "| alpha | alpha op | 2 threads, peer 1 | 2 ms | peerlib | 8 ms | 4.00x |" in table
    assert timing.cpu_model() in table.splitlines()[0]
    if has_matplotlib:
        assert (out / "ratios.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {out / 'ratios.png'}" in printed


def test_readme_table_is_replaced_between_the_markers(fake_dir, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# x\n\n## Performance\n{benchmark.README_START}\nold table\n{benchmark.README_END}\n"
        "\n## Next\n"
    )
    args = ["bench", "--bench-dir", str(fake_dir), "--only", "alpha", "--out", str(tmp_path / "o")]
    assert main([*args, "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old table" not in text and "| alpha | alpha op | 1 thread |" in text
    assert text.startswith("# x\n\n## Performance\n") and text.endswith("\n## Next\n")
    # The same table again from the run's JSON, without running anything.
    readme.write_text(f"{benchmark.README_START}\n{benchmark.README_END}\n")
    again = ["bench", "--from", str(tmp_path / "o" / "results.json"), "--out", str(tmp_path / "p")]
    assert main([*again, "--readme", str(readme)]) == 0
    assert readme.read_text() == (
        f"{benchmark.README_START}\n{(tmp_path / 'o' / 'results.md').read_text()}"
        f"{benchmark.README_END}\n"
    )
    assert main([*again, "--note", "A busy machine."]) == 0
    caption = (tmp_path / "p" / "results.md").read_text().splitlines()[0]
    assert caption.endswith("seisoku is better (faster, or more per second). A busy machine.")
    assert main(["bench", "--from", str(tmp_path / "o" / "results.md")]) == 2
    bare = tmp_path / "bare.md"
    bare.write_text("# no markers\n")
    capsys.readouterr()
    assert main([*args, "--readme", str(bare)]) == 2
    assert "has no '<!-- seisoku bench: start -->'" in capsys.readouterr().err


def test_shipped_benchmarks_are_found_and_listed(capsys):
    folder = benchmark.find_bench_dir()
    for name in ("_timing.py", "bench_random.py", "bench_gemm.py"):
        assert os.path.isfile(os.path.join(folder, name)), name
    assert main(["bench", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed[:2] == ["random", "gemm"]
    assert main(["bench", "--bench-dir", "/nonexistent/bench"]) == 2


def test_bench_runs_as_a_command(fake_dir, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "seisoku.cli",
            "bench",
            "--bench-dir",
            str(fake_dir),
            "--only",
            "alpha",
            "--full",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "alpha sizes: full" in r.stdout and "machine: " in r.stdout
    assert load_record(out / "results.json")["mode"] == "full"


# -- bench/_timing.py ----------------------------------------------------------------------

JOBS = """
    import os
    import sys


    def clean_process(expected_wait_policy):
        # The job's process must not have seisoku loaded, nor the setting its import makes.
        found = ("seisoku" in sys.modules, os.environ.get("OMP_WAIT_POLICY"))
        if found != (False, expected_wait_policy):
            raise SystemExit(f"process not clean: {found}")
        return lambda: sum(range(100))


    def wrong():
        raise SystemExit("result is wrong")


    def needs_missing_peer():
        import a_peer_library_that_is_not_installed_anywhere  # noqa: F401
"""


def test_each_side_is_timed_in_a_fresh_process(fake_dir):
    (fake_dir / "fakejobs.py").write_text(textwrap.dedent(JOBS))
    timing = benchmark.load_timing(str(fake_dir))
    expected = timing.launch_environ().get("OMP_WAIT_POLICY")
    job = timing.Job("fakejobs", "clean_process", {"expected_wait_policy": expected}, threads=1)
    t_ours, t_peer = timing.time_pair_isolated(job, job, rounds=2, warmup=1, repeats=3)
    assert 0 < t_ours < 1 and 0 < t_peer < 1
    with timing.Worker() as worker:
        with pytest.raises(SystemExit, match=r"fakejobs\.wrong: result is wrong"):
            worker.time(timing.Job("fakejobs", "wrong"))
        with pytest.raises(ImportError, match="a_peer_library_that_is_not_installed"):
            worker.time(timing.Job("fakejobs", "needs_missing_peer"))
        assert worker.time(job, repeats=2) > 0  # the worker survives its jobs' errors


def test_figures_state_their_threads():
    timing = benchmark.load_timing()
    fig = timing.Figure("op", 2.0, 1.0, "peer", "GFLOP/s", threads=1)
    assert fig.as_dict()["threads"] == 1 and fig.as_dict()["peer_threads"] == 1
    assert timing.format_figure(fig).startswith("op [1 thread]: ours 2.0 GFLOP/s")
    mixed = timing.Figure("op", 3.0, 6.0, "peer", "ms", threads=2, peer_threads=1)
    assert mixed.as_dict()["ratio"] == 2.0 and mixed.as_dict()["peer_threads"] == 1
    assert "[2 threads, peer 1]" in timing.format_figure(mixed)
    unstated = timing.Figure("op", 1.0, float("nan"), "no peer installed", "img/s")
    assert unstated.as_dict()["peer"] is None and unstated.as_dict()["threads"] is None
    assert timing.thread_counts() == tuple(sorted({1, timing.machine_threads()}))


def test_use_threads_sets_and_restores_each_library():
    import seisoku

    timing = benchmark.load_timing()
    libraries: list = [seisoku]
    if importlib.util.find_spec("torch") is not None:
        import torch

        libraries.append(torch)
    before = [lib.get_num_threads() for lib in libraries]
    with timing.use_threads(3, *libraries):
        assert [lib.get_num_threads() for lib in libraries] == [3] * len(libraries)
    assert [lib.get_num_threads() for lib in libraries] == before
    if importlib.util.find_spec("threadpoolctl") is not None:
        import threadpoolctl

        seisoku.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))

        def blas_threads():
            found = {}
            for i in threadpoolctl.threadpool_info():
                if i["user_api"] == "blas":
                    found["numpy" if "openblas64" in i["filepath"] else "other"] = i["num_threads"]
            return found

        outside = blas_threads()
        with timing.use_threads(1, "numpy"):
            inside = blas_threads()
            assert inside["numpy"] == 1
            assert inside.get("other") == outside.get("other")  # seisoku's copy: untouched
        assert blas_threads() == outside
