"""Batch image augmentation: seisoku.augment against albumentations and torchvision.

seisoku augments a whole uint8 batch in one call (random parameters per sample) into a
preallocated batch; each peer runs its usual loop of one call per image and stores each
result into a preallocated batch, as a training loop needs one array per batch (without the
store, a crop is a view and costs the peer nothing). albumentations takes HWC NumPy images,
torchvision.transforms.v2 CHW uint8 tensors (with torch's thread count set to seisoku's).
All apply every transform to every image (p=1) of the same batch, and ours alternates with
each peer for three rounds of timing, each side keeping its best, so that a slow spell of a
shared machine hits both. Figures in images/s for two batches:

  28x28x1: 4096 images (--quick: 512)      224x224x3: 256 images (--quick: 32)

  flip            horizontal flip
  crop            random crop (28: 24x24, 224: 192x192), no padding
  resized crop    RandomResizedCrop to the input size, scale (0.08, 1), ratio (3/4, 4/3), bilinear
                  (torchvision without antialiasing, which only acts when shrinking)
  rotate          uniform angle in [-15, 15] degrees, bilinear, constant border 0
  cutout          one square mask (28: 8 px, 224: 64 px); torchvision: RandomErasing of that
                  fixed square area
  erasing         random erasing, constant 0
  elastic         Simard: uniform fields, sigma 4, alpha 34, bilinear, constant border
  noise           Gaussian noise, std 8 (of 255), saturating; torchvision: to float, its
                  GaussianNoise (float images only), back to uint8

Each figure first checks seisoku's result (flips and rot90 bit for bit against NumPy, crops
as slices, identities, noise statistics); a peer that is not installed is skipped cleanly
(`pip install -e .[bench]` for albumentations; torchvision with a matching torch).

    python bench/bench_augment.py [--quick] [--json PATH] [--device cpu|cuda]
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
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


def _torchvision() -> tuple[Any, Any] | None:
    """(torch, torchvision.transforms.v2), or None when torchvision is missing or broken."""
    try:
        import torch
        from torchvision.transforms import v2
    except Exception:  # a torchvision built for another torch fails at import
        return None
    return torch, v2


def _sizes(size: int) -> tuple[int, int]:
    """(crop side, cutout side) for an image size."""
    return (24, 8) if size == 28 else (192, 64)


def _ours(size: int) -> list[tuple[str, Any]]:
    crop, hole = _sizes(size)
    return [
        ("flip", sa.HorizontalFlip(1.0)),
        ("crop", sa.RandomCrop(crop)),
        ("resized crop", sa.RandomResizedCrop(size)),
        ("rotate", sa.RandomRotation(15)),
        ("cutout", sa.Cutout(1, hole)),
        ("erasing", sa.RandomErasing(1.0)),
        ("elastic", sa.ElasticDistortion(34.0, 4.0)),
        ("noise", sa.GaussianNoise(8.0)),
    ]


def _torchvision_transforms(size: int, tv: tuple[Any, Any]) -> dict[str, Any]:
    """torchvision.transforms.v2 transforms with the parameters of _ours, by figure name."""
    torch, v2 = tv
    crop, hole = _sizes(size)
    bilinear = v2.InterpolationMode.BILINEAR
    return {
        "flip": v2.RandomHorizontalFlip(p=1.0),
        "crop": v2.RandomCrop(crop),
        "resized crop": v2.RandomResizedCrop(size, interpolation=bilinear, antialias=False),
        "rotate": v2.RandomRotation(15, interpolation=bilinear, fill=0),
        "cutout": v2.RandomErasing(
            p=1.0, scale=(hole * hole / (size * size),) * 2, ratio=(1.0, 1.0), value=0
        ),
        "erasing": v2.RandomErasing(p=1.0, value=0),
        "elastic": v2.ElasticTransform(alpha=34.0, sigma=4.0, interpolation=bilinear, fill=0),
        "noise": v2.Compose(
            [
                v2.ToDtype(torch.float32, scale=True),
                v2.GaussianNoise(sigma=8 / 255, clip=True),
                v2.ToDtype(torch.uint8, scale=True),
            ]
        ),
    }


def _albumentations_transforms(size: int, alb: Any) -> dict[str, Any]:
    """albumentations transforms with the parameters of _ours, by figure name."""
    crop, hole = _sizes(size)
    return {
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


def _check(name: str, x: np.ndarray, device: str, xd: Any) -> None:
    """Checks of seisoku's result that a broken kernel cannot pass."""
    what = f"{name} {x.shape[1]}x{x.shape[2]}"
    size = x.shape[1]
    if name == "flip":
        out = sa.Compose([sa.HorizontalFlip(1.0)])(xd)
        check_close(out, x[:, :, ::-1], 0, 0, what)
    elif name == "crop":
        crop = _sizes(size)[0]
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


