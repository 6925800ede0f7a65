"""Batch image augmentation: seisoku.augment against NumPy, OpenCV, kornia, albumentations
and torchvision, thread for thread and on the whole machine.

Every figure names its threads. Thread for thread: seisoku on 1 thread against each peer on
1. Whole machine: seisoku on all cores against each peer on all cores: the batched peers
(NumPy, torch, kornia) with all of torch's threads, the per-image peers (OpenCV,
albumentations, torchvision) in a process pool over the cores that writes into a shared
batch, as a DataLoader's workers would run them (without the DataLoader's queues, which would
only slow the peer). Each side is timed in a process of its own, so that what `import seisoku`
sets (OMP_WAIT_POLICY) neither helps nor hurts a peer; the sides alternate for a few rounds
and each keeps its best, so that a slow spell of a shared machine hits both.

Peers at their fastest reasonable form:
  numpy           one batched call where per-image randomness does not matter (flip, noise)
                  and a per-image loop of slices for crop, cutout and erasing
  opencv          cv2 called directly per image, writing into the batch (dst=): flip,
                  resized crop (cv2.resize), rotate (cv2.warpAffine), elastic (uniform fields,
                  cv2.GaussianBlur, cv2.remap): the per-image floor
  torch           one batched call on the same NHWC memory (flip, noise)
  kornia          kornia.augmentation on the batch as one tensor (the channels-last NCHW view
                  of the same memory), per-sample parameters (uint8 to float and back
                  included: the data is uint8)
  albumentations  its usual per-image call, each result stored into the batch
  torchvision     transforms.v2 per image, when its wheel matches the installed torch
Equal work: seisoku and the peers that can write into a preallocated batch (OpenCV, the
NumPy loops, the per-image loops that store into the batch) are timed writing into one
("prealloc"); the batched peers that allocate their results (kornia, torch, batched NumPy)
against seisoku allocating a fresh batch per call ("alloc"). The JSON rows are
{"name", "ours", "peer", "peer_name", "unit", "ratio", "threads"}, ratio > 1 meaning seisoku
is better.

Before timing, seisoku's result is checked against independent oracles: flips and rot90 bit
for bit against NumPy, crops as slices of their image, identities, cutout changing exactly one
clipped square to the fill and nothing else, elastic with alpha 34 against
scipy.ndimage.map_coordinates on the fields of seisoku.augment.elastic_displacement, noise
statistics. A peer that is not installed is skipped cleanly.

Transforms (p = 1), images/s for two uint8 batches:
  28x28x1: 4096 images (--quick: 256)     224x224x3: 128 images (--quick: 8)
(--quick: thread for thread only, one round: a smoke test, not figures to quote.)
  flip, crop (24 / 192 px), resized crop (scale (0.08, 1), bilinear), rotate (+-15 degrees,
  bilinear, border 0), cutout (one 8 / 64 px square), erasing (fill 0), elastic (alpha 34,
  sigma 4, bilinear, border 0), noise (std 8, saturating)

    python bench/bench_augment.py [--quick] [--json PATH]
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any, Callable

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _timing import Figure, check_close, check_true, machine_note, make_parser, time_fn  # noqa: E402

NAMES = ("flip", "crop", "resized crop", "rotate", "cutout", "erasing", "elastic", "noise")
SIZES = ((28, 1), (224, 3))
# Which peer runs which transform, and how it is timed (its output form).
PEERS: dict[str, tuple[tuple[str, ...], str]] = {
    "numpy": (("flip", "crop", "cutout", "erasing", "noise"), "prealloc"),
    "opencv": (("flip", "resized crop", "rotate", "elastic"), "prealloc"),
    "kornia": (NAMES, "alloc"),
    "torch": (("flip", "noise"), "alloc"),
    "albumentations": (NAMES, "prealloc"),
    "torchvision": (NAMES, "prealloc"),
}
PER_IMAGE = ("numpy", "opencv", "albumentations", "torchvision")  # a process pool on all cores


def batch_size(size: int, quick: bool) -> int:
    if size == 28:
        return 256 if quick else 4096
    return 8 if quick else 128


def crop_hole(size: int) -> tuple[int, int]:
    """(crop side, cutout side) for an image size."""
    return (24, 8) if size == 28 else (192, 64)


def images(size: int, c: int, n: int) -> np.ndarray:
    """The batch every side works on: uint8 (n, size, size, c), values 1..255."""
    return np.random.default_rng(size).integers(1, 256, (n, size, size, c), dtype=np.uint8)


def sigma_kernel(sigma: float) -> int:
    """Odd kernel side covering +-4 sigma (the peers' Gaussian, as exact as seisoku's)."""
    return 2 * math.ceil(4 * sigma) + 1


# ---- the sides: each returns, per (size, name), a callable that runs one batch ---------------


def seisoku_runs(quick: bool, threads: int) -> dict[tuple[str, int, str], Callable]:
    """Each transform on its own Compose, writing into a preallocated batch ("prealloc") and
    into a fresh one per call ("alloc")."""
    import seisoku
    from seisoku import augment as sa

    seisoku.set_num_threads(threads)
    runs = {}
    for size, c in SIZES:
        x = images(size, c, batch_size(size, quick))
        crop, hole = crop_hole(size)
        transforms = {
            "flip": sa.HorizontalFlip(1.0),
            "crop": sa.RandomCrop(crop),
            "resized crop": sa.RandomResizedCrop(size),
            "rotate": sa.RandomRotation(15),
            "cutout": sa.Cutout(1, hole),
            "erasing": sa.RandomErasing(p=1.0),
            "elastic": sa.ElasticDistortion(34.0, 4.0),
            "noise": sa.GaussianNoise(8.0),
        }
        for name, t in transforms.items():
            aug = sa.Compose([t], seed=0)
            shape = aug.output_shape(x.shape)
            out = np.empty(shape, np.uint8)

            def prealloc(aug=aug, x=x, out=out) -> None:
                aug(x, out=out)

            def alloc(aug=aug, x=x, shape=shape) -> None:
                aug(x, out=np.empty(shape, np.uint8))

            runs[("prealloc", size, name)] = prealloc
            runs[("alloc", size, name)] = alloc
    return runs


def numpy_chunk_fn(name: str, size: int) -> Callable:
    """NumPy on a run of images: fn(rng, x, out). Flip and noise in one batched call (their
    randomness need not differ per image), the others image by image."""
    crop, hole = crop_hole(size)

    def flip_fn(rng, x, out) -> None:
        np.copyto(out, x[:, :, ::-1])

    def noise_fn(rng, x, out) -> None:
        z = rng.standard_normal(x.shape, dtype=np.float32)
        z *= 8.0
        z += x
        np.clip(z, 0, 255, out=z)
        np.rint(z, out=z)
        out[...] = z

    def crop_fn(rng, img, out) -> None:
        oy, ox = rng.integers(0, size - crop + 1, 2)
        out[...] = img[oy : oy + crop, ox : ox + crop]

    def cutout_fn(rng, img, out) -> None:
        out[...] = img
        cy, cx = rng.integers(0, size, 2)
        out[
            max(cy - hole // 2, 0) : cy - hole // 2 + hole,
            max(cx - hole // 2, 0) : cx - hole // 2 + hole,
        ] = 0

    def erasing_fn(rng, img, out) -> None:
        out[...] = img
        for _ in range(10):
            area = size * size * rng.uniform(0.02, 0.33)
            ratio = math.exp(rng.uniform(math.log(0.3), math.log(3.3)))
            eh, ew = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
            if 1 <= eh < size and 1 <= ew < size:
                y0, x0 = rng.integers(0, size - eh + 1), rng.integers(0, size - ew + 1)
                out[y0 : y0 + eh, x0 : x0 + ew] = 0
                return

    if name in ("flip", "noise"):
        return flip_fn if name == "flip" else noise_fn
    one = {"crop": crop_fn, "cutout": cutout_fn, "erasing": erasing_fn}[name]
    return per_image(one)


def per_image(one: Callable) -> Callable:
    """A run of images through fn(rng, img, out_slot), one by one."""

    def fn(rng, x, out) -> None:
        for i in range(len(x)):
            one(rng, x[i], out[i])

    return fn


def opencv_image_fn(name: str, size: int) -> Callable:
    import cv2

    def flip(rng, img, out) -> None:
        cv2.flip(img, 1, dst=out)

    def resized(rng, img, out) -> None:
        for _ in range(10):
            area = size * size * rng.uniform(0.08, 1.0)
            ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
            if 0 < w <= size and 0 < h <= size:
                break
        else:
            w = h = size
        y0, x0 = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
        cv2.resize(
            img[y0 : y0 + h, x0 : x0 + w], (size, size), dst=out, interpolation=cv2.INTER_LINEAR
        )

    def rotate(rng, img, out) -> None:
        m = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), rng.uniform(-15, 15), 1.0)
        cv2.warpAffine(img, m, (size, size), dst=out, flags=cv2.INTER_LINEAR, borderValue=0)

    grid = np.mgrid[0:size, 0:size].astype(np.float32)
    k = sigma_kernel(4.0)

    def elastic(rng, img, out) -> None:
        d = rng.uniform(-1, 1, (2, size, size)).astype(np.float32)
        dx = cv2.GaussianBlur(d[0], (k, k), 4.0, borderType=cv2.BORDER_REPLICATE) * 34.0
        dy = cv2.GaussianBlur(d[1], (k, k), 4.0, borderType=cv2.BORDER_REPLICATE) * 34.0
        cv2.remap(img, grid[1] + dx, grid[0] + dy, cv2.INTER_LINEAR, dst=out, borderValue=0)

    return per_image(
        {"flip": flip, "resized crop": resized, "rotate": rotate, "elastic": elastic}[name]
    )


def albumentations_image_fn(name: str, size: int) -> Callable:
    import albumentations as alb

    crop, hole = crop_hole(size)
    t = {
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
    }[name]

    def one(rng, img, out) -> None:
        out[...] = t(image=img)["image"].reshape(out.shape)

    return per_image(one)


def torchvision_image_fn(name: str, size: int) -> Callable:
    import torch
    from torchvision.transforms import v2

    crop, hole = crop_hole(size)
    bilinear = v2.InterpolationMode.BILINEAR
    t = {
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
    }[name]

    def one(rng, img, out) -> None:
        out[...] = (
            t(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
            .numpy()
            .transpose(1, 2, 0)
        )

    return per_image(one)


CHUNK_FNS = {
    "numpy": numpy_chunk_fn,
    "opencv": opencv_image_fn,
    "albumentations": albumentations_image_fn,
    "torchvision": torchvision_image_fn,
}

# The per-image pool's work, set before the pool forks (workers inherit it).
_POOL_WORK: dict[tuple[int, str], tuple[Callable, np.ndarray, np.ndarray]] = {}


def _pool_chunk(args: tuple[int, str, int, int]) -> None:
    size, name, lo, hi = args
    fn, x, out = _POOL_WORK[(size, name)]
    fn(np.random.default_rng(lo), x[lo:hi], out[lo:hi])


def shared_empty(shape: tuple[int, ...]) -> np.ndarray:
    """A uint8 array in anonymous shared memory (a forked pool's workers write into it)."""
    import mmap

    buf = mmap.mmap(-1, max(1, int(np.prod(shape))))
    return np.frombuffer(buf, np.uint8, int(np.prod(shape))).reshape(shape)


def per_image_runs(peer: str, quick: bool, threads: int) -> dict[tuple[int, str], Callable]:
    """A per-image peer's runs: in this process (threads 1) or split over a pool of `threads`
    processes, each writing its images into the shared batch."""
    runs = {}
    names = PEERS[peer][0]
    for size, c in SIZES:
        x = images(size, c, batch_size(size, quick))
        crop = crop_hole(size)[0]
        for name in names:
            fn = CHUNK_FNS[peer](name, size)
            side = crop if name == "crop" else size
            out = shared_empty((len(x), side, side, c))
            _POOL_WORK[(size, name)] = (fn, x, out)
            if threads == 1:
                rng = np.random.default_rng(0)

                def run(fn=fn, x=x, out=out, rng=rng) -> None:
                    fn(rng, x, out)

            else:
                step = -(-len(x) // threads)
                chunks = [(size, name, lo, min(lo + step, len(x))) for lo in range(0, len(x), step)]

                def run(chunks=chunks) -> None:
                    POOL.map(_pool_chunk, chunks)

            runs[(PEERS[peer][1], size, name)] = run
    return runs


POOL: Any = None


def batched_runs(peer: str, quick: bool, threads: int) -> dict[tuple[int, str], Callable]:
    """The batched torch peers on all of torch's `threads`: plain torch (one call) and kornia
    (one call per batch with per-sample parameters)."""
    import torch

    torch.set_num_threads(threads)
    runs = {}
    for size, c in SIZES:
        x = images(size, c, batch_size(size, quick))
        crop, hole = crop_hole(size)
        # The same NHWC memory as every other side: torch as it is, kornia (which takes NCHW)
        # as the channels-last view of it.
        xh = torch.from_numpy(x)
        xt = xh.permute(0, 3, 1, 2)
        if peer == "torch":

            def tflip(xh=xh) -> None:
                torch.flip(xh, dims=(2,))

            def tnoise(xh=xh) -> None:
                (xh.float() + torch.randn(xh.shape) * 8.0).clamp_(0, 255).round_().to(torch.uint8)

            runs[("alloc", size, "flip")], runs[("alloc", size, "noise")] = tflip, tnoise
            continue
        import kornia.augmentation as kaug

        k = sigma_kernel(4.0)
        # kornia's elastic alpha is in units of half the image (its grid spans [-1, 1]).
        t = {
            "flip": kaug.RandomHorizontalFlip(p=1.0),
            "crop": kaug.RandomCrop((crop, crop), p=1.0),
            "resized crop": kaug.RandomResizedCrop((size, size), p=1.0),
            "rotate": kaug.RandomRotation(15.0, p=1.0),
            "cutout": kaug.RandomErasing(
                scale=(hole * hole / size**2,) * 2, ratio=(1.0, 1.0), p=1.0
            ),
            "erasing": kaug.RandomErasing(p=1.0),
            "elastic": kaug.RandomElasticTransform(
                kernel_size=(k, k), sigma=(4.0, 4.0), alpha=(68.0 / size,) * 2, p=1.0
            ),
            "noise": kaug.RandomGaussianNoise(std=8 / 255, p=1.0),
        }
        for name, aug in t.items():

            def run(aug=aug, xt=xt) -> None:
                y = aug(xt.float().div_(255.0))
                y.mul_(255.0).clamp_(0, 255).round_().to(torch.uint8)

            runs[("alloc", size, name)] = run
    return runs


def worker(spec: dict[str, Any]) -> dict[str, float]:
    """Times one side in this process: {"form/size/name": best seconds}."""
    global POOL
    side, threads, quick = spec["side"], spec["threads"], spec["quick"]
    if side == "seisoku":
        runs = seisoku_runs(quick, threads)
    elif side in ("torch", "kornia"):
        runs = batched_runs(side, quick, threads)
    else:
        runs = per_image_runs(side, quick, threads)
        if threads > 1:
            import multiprocessing

            POOL = multiprocessing.get_context("fork").Pool(threads)
    opts = {"warmup": 1, "repeats": 2 if quick else 5, "min_time_s": 0.01 if quick else 0.3}
    result = {}
    for (form, size, name), run in runs.items():
        result[f"{form}/{size}/{name}"] = time_fn(run, **opts)
    if POOL is not None:
        POOL.close()
    return result


def run_worker(spec: dict[str, Any]) -> dict[str, float] | None:
    """One side in a fresh process; None (with a note) when it cannot run."""
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"{spec['side']}: skipped ({last})")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def available(peer: str) -> bool:
    """Whether the peer's package is installed (found, not imported: a torchvision built for
    another torch fails in its worker, which then skips it)."""
    import importlib.util

    module = {"opencv": "cv2"}.get(peer, peer)
    return importlib.util.find_spec(module) is not None


# ---- checks of seisoku's results against independent oracles ---------------------------------


def check_seisoku() -> None:
    from scipy import ndimage

    from seisoku import augment as sa

    for size, c in SIZES:
        x = images(size, c, 4)
        crop, hole = crop_hole(size)
        what = f"{size}x{size}x{c}"
        check_close(sa.Compose([sa.HorizontalFlip(1.0)])(x), x[:, :, ::-1], 0, 0, "flip " + what)
        out = sa.Compose([sa.RandomCrop(crop)], seed=1)(x)
        for o, xi in zip(out, x):
            found = any(
                np.array_equal(o, xi[i : i + crop, j : j + crop])
                for i in range(size - crop + 1)
                for j in range(size - crop + 1)
            )
            check_true(found, "crop " + what, "a crop is not a slice of its image")
        same = sa.Compose([sa.RandomResizedCrop(size, scale=(1, 1), ratio=(1, 1))])(x)
        check_close(same, x, 0, 0, "resized crop (whole image) " + what)
        rot = sa.Compose([sa.RandomRotation((90, 90))])(x)
        check_close(rot, np.rot90(x, 1, axes=(1, 2)), 0, 0, "rotate (90 degrees) " + what)
        # Cutout: exactly one square of side `hole` (clipped at the border) set to 0 in every
        # channel, everything else untouched (the input has no zeros).
        out = sa.Compose([sa.Cutout(1, hole)], seed=2)(x)
        for o, xi in zip(out, x):
            changed = (o != xi).any(axis=2)
            ys, xs = np.nonzero(changed)
            check_true(len(ys) > 0, "cutout " + what, "nothing changed")
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            full_h = y1 - y0 == hole or y0 == 0 or y1 == size
            full_w = x1 - x0 == hole or x0 == 0 or x1 == size
            check_true(
                y1 - y0 <= hole and x1 - x0 <= hole and full_h and full_w,
                "cutout " + what,
                "not a square",
            )
            check_true(
                bool(changed[y0:y1, x0:x1].all()), "cutout " + what, "the square is not whole"
            )
            check_true(bool((o[y0:y1, x0:x1] == 0).all()), "cutout " + what, "the square is not 0")
        out = sa.Compose([sa.RandomErasing(p=1.0)], seed=3)(x)
        for o, xi in zip(out, x):
            changed = (o != xi).any(axis=2)
            ys, xs = np.nonzero(changed)
            box = (
                (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)) if len(ys) else None
            )
            check_true(
                box is not None and bool((o[box] == 0).all()), "erasing " + what, "not one box of 0"
            )
        # Elastic, alpha 34: bilinear reads at (x + dx, y + dy) of the fields seisoku draws.
        out = sa.Compose([sa.ElasticDistortion(34.0, 4.0)], seed=5)(x)
        disp = sa.elastic_displacement(len(x), size, size, 34.0, 4.0, seed=5).astype(np.float64)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
        ref = np.stack(
            [
                np.stack(
                    [
                        ndimage.map_coordinates(
                            xi[..., ch].astype(np.float64),
                            [yy + d[1], xx + d[0]],
                            order=1,
                            mode="grid-constant",
                        )
                        for ch in range(c)
                    ],
                    axis=-1,
                )
                for xi, d in zip(x, disp)
            ]
        )
        ref = np.clip(np.floor(ref + 0.5), 0, 255)
        diff = np.abs(out.astype(np.float64) - ref)
        check_true(np.abs(disp).max() > 1.0, "elastic " + what, "the fields are ~0")
        check_true(
            diff.max() <= 1 and (diff == 0).mean() > 0.99,
            "elastic " + what,
            f"off by up to {diff.max()}",
        )
        xf = np.full((64, size, size, c), 128.0, np.float32)
        d = sa.Compose([sa.GaussianNoise(8.0)])(xf) - 128.0
        check_true(
            abs(d.mean()) < 0.2 and abs(d.std() - 8.0) < 0.2, "noise " + what, f"std {d.std():.3f}"
        )


