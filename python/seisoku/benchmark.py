"""`seisoku bench`: run the benchmarks of bench/ and record their figures.

Each benchmark script (`bench_<name>.py`, shipped in the wheel under seisoku/bench) runs in
a fresh Python process of its own as `python bench_<name>.py [--quick] --json TMP`, started
from the environment the command was launched with (so that settings made by importing
seisoku here, such as OMP_WAIT_POLICY, reach no benchmark). The runner merges the figures
into one record: the machine (CPU model and features, cores, memory, the core OpenBLAS
picked, a measured copy bandwidth), then one row per figure {"benchmark", "name", "ours",
"peer", "peer_name", "unit", "ratio", "threads", "peer_threads"} with ratio > 1 meaning
seisoku is better. A benchmark whose peer is not installed is skipped with its reason; one
that fails (a wrong result, a crash) is reported and the others still run.

Outputs: JSON of the record, a PNG chart of the ratios (log scale, grouped by benchmark)
and a Markdown table, the one README.md's "Performance" section holds.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

# The benchmarks in the order they run; other bench_*.py files found run after them.
BENCHMARKS = ("random", "gemm", "nn", "optim", "augment", "mask")
README_START = "<!-- seisoku bench: start -->"
README_END = "<!-- seisoku bench: end -->"
# The last line of a benchmark that stopped because a peer (or a module) is not installed.
_MISSING = re.compile(r"No module named|ModuleNotFoundError|is not installed|pip install")


def find_bench_dir(explicit: str | None = None) -> str:
    """The folder of the benchmark scripts: `explicit`, else seisoku/bench in the installed
    package, else bench/ of the source checkout the package was imported from.

    Raises FileNotFoundError naming the places looked at.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = (
        [explicit]
        if explicit
        else [os.path.join(here, "bench"), os.path.join(here, os.pardir, os.pardir, "bench")]
    )
    for c in candidates:
        if os.path.isfile(os.path.join(c, "_timing.py")) or (explicit and os.path.isdir(c)):
            return os.path.normpath(c)
    raise FileNotFoundError(
        "no benchmark folder (bench/ with _timing.py) at "
        + ", ".join(map(os.path.normpath, candidates))
    )


def load_timing(directory: str | None = None) -> ModuleType:
    """_timing.py of `directory` (default: this package's benchmark folder): machine facts,
    the skip status, the launch environment. Loaded once per folder."""
    path = os.path.join(directory or find_bench_dir(), "_timing.py")
    name = "_seisoku_bench_timing_" + re.sub(r"\W", "_", os.path.abspath(path))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def list_benchmarks(
    directory: str, only: Sequence[str] | None = None
) -> list[tuple[str, str | None]]:
    """(name, path) of the benchmarks to run: BENCHMARKS that exist, then any other
    bench_*.py, in that order; with `only`, those names in the order given (path None for a
    name with no script)."""
    found = {
        f[len("bench_") : -len(".py")]: os.path.join(directory, f)
        for f in os.listdir(directory)
        if f.startswith("bench_") and f.endswith(".py")
    }
    if only:
        return [(name, found.get(name)) for name in only]
    names = [n for n in BENCHMARKS if n in found] + sorted(set(found) - set(BENCHMARKS))
    return [(n, found[n]) for n in names]


@dataclass
class Outcome:
    """What one benchmark did: status "ran", "skipped" or "failed", why, and its rows."""

    name: str
    status: str
    reason: str = ""
    seconds: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)


