"""The one timing helper of seisoku's benchmarks, and the standard every benchmark follows.

1. Check first. The very path that is timed is checked against an oracle (`check_close`,
   `check_true`) before it is timed; a wrong result exits (SystemExit) and never times.
2. Same run, alternating. Ours and the peer are timed in the same run, alternating rounds and
   keeping each side's best round (`time_pair`, `time_pair_isolated`), so that a slow spell
   of a shared machine hits both alike. `time_fn` is one side's median over repeats.
3. Threads stated, like for like. Every Figure says the threads it ran on (`Figure.threads`;
   `Figure.peer_threads` only where the peer ran on another count); both are in the JSON rows
   and in the printed lines. Give each figure thread for thread (seisoku on 1 thread against
   the peer on 1) and for the whole machine (both sides on `machine_threads()`):
   `thread_counts()` is those two counts, `use_threads(n, seisoku, torch, "numpy")` runs a
   block with n threads in each library named and `set_threads` sets them until undone.
4. A process of its own for each side where the runtime matters. `import seisoku` sets
   OMP_WAIT_POLICY=PASSIVE, which the OpenMP runtime reads once and PyTorch shares, and
   libraries may leave worker threads spinning after a call. `time_pair_isolated(ours, peer)`
   times each side in a fresh interpreter of its own (a `Worker`), started from the
   environment this process was launched with (`launch_environ()`), alternating rounds like
   time_pair. A `Job` names a module-level factory (`module`, `factory`, JSON `kwargs`) that
   builds and checks the callable to time, with the threads to set before each timing; the
   module must not import seisoku at its top level (the factory of seisoku's side imports it),
   so that the peer's process never loads it.
5. The machine named. `report` prints the CPU (`cpu_line()`) before its first figure;
   `machine_info()` and `machine_line()` give the CPU model and features, cores, memory,
   the BLAS core OpenBLAS picked and the memory bandwidth of a copy (for `seisoku bench`).
6. A missing peer skips, never fails. `skip(reason)` prints why and exits with SKIP_STATUS,
   which `seisoku bench` reports as skipped.

Output: one line per figure, `name [threads]: ours V unit, peer V unit, ratio R`; with
`--json PATH` (`make_parser`), a list of {"name", "ours", "peer", "peer_name", "unit",
"ratio", "threads", "peer_threads"}; ratio > 1 means seisoku is better. Run as a script with
`--worker`, this file is the Worker's server.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

TIME_UNITS = ("s", "ms", "us", "ns")

# Exit status of a benchmark that could not run (a peer is not installed): see skip().
SKIP_STATUS = 3

# Seconds of busy warm-up before timing a CPU library. The previous library's BLAS or
# OpenMP workers keep spinning for ~0.1 s after its last call; on a 2-core machine they
# stall the next library's threads by whole scheduler ticks (4-16 ms per call) until then.
CPU_WARMUP_S = 0.3


def time_fn(
    fn: Callable[[], Any],
    *,
    warmup: int = 2,
    repeats: int = 10,
    number: int = 1,
    sync: Callable[[], Any] | None = None,
    warmup_s: float = 0.0,
    min_time_s: float = 0.0,
    max_repeats: int = 10_000,
) -> float:
    """Median seconds of one call of fn over at least `repeats` timed runs.

    A run is `number` back-to-back calls followed by `sync()` (for the GPU: a device
    synchronize), timed with time.perf_counter. Untimed warm-up runs come first: at
    least `warmup` of them, and more until warmup_s has passed. Timed runs go on past
    `repeats` until min_time_s of them has passed (at most max_repeats), so short calls
    get many samples and the median ignores the odd preempted one.
    """
    if repeats < 1 or warmup < 0 or number < 1:
        raise ValueError(
            f"need repeats, number >= 1 and warmup >= 0, got {repeats}, {number}, {warmup}"
        )

    def run() -> float:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        if sync is not None:
            sync()
        return time.perf_counter() - t0

    start = time.perf_counter()
    done = 0
    while done < warmup or time.perf_counter() - start < warmup_s:
        run()
        done += 1
    times: list[float] = []
    total = 0.0
    while len(times) < repeats or (total < min_time_s and len(times) < max_repeats):
        times.append(run())
        total += times[-1]
    return statistics.median(times) / number


def time_pair(
    ours: Callable[[], Any], peer: Callable[[], Any], *, rounds: int = 3, **options: Any
) -> tuple[float, float]:
    """(seconds of ours, seconds of peer): time_fn of each, alternating for `rounds` rounds,
    the best round of each. On a shared machine a slow spell then hits both sides alike
    instead of whichever happened to run during it."""
    best_ours = best_peer = float("inf")
    for _ in range(rounds):
        best_ours = min(best_ours, time_fn(ours, **options))
        best_peer = min(best_peer, time_fn(peer, **options))
    return best_ours, best_peer


# -- threads ------------------------------------------------------------------------------


def machine_threads() -> int:
    """The logical cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def thread_counts() -> tuple[int, ...]:
    """The thread counts to give figures for: 1 (thread for thread) and the whole machine."""
    return tuple(sorted({1, machine_threads()}))