def _albumentations_loop(t: Any, x: np.ndarray, out_shape: tuple[int, ...]) -> Callable[[], None]:
    """albumentations' loop: one call per HWC image, each result stored into a batch."""
    out = np.empty((len(x), *out_shape), np.uint8)

    def run() -> None:
        for i, img in enumerate(x):
            out[i] = t(image=img)["image"]

    return run


def _torchvision_loop(
    torch: Any, t: Any, x: np.ndarray, out_shape: tuple[int, ...]
) -> Callable[[], None]:
    """torchvision's loop: one call per CHW uint8 tensor, each result stored into a batch."""
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    h, w, c = out_shape
    out = torch.empty((len(x), c, h, w), dtype=torch.uint8)

    def run() -> None:
        for i, img in enumerate(xt):
            out[i] = t(img)

    return run


def bench_size(
    size: int, c: int, n: int, device: str, quick: bool, alb: Any | None, tv: Any | None
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
    # (name, its transforms by figure name, loop(transform, images, output image shape)).
    # Both peers work on the same images as ours, so neither side works from a warmer cache.
    peers: list[tuple[str, dict[str, Any], Callable[..., Callable[[], None]]]] = []
    if alb is not None:
        peers.append(
            ("albumentations", _albumentations_transforms(size, alb), _albumentations_loop)
        )
    if tv is not None:
        loop = functools.partial(_torchvision_loop, tv[0])
        peers.append(("torchvision", _torchvision_transforms(size, tv), loop))
    for name, ours in _ours(size):
        _check(name, x, device, xd)
        aug = sa.Compose([ours], seed=0)
        out = aug(xd)
        out_shape = tuple(to_host(out).shape[1:])

        def run_ours(aug: Any = aug, out: Any = out) -> None:
            aug(xd, out=out)

        label = f"{name} {size}x{size}x{c} uint8 ({device})"
        if not peers:
            t_ours = time_fn(run_ours, sync=sync, **opts)
            figures.append(Figure(label, n / t_ours, float("nan"), "no peer installed", "img/s"))
            report(figures[-1:])
        for peer_name, transforms, make_loop in peers:
            # Alternating rounds, each side's best: a slow spell of a shared machine hits both.
            peer_run = make_loop(transforms[name], x, out_shape)
            t0 = time.perf_counter()
            peer_run()  # a slow loop (seconds per batch) gets fewer repeats
            slow = time.perf_counter() - t0 > 1.0
            pair_opts = {**opts, "warmup": 1, "repeats": 3, "min_time_s": 0.0} if slow else opts
            t_ours, t_peer = time_pair(run_ours, peer_run, sync=sync, **pair_opts)
            figures.append(Figure(label, n / t_ours, n / t_peer, peer_name, "img/s"))
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
        print("albumentations is not installed: its figures are skipped (pip install -e .[bench])")
    tv = _torchvision()
    if tv is None:
        print("torchvision is not installed (or does not match torch): its figures are skipped")
    else:
        tv[0].set_num_threads(seisoku.get_num_threads())
    print(f"seisoku threads: {seisoku.get_num_threads()}")
    figures = bench_size(28, 1, 512 if args.quick else 4096, args.device, args.quick, alb, tv)
    figures += bench_size(224, 3, 32 if args.quick else 256, args.device, args.quick, alb, tv)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            records = [fig.as_dict() for fig in figures]
            for r in records:  # no peer: null rather than NaN (not JSON)
                r["peer"] = None if r["peer"] != r["peer"] else r["peer"]
            json.dump(records, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
