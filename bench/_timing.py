"""The one timing helper of seisoku's benchmarks: warm-up, repeats, median, device sync.

Every benchmark checks its result first (`check_close`), then times ours and the peer in
the same run (`time_fn`), and hands the figures to `report`, which prints one line per
figure and, with `--json PATH`, writes them as a list of
{"name", "ours", "peer", "peer_name", "unit", "ratio"}; ratio > 1 means seisoku is better.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

TIME_UNITS = ("s", "ms", "us", "ns")


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


@dataclass(frozen=True)
class Figure:
    """One measured figure: ours beside the peer's, measured in the same run.

    higher_is_better defaults from the unit: False for time units (s, ms, us, ns), True
    for throughputs (GFLOP/s, Mvalues/s, ...).
    """

    name: str
    ours: float
    peer: float
    peer_name: str
    unit: str
    higher_is_better: bool | None = None

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

    def as_dict(self) -> dict[str, Any]:
        """The JSON record: name, ours, peer, peer_name, unit, ratio (NaN as null)."""
        ratio = self.ratio
        return {
            "name": self.name,
            "ours": self.ours,
            "peer": self.peer,
            "peer_name": self.peer_name,
            "unit": self.unit,
            "ratio": ratio if math.isfinite(ratio) else None,
        }


def _fmt(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"


def format_figure(fig: Figure) -> str:
    """One line: `name: ours V unit, peer_name V unit, ratio R`."""
    return (
        f"{fig.name}: ours {_fmt(fig.ours)} {fig.unit}, "
        f"{fig.peer_name} {_fmt(fig.peer)} {fig.unit}, ratio {fig.ratio:.2f}"
    )


def report(figures: list[Figure], json_path: str | None = None) -> None:
    """Print one line per figure; with json_path, also write them there as a JSON list."""
    for fig in figures:
        print(format_figure(fig), flush=True)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump([fig.as_dict() for fig in figures], f, indent=1)
            f.write("\n")


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


def to_host(x: Any) -> np.ndarray:
    """x as a NumPy array (copied from the GPU for CuPy arrays, without importing CuPy)."""
    if hasattr(x, "__cuda_array_interface__"):
        return x.get()
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