def threads_label(n: int) -> str:
    """'1 thread' or 'N threads'."""
    return f"{n} thread" + ("" if n == 1 else "s")


def set_threads(n: int, *libraries: Any) -> Callable[[], None]:
    """Give each of `libraries` n threads until the returned callable undoes it.

    A library is a module with set_num_threads and get_num_threads (seisoku, torch, or their
    names "seisoku", "torch") or "numpy" for NumPy's BLAS (through threadpoolctl; SystemExit
    naming it when it is missing).
    """
    undo: list[Callable[[], None]] = []
    for lib in libraries:
        if lib == "numpy":
            try:
                import threadpoolctl
            except ImportError:
                raise SystemExit(
                    "setting NumPy's BLAS threads needs threadpoolctl: pip install threadpoolctl"
                ) from None
            # NumPy's BLAS only: seisoku's OpenBLAS (a separate copy) stays single-threaded.
            controller = threadpoolctl.ThreadpoolController()
            paths = [i["filepath"] for i in controller.info() if _is_numpy_blas(i)]
            if paths:
                limiter = controller.select(filepath=paths).limit(limits=n)
                undo.append(limiter.restore_original_limits)
            continue
        module = importlib.import_module(lib) if isinstance(lib, str) else lib
        before = module.get_num_threads()
        module.set_num_threads(n)
        undo.append(lambda m=module, b=before: m.set_num_threads(b))

    def restore() -> None:
        for fn in reversed(undo):
            fn()

    return restore


@contextlib.contextmanager
def use_threads(n: int, *libraries: Any) -> Iterator[None]:
    """A block in which each of `libraries` runs on n threads (see set_threads)."""
    restore = set_threads(n, *libraries)
    try:
        yield
    finally:
        restore()


# -- each side in a process of its own ---------------------------------------------------