# ---- the run ------------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        print(json.dumps(worker(json.loads(sys.argv[2]))))
        return
    parser = make_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    if args.device != "cpu":
        raise SystemExit("bench_augment times the CPU (the peers are CPU libraries)")
    note = machine_note()
    if note:
        print(note)
    cores = os.cpu_count() or 1
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in open("/proc/cpuinfo")
            if ln.startswith("model name")
        ),
        "?",
    )
    print(f"CPU: {cpu}, {cores} cores")
    check_seisoku()
    peers = [p for p in PEERS if available(p)]
    for p in PEERS:
        if p not in peers:
            print(f"{p}: not installed (or does not match torch): its figures are skipped")
    rounds = 1 if args.quick else 3
    figures: list[tuple[Figure, int]] = []
    for threads in [1] if args.quick else sorted({1, cores}):
        best: dict[str, dict[str, float]] = {}
        for _ in range(rounds):  # alternating rounds, each side's best
            for side in ["seisoku", *peers]:
                res = run_worker({"side": side, "threads": threads, "quick": args.quick})
                cur = best.setdefault(side, {})
                for k, v in (res or {}).items():
                    cur[k] = min(v, cur.get(k, math.inf))
        for size, c in SIZES:
            n = batch_size(size, args.quick)
            for name in NAMES:
                for peer in peers:
                    form = PEERS[peer][1]
                    key = f"{form}/{size}/{name}"
                    if key not in best[peer] or key not in best["seisoku"]:
                        continue
                    kind = "processes" if peer in PER_IMAGE and threads > 1 else "threads"
                    label = f"{name} {size}x{size}x{c} uint8 {form}, {threads} {kind}"
                    fig = Figure(
                        label, n / best["seisoku"][key], n / best[peer][key], peer, "img/s"
                    )
                    figures.append((fig, threads))
                    print(
                        f"{label}: ours {fig.ours:.0f} img/s, {peer} {fig.peer:.0f} img/s, "
                        f"ratio {fig.ratio:.2f}",
                        flush=True,
                    )
    if args.json:
        rows = []
        for fig, threads in figures:
            row = fig.as_dict()
            row["threads"] = threads
            rows.append(row)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