def _child_environ(timing: ModuleType) -> dict[str, str]:
    """The launch environment, with PYTHONPATH leading to the seisoku running this."""
    env = timing.launch_environ()
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [package_root, *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_benchmark(
    name: str, path: str | None, *, quick: bool, device: str, env: dict[str, str], skip_status: int
) -> Outcome:
    """Run one benchmark script in a process of its own, echoing its output."""
    if path is None:
        return Outcome(name, "skipped", f"no bench_{name}.py")
    fd, json_path = tempfile.mkstemp(prefix=f"seisoku-bench-{name}-", suffix=".json")
    os.close(fd)
    os.unlink(json_path)
    cmd = [sys.executable, path, "--json", json_path]
    cmd += ["--quick"] if quick else []
    cmd += ["--device", device] if device != "cpu" else []
    print(f"== {os.path.basename(path)}{' --quick' if quick else ''}", flush=True)
    start = time.perf_counter()
    tail: list[str] = []
    try:
        with subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
            cwd=os.path.dirname(path),
        ) as proc:
            for line in proc.stdout or ():
                print("   " + line.rstrip("\n"), flush=True)
                tail = [*tail[-19:], line.strip()]
        seconds = time.perf_counter() - start
        lines = [t for t in tail if t]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        if proc.returncode == skip_status:
            said = [t for t in lines if t.startswith("skipped:")]
            reason = said[-1][len("skipped:") :].strip() if said else last
            return Outcome(name, "skipped", reason, seconds)
        if proc.returncode != 0:
            if _MISSING.search(last):  # its last word: a module or a peer is missing
                return Outcome(name, "skipped", last, seconds)
            return Outcome(name, "failed", f"exit status {proc.returncode}: {last}", seconds)
        try:
            with open(json_path, encoding="utf-8") as f:
                rows = json.load(f)
        except (OSError, ValueError) as e:
            return Outcome(name, "failed", f"wrote no readable --json file: {e}", seconds)
        return Outcome(name, "ran", "", seconds, [{"benchmark": name, **r} for r in rows])
    finally:
        if os.path.exists(json_path):
            os.unlink(json_path)


def run(
    *,
    quick: bool = True,
    only: Sequence[str] | None = None,
    device: str = "cpu",
    bench_dir: str | None = None,
) -> dict[str, Any]:
    """Run the benchmarks and return the record: machine, mode, device, date, rows, and the
    benchmarks that ran, were skipped (with why) or failed (with why)."""
    timing = load_timing()
    directory = find_bench_dir(bench_dir)
    machine = timing.machine_info()
    print(timing.machine_line(machine), flush=True)
    env = _child_environ(timing)
    outcomes = [
        run_benchmark(n, p, quick=quick, device=device, env=env, skip_status=timing.SKIP_STATUS)
        for n, p in list_benchmarks(directory, only)
    ]
    for o in outcomes:
        if o.status != "ran":
            print(f"{o.status}: {o.name}: {o.reason}", flush=True)
    return {
        "machine": machine,
        "mode": "quick" if quick else "full",
        "device": device,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "benchmarks": {
            o.name: {"status": o.status, "reason": o.reason, "seconds": round(o.seconds, 1)}
            for o in outcomes
        },
        "rows": [r for o in outcomes for r in o.rows],
    }


def load_record(path: str) -> dict[str, Any]:
    """The record of an earlier run, read from its JSON; ValueError when it is not one."""
    with open(path, encoding="utf-8") as f:
        try:
            record = json.load(f)
        except ValueError as e:
            raise ValueError(f"{path} is not JSON: {e}") from None
    keys = ("machine", "mode", "date", "benchmarks", "rows")
    if not isinstance(record, dict) or any(k not in record for k in keys):
        raise ValueError(
            f"{path} is not the results.json of seisoku bench (needs {', '.join(keys)})"
        )
    return record


def _threads_text(row: dict[str, Any]) -> str:
    threads, peer = row.get("threads"), row.get("peer_threads")
    if threads is None:
        return "threads not stated"
    text = f"{threads} thread" + ("" if threads == 1 else "s")
    return text + (f", peer {peer}" if peer not in (None, threads) else "")