def launch_environ() -> dict[str, str]:
    """The environment this process was started with, before any import changed os.environ
    (`import seisoku` sets OMP_WAIT_POLICY); os.environ where the OS does not keep it."""
    try:
        with open(f"/proc/{os.getpid()}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return dict(os.environ)
    env = {}
    for entry in raw.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep and key:
            env[os.fsdecode(key)] = os.fsdecode(value)
    return env


@dataclass
class Job:
    """A callable to time in a Worker: `module.factory(**kwargs)` (module importable from
    bench/) builds it, checks its result and returns it (called with no arguments). Before
    each timing the Worker gives `libraries` (see set_threads) `threads` threads."""

    module: str
    factory: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None
    libraries: tuple[str, ...] = ()

    def key(self) -> str:
        """A string naming this job (JSON of its fields)."""
        return json.dumps(asdict(self), sort_keys=True)


class Worker:
    """A fresh Python interpreter that builds Jobs and times them on request.

    Started from launch_environ() plus `env` (a value of None removes the variable), with
    PYTHONPATH leading to the seisoku this process imported. Close it (or use `with`).
    """

    def __init__(self, env: Mapping[str, str | None] | None = None) -> None:
        full = launch_environ()
        paths = [p for p in full.get("PYTHONPATH", "").split(os.pathsep) if p]
        seisoku = sys.modules.get("seisoku")
        if seisoku is not None and getattr(seisoku, "__file__", None):
            paths.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(seisoku.__file__))))
        if paths:
            full["PYTHONPATH"] = os.pathsep.join(paths)
        for key, value in (env or {}).items():
            if value is None:
                full.pop(key, None)
            else:
                full[key] = value
        self._built: set[str] = set()
        self._proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=full,
        )

    def _ask(self, request: dict[str, Any], job: Job) -> dict[str, Any]:
        proc = self._proc
        if proc.stdin is None or proc.stdout is None or proc.poll() is not None:
            raise SystemExit(f"{job.module}.{job.factory}: the timing worker is not running")
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"{job.module}.{job.factory}: the timing worker died (see above)")
        reply = json.loads(line)
        if reply["ok"]:
            return reply
        if reply["kind"] == "missing":
            raise ImportError(reply["message"])
        raise SystemExit(f"{job.module}.{job.factory}: {reply['message']}")

    def build(self, job: Job) -> None:
        """Import the job's module and run its factory (with its check), once per job."""
        key = job.key()
        if key not in self._built:
            self._ask({"op": "build", "key": key, "job": asdict(job)}, job)
            self._built.add(key)

    def time(self, job: Job, **options: Any) -> float:
        """time_fn of the job with `options` (JSON values; device="cuda" syncs the GPU)."""
        self.build(job)
        return float(
            self._ask({"op": "time", "key": job.key(), "options": options}, job)["seconds"]
        )

    def forget(self, job: Job) -> None:
        """Drop a built job (and the arrays it holds) from the interpreter."""
        key = job.key()
        if key in self._built:
            self._ask({"op": "forget", "key": key}, job)
            self._built.discard(key)

    def close(self) -> None:
        """Stop the interpreter."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def time_pair_isolated(
    ours: Job,
    peer: Job,
    *,
    rounds: int = 3,
    ours_worker: Worker | None = None,
    peer_worker: Worker | None = None,
    **options: Any,
) -> tuple[float, float]:
    """(seconds of ours, seconds of peer) as time_pair, each side timed in a process of its
    own: the workers given (reused across figures), else a fresh one each, closed after."""
    with contextlib.ExitStack() as stack:
        if ours_worker is None:
            ours_worker = stack.enter_context(Worker())
        if peer_worker is None:
            peer_worker = stack.enter_context(Worker())
        ours_worker.build(ours)
        peer_worker.build(peer)
        best_ours = best_peer = float("inf")
        for _ in range(rounds):
            best_ours = min(best_ours, ours_worker.time(ours, **options))
            best_peer = min(best_peer, peer_worker.time(peer, **options))
    return best_ours, best_peer


def _serve() -> None:
    """The Worker's side: JSON requests on stdin, one JSON reply per line on stdout."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the timed code prints goes to stderr, not into the replies
    sys.stdout = sys.stderr
    built: dict[str, tuple[Job, Callable[[], Any]]] = {}
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "build":
                job = Job(**{**request["job"], "libraries": tuple(request["job"]["libraries"])})
                factory = getattr(importlib.import_module(job.module), job.factory)
                if job.threads is not None:
                    with use_threads(job.threads, *job.libraries):
                        built[request["key"]] = (job, factory(**job.kwargs))
                else:
                    built[request["key"]] = (job, factory(**job.kwargs))
                reply: dict[str, Any] = {"ok": True}
            elif request["op"] == "forget":
                del built[request["key"]]
                reply = {"ok": True}
            else:
                job, fn = built[request["key"]]
                options = dict(request["options"])
                sync = sync_for(options.pop("device", "cpu"))
                if job.threads is not None:
                    set_threads(job.threads, *job.libraries)
                reply = {"ok": True, "seconds": time_fn(fn, sync=sync, **options)}
        except ImportError as e:
            reply = {"ok": False, "kind": "missing", "message": str(e)}
        except SystemExit as e:
            reply = {"ok": False, "kind": "exit", "message": str(e.code)}
        except Exception:
            reply = {"ok": False, "kind": "error", "message": traceback.format_exc()}
        replies.write(json.dumps(reply) + "\n")


