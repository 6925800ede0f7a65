"""Batch image augmentation: one native call per batch, random parameters per sample.

    aug = seisoku.augment.Compose(
        [seisoku.augment.RandomCrop(28, padding=2), seisoku.augment.RandomRotation(15),
         seisoku.augment.ElasticDistortion(alpha=34, sigma=4)], seed=0)
    x_aug = aug(x)                       # x: (N, H, W, C) or (N, C, H, W), uint8 or float32
    x_aug = aug(x, sample_offset=epoch * len(x))   # fresh, reproducible draws per epoch

Sample i draws its parameters from Philox keyed by (seed, i + sample_offset, transform
index): the same result on CPU (NumPy arrays) and GPU (CuPy arrays), for any thread count
and however the data is split into batches. Sizes and displacements are in pixels, angles in
degrees (counter-clockwise as displayed), noise in pixel value units. uint8 results are
rounded and saturated; float32 values are never clamped.

Consecutive geometric transforms (flips, crops, rotation) are folded into one resampling
where that is exact. A transform not applied to a sample (probability p, or a label listed
in its skip_labels) leaves the sample unchanged without shifting any other draw.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np

from . import _core
from ._array import BufferPool, array_module, device_module, is_cuda_array

Array = Any

__all__ = [
    "Compose",
    "Cutout",
    "ElasticDistortion",
    "GaussianNoise",
    "HorizontalFlip",
    "RandomCrop",
    "RandomErasing",
    "RandomResizedCrop",
    "RandomRotation",
    "Transform",
    "VerticalFlip",
    "displace",
    "elastic_displacement",
    "gaussian_smooth",
    "save_grid",
    "write_png",
]

INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
BORDERS = ("constant", "reflect", "edge")
_U64 = 1 << 64


def _fail(owner: str, name: str, must: str, value: Any) -> None:
    raise ValueError(f"[{owner}] {name} must be {must}, got {value!r}")


def _prob(owner: str, p: Any, name: str = "p") -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        _fail(owner, name, "a number in [0, 1]", p)
    return float(p)


def _int(owner: str, name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        _fail(owner, name, f"an int >= {low}", value)
    return int(value)


def _real(owner: str, name: str, value: Any, low: float | None = None) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.floating, np.integer))
    if not ok or not math.isfinite(float(value)) or (low is not None and value < low):
        _fail(owner, name, "a finite number" + ("" if low is None else f" >= {low}"), value)
    return float(value)


def _size(owner: str, size: Any) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        _fail(owner, "size", "an int or an (height, width) pair of ints >= 1", size)
    return _int(owner, "size", size[0], 1), _int(owner, "size", size[1], 1)


def _range(owner: str, name: str, value: Any, low: float, high: float, open_low: bool) -> tuple:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        _fail(owner, name, "a (low, high) pair", value)
    lo, hi = (_real(owner, name, v) for v in value)
    if (lo <= low if open_low else lo < low) or hi < lo or hi > high:
        rel = "<" if open_low else "<="
        _fail(owner, name, f"a pair with {low} {rel} low <= high <= {high}", value)
    return lo, hi


def _choice(owner: str, name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        _fail(owner, name, "one of " + ", ".join(repr(c) for c in choices), value)
    return value


def _labels(owner: str, skip_labels: Any) -> list[int]:
    try:
        labels = [int(v) for v in skip_labels]
    except (TypeError, ValueError):
        _fail(owner, "skip_labels", "a sequence of ints", skip_labels)
    return labels


class Transform:
    """Base of the transforms: a probability p and the labels it must never touch."""

    op = ""

    def __init__(self, p: float, skip_labels: Sequence[int]) -> None:
        name = type(self).__name__
        self.p = _prob(name, p)
        self.skip_labels = tuple(_labels(name, skip_labels))

    def _fields(self) -> dict[str, Any]:
        return {}

    def step(self) -> _core.AugmentStep:
        """The native description of this transform (seisoku::AugmentStep)."""
        s = _core.AugmentStep()
        s.op = self.op
        s.p = self.p
        s.skip_labels = list(self.skip_labels)
        for key, value in self._fields().items():
            setattr(s, key, value)
        return s

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class HorizontalFlip(Transform):
    """Mirror left-right with probability p (default 0.5)."""

    op = "horizontal_flip"

    def __init__(self, p: float = 0.5, skip_labels: Sequence[int] = ()) -> None:
        super().__init__(p, skip_labels)


class VerticalFlip(Transform):
    """Mirror top-bottom with probability p (default 0.5)."""

    op = "vertical_flip"

    def __init__(self, p: float = 0.5, skip_labels: Sequence[int] = ()) -> None:
        super().__init__(p, skip_labels)


class RandomCrop(Transform):
    """Pad by `padding` pixels on every side, then crop `size` at a uniform random offset.

    Args:
        size: output (height, width) in pixels, or one int for a square.
        padding: pixels added on each side before cropping (default 0).
        pad_mode: 'constant' (the value `fill`), 'reflect' (mirror about the edge pixel,
            NumPy's pad mode 'reflect') or 'edge' (repeat the edge pixel).
        fill: the constant padding value (default 0).
        p: probability (default 1); a sample it skips gets the centre crop.
    """

    op = "random_crop"

    def __init__(
        self,
        size: int | tuple[int, int],
        padding: int = 0,
        pad_mode: str = "constant",
        fill: float = 0.0,
        p: float = 1.0,
        skip_labels: Sequence[int] = (),
    ) -> None:
        super().__init__(p, skip_labels)
        self.size = _size("RandomCrop", size)
        self.padding = _int("RandomCrop", "padding", padding, 0)
        self.pad_mode = _choice("RandomCrop", "pad_mode", pad_mode, BORDERS)
        self.fill = _real("RandomCrop", "fill", fill)

    def _fields(self) -> dict[str, Any]:
        return {
            "height": self.size[0],
            "width": self.size[1],
            "padding": self.padding,
            "border": self.pad_mode,
            "fill": self.fill,
        }


class RandomResizedCrop(Transform):
    """A random box resized to `size` (scale augmentation, as in Inception training).

    The box covers a fraction of the area uniform in `scale` with aspect ratio (width /
    height) log-uniform in `ratio`; after 10 boxes that do not fit, the centre crop of the
    closest ratio. Reads past the box edge repeat the edge pixel.

    Args:
        size: output (height, width) in pixels, or one int.
        scale: area fraction range (default (0.08, 1.0)).
        ratio: aspect ratio range (default (3/4, 4/3)).
        interpolation: 'nearest', 'bilinear' (default) or 'bicubic'.
        p: probability (default 1); a sample it skips gets the whole image resized.
    """

    op = "random_resized_crop"

    def __init__(
        self,
        size: int | tuple[int, int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        interpolation: str = "bilinear",
        p: float = 1.0,
        skip_labels: Sequence[int] = (),
    ) -> None:
        super().__init__(p, skip_labels)
        name = "RandomResizedCrop"
        self.size = _size(name, size)
        self.scale = _range(name, "scale", scale, 0.0, 1.0, True)
        self.ratio = _range(name, "ratio", ratio, 0.0, 1e30, True)
        self.interpolation = _choice(name, "interpolation", interpolation, INTERPOLATIONS)

    def _fields(self) -> dict[str, Any]:
        return {
            "height": self.size[0],
            "width": self.size[1],
            "lo": self.scale[0],
            "hi": self.scale[1],
            "ratio_lo": self.ratio[0],
            "ratio_hi": self.ratio[1],
            "interp": self.interpolation,
            "border": "edge",
        }


class RandomRotation(Transform):
    """Rotate about the image centre by a uniform angle in degrees (counter-clockwise).

    Args:
        degrees: the range (low, high), or one number d for (-d, d).
        interpolation: 'nearest', 'bilinear' (default) or 'bicubic'.
        border: 'constant' (default, the value `fill`), 'reflect' or 'edge'.
        fill: value outside the image for border 'constant' (default 0).
        p: probability (default 1).
        skip_labels: labels never rotated (e.g. (6, 9) for digits, when angles reach 180).
    """

    op = "random_rotation"

    def __init__(
        self,
        degrees: float | tuple[float, float],
        interpolation: str = "bilinear",
        border: str = "constant",
        fill: float = 0.0,
        p: float = 1.0,
        skip_labels: Sequence[int] = (),
    ) -> None:
        super().__init__(p, skip_labels)
        name = "RandomRotation"
        if isinstance(degrees, (int, float)) and not isinstance(degrees, bool):
            d = _real(name, "degrees", degrees, 0.0)
            degrees = (-d, d)
        self.degrees = _range(name, "degrees", degrees, -1e9, 1e9, False)
        self.interpolation = _choice(name, "interpolation", interpolation, INTERPOLATIONS)
        self.border = _choice(name, "border", border, BORDERS)
        self.fill = _real(name, "fill", fill)

    def _fields(self) -> dict[str, Any]:
        return {
            "lo": self.degrees[0],
            "hi": self.degrees[1],
            "interp": self.interpolation,
            "border": self.border,
            "fill": self.fill,
        }


class Cutout(Transform):
    """`num_holes` square masks of side `size` pixels at uniform centres (DeVries and Taylor
    2017), clipped at the image border, set to `fill` (default 0) in every channel."""

    op = "cutout"

    def __init__(
        self,
        num_holes: int = 1,
        size: int = 8,
        fill: float = 0.0,
        p: float = 1.0,
        skip_labels: Sequence[int] = (),
    ) -> None:
        super().__init__(p, skip_labels)
        self.num_holes = _int("Cutout", "num_holes", num_holes, 0)
        self.size = _int("Cutout", "size", size, 1)
        self.fill = _real("Cutout", "fill", fill)

    def _fields(self) -> dict[str, Any]:
        return {"count": self.num_holes, "height": self.size, "width": self.size, "fill": self.fill}


class RandomErasing(Transform):
    """With probability p, one box of area fraction in `scale` and aspect ratio (height /
    width) log-uniform in `ratio` (Zhong et al. 2017) set to `value`: a number, or 'random'
    for per-pixel N(0, 1) values (float32) or uniform 0..255 (uint8). After 10 boxes that do
    not fit, nothing is erased."""

    op = "random_erasing"

    def __init__(
        self,
        p: float = 0.5,
        scale: tuple[float, float] = (0.02, 0.33),
        ratio: tuple[float, float] = (0.3, 3.3),
        value: float | str = 0.0,
        skip_labels: Sequence[int] = (),
    ) -> None:
        super().__init__(p, skip_labels)
        name = "RandomErasing"
        self.scale = _range(name, "scale", scale, 0.0, 1.0, True)
        self.ratio = _range(name, "ratio", ratio, 0.0, 1e30, True)
        if value != "random":
            value = _real(name, "value", value)
        self.value = value

    def _fields(self) -> dict[str, Any]:
        random_fill = self.value == "random"
        return {
            "lo": self.scale[0],
            "hi": self.scale[1],
            "ratio_lo": self.ratio[0],
            "ratio_hi": self.ratio[1],
            "random_fill": random_fill,
            "fill": 0.0 if random_fill else self.value,
        }


class ElasticDistortion(Transform):
    """Elastic distortion (Simard, Steinkraus and Platt 2003).

    Each sample draws two fields of uniform [-1, 1] values, one per pixel, smooths them with a
    Gaussian of `sigma` pixels (see gaussian_smooth: a recursive filter from sigma 3 up, so
    the cost does not grow with sigma), scales them by `alpha` pixels and reads the image at
    (x + dx, y + dy).

    Args:
        alpha: displacement scale in pixels (default 34, Simard's value for 28x28 digits).
        sigma: smoothing in pixels, >= 0 (default 4).
        interpolation: 'nearest', 'bilinear' (default) or 'bicubic'.
        border: 'constant' (default, the value `fill`), 'reflect' or 'edge'.
        fill: value outside the image for border 'constant' (default 0).
        p: probability (default 1).
    """

    op = "elastic_distortion"

    def __init__(
        self,
        alpha: float = 34.0,
        sigma: float = 4.0,
        interpolation: str = "bilinear",
        border: str = "constant",
        fill: float = 0.0,
        p: float = 1.0,
        skip_labels: Sequence[int] = (),
    ) -> None:
        super().__init__(p, skip_labels)
        name = "ElasticDistortion"
        self.alpha = _real(name, "alpha", alpha)
        self.sigma = _real(name, "sigma", sigma, 0.0)
        self.interpolation = _choice(name, "interpolation", interpolation, INTERPOLATIONS)
        self.border = _choice(name, "border", border, BORDERS)
        self.fill = _real(name, "fill", fill)

    def _fields(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "sigma": self.sigma,
            "interp": self.interpolation,
            "border": self.border,
            "fill": self.fill,
        }


class GaussianNoise(Transform):
    """Add N(0, std^2) noise to every value, std in pixel value units (uint8: the sum is
    rounded and saturated to 0..255)."""

    op = "gaussian_noise"

    def __init__(self, std: float, p: float = 1.0, skip_labels: Sequence[int] = ()) -> None:
        super().__init__(p, skip_labels)
        self.std = _real("GaussianNoise", "std", std, 0.0)

    def _fields(self) -> dict[str, Any]:
        return {"stddev": self.std}


def _layout(x_shape: tuple, layout: str, owner: str) -> str:
    """'NHWC' or 'NCHW' for a 4-D shape; 'auto': the one whose channel axis alone is <= 4."""
    if len(x_shape) != 4:
        raise ValueError(
            f"[{owner}] x must be 4-D (N, H, W, C) or (N, C, H, W), got shape {tuple(x_shape)}"
        )
    if layout in ("NHWC", "NCHW"):
        return layout
    if layout != "auto":
        _fail(owner, "layout", "'auto', 'NHWC' or 'NCHW'", layout)
    last, second = x_shape[3] <= 4, x_shape[1] <= 4
    if last and not second:
        return "NHWC"
    if second and not last:
        return "NCHW"
    raise ValueError(
        f"[{owner}] cannot tell the layout of shape {tuple(x_shape)}: pass layout='NHWC' or 'NCHW'"
    )


def _u64(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < _U64:
        _fail(owner, name, "an int in [0, 2**64)", value)
    return int(value)


class Compose:
    """A pipeline of transforms applied to whole batches in one native call.

    Args:
        transforms: the transforms, applied in order.
        seed: key of the random draws, an int in [0, 2**64) (default 0).
        layout: 'NHWC', 'NCHW' or 'auto' (default: NHWC when only the last axis is <= 4,
            NCHW when only axis 1 is; any other shape raises ValueError).
    """

    def __init__(
        self, transforms: Sequence[Transform], seed: int = 0, layout: str = "auto"
    ) -> None:
        transforms = list(transforms)
        for i, t in enumerate(transforms):
            if not isinstance(t, Transform):
                raise ValueError(
                    f"[Compose] transforms[{i}] must be a seisoku.augment transform, got {t!r}"
                )
        self.transforms = transforms
        self.seed = _u64("Compose", "seed", seed)
        self.layout = _choice("Compose", "layout", layout, ("auto", "NHWC", "NCHW"))
        self._steps = [t.step() for t in transforms]
        self._results = BufferPool()

    def __getstate__(self) -> dict[str, Any]:
        """Pickles and copies hold the transforms, seed and layout: the native steps are
        rebuilt from the transforms, and the reusable results stay behind."""
        state = dict(self.__dict__)
        del state["_steps"], state["_results"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._steps = [t.step() for t in self.transforms]
        self._results = BufferPool()

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r}, seed={self.seed}, layout={self.layout!r})"

    def output_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Shape of the result for an input batch of `shape`."""
        layout = _layout(tuple(shape), self.layout, "augment")
        return tuple(_core.augment_output_shape(list(shape), self._steps, layout))

    def __call__(
        self,
        x: Array,
        labels: Array | None = None,
        sample_offset: int = 0,
        out: Array | None = None,
    ) -> Array:
        """The augmented batch: an array (or `out`) of x's dtype, layout and device.

        Without `out`, a NumPy result reuses the memory of an earlier result that nothing
        holds any more (the Compose keeps its last two), so a loop that drops each batch
        writes into pages already mapped; a result you keep is never written again.

        Args:
            x: (N, H, W, C) or (N, C, H, W) uint8 or float32, NumPy or CuPy, C-contiguous.
            labels: optional int labels (N,) for the transforms' skip_labels (NumPy or CuPy;
                CuPy labels are copied to the host).
            sample_offset: added to the sample index of every draw; pass e.g. epoch * N or
                the count of samples seen so far for fresh draws that are reproducible.
            out: optional preallocated result.
        """
        sample_offset = _u64("augment", "sample_offset", sample_offset)
        shape = tuple(x.shape)
        layout = _layout(shape, self.layout, "augment")
        if out is None:
            out_shape = tuple(_core.augment_output_shape(list(shape), self._steps, layout))
            if type(x) is np.ndarray:
                out = self._results.get("out", out_shape, x.dtype)
            else:  # CuPy arrays come from CuPy's pool; anything else the op rejects
                out = array_module(x).empty(out_shape, dtype=x.dtype)
        if labels is not None:
            if is_cuda_array(labels):
                labels = labels.get()
            labels = np.ascontiguousarray(labels)
            if labels.dtype.kind in "iu" and labels.dtype != np.int32:
                labels = labels.astype(np.int64)
        _core.augment(x, out, self._steps, layout, self.seed, sample_offset, labels)
        return out

    def trainer_hook(
        self, image_shape: Sequence[int] | None = None, samples_per_step: int = 1 << 32
    ) -> Callable[..., Array]:
        """A callable (x_batch, step, labels=None) -> augmented batch for
        Trainer.fit(augment=...), which passes the batch's labels to it (for skip_labels).

        Batch `step` draws with sample_offset = step * samples_per_step, so every step of
        every epoch gets fresh, reproducible draws. With image_shape (e.g. (1, 28, 28)) flat
        batches (B, prod(image_shape)) are reshaped to (B, *image_shape) and back; batches
        that already have image axes are augmented as they are.
        """
        shape = None if image_shape is None else tuple(int(v) for v in image_shape)
        per_step = _int("trainer_hook", "samples_per_step", samples_per_step, 1)

        def hook(x: Array, step: int, labels: Array | None = None) -> Array:
            offset = (int(step) * per_step) % _U64
            if shape is None or x.ndim != 2:
                return self(x, labels=labels, sample_offset=offset)
            y = self(x.reshape((x.shape[0], *shape)), labels=labels, sample_offset=offset)
            return y.reshape((y.shape[0], -1))

        return hook

    def save_grid(
        self,
        path: str,
        x: Array,
        versions: int = 6,
        labels: Array | None = None,
        scale: int | None = None,
    ) -> str:
        """Write a PNG with one row per sample of x: the original, then `versions` augmented
        draws (sample offsets 0, N, 2N, ...). Returns path."""
        versions = _int("save_grid", "versions", versions, 1)
        n = int(x.shape[0])
        augmented = [self(x, labels=labels, sample_offset=v * n) for v in range(versions)]
        return save_grid(
            path, x, augmented, layout=_layout(tuple(x.shape), self.layout, "augment"), scale=scale
        )


def gaussian_smooth(x: Array, sigma: float, out: Array | None = None) -> Array:
    """x (N, H, W) float32 smoothed along H and W by a Gaussian of sigma pixels, edge values
    extended (the filter of ElasticDistortion): sigma >= 3 the Young-van Vliet recursive
    filter (cost independent of sigma, within about 4% of the Gaussian's peak), 0.5 <= sigma
    < 3 the sampled Gaussian of radius ceil(3 sigma), smaller sigma the 3-tap filter of
    variance sigma^2, sigma 0 a copy."""
    if out is None:
        out = array_module(x).empty_like(x)
    _core.gaussian_smooth(x, out, float(sigma))
    return out


def elastic_displacement(
    n: int,
    height: int,
    width: int,
    alpha: float,
    sigma: float,
    seed: int = 0,
    sample_offset: int = 0,
    step_index: int = 0,
    device: str = "cpu",
) -> Array:
    """The (N, 2, H, W) float32 fields (dx, dy) in pixels that ElasticDistortion(alpha, sigma)
    at position step_index of Compose(..., seed=seed) draws for samples sample_offset + i."""
    xp = device_module(device)
    out = xp.empty(
        (
            _int("elastic_displacement", "n", n, 0),
            2,
            _int("elastic_displacement", "height", height, 1),
            _int("elastic_displacement", "width", width, 1),
        ),
        dtype=np.float32,
    )
    _core.elastic_displacement(
        out,
        float(alpha),
        float(sigma),
        _u64("elastic_displacement", "seed", seed),
        _u64("elastic_displacement", "sample_offset", sample_offset),
        _int("elastic_displacement", "step_index", step_index, 0),
    )
    return out


def displace(
    x: Array,
    disp: Array,
    interpolation: str = "bilinear",
    border: str = "constant",
    fill: float = 0.0,
    layout: str = "auto",
    out: Array | None = None,
) -> Array:
    """x read at (col + disp[:, 0], row + disp[:, 1]) for every pixel; disp (N, 2, H, W) float32
    in pixels (the resampling of ElasticDistortion)."""
    layout = _layout(tuple(x.shape), layout, "displace")
    if out is None:
        out = array_module(x).empty_like(x)
    _core.displace(
        x,
        disp,
        out,
        layout,
        _choice("displace", "interpolation", interpolation, INTERPOLATIONS),
        _choice("displace", "border", border, BORDERS),
        float(fill),
    )
    return out


# ---- pictures ---------------------------------------------------------------------------


def write_png(path: str, image: np.ndarray) -> str:
    """Write an (H, W) gray or (H, W, 3) RGB uint8 image as a PNG (zlib only). Returns path."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim == 2:
        color = 0
    elif image.ndim == 3 and image.shape[2] == 3:
        color = 2
    else:
        raise ValueError(f"[write_png] image must be (H, W) or (H, W, 3), got {image.shape}")
    h, w = image.shape[:2]
    raw = b"".join(b"\x00" + image[r].tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
    with open(path, "wb") as f:
        f.write(png + chunk(b"IEND", b""))
    return path


def _to_hwc_u8(batch: Array, layout: str, lo: float, hi: float) -> np.ndarray:
    a = batch.get() if is_cuda_array(batch) else np.asarray(batch)
    if layout == "NCHW":
        a = a.transpose(0, 2, 3, 1)
    if a.dtype != np.uint8:
        a = np.clip((a.astype(np.float64) - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5, 0, 255)
        a = a.astype(np.uint8)
    if a.shape[3] not in (1, 3):
        a = a[..., :1]
    return a


def save_grid(
    path: str,
    originals: Array,
    augmented: Array | Sequence[Array],
    layout: str = "auto",
    scale: int | None = None,
) -> str:
    """Write a PNG grid: one row per sample, the original then each augmented batch.

    Args:
        path: where to write the PNG.
        originals: a batch (N, H, W, C) or (N, C, H, W), uint8 or float (float values are
            mapped from the originals' range to 0..255).
        augmented: one batch or a list of batches of the same N (sizes may differ).
        layout: 'NHWC', 'NCHW' or 'auto'.
        scale: pixels per image pixel (default: images about 96 pixels tall).
    Returns:
        path.
    """
    batches = [augmented] if hasattr(augmented, "shape") else list(augmented)
    layout = _layout(tuple(originals.shape), layout, "save_grid")
    host = originals.get() if is_cuda_array(originals) else np.asarray(originals)
    lo, hi = (0.0, 255.0) if host.dtype == np.uint8 else (float(host.min()), float(host.max()))
    cells = [_to_hwc_u8(b, layout, lo, hi) for b in [originals, *batches]]
    n = cells[0].shape[0]
    for b in cells:
        if b.shape[0] != n:
            raise ValueError(f"[save_grid] every batch must hold {n} samples, got {b.shape[0]}")
    ch = max(c.shape[1] for c in cells)
    cw = max(c.shape[2] for c in cells)
    color = any(c.shape[3] == 3 for c in cells)
    if scale is None:
        scale = max(1, 96 // ch)
    scale = _int("save_grid", "scale", scale, 1)
    gap = 2 * scale
    cols = len(cells)
    height = n * ch * scale + (n + 1) * gap
    width = cols * cw * scale + (cols + 1) * gap + 2 * gap  # wider gap after the original
    grid = np.full((height, width, 3), 255, dtype=np.uint8)
    for j, batch in enumerate(cells):
        x0 = gap + j * (cw * scale + gap) + (2 * gap if j > 0 else 0)
        for i in range(n):
            img = batch[i]
            img = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
            if img.shape[2] == 1:
                img = np.repeat(img, 3, axis=2)
            y0 = gap + i * (ch * scale + gap)
            grid[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = img
    return write_png(path, grid if color else grid[..., 0])