def write_chart(record: dict[str, Any], path: str) -> str | None:
    """A PNG at `path` of every row's ratio: horizontal bars on a log scale with the 1x line,
    grouped by benchmark, labelled with the peer and the threads. None when matplotlib (an
    optional extra) is not installed or there is no ratio to draw."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    rows = [r for r in record["rows"] if r.get("ratio") is not None and r["ratio"] > 0]
    if not rows:
        return None
    groups = list(dict.fromkeys(r["benchmark"] for r in rows))
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3"]
    fig = Figure(figsize=(11, 1.6 + 0.24 * (len(rows) + len(groups))))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    y, ticks, labels = 0.0, [], []
    for g, group in enumerate(groups):
        ax.text(0.005, y, group, ha="left", va="center", fontsize=9, fontweight="bold",
                transform=ax.get_yaxis_transform())  # fmt: skip
        y += 1
        for r in (r for r in rows if r["benchmark"] == group):
            ratio = r["ratio"]
            # From the 1x line: right when seisoku is better, left when the peer is.
            ax.barh(y, ratio - 1.0, left=1.0, color=colors[g % len(colors)], height=0.75)
            side = "left" if ratio >= 1 else "right"
            ax.text(ratio, y, f" {ratio:.2f}x ", ha=side, va="center", fontsize=7)
            ticks.append(y)
            labels.append(f"{r['name']} vs {r['peer_name']} ({_threads_text(r)})")
            y += 1
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_ylim(y - 0.5, -0.5)
    lo = min(r["ratio"] for r in rows)
    hi = max(r["ratio"] for r in rows)
    ax.set_xlim(min(0.5, lo / 2), max(2.0, hi * 3))
    ax.set_xlabel("ratio (> 1: seisoku better; log scale)")
    machine = record["machine"]
    features = " ".join(machine.get("features") or [])
    ax.set_title(
        f"seisoku bench, {record['mode']} sizes, {record['date']}\n{machine['cpu']}, "
        f"{machine['cores']} cores {features}, load {machine.get('load', '?')}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _num(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def markdown_table(record: dict[str, Any]) -> str:
    """The record as Markdown: a caption naming the run and the machine (and the record's
    note, if any), one table row per figure, then the benchmarks that did not run."""
    m = record["machine"]
    features = f" ({', '.join(m['features'])})" if m.get("features") else ""
    caption = (
        f"`seisoku bench{'' if record['mode'] == 'quick' else ' --full'}` "
        f"({record['mode']} sizes), {record['date']}, on {m['cpu']}, {m['cores']} cores"
        f"{features}, {m.get('memory_gib') or '?'} GiB; OpenBLAS core "
        f"{m.get('blas_core') or '?'}; copy bandwidth {m.get('copy_gbs') or '?'} GB/s "
        f"(one thread, read + write); 1-minute load {m.get('load', '?')} at the start. "
        "Ratio > 1: seisoku is better (faster, or more per second)."
    )
    if record.get("note"):
        caption += " " + record["note"]
    lines = [
        caption,
        "",
        "| benchmark | figure | threads | seisoku | peer | peer's figure | ratio |",
        "|---|---|---|---:|---|---:|---:|",
    ]
    for r in record["rows"]:
        ratio = "-" if r.get("ratio") is None else f"{r['ratio']:.2f}x"
        lines.append(
            f"| {r['benchmark']} | {r['name']} | {_threads_text(r)} | {_num(r.get('ours'))} "
            f"{r['unit']} | {r['peer_name']} | {_num(r.get('peer'))} {r['unit']} | {ratio} |"
        )
    missing = [
        f"{n} ({b['status']}: {b['reason']})"
        for n, b in record["benchmarks"].items()
        if b["status"] != "ran"
    ]
    if missing:
        lines += ["", "Not in this run: " + "; ".join(missing) + "."]
    return "\n".join(lines) + "\n"


def _readme_parts(path: str) -> tuple[str, str]:
    """(text up to and with README_START, text from README_END on) of the file at path;
    ValueError when it lacks the two markers."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{path} has no '{README_START}' ... '{README_END}' block to replace")
    return text[: start + len(README_START)], text[end:]


def check_readme(path: str) -> None:
    """Raise ValueError (or OSError) unless update_readme could replace the table in path."""
    _readme_parts(path)


def update_readme(path: str, table: str) -> None:
    """Replace the text between README_START and README_END in `path` with `table`.

    Raises ValueError when the file lacks the two markers.
    """
    head, tail = _readme_parts(path)
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + "\n" + table + tail)