# -- the machine --------------------------------------------------------------------------

# /proc/cpuinfo flags worth naming beside figures, with their usual names.
CPU_FEATURES = {
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512F",
    "avx512bw": "AVX-512BW",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "amx_tile": "AMX",
    "asimd": "NEON",
    "asimddp": "NEON dot product",
    "sve": "SVE",
}


def _cpuinfo() -> dict[str, str]:
    """The first processor's entries of /proc/cpuinfo ({} where there is none)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    if info:
                        break
                    continue
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def cpu_model() -> str:
    """The CPU's model name, with its family and model numbers on x86 (virtual machines
    often show a bare 'AMD EPYC')."""
    info = _cpuinfo()
    name = info.get("model name") or info.get("Hardware") or platform.processor()
    name = name or platform.machine() or "unknown CPU"
    if "cpu family" in info and "model" in info:
        name += f" (family {info['cpu family']} model {info['model']})"
    return name


def cpu_features() -> list[str]:
    """The vector and matrix extensions of CPU_FEATURES this CPU has, by their usual names."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return [label for flag, label in CPU_FEATURES.items() if flag in flags]


def cpu_line() -> str:
    """`cpu: MODEL, N cores (FEATURES)`: the line printed beside the figures."""
    features = " ".join(cpu_features()) or "no AVX2/AVX-512/NEON reported"
    return f"cpu: {cpu_model()}, {machine_threads()} cores ({features})"


def copy_bandwidth(nbytes: int = 128 << 20, repeats: int = 3) -> float:
    """GB/s of numpy.copyto between two arrays of nbytes (one thread; bytes read + written),
    the best of `repeats`. 128 MiB is past the last-level cache of most CPUs."""
    src = np.ones(nbytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats + 1):  # the first copy faults the pages in
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best / 1e9


def _is_numpy_blas(lib: Mapping[str, Any]) -> bool:
    """Whether a threadpoolctl record is NumPy's BLAS (bundled in numpy.libs, OpenBLAS64)."""
    path = str(lib.get("filepath", ""))
    return lib.get("user_api") == "blas" and ("numpy" in path or "openblas64" in path)


def _numpy_blas_core() -> str | None:
    try:
        import threadpoolctl
    except ImportError:
        return None
    for lib in threadpoolctl.threadpool_info():
        if _is_numpy_blas(lib):
            return str(lib.get("architecture") or lib.get("internal_api"))
    return None


def machine_info(bandwidth: bool = True) -> dict[str, Any]:
    """Facts about the machine for the record of a benchmark run (imports seisoku for the
    core its OpenBLAS picked): cpu, cores, features, memory_gib, blas_core (seisoku's),
    numpy_blas_core, copy_gbs (None without bandwidth), load (1-minute average), versions."""
    import seisoku

    try:
        load: float | None = os.getloadavg()[0]
    except OSError:
        load = None
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory = None
    info = seisoku.build_info()
    return {
        "cpu": cpu_model(),
        "cores": machine_threads(),
        "features": cpu_features(),
        "memory_gib": round(memory, 1) if memory else None,
        "blas_core": info.get("blas_core"),
        "numpy_blas_core": _numpy_blas_core(),
        "copy_gbs": round(copy_bandwidth(), 1) if bandwidth else None,
        "load": round(load, 2) if load is not None else None,
        "seisoku": seisoku.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
    }


