"""Batch image augmentation: seisoku.augment against albumentations, measured in the same run.

seisoku augments a whole uint8 batch in one call (random parameters per sample) into a
preallocated batch; the peer runs its usual loop of one call per image and stores each
result into a preallocated batch, as a training loop needs one array per batch (without the
store, a crop is a NumPy view and costs the peer nothing). Both apply every transform to
every image (p=1) of the same batch, and they alternate for three rounds of timing, each
keeping its best, so that a slow spell of a shared machine hits both.
Figures in images/s for two batches:

  28x28x1: 4096 images (--quick: 512)      224x224x3: 256 images (--quick: 32)

  flip            horizontal flip
  crop            random crop (28: 24x24, 224: 192x192), no padding
  resized crop    RandomResizedCrop to the input size, scale (0.08, 1), ratio (3/4, 4/3), bilinear
  rotate          uniform angle in [-15, 15] degrees, bilinear, constant border 0
  cutout          one square mask (28: 8 px, 224: 64 px)
  erasing         random erasing, constant 0
  elastic         Simard: uniform fields, sigma 4, alpha 34, bilinear, constant border
  noise           Gaussian noise, std 8 (of 255), saturating

Each figure first checks seisoku's result (flips and rot90 bit for bit against NumPy, crops
as slices, identities, noise statistics); the peer is skipped cleanly when albumentations is
not installed (`pip install -e .[bench]`).

    python bench/bench_augment.py [--quick] [--json PATH] [--device cpu|cuda]
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import seisoku
from _timing import (
    CPU_WARMUP_S,
    Figure,
    check_close,
    check_true,
    machine_note,
    make_parser,
    report,
    require_cuda,
    sync_for,
    time_fn,
    time_pair,
    to_host,
)
from seisoku import augment as sa


def _albumentations() -> Any | None:
    try:
        import albumentations
    except ImportError:
        return None
    return albumentations


def _transforms(size: int, c: int, alb: Any | None) -> list[tuple[str, Any, Any]]:
    """(name, seisoku transform, albumentations transform or None) for one image size."""
    crop = 24 if size == 28 else 192
    hole = 8 if size == 28 else 64
    ours = [
        ("flip", sa.HorizontalFlip(1.0)),
        ("crop", sa.RandomCrop(crop)),
        ("resized crop", sa.RandomResizedCrop(size)),
        ("rotate", sa.RandomRotation(15)),
        ("cutout", sa.Cutout(1, hole)),
        ("erasing", sa.RandomErasing(1.0)),
        ("elastic", sa.ElasticDistortion(34.0, 4.0)),
        ("noise", sa.GaussianNoise(8.0)),
    ]
    peers: dict[str, Any] = {}
    if alb is not None:
        peers = {
            "flip": alb.HorizontalFlip(p=1.0),
            "crop": alb.RandomCrop(crop, crop, p=1.0),
            "resized crop": alb.RandomResizedCrop(size=(size, size), p=1.0),
            "rotate": alb.Rotate(limit=15, interpolation=1, border_mode=0, p=1.0),
            "cutout": alb.CoarseDropout(
                num_holes_range=(1, 1),
                hole_height_range=(hole, hole),
                hole_width_range=(hole, hole),
                p=1.0,
            ),
            "erasing": alb.Erasing(p=1.0),
            "elastic": alb.ElasticTransform(
                alpha=34.0, sigma=4.0, interpolation=1, noise_distribution="uniform", p=1.0
            ),
            "noise": alb.GaussNoise(std_range=(8 / 255, 8 / 255), p=1.0),
        }
    return [(name, t, peers.get(name)) for name, t in ours]


def _check(name: str, x: np.ndarray, device: str, xd: Any) -> None:
    """Checks of seisoku's result that a broken kernel cannot pass."""
    what = f"{name} {x.shape[1]}x{x.shape[2]}"
    size = x.shape[1]
    if name == "flip":
        out = sa.Compose([sa.HorizontalFlip(1.0)])(xd)
        check_close(out, x[:, :, ::-1], 0, 0, what)
    elif name == "crop":
        crop = 24 if size == 28 else 192
        out = to_host(sa.Compose([sa.RandomCrop(crop)], seed=1)(xd[:4]))
        for o, xi in zip(out, x[:4]):
            found = any(
                np.array_equal(o, xi[i : i + crop, j : j + crop])
                for i in range(size - crop + 1)
                for j in range(size - crop + 1)
            )
            check_true(found, what, "a crop is not a slice of its image")
    elif name == "resized crop":
        same = sa.Compose([sa.RandomResizedCrop(size, scale=(1, 1), ratio=(1, 1))])(xd)
        check_close(same, x, 0, 0, what + " (whole image)")
    elif name == "rotate":
        out = sa.Compose([sa.RandomRotation((90, 90))])(xd)
        check_close(out, np.rot90(x, 1, axes=(1, 2)), 0, 0, what + " (90 degrees)")
    elif name in ("cutout", "erasing"):
        t = sa.Cutout(1, 8) if name == "cutout" else sa.RandomErasing(1.0)
        out = to_host(sa.Compose([t])(xd))
        changed = out != x
        check_true(bool((out[changed] == 0).all()), what, "changed values are not the fill 0")
    elif name == "elastic":
        out = sa.Compose([sa.ElasticDistortion(0.0, 4.0)])(xd)
        check_close(out, x, 0, 0, what + " (alpha 0)")
    elif name == "noise":
        xf = np.full(x.shape, 128.0, np.float32)
        d = to_host(sa.Compose([sa.GaussianNoise(8.0)])(_to_device(xf, device))) - 128.0
        check_true(abs(d.mean()) < 0.1 and abs(d.std() - 8.0) < 0.1, what, f"std {d.std():.3f}")


