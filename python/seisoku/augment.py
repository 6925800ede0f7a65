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

Label-aware transforms: `label_map` ({label: new label or "skip"}) tells a transform what it
does to each class. "skip" leaves the samples of that label untouched (as skip_labels does); a
new label applies the transform as usual and relabels the samples it was applied to, e.g.
HorizontalFlip(label_map={b: d, d: b}) for the letters b and d. Transforms see the labels in
order, each the label the previous ones left, and Compose(..., return_labels=True) gives the
final labels: `x_aug, y_aug = aug(x, labels=y, return_labels=True)`. Unlabeled samples (-1)
are never in a map.

Every transform takes its own arguments first, then `p` (probability), `skip_labels` and
`label_map`;
one name per concept throughout: `interpolation` ('nearest', 'bilinear', 'bicubic'),
`border` ('constant', 'reflect', 'edge'), `fill`, `std`. Each transform is built by its
native factory (seisoku::aug), which checks it: bad arguments raise ValueError
"[RandomRotation] argument 'degrees' must be ..., got ...".
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
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

_U64 = 1 << 64
_aug = _core.aug


def _arg(name: str, doc: str) -> property:
    """A transform argument, read from the native step its factory built."""
    return property(lambda self: getattr(self._step, name), doc=doc)


class Transform:
    """Base of the transforms. Each holds the native step (seisoku::AugmentStep) that its
    factory in seisoku::aug built and checked; its arguments read back from that step.
    Bad arguments raise ValueError "[Transform] argument 'x' must be ..., got ..."."""

    _args: tuple[str, ...] = ("p", "skip_labels")

    def __init__(self, step: Any, label_map: Mapping[int, int | str] | None = None) -> None:
        self._step = step if not label_map else _aug.with_label_map(step, label_map)

    p = _arg("p", "Probability of applying the transform to a sample, in [0, 1].")
    skip_labels = _arg("skip_labels", "Labels of the samples the transform never touches.")
    label_map = _arg(
        "label_map", "{label: new label or 'skip'}: what the transform does to each class."
    )

    def mapped_label(self, label: int) -> int | str:
        """The label of a sample of `label` after this transform is applied to it, or 'skip'
        when the transform never applies to it (skip_labels, or a 'skip' entry)."""
        return _aug.mapped_label(self._step, label)

    def step(self) -> Any:
        """The native description of this transform (seisoku::AugmentStep, read-only)."""
        return self._step

    def __repr__(self) -> str:
        shown = self._args + (("label_map",) if self._step.label_map else ())
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in shown)
        return f"{type(self).__name__}({args})"


class HorizontalFlip(Transform):
    """Mirror left-right with probability p (default 0.5); skip_labels and label_map as for
    every transform (e.g. label_map={b: d, d: b} relabels the letters b and d it mirrors)."""

    def __init__(
        self,
        p: float = 0.5,
        skip_labels: Sequence[int] = (),
        label_map: Mapping[int, int | str] | None = None,
    ) -> None:
        super().__init__(_aug.horizontal_flip(p, skip_labels), label_map)


class VerticalFlip(Transform):
    """Mirror top-bottom with probability p (default 0.5); skip_labels and label_map as for
    every transform."""

    def __init__(
        self,
        p: float = 0.5,
        skip_labels: Sequence[int] = (),
        label_map: Mapping[int, int | str] | None = None,
    ) -> None:
        super().__init__(_aug.vertical_flip(p, skip_labels), label_map)


class RandomCrop(Transform):
    """Pad by `padding` pixels on every side, then crop `size` at a uniform random offset.

    Args:
        size: output (height, width) in pixels, or one int for a square.
        padding: pixels added on each side before cropping (default 0).
        border: what the padding holds: 'constant' (default, the value `fill`), 'reflect'
            (mirror about the edge pixel, NumPy's pad mode 'reflect') or 'edge' (the edge
            pixel repeated).
        fill: the constant padding value (default 0).
        p: probability (default 1); a sample it skips gets the centre crop.
        skip_labels: labels of the samples that always get the centre crop.
        label_map: {label: new label or 'skip'} (see the module docstring).
    """

    _args = ("size", "padding", "border", "fill", "p", "skip_labels")
    size = _arg("size", "Output (height, width) in pixels.")
    padding = _arg("padding", "Pixels added on each side before cropping.")
    border = _arg("border", "What the padding holds: 'constant', 'reflect' or 'edge'.")
    fill = _arg("fill", "The constant padding value.")

    def __init__(
        self,
        size: int | tuple[int, int],
        padding: int = 0,
        border: str = "constant",
        fill: float = 0.0,
        p: float = 1.0,
        skip_labels: Sequence[int] = (),
        label_map: Mapping[int, int | str] | None = None,
    ) -> None:
        super().__init__(_aug.random_crop(size, padding, border, fill, p, skip_labels), label_map)