def machine_line(info: Mapping[str, Any]) -> str:
    """One line naming the machine of machine_info()."""
    parts = [f"machine: {info['cpu']}, {info['cores']} cores"]
    if info.get("features"):
        parts[0] += f" ({' '.join(info['features'])})"
    if info.get("memory_gib"):
        parts.append(f"{info['memory_gib']} GiB")
    blas = f"OpenBLAS core {info.get('blas_core') or '?'} (seisoku)"
    if info.get("numpy_blas_core"):
        blas += f", {info['numpy_blas_core']} (numpy)"
    parts.append(blas)
    if info.get("copy_gbs"):
        parts.append(f"copy {info['copy_gbs']} GB/s (numpy.copyto, 1 thread, read + write)")
    if info.get("load") is not None:
        parts.append(f"load {info['load']}")
    return "; ".join(parts)


def machine_note() -> str | None:
    """A warning line when the machine was busy before the benchmark started, else None."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return None
    cores = os.cpu_count() or 1
    if load < 0.5 * cores:
        return None
    return f"note: load average {load:.2f} on {cores} cores before starting: figures may be noisy"


# -- devices ------------------------------------------------------------------------------


def cuda_sync() -> Callable[[], None]:
    """A callable that waits for all work on CuPy's current device (imports CuPy)."""
    import cupy

    device = cupy.cuda.Device()
    return device.synchronize


def require_cuda() -> Any:
    """CuPy, once seisoku and CuPy can both use a CUDA device; else SystemExit saying why."""
    import seisoku

    if not seisoku.cuda.is_built():
        raise SystemExit("--device cuda: this seisoku was built without CUDA")
    if not seisoku.cuda.is_available():
        raise SystemExit("--device cuda: seisoku sees no usable CUDA device")
    try:
        import cupy
    except ImportError as e:
        raise SystemExit("--device cuda needs CuPy: pip install cupy-cuda13x") from e
    return cupy


def sync_for(device: str) -> Callable[[], None] | None:
    """The `sync` callable for time_fn on `device`: None on the CPU."""
    return cuda_sync() if device == "cuda" else None


# -- figures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One measured figure: ours beside the peer's, measured in the same run.

    higher_is_better defaults from the unit: False for time units (s, ms, us, ns), True
    for throughputs (GFLOP/s, Mvalues/s, ...). threads: the threads both sides ran on
    (None: not stated); peer_threads: the peer's, only where it differs from ours.
    """

    name: str
    ours: float
    peer: float
    peer_name: str
    unit: str
    higher_is_better: bool | None = None
    threads: int | None = None
    peer_threads: int | None = None

    @property
    def better_high(self) -> bool:
        """Whether a larger value of this figure is better."""
        if self.higher_is_better is not None:
            return self.higher_is_better
        return self.unit not in TIME_UNITS

    @property
    def ratio(self) -> float:
        """> 1 when seisoku is better: ours/peer for throughputs, peer/ours for times."""
        num, den = (self.ours, self.peer) if self.better_high else (self.peer, self.ours)
        return num / den if den > 0 and math.isfinite(num) else math.nan

    @property
    def threads_text(self) -> str:
        """'1 thread', '2 threads', '2 threads, peer 1' or '' when not stated."""
        if self.threads is None:
            return ""
        text = threads_label(self.threads)
        if self.peer_threads is not None and self.peer_threads != self.threads:
            text += f", peer {self.peer_threads}"
        return text

    def as_dict(self) -> dict[str, Any]:
        """The JSON record: name, ours, peer, peer_name, unit, ratio, threads, peer_threads
        (non-finite numbers as null; peer_threads equals threads unless stated otherwise)."""

        def finite(x: float) -> float | None:
            return x if x is not None and math.isfinite(x) else None

        return {
            "name": self.name,
            "ours": finite(self.ours),
            "peer": finite(self.peer),
            "peer_name": self.peer_name,
            "unit": self.unit,
            "ratio": finite(self.ratio),
            "threads": self.threads,
            "peer_threads": self.threads if self.peer_threads is None else self.peer_threads,
        }


def _fmt(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"


def format_figure(fig: Figure) -> str:
    """One line: `name [threads]: ours V unit, peer_name V unit, ratio R`."""
    threads = f" [{fig.threads_text}]" if fig.threads_text else ""
    return (
        f"{fig.name}{threads}: ours {_fmt(fig.ours)} {fig.unit}, "
        f"{fig.peer_name} {_fmt(fig.peer)} {fig.unit}, ratio {fig.ratio:.2f}"
    )


_cpu_printed = False


def report(figures: list[Figure], json_path: str | None = None) -> None:
    """Print the CPU (once per process), then one line per figure; with json_path, also
    write the figures there as a JSON list."""
    global _cpu_printed
    if not _cpu_printed:
        print(cpu_line(), flush=True)
        _cpu_printed = True
    for fig in figures:
        print(format_figure(fig), flush=True)
    if json_path:
        write_json(figures, json_path)


def write_json(figures: list[Figure], path: str) -> None:
    """Write the figures to path as a JSON list of their as_dict() records."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump([fig.as_dict() for fig in figures], f, indent=1)
        f.write("\n")