def _to_device(x: np.ndarray, device: str) -> Any:
    if device == "cuda":
        import cupy

        return cupy.asarray(x)
    return x


def _peer_loop(t: Any, x: np.ndarray, out: np.ndarray) -> Callable[[], None]:
    def run() -> None:
        for i, img in enumerate(x):
            out[i] = t(image=img)["image"]

    return run


def bench_size(
    size: int, c: int, n: int, device: str, quick: bool, alb: Any | None
) -> list[Figure]:
    rng = np.random.default_rng(size)
    x = rng.integers(0, 256, (n, size, size, c), dtype=np.uint8)
    xd = _to_device(x, device)
    sync = sync_for(device)
    figures = []
    opts = {
        "warmup": 2 if quick else 3,
        "repeats": 3 if quick else 7,
        "min_time_s": 0.05 if quick else 0.5,
        "warmup_s": 0.1 if quick else CPU_WARMUP_S,
    }
    for name, ours, peer in _transforms(size, c, alb):
        _check(name, x, device, xd)
        aug = sa.Compose([ours], seed=0)
        out = aug(xd)

        def run_ours(aug: Any = aug, out: Any = out) -> None:
            aug(xd, out=out)

        if peer is not None:
            peer_x = x  # the same images as ours, so neither side works from a warmer cache
            peer_out = np.empty((len(peer_x), *to_host(out).shape[1:]), np.uint8)
            # Alternating rounds, each side's best: a slow spell of a shared machine hits both.
            peer_run = _peer_loop(peer, peer_x, peer_out)
            t_ours, t_peer = time_pair(run_ours, peer_run, sync=sync, **opts)
            peer_rate = len(peer_x) / t_peer
        else:
            t_ours = time_fn(run_ours, sync=sync, **opts)
            peer_rate = float("nan")
        figures.append(
            Figure(
                f"{name} {size}x{size}x{c} uint8 ({device})",
                n / t_ours,
                peer_rate,
                "albumentations" if peer is not None else "albumentations (absent)",
                "img/s",
            )
        )
        report(figures[-1:])
    return figures


def main() -> None:
    parser = make_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    if args.device == "cuda":
        require_cuda()
    note = machine_note()
    if note:
        print(note)
    alb = _albumentations()
    if alb is None:
        print("albumentations is not installed: peer figures are skipped (pip install -e .[bench])")
    print(f"seisoku threads: {seisoku.get_num_threads()}")
    figures = bench_size(28, 1, 512 if args.quick else 4096, args.device, args.quick, alb)
    figures += bench_size(224, 3, 32 if args.quick else 256, args.device, args.quick, alb)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            records = [fig.as_dict() for fig in figures]
            for r in records:  # no peer: null rather than NaN (not JSON)
                r["peer"] = None if r["peer"] != r["peer"] else r["peer"]
            json.dump(records, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