class RandomResizedCrop(Transform):
    """A random box resized to `size` (scale augmentation, as in Inception training).

    The box covers a fraction of the area uniform in `scale` with aspect ratio (width /
    height) log-uniform in `ratio`; after 10 boxes that do not fit, the centre crop of the
    closest ratio. Reads past the box edge repeat the edge pixel.

    Args:
        size: output (height, width) in pixels, or one int.
        scale: area fraction range, 0 < low <= high <= 1 (default (0.08, 1.0)).
        ratio: aspect ratio range, 0 < low <= high (default (3/4, 4/3)).
        interpolation: 'nearest', 'bilinear' (default) or 'bicubic'.
        p: probability (default 1); a sample it skips gets the whole image resized.
        skip_labels: labels of the samples that always get the whole image resized.
        label_map: {label: new label or 'skip'} (see the module docstring).
    """

    _args = ("size", "scale", "ratio", "interpolation", "p", "skip_labels")
    size = _arg("size", "Output (height, width) in pixels.")
    scale = _arg("scale", "Area fraction range (low, high).")
    ratio = _arg("ratio", "Aspect ratio (width / height) range (low, high).")
    interpolation = _arg("interpolation", "'nearest', 'bilinear' or 'bicubic'.")

    def __init__(
        self,
        size: int | tuple[int, int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        interpolation: str = "bilinear",
        p: float = 1.0,
        skip_labels: Sequence[int] = (),
        label_map: Mapping[int, int | str] | None = None,
    ) -> None:
        super().__init__(
            _aug.random_resized_crop(size, scale, ratio, interpolation, p, skip_labels),
            label_map,
        )


class RandomRotation(Transform):
    """Rotate about the image centre by a uniform angle in degrees (counter-clockwise).

    Args:
        degrees: the range (low, high), or one number d >= 0 for (-d, d).
        interpolation: 'nearest', 'bilinear' (default) or 'bicubic'.
        border: 'constant' (default, the value `fill`), 'reflect' or 'edge'.
        fill: value outside the image for border 'constant' (default 0).
        p: probability (default 1).
        skip_labels: labels never rotated (e.g. (6, 9) for digits, when angles reach 180).
        label_map: {label: new label or 'skip'} (see the module docstring).
    """

    _args = ("degrees", "interpolation", "border", "fill", "p", "skip_labels")
    degrees = _arg("degrees", "Angle range (low, high) in degrees.")
    interpolation = _arg("interpolation", "'nearest', 'bilinear' or 'bicubic'.")
    border = _arg("border", "'constant', 'reflect' or 'edge'.")
    fill = _arg("fill", "Value outside the image for border 'constant'.")

    def __init__(
        self,
        degrees: float | tuple[float, float],
        interpolation: str = "bilinear",
        border: str = "constant",
        fill: float = 0.0,
        p: float = 1.0,
        skip_labels: Sequence[int] = (),
        label_map: Mapping[int, int | str] | None = None,
    ) -> None:
        super().__init__(
            _aug.random_rotation(degrees, interpolation, border, fill, p, skip_labels), label_map
        )


class Cutout(Transform):
    """`count` square masks of side `size` pixels at uniform centres (DeVries and Taylor
    2017), clipped at the image border, set to `fill` in every channel.

    Args:
        count: number of masks, >= 0 (default 1).
        size: side of each mask in pixels, >= 1 (default 8).
        fill: the masks' value (default 0).
        p: probability (default 1).
        skip_labels: labels of the samples never masked.
        label_map: {label: new label or 'skip'} (see the module docstring).
    """

    _args = ("count", "size", "fill", "p", "skip_labels")
    count = _arg("count", "Number of masks.")
    fill = _arg("fill", "The masks' value.")

    @property
    def size(self) -> int:
        """Side of each mask in pixels."""
        return self._step.size[0]

    def __init__(
        self,
        count: int = 1,
        size: int = 8,
        fill: float = 0.0,
        p: float = 1.0,
        skip_labels: Sequence[int] = (),
        label_map: Mapping[int, int | str] | None = None,
    ) -> None:
        super().__init__(_aug.cutout(count, size, fill, p, skip_labels), label_map)


class RandomErasing(Transform):
    """One box of area fraction in `scale` and aspect ratio (height / width) log-uniform in
    `ratio` (Zhong et al. 2017) set to `fill`: a number, or 'random' for per-pixel N(0, 1)
    values (float32) or uniform 0..255 (uint8). After 10 boxes that do not fit, nothing is
    erased.

    Args:
        scale: area fraction range, 0 < low <= high <= 1 (default (0.02, 0.33)).
        ratio: aspect ratio range, 0 < low <= high (default (0.3, 3.3)).
        fill: the box's value, or 'random' (default 0).
        p: probability (default 0.5).
        skip_labels: labels of the samples never erased.
        label_map: {label: new label or 'skip'} (see the module docstring).
    """

    _args = ("scale", "ratio", "fill", "p", "skip_labels")
    scale = _arg("scale", "Area fraction range (low, high).")
    ratio = _arg("ratio", "Aspect ratio (height / width) range (low, high).")

    @property
    def fill(self) -> float | str:
        """The box's value, or 'random'."""
        return "random" if self._step.random_fill else self._step.fill

    def __init__(
        self,
        scale: tuple[float, float] = (0.02, 0.33),
        ratio: tuple[float, float] = (0.3, 3.3),
        fill: float | str = 0.0,
        p: float = 0.5,
        skip_labels: Sequence[int] = (),
        label_map: Mapping[int, int | str] | None = None,
    ) -> None:
        super().__init__(_aug.random_erasing(scale, ratio, fill, p, skip_labels), label_map)


class ElasticDistortion(Transform):
    """Elastic distortion (Simard, Steinkraus and Platt 2003).

    Each sample draws two fields of uniform [-1, 1] values, one per pixel, smooths them with a
    Gaussian of `sigma` pixels (gaussian_smooth: exact to 1e-3, at a cost that does not grow
    with sigma), scales them by `alpha` pixels and reads the image at (x + dx, y + dy).

    Args:
        alpha: displacement scale in pixels (default 34, Simard's value for 28x28 digits).
        sigma: smoothing in pixels, in [0, 1e6] (default 4).
        interpolation: 'nearest', 'bilinear' (default) or 'bicubic'.
        border: 'constant' (default, the value `fill`), 'reflect' or 'edge'.
        fill: value outside the image for border 'constant' (default 0).
        p: probability (default 1).
        skip_labels: labels of the samples never distorted.
        label_map: {label: new label or 'skip'} (see the module docstring).
    """

    _args = ("alpha", "sigma", "interpolation", "border", "fill", "p", "skip_labels")
    alpha = _arg("alpha", "Displacement scale in pixels.")
    sigma = _arg("sigma", "Smoothing of the fields in pixels.")
    interpolation = _arg("interpolation", "'nearest', 'bilinear' or 'bicubic'.")
    border = _arg("border", "'constant', 'reflect' or 'edge'.")
    fill = _arg("fill", "Value outside the image for border 'constant'.")

    def __init__(
        self,
        alpha: float = 34.0,
        sigma: float = 4.0,
        interpolation: str = "bilinear",
        border: str = "constant",
        fill: float = 0.0,
        p: float = 1.0,
        skip_labels: Sequence[int] = (),
        label_map: Mapping[int, int | str] | None = None,
    ) -> None:
        super().__init__(
            _aug.elastic_distortion(alpha, sigma, interpolation, border, fill, p, skip_labels),
            label_map,
        )


class GaussianNoise(Transform):
    """Add N(0, std^2) noise to every value, std >= 0 in pixel value units (uint8: the sum is
    rounded and saturated to 0..255); p (default 1), skip_labels and label_map as for every
    transform."""

    _args = ("std", "p", "skip_labels")
    std = _arg("std", "Standard deviation in pixel value units.")

    def __init__(
        self,
        std: float,
        p: float = 1.0,
        skip_labels: Sequence[int] = (),
        label_map: Mapping[int, int | str] | None = None,
    ) -> None:
        super().__init__(_aug.gaussian_noise(std, p, skip_labels), label_map)


def _layout(x_shape: tuple, layout: str, owner: str) -> str:
    """The layout to pass on: 'auto' becomes 'NHWC' or 'NCHW', the one whose channel axis
    alone is <= 4 (a shape that is not 4-D goes on as 'NHWC', for the native op to report)."""
    if layout != "auto":
        return layout
    if len(x_shape) != 4:
        return "NHWC"
    last, second = x_shape[3] <= 4, x_shape[1] <= 4
    if last and not second:
        return "NHWC"
    if second and not last:
        return "NCHW"
    raise ValueError(
        f"[{owner}] argument 'layout' must be 'NHWC' or 'NCHW' for shape {tuple(x_shape)}, "
        "whose layout 'auto' cannot tell, got 'auto'"
    )


def _count(owner: str, name: str, value: Any, low: int) -> int:
    """An int >= low for the arguments that only this module uses (sizes it allocates, grid
    layout, step spacing); the native ops check their own."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"[{owner}] argument '{name}' must be an int >= {low}, got {value!r}")
    return int(value)


def _u64(owner: str, name: str, value: Any) -> int:
    """A Python int as the native ops' uint64 (seeds and sample offsets)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < _U64:
        raise ValueError(f"[{owner}] argument '{name}' must be an int in [0, 2**64), got {value!r}")
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
                    f"[Compose] argument 'transforms' must hold seisoku.augment transforms, "
                    f"got {t!r} at index {i}"
                )
        if layout not in ("auto", "NHWC", "NCHW"):
            raise ValueError(
                f"[Compose] argument 'layout' must be 'auto', 'NHWC' or 'NCHW', got {layout!r}"
            )
        self.transforms = transforms
        self.seed = _u64("Compose", "seed", seed)
        self.layout = layout
        self._steps = [t.step() for t in transforms]
        self._results = BufferPool()

    def __getstate__(self) -> dict[str, Any]:
        """Pickles and copies hold the transforms (their native steps pickle), seed and
        layout; the reusable results stay behind."""
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
        return_labels: bool = False,
    ) -> Array | tuple[Array, Array]:
        """The augmented batch: an array (or `out`) of x's dtype, layout and device; with
        return_labels, the pair (batch, labels after the transforms' label_maps), the labels
        int64 (N,) on the device of the given labels.

        Without `out`, a NumPy result reuses the memory of an earlier result that nothing
        holds any more (the Compose keeps its last two), so a loop that drops each batch
        writes into pages already mapped; a result you keep is never written again.

        Args:
            x: (N, H, W, C) or (N, C, H, W) uint8 or float32, NumPy or CuPy, C-contiguous.
            labels: optional int labels (N,) for the transforms' skip_labels and label_map
                (NumPy or CuPy; CuPy labels are copied to the host); -1 marks an unlabeled
                sample, which every transform treats as one of an unlisted label.
            sample_offset: added to the sample index of every draw; pass e.g. epoch * N or
                the count of samples seen so far for fresh draws that are reproducible.
            out: optional preallocated result.
            return_labels: also return the labels after the pipeline (needs labels).
        """
        sample_offset = _u64("augment", "sample_offset", sample_offset)
        if return_labels and labels is None:
            raise ValueError(
                "[augment] argument 'labels' must be given with return_labels=True, got None"
            )
        shape = tuple(x.shape)
        layout = _layout(shape, self.layout, "augment")
        if out is None:
            out_shape = tuple(_core.augment_output_shape(list(shape), self._steps, layout))
            if type(x) is np.ndarray:
                out = self._results.get("out", out_shape, x.dtype)
            else:  # CuPy arrays come from CuPy's pool; anything else the op rejects
                out = array_module(x).empty(out_shape, dtype=x.dtype)
        on_device = labels is not None and is_cuda_array(labels)
        if labels is not None:
            if on_device:
                labels = labels.get()
            labels = np.ascontiguousarray(labels)
            if labels.dtype.kind in "iu" and labels.dtype != np.int32:
                labels = labels.astype(np.int64)
        new_labels = None
        if return_labels:
            new_labels = np.empty(labels.shape[:1] if labels.ndim else (0,), dtype=np.int64)
        _core.augment(x, out, self._steps, layout, self.seed, sample_offset, labels, new_labels)
        if not return_labels:
            return out
        if on_device:
            new_labels = array_module(x).asarray(new_labels)
        return out, new_labels

    @property
    def relabels(self) -> bool:
        """Whether a transform of the pipeline maps a label to another one (label_map)."""
        return any(v != "skip" and v != k for t in self.transforms for k, v in t.label_map.items())

    def trainer_hook(
        self, image_shape: Sequence[int] | None = None, samples_per_step: int = 1 << 32
    ) -> Callable[..., Array]:
        """A callable (x_batch, step, labels=None, first_row=0) -> augmented batch for
        Trainer.fit(augment=...), which passes the batch's labels to it (for skip_labels).

        Batch `step` draws with sample_offset = step * samples_per_step, so every step of
        every epoch gets fresh, reproducible draws. first_row says which row of the step's
        whole batch x_batch's row 0 is (data parallel shards): a shard draws what its rows
        draw in the whole batch. A pipeline that relabels (label_map) is a ValueError here:
        Trainer.fit keeps the batch's own labels (train with
        seisoku.semi_consistency.ConsistencyTrainer, which takes the new labels). With
        image_shape (e.g. (1, 28, 28)) flat batches (B, prod(image_shape)) are reshaped to
        (B, *image_shape) and back; batches that already have image axes are augmented as
        they are.
        """
        shape = None if image_shape is None else tuple(int(v) for v in image_shape)
        per_step = _count("trainer_hook", "samples_per_step", samples_per_step, 1)
        if self.relabels:
            raise ValueError(
                "[trainer_hook] argument 'transforms' must not relabel samples (Trainer.fit "
                "keeps each batch's labels), got label_maps "
                f"{[t.label_map for t in self.transforms if t.label_map]}"
            )

        def hook(x: Array, step: int, labels: Array | None = None, first_row: int = 0) -> Array:
            offset = (int(step) * per_step + int(first_row)) % _U64
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
        versions = _count("save_grid", "versions", versions, 1)
        n = int(x.shape[0])
        augmented = [self(x, labels=labels, sample_offset=v * n) for v in range(versions)]
        return save_grid(
            path, x, augmented, layout=_layout(tuple(x.shape), self.layout, "augment"), scale=scale
        )