def installed_version(package: str) -> str | None:
    """The installed version of `package` (without a local tag like +cpu), read without
    importing it; None when it is not installed."""
    if importlib.util.find_spec(package) is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package).split("+")[0]
    except PackageNotFoundError:
        return "?"


def torch_version() -> str | None:
    """'torch X.Y.Z' when PyTorch is installed, else None."""
    v = installed_version("torch")
    return f"torch {v}" if v else None


def skip(reason: str) -> None:
    """Print `skipped: reason` and exit with SKIP_STATUS (a peer is missing, say)."""
    print(f"skipped: {reason}", file=sys.stderr, flush=True)
    raise SystemExit(SKIP_STATUS)


def make_parser(description: str | None) -> argparse.ArgumentParser:
    """An ArgumentParser with the options every benchmark takes: --json, --quick, --device."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and few repeats, for smoke tests"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where to run (default cpu)"
    )
    return parser


# -- checks -------------------------------------------------------------------------------


def to_host(x: Any) -> np.ndarray:
    """x as a NumPy array (copied from the GPU for CuPy arrays, without importing CuPy)."""
    if hasattr(x, "__cuda_array_interface__"):
        return x.get()
    if hasattr(x, "numpy") and hasattr(x, "detach"):  # a torch tensor
        return x.detach().cpu().numpy()
    return np.asarray(x)


def check_close(ours: Any, ref: Any, rtol: float, atol: float, what: str) -> None:
    """Exit with a message naming `what` unless |ours - ref| <= atol + rtol * |ref| everywhere.

    NaNs must sit at the same places. Raises SystemExit, so a wrong benchmark never times.
    """
    a = to_host(ours)
    b = to_host(ref)
    if a.shape != b.shape:
        raise SystemExit(f"{what}: wrong result shape {a.shape}, expected {b.shape}")
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    err = np.abs(a64 - b64)
    bound = atol + rtol * np.abs(b64)
    bad = ~(err <= bound) & ~(np.isnan(a64) & np.isnan(b64))
    if bad.any():
        excess = np.where(bad, np.nan_to_num(err / np.maximum(bound, 1e-300), nan=np.inf), 0.0)
        idx = np.unravel_index(int(np.argmax(excess)), a.shape)
        raise SystemExit(
            f"{what}: result is wrong at {int(bad.sum())} of {a.size} elements; worst at index "
            f"{tuple(int(i) for i in idx)}: ours {float(a64[idx])!r}, "
            f"reference {float(b64[idx])!r} "
            f"(rtol {rtol:.3g}, atol {atol:.3g})"
        )


def check_true(ok: bool, what: str, detail: str) -> None:
    """Exit with `what: detail` unless ok (for checks that are not elementwise)."""
    if not ok:
        raise SystemExit(f"{what}: {detail}")


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    _serve()