def gaussian_smooth(x: Array, sigma: float, out: Array | None = None) -> Array:
    """x (N, H, W) float32 smoothed along W and H by the sampled Gaussian of `sigma` pixels,
    sigma in [0, 1e6], the values past each edge taken equal to the edge value (scipy.ndimage's
    mode "nearest"): the filter of ElasticDistortion. Exact to 1e-3 of the result's largest
    value for every sigma: the sampled kernel up to sigma 4/3, above it a recursive filter
    (three causal and three anticausal second-order sections, started from the extended edge)
    whose cost does not grow with sigma; sigma 0 is a copy."""
    if out is None:
        out = array_module(x).empty_like(x)
    _core.gaussian_smooth(x, out, sigma)
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
    shape = tuple(
        _count("elastic_displacement", k, v, 0)
        for k, v in (("n", n), ("height", height), ("width", width))
    )
    out = device_module(device).empty((shape[0], 2, *shape[1:]), dtype=np.float32)
    _core.elastic_displacement(
        out,
        alpha,
        sigma,
        _u64("elastic_displacement", "seed", seed),
        _u64("elastic_displacement", "sample_offset", sample_offset),
        step_index,
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
    in pixels (the resampling of ElasticDistortion). interpolation 'nearest', 'bilinear'
    (default) or 'bicubic'; border 'constant' (default, the value `fill`), 'reflect' or
    'edge'; layout 'NHWC', 'NCHW' or 'auto' (default)."""
    layout = _layout(tuple(x.shape), layout, "displace")
    if out is None:
        out = array_module(x).empty_like(x)
    _core.displace(x, disp, out, layout, interpolation, border, fill)
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
        raise ValueError(
            f"[write_png] argument 'image' must be (H, W) or (H, W, 3), got shape {image.shape}"
        )
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
            raise ValueError(
                f"[save_grid] argument 'augmented' must hold batches of {n} samples, "
                f"got one of {b.shape[0]}"
            )
    ch = max(c.shape[1] for c in cells)
    cw = max(c.shape[2] for c in cells)
    color = any(c.shape[3] == 3 for c in cells)
    if scale is None:
        scale = max(1, 96 // ch)
    scale = _count("save_grid", "scale", scale, 1)
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
