"""seisoku.augment: transforms against NumPy references, reproducibility, devices, errors."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import seisoku
from conftest import to_device, to_host
from seisoku import augment as sa

RNG = np.random.default_rng(20240601)


def images(n=16, h=12, w=10, c=1, dtype=np.uint8, layout="NHWC", seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        x = rng.integers(1, 255, (n, h, w, c), dtype=np.uint8)
    else:
        x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    if layout == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def hwc(x, layout):
    """NHWC view of a batch."""
    return x if layout == "NHWC" else x.transpose(0, 2, 3, 1)


# ---- an independent NumPy resampler --------------------------------------------------------


def border_table(n, border, pad):
    """Index read at k + pad for k in [-pad, n + pad), -1 for the constant fill."""
    idx = np.arange(n)
    if border == "constant":
        return np.pad(idx, pad, mode="constant", constant_values=-1)
    return np.pad(idx, pad, mode=border)


def keys_weight(d):
    d = np.abs(d)
    a = -0.5
    return np.where(
        d <= 1,
        (a + 2) * d**3 - (a + 3) * d**2 + 1,
        np.where(d < 2, a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a, 0.0),
    )


def ref_sample(img, sx, sy, interp, border, fill):
    """img (H, W, C) read at float64 coordinates sx, sy (any shape) -> (..., C) float64."""
    h, w, _ = img.shape
    pad = 64
    tx, ty = border_table(w, border, pad), border_table(h, border, pad)
    src = img.astype(np.float64)

    def tap(ix, iy):
        jx = tx[np.clip(ix, -pad, w + pad - 1) + pad]
        jy = ty[np.clip(iy, -pad, h + pad - 1) + pad]
        inside = (jx >= 0) & (jy >= 0)
        v = src[np.maximum(jy, 0), np.maximum(jx, 0)]
        return np.where(inside[..., None], v, fill)

    if interp == "nearest":
        return tap(np.floor(sx + 0.5).astype(int), np.floor(sy + 0.5).astype(int))
    fx, fy = np.floor(sx), np.floor(sy)
    taps = range(0, 2) if interp == "bilinear" else range(-1, 3)
    acc = 0.0
    for j in taps:
        for i in taps:
            if interp == "bilinear":
                wx = 1 - np.abs(sx - (fx + i))
                wy = 1 - np.abs(sy - (fy + j))
            else:
                wx = keys_weight(sx - (fx + i))
                wy = keys_weight(sy - (fy + j))
            acc = acc + (wx * wy)[..., None] * tap(fx.astype(int) + i, fy.astype(int) + j)
    return acc


def ref_rotate(img, degrees, interp, border, fill):
    h, w, _ = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    a = np.deg2rad(degrees)
    sx = np.cos(a) * (xx - cx) - np.sin(a) * (yy - cy) + cx
    sy = np.sin(a) * (xx - cx) + np.cos(a) * (yy - cy) + cy
    return ref_sample(img, sx, sy, interp, border, fill)


def assert_matches_reference(out, ref, dtype):
    if dtype == np.uint8:
        expect = np.clip(np.floor(ref + 0.5), 0, 255)
        diff = np.abs(out.astype(np.int64) - expect)
        assert diff.max() <= 1
        assert (diff == 0).mean() > 0.97  # rounding ties only
    else:
        np.testing.assert_allclose(out, ref, rtol=2e-5, atol=2e-5 * max(1.0, np.abs(ref).max()))


# ---- flips and crops ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("c", [1, 3])
def test_flips_equal_numpy(device, dtype, layout, c):
    x = images(w=37, c=c, dtype=dtype, layout=layout)  # rows of 2 x 16 pixels and a rest
    h_axis, w_axis = (1, 2) if layout == "NHWC" else (2, 3)
    xd = to_device(x, device)
    out = to_host(sa.Compose([sa.HorizontalFlip(1.0)], layout=layout)(xd))
    np.testing.assert_array_equal(out, np.flip(x, w_axis))
    out = to_host(sa.Compose([sa.VerticalFlip(1.0)], layout=layout)(xd))
    np.testing.assert_array_equal(out, np.flip(x, h_axis))
    out = to_host(sa.Compose([sa.VerticalFlip(1.0), sa.HorizontalFlip(1.0)], layout=layout)(xd))
    np.testing.assert_array_equal(out, np.flip(x, (h_axis, w_axis)))


def test_flip_probability_per_sample():
    x = images(n=200)
    out = sa.Compose([sa.HorizontalFlip(0.5)], seed=3)(x)
    flipped = np.array([np.array_equal(o, xi[:, ::-1]) for o, xi in zip(out, x)])
    kept = np.array([np.array_equal(o, xi) for o, xi in zip(out, x)])
    assert (flipped | kept).all()
    assert 60 < flipped.sum() < 140
    np.testing.assert_array_equal(sa.Compose([sa.HorizontalFlip(0.0)])(x), x)


def find_offset(window, padded, h, w):
    for oy in range(padded.shape[0] - h + 1):
        for ox in range(padded.shape[1] - w + 1):
            if np.array_equal(padded[oy : oy + h, ox : ox + w], window):
                return oy, ox
    return None


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_crop_without_padding_is_slicing(device, layout):
    x = images(n=24, h=12, w=10, c=3, layout=layout)
    out = to_host(sa.Compose([sa.RandomCrop((7, 5))], seed=1, layout=layout)(to_device(x, device)))
    xs, os_ = hwc(x, layout), hwc(out, layout)
    assert os_.shape == (24, 7, 5, 3)
    offsets = {find_offset(o, xi, 7, 5) for o, xi in zip(os_, xs)}
    assert None not in offsets
    assert len(offsets) > 8  # offsets vary per sample


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_crop_with_padding_is_slicing_of_numpy_pad(device, mode):
    x = images(n=24, h=9, w=8, c=2)
    aug = sa.Compose([sa.RandomCrop((9, 8), padding=3, pad_mode=mode, fill=7)], seed=2)
    out = to_host(aug(to_device(x, device)))
    kw = {"constant_values": 7} if mode == "constant" else {}
    for o, xi in zip(out, x):
        padded = np.pad(xi, ((3, 3), (3, 3), (0, 0)), mode=mode, **kw)
        assert find_offset(o, padded, 9, 8) is not None


def test_crop_skipped_is_centre_crop():
    x = images(n=4, h=10, w=10)
    out = sa.Compose([sa.RandomCrop(6, p=0.0)])(x)
    np.testing.assert_array_equal(out, x[:, 2:8, 2:8])


# ---- rotation, resized crop, elastic: identities and NumPy references ---------------------


@pytest.mark.parametrize("interp", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_identities(device, interp, dtype):
    x = to_device(images(dtype=dtype, c=3), device)
    rot0 = sa.Compose([sa.RandomRotation((0, 0), interpolation=interp)])
    np.testing.assert_array_equal(to_host(rot0(x)), to_host(x))
    ela0 = sa.Compose([sa.ElasticDistortion(alpha=0, sigma=3, interpolation=interp)])
    np.testing.assert_array_equal(to_host(ela0(x)), to_host(x))
    rrc = sa.Compose([sa.RandomResizedCrop((12, 10), scale=(1, 1), ratio=(10 / 12, 10 / 12))])
    np.testing.assert_array_equal(to_host(rrc(x)), to_host(x))


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_rotation_90_is_rot90(device, layout):
    x = images(n=6, h=11, w=11, c=3, dtype=np.float32, layout=layout)
    axes = (1, 2) if layout == "NHWC" else (2, 3)
    for interp in ("bilinear", "bicubic"):
        aug = sa.Compose([sa.RandomRotation((90, 90), interpolation=interp)], layout=layout)
        out = to_host(aug(to_device(x, device)))
        np.testing.assert_array_equal(out, np.rot90(x, 1, axes=axes))
        aug = sa.Compose([sa.RandomRotation((-90, -90), interpolation=interp)], layout=layout)
        np.testing.assert_array_equal(
            to_host(aug(to_device(x, device))), np.rot90(x, -1, axes=axes)
        )


@pytest.mark.parametrize("interp", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("border", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_rotation_matches_numpy_reference(interp, border, dtype):
    x = images(n=3, h=13, w=17, c=2, dtype=dtype)
    for degrees in (17.0, -128.5):
        aug = sa.Compose([sa.RandomRotation((degrees, degrees), interp, border, fill=3)])
        out = aug(x)
        for o, xi in zip(out, x):
            ref = ref_rotate(xi, degrees, interp, border, 3.0)
            if interp == "nearest":  # ties of x.5 may round either way: compare off the ties
                continue
            assert_matches_reference(o, ref, dtype)
    if interp == "nearest":
        out = sa.Compose([sa.RandomRotation((33, 33), interp, border)])(x)
        match = np.mean(
            [np.mean(o == ref_rotate(xi, 33, interp, border, 0.0)) for o, xi in zip(out, x)]
        )
        assert match > 0.97


@pytest.mark.parametrize("interp", ["bilinear", "bicubic"])
def test_resized_crop_of_whole_image_is_resize(interp):
    x = images(n=2, h=16, w=12, c=3, dtype=np.float32)
    aug = sa.Compose(
        [sa.RandomResizedCrop((7, 9), scale=(1, 1), ratio=(0.75, 0.75), interpolation=interp)]
    )
    out = aug(x)
    yy, xx = np.mgrid[0:7, 0:9].astype(np.float64)
    sx = (xx + 0.5) * 12 / 9 - 0.5
    sy = (yy + 0.5) * 16 / 7 - 0.5
    for o, xi in zip(out, x):
        assert_matches_reference(o, ref_sample(xi, sx, sy, interp, "edge", 0.0), np.float32)


@pytest.mark.parametrize("interp", ["bilinear", "bicubic"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("size", [16, 20])
def test_resized_crop_equals_displacement_bit_for_bit(interp, dtype, c, size):
    # A (size/2)^2 box of a size^2 image resized to size^2 reads (x / 2 + x0 - 1/4,
    # y / 2 + y0 - 1/4), exact in float32; the CPU resamples such axis-aligned maps in two
    # separable passes and displacements pixel by pixel, with the same arithmetic: equal bits
    # for some (x0, y0).
    x = images(n=4, h=size, w=size, c=c, dtype=dtype)
    aug = sa.Compose(
        [sa.RandomResizedCrop(size, scale=(0.25, 0.25), ratio=(1, 1), interpolation=interp)]
    )
    out = aug(x)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for o, xi in zip(out, x):
        found = False
        for y0 in range(size // 2 + 1):
            for x0 in range(size // 2 + 1):
                d = np.stack([xx / 2 + x0 - 0.25 - xx, yy / 2 + y0 - 0.25 - yy])[None]
                ref = sa.displace(
                    xi[None], d.astype(np.float32), interp, border="edge", layout="NHWC"
                )
                found = found or np.array_equal(ref[0], o)
        assert found


def test_resized_crop_box_within_image():
    x = images(n=64, h=20, w=20, c=1)
    aug = sa.Compose([sa.RandomResizedCrop(20, scale=(0.2, 0.5), interpolation="nearest")], seed=5)
    out = aug(x)
    assert out.shape == (64, 20, 20, 1)
    assert not np.array_equal(out, x)
    # Nearest sampling of a box inside the image: every output value occurs in the input.
    for o, xi in zip(out, x):
        assert np.isin(o, xi).all()


@pytest.mark.parametrize("interp", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("border", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_displace_matches_numpy_reference(interp, border, dtype):
    x = images(n=3, h=11, w=9, c=3, dtype=dtype)
    disp = (RNG.standard_normal((3, 2, 11, 9)) * 3).astype(np.float32)
    out = sa.displace(x, disp, interp, border, fill=2.0)
    yy, xx = np.mgrid[0:11, 0:9].astype(np.float64)
    for o, xi, d in zip(out, x, disp):
        ref = ref_sample(
            xi, xx + d[0].astype(np.float64), yy + d[1].astype(np.float64), interp, border, 2.0
        )
        if interp == "nearest":
            assert np.mean(np.abs(o.astype(np.float64) - ref) < 1e-6) > 0.97
        else:
            assert_matches_reference(o, ref, dtype)


@pytest.mark.parametrize("interp", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("c", [1, 3, 2])
def test_interior_and_border_paths_agree_bit_for_bit(interp, dtype, c):
    # Pixels near the edge of x read through the border code; the same pixels of x padded
    # by its edge values read through the interior code. Displacements on a 1/64 grid keep
    # the coordinates exact, so both must give the same bits.
    x = images(n=2, h=9, w=11, c=c, dtype=dtype)
    disp = (np.round(RNG.uniform(-2, 2, (2, 2, 9, 11)) * 64) / 64).astype(np.float32)
    out = sa.displace(x, disp, interp, border="edge", layout="NHWC")
    xp = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="edge")
    dp = np.pad(disp, ((0, 0), (0, 0), (4, 4), (4, 4)))
    big = sa.displace(xp, dp, interp, border="edge", layout="NHWC")
    np.testing.assert_array_equal(big[:, 4:-4, 4:-4], out)
    # Constant border: pixels whose taps all fall outside take a shortcut; padding with the
    # fill value moves some of them inside.
    far = (np.round(RNG.uniform(-12, 12, (2, 2, 9, 11)) * 64) / 64).astype(np.float32)
    out = sa.displace(x, far, interp, border="constant", fill=7.0, layout="NHWC")
    xp = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), constant_values=7)
    dp = np.pad(far, ((0, 0), (0, 0), (4, 4), (4, 4)))
    big = sa.displace(xp, dp, interp, border="constant", fill=7.0, layout="NHWC")
    np.testing.assert_array_equal(big[:, 4:-4, 4:-4], out)


def exact_displace(img, disp, interp, border, fill):
    """The kernels' float32 arithmetic, step by step in NumPy float32 (no fused multiply-add):
    img (H, W, C) read at (x + dx, y + dy); uint8 results rounded half up and saturated."""
    h, w, _ = img.shape
    f32 = np.float32
    yy, xx = np.mgrid[0:h, 0:w].astype(f32)
    sx = np.clip(xx + disp[0], f32(-1e9), f32(1e9))
    sy = np.clip(yy + disp[1], f32(-1e9), f32(1e9))
    pad = 64
    tx, ty = border_table(w, border, pad), border_table(h, border, pad)
    src = img.astype(f32)

    def tap(ix, iy):
        jx = tx[np.clip(ix, -pad, w + pad - 1) + pad]
        jy = ty[np.clip(iy, -pad, h + pad - 1) + pad]
        v = src[np.maximum(jy, 0), np.maximum(jx, 0)]
        return np.where(((jx >= 0) & (jy >= 0))[..., None], v, f32(fill))

    def weights(s):
        if interp == "nearest":
            return np.floor(s + f32(0.5)).astype(np.int64), [np.ones_like(s)]
        f = np.floor(s)
        t = s - f
        if interp == "bilinear":
            return f.astype(np.int64), [f32(1) - t, t]
        t2 = t * t
        t3 = t2 * t
        h = f32(0.5)
        return f.astype(np.int64) - 1, [
            h * ((f32(2) * t2 - t3) - t),
            h * ((f32(3) * t3 - f32(5) * t2) + f32(2)),
            h * ((f32(4) * t2 - f32(3) * t3) + t),
            h * (t3 - t2),
        ]

    kx, wx = weights(sx)
    ky, wy = weights(sy)
    acc = np.zeros(img.shape, f32)
    for j, b in enumerate(wy):
        row = np.zeros(img.shape, f32)
        for i, a in enumerate(wx):
            row = row + a[..., None] * tap(kx + i, ky + j)
        acc = acc + b[..., None] * row
    if img.dtype == np.uint8:
        acc = np.minimum(np.where(acc > 0, acc, f32(0)), f32(255))
        return (acc + f32(0.5)).astype(np.int32).astype(np.uint8)
    return acc


@pytest.mark.parametrize("interp", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("border", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("c", [1, 3, 2])
def test_displace_is_the_float32_arithmetic_bit_for_bit(interp, border, dtype, c):
    # Coordinates near and far outside the image, rows of 21 pixels (two groups of 8 and a
    # rest), every layout of the vector kernels and their pixel-by-pixel fallbacks.
    x = images(n=3, h=10, w=21, c=c, dtype=dtype, seed=4)
    disp = (RNG.standard_normal((3, 2, 10, 21)) * 4).astype(np.float32)
    disp[0, :, :2] = RNG.uniform(-40, 40, (2, 2, 21)).astype(np.float32)
    fill = 5.0 if dtype == np.uint8 else -1.25
    for layout in ("NHWC", "NCHW"):
        xi = x if layout == "NHWC" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        out = hwc(sa.displace(xi, disp, interp, border, fill=fill, layout=layout), layout)
        for o, img, d in zip(out, x, disp):
            np.testing.assert_array_equal(o, exact_displace(img, d, interp, border, fill))


def test_elastic_is_displacement_by_its_fields(device):
    x = to_device(images(n=5, h=14, w=15, c=3, layout="NCHW", dtype=np.float32), device)
    steps = [
        sa.HorizontalFlip(0.0),
        sa.ElasticDistortion(5.0, 2.0, interpolation="bicubic", border="reflect"),
    ]
    out = sa.Compose(steps, seed=11, layout="NCHW")(x, sample_offset=40)
    disp = sa.elastic_displacement(
        5, 14, 15, 5.0, 2.0, seed=11, sample_offset=40, step_index=1, device=device
    )
    ref = sa.displace(x, disp, "bicubic", "reflect", layout="NCHW")
    np.testing.assert_array_equal(to_host(out), to_host(ref))
    assert np.abs(to_host(disp)).max() > 0.1


def test_elastic_fields_are_smoothed_uniform_noise():
    raw = sa.elastic_displacement(4, 30, 40, 1.0, 0.0, seed=2)
    assert raw.min() >= -1 and raw.max() < 1
    assert abs(raw.mean()) < 0.02 and abs(raw.std() - 1 / np.sqrt(3)) < 0.01
    for sigma in (0.3, 1.5, 4.0):
        smooth = sa.elastic_displacement(4, 30, 40, 1.0, sigma, seed=2)
        expect = sa.gaussian_smooth(raw.reshape(8, 30, 40), sigma).reshape(4, 2, 30, 40)
        np.testing.assert_array_equal(smooth, expect)
    scaled = sa.elastic_displacement(4, 30, 40, 34.0, 4.0, seed=2)
    np.testing.assert_allclose(
        scaled, 34.0 * sa.elastic_displacement(4, 30, 40, 1.0, 4.0, seed=2), rtol=1e-6
    )


def test_elastic_cost_does_not_grow_with_sigma():
    import time

    x = images(n=8, h=96, w=96, c=1)

    def cost(sigma):
        aug = sa.Compose([sa.ElasticDistortion(10.0, sigma)])
        aug(x)
        best = np.inf
        for _ in range(5):
            t0 = time.perf_counter()
            aug(x)
            best = min(best, time.perf_counter() - t0)
        return best

    assert cost(30.0) < 2.0 * cost(1.0)


# ---- cutout, erasing, noise -------------------------------------------------------------


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_cutout_touches_only_its_squares(device, layout):
    x = images(n=40, h=20, w=18, c=3, layout=layout)  # values >= 1, fill 0
    out = to_host(sa.Compose([sa.Cutout(2, 6)], seed=4, layout=layout)(to_device(x, device)))
    xs, os_ = hwc(x, layout), hwc(out, layout)
    for o, xi in zip(os_, xs):
        changed = (o != xi).any(axis=2)
        assert ((o == 0) | ~changed[..., None]).all()  # changed pixels are 0 in every channel
        assert (o[changed] == 0).all()
        # Every changed pixel lies in a changed 6x6 square (clipped at the border), and two
        # squares hold them all.
        assert 9 <= changed.sum() <= 72
        for y, x in zip(*np.nonzero(changed)):
            assert any(
                changed[max(y0, 0) : y0 + 6, max(x0, 0) : x0 + 6].all()
                for y0 in range(y - 5, y + 1)
                for x0 in range(x - 5, x + 1)
            )


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_erasing_touches_only_one_box(device, dtype):
    x = images(n=40, h=24, w=20, c=3, dtype=dtype)
    if dtype == np.float32:
        x = np.abs(x) + 1
    for value in (0.0, "random"):
        aug = sa.Compose([sa.RandomErasing(1.0, scale=(0.05, 0.3), value=value)], seed=9)
        out = to_host(aug(to_device(x, device)))
        erased = 0
        for o, xi in zip(out, x):
            changed = (o != xi).any(axis=2)
            if not changed.any():
                continue
            erased += 1
            ys, xs_ = np.nonzero(changed)
            box = (slice(ys.min(), ys.max() + 1), slice(xs_.min(), xs_.max() + 1))
            np.testing.assert_array_equal(o[~changed], xi[~changed])
            area = (box[0].stop - box[0].start) * (box[1].stop - box[1].start)
            assert 0.04 * 480 <= area <= 0.31 * 480
            if value == 0.0:
                assert (o[box] == 0).all()
        assert erased >= 35
    if dtype == np.float32:  # random values are standard normal
        vals = out[out != x]
        assert abs(vals.mean()) < 0.1 and abs(vals.std() - 1) < 0.1


def test_noise_float_and_saturating_uint8(device):
    xf = np.full((8, 16, 16, 3), 250.0, np.float32)
    aug = sa.Compose([sa.GaussianNoise(20.0)], seed=6)
    yf = to_host(aug(to_device(xf, device)))
    z = (yf - 250.0) / 20.0
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    yu = to_host(aug(to_device(xf.astype(np.uint8), device)))
    np.testing.assert_array_equal(yu, np.clip(np.floor(yf + 0.5), 0, 255).astype(np.uint8))
    assert (yu == 255).mean() > 0.3
    np.testing.assert_array_equal(sa.Compose([sa.GaussianNoise(0.0)])(xf), xf)


def test_noise_and_random_fill_draw_the_same_normals():
    # Both key element e of step 0 by Philox block e // 4: the batched noise path (vectorized
    # Box-Muller on the CPU) must give the bits of the per-element path of random erasing.
    x = np.zeros((6, 20, 20, 3), np.float32)
    noise = sa.Compose([sa.GaussianNoise(1.0)], seed=3)(x)
    erased = sa.Compose([sa.RandomErasing(1.0, scale=(0.5, 0.9), value="random")], seed=3)(x)
    mask = erased != 0
    assert mask.sum() > 6 * 0.4 * 1200
    np.testing.assert_array_equal(erased[mask], noise[mask])


# ---- reproducibility --------------------------------------------------------------------


def pipeline(seed=0, layout="auto"):
    return sa.Compose(
        [
            sa.RandomCrop(12, padding=2, pad_mode="reflect"),
            sa.HorizontalFlip(),
            sa.RandomRotation(20, interpolation="bicubic"),
            sa.ElasticDistortion(4.0, 2.0),
            sa.Cutout(1, 4, p=0.5),
            sa.RandomErasing(0.5, value="random"),
            sa.GaussianNoise(3.0, p=0.5),
            sa.RandomResizedCrop(10, scale=(0.5, 1.0)),
            sa.VerticalFlip(),
        ],
        seed=seed,
        layout=layout,
    )


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_determinism_by_seed_and_batch_split(dtype):
    x = images(n=30, h=14, w=13, c=3, dtype=dtype)
    a = pipeline(5)(x)
    np.testing.assert_array_equal(a, pipeline(5)(x))
    assert not np.array_equal(a, pipeline(6)(x))
    np.testing.assert_array_equal(a[10:20], pipeline(5)(x[10:20], sample_offset=10))
    assert not np.array_equal(a, pipeline(5)(x, sample_offset=30))


def test_thread_count_independence():
    x = images(n=64, h=20, w=20, c=3, dtype=np.float32)
    before = seisoku.get_num_threads()
    try:
        seisoku.set_num_threads(1)
        one = pipeline(1)(x)
        seisoku.set_num_threads(2)
        two = pipeline(1)(x)
    finally:
        seisoku.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_layouts_give_the_same_images(dtype):
    x = images(n=12, h=14, w=13, c=3, dtype=dtype)
    nhwc = pipeline(2, "NHWC")(x)
    nchw = pipeline(2, "NCHW")(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    np.testing.assert_array_equal(nchw, nhwc.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("pad_mode", ["constant", "edge", "reflect"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize(("w", "size"), [(23, (17, 21)), (64, (5, 4))])
def test_axis_aligned_resampling_layouts_agree(pad_mode, dtype, w, size):
    # Padded crops, flips and resized crops compose into one axis-aligned map that reads
    # outside the image; NHWC RGB uint8 runs it in separable passes, NCHW pixel by pixel.
    # 64 -> 4 shrinks rows 5 to 16 times: taps too far apart for the byte shuffles.
    x = images(n=24, h=19, w=w, c=3, dtype=dtype, seed=9)
    steps = [
        sa.RandomCrop((19, w), padding=6, pad_mode=pad_mode, fill=9),
        sa.HorizontalFlip(),
        sa.RandomResizedCrop(size, scale=(0.2, 1.0)),
        sa.VerticalFlip(),
    ]
    nhwc = sa.Compose(steps, seed=3, layout="NHWC")(x)
    nchw = sa.Compose(steps, seed=3, layout="NCHW")(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    np.testing.assert_array_equal(nchw, nhwc.transpose(0, 3, 1, 2))
    if pad_mode == "constant":  # the fill was read
        assert (nhwc == 9).mean() > 0.01


@pytest.mark.parametrize(("h", "w"), [(16, 12), (13, 7), (70, 3), (9, 20)])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_noise_layouts_agree(h, w, dtype):
    # NHWC noise runs in pixel chunks when H * W % 4 == 0 (uint8 RGB 8 pixels at a time
    # where 32 bytes can be read), element by element otherwise; uint8 saturates.
    x = images(n=3, h=h, w=w, c=3, dtype=dtype)
    std = 40.0 if dtype == np.uint8 else 2.0
    aug = sa.Compose([sa.GaussianNoise(std)], seed=4)
    nhwc = sa.Compose([sa.GaussianNoise(std)], seed=4, layout="NHWC")(x)
    nchw = sa.Compose([sa.GaussianNoise(std)], seed=4, layout="NCHW")(
        np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    )
    np.testing.assert_array_equal(nchw, nhwc.transpose(0, 3, 1, 2))
    assert not np.array_equal(aug(x), x)
    if dtype == np.uint8:
        assert (nhwc == 0).any() and (nhwc == 255).any()


@pytest.mark.requires_cuda
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_cuda_equals_cpu(device, dtype, layout):
    if device != "cuda":
        pytest.skip("compares the CUDA twin with the CPU")
    x = images(n=20, h=14, w=13, c=3, dtype=dtype, layout=layout)
    labels = np.arange(20) % 10
    cpu = pipeline(8, layout)(x, labels=labels, sample_offset=7)
    gpu = pipeline(8, layout)(to_device(x, device), labels=labels, sample_offset=7)
    np.testing.assert_array_equal(to_host(gpu), cpu)
    disp = sa.elastic_displacement(3, 17, 19, 6.0, 3.0, seed=1)
    np.testing.assert_array_equal(
        to_host(sa.elastic_displacement(3, 17, 19, 6.0, 3.0, seed=1, device="cuda")), disp
    )


def test_labels_exempt_samples():
    x = images(n=20)
    labels = np.arange(20) % 10
    aug = sa.Compose([sa.RandomRotation((180, 180), skip_labels=(6, 9)), sa.HorizontalFlip(1.0)])
    out = aug(x, labels=labels)
    for o, xi, lab in zip(out, x, labels):
        if lab in (6, 9):
            np.testing.assert_array_equal(o, xi[:, ::-1])  # flipped, never turned
        else:
            np.testing.assert_array_equal(o, xi[::-1])  # turned by 180 then flipped
    # Exempting a label does not change the draws of the other samples and steps.
    steps = [sa.HorizontalFlip(0.5, skip_labels=(3,)), sa.GaussianNoise(2.0)]
    with_labels = sa.Compose(steps, seed=1)(x.astype(np.float32), labels=labels)
    without = sa.Compose(steps, seed=1)(x.astype(np.float32))
    same = labels != 3
    np.testing.assert_array_equal(with_labels[same], without[same])


def test_output_shape_and_out_argument():
    aug = sa.Compose([sa.RandomCrop((8, 6), padding=1), sa.RandomRotation(10)])
    assert aug.output_shape((5, 10, 9, 3)) == (5, 8, 6, 3)
    assert aug.output_shape((5, 3, 10, 9)) == (5, 3, 8, 6)
    x = images(n=5, h=10, w=9, c=3)
    out = np.empty((5, 8, 6, 3), np.uint8)
    assert aug(x, out=out) is out
    assert sa.Compose([])(x) is not x and np.array_equal(sa.Compose([])(x), x)


def test_results_reuse_only_memory_nothing_holds():
    import copy
    import pickle

    aug = sa.Compose([sa.RandomRotation(30)], seed=4)
    x = images(n=4, h=12, w=10, c=3)
    expected = [aug(x, sample_offset=k).copy() for k in range(6)]
    # Dropped results come back: a loop writes into at most two arrays.
    pointers = {aug(x, sample_offset=k).ctypes.data for k in range(6)}
    assert len(pointers) <= 2
    # Kept results and views of results are never written again.
    kept = aug(x, sample_offset=0)
    view = aug(x, sample_offset=1)[1:3]
    later = [aug(x, sample_offset=k) for k in range(2, 6)]
    np.testing.assert_array_equal(kept, expected[0])
    np.testing.assert_array_equal(view, expected[1][1:3])
    for k, y in enumerate(later, start=2):
        np.testing.assert_array_equal(y, expected[k])
    assert len({y.ctypes.data for y in [kept, *later]}) == 5
    # Copies and pickles leave the pool behind and start their own.
    for twin in (copy.deepcopy(aug), pickle.loads(pickle.dumps(aug))):
        np.testing.assert_array_equal(twin(x, sample_offset=5), expected[5])
    assert len(pickle.dumps(aug)) < 2048


def test_trainer_hook_reshapes_flat_batches():
    x = images(n=6, h=8, w=8, c=1, layout="NCHW", dtype=np.float32)
    hook = sa.Compose([sa.HorizontalFlip(1.0)]).trainer_hook(image_shape=(1, 8, 8))
    out = hook(x.reshape(6, 64), 3)
    np.testing.assert_array_equal(out, x[..., ::-1].reshape(6, 64))
    noisy = sa.Compose([sa.GaussianNoise(1.0)]).trainer_hook()
    assert not np.array_equal(noisy(x, 0), noisy(x, 1))
    np.testing.assert_array_equal(noisy(x, 1), noisy(x, 1))


def test_trainer_fit_takes_the_hook():
    from seisoku.train import Trainer

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (96, 64)).astype(np.float32)
    y = rng.integers(0, 3, 96)
    model = seisoku.nn.Sequential(seisoku.nn.Linear(64, 3))
    opt = seisoku.optim.SGD(model.parameters(), lr=0.05)
    hook = sa.Compose([sa.RandomRotation(10), sa.GaussianNoise(0.05)], layout="NCHW").trainer_hook(
        image_shape=(1, 8, 8)
    )
    steps = []

    def spy(xb, step):
        steps.append(step)
        out = hook(xb, step)
        assert out.shape == xb.shape and not np.array_equal(out, xb)
        return out

    Trainer(model, seisoku.nn.CrossEntropyLoss(), opt, progress=False).fit(
        x, y, epochs=2, batch_size=32, augment=spy
    )
    assert steps == list(range(6))


def test_trainer_passes_labels_to_label_aware_hooks():
    from seisoku.train import Trainer

    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (64, 64)).astype(np.float32)
    y = rng.integers(0, 4, 64)
    # Label 2 must never be flipped; every other sample always is.
    hook = sa.Compose([sa.HorizontalFlip(1.0, skip_labels=(2,))], layout="NCHW").trainer_hook(
        image_shape=(1, 8, 8)
    )
    seen = []

    def spy(xb, step, labels):
        out = hook(xb, step, labels)
        flipped = xb.reshape(-1, 1, 8, 8)[..., ::-1].reshape(xb.shape)
        for i, label in enumerate(labels):
            np.testing.assert_array_equal(out[i], xb[i] if label == 2 else flipped[i])
        seen.append(labels.copy())
        return out

    model = seisoku.nn.Sequential(seisoku.nn.Linear(64, 4))
    opt = seisoku.optim.SGD(model.parameters(), lr=0.05)
    Trainer(model, seisoku.nn.CrossEntropyLoss(), opt, progress=False).fit(
        x, y, epochs=1, batch_size=16, augment=spy, seed=4
    )
    assert len(seen) == 4
    # The batches are the epoch's shuffled labels: all of y, each once.
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.sort(y))
    assert any((s == 2).any() for s in seen)


# ---- pictures ---------------------------------------------------------------------------


def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        assert zlib.crc32(kind + body) == int.from_bytes(data[pos + 8 + n : pos + 12 + n], "big")
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:8], "big")
    channels = 3 if header[9] == 2 else 1
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * channels)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, channels)


def test_save_grid_writes_png(tmp_path):
    x = images(n=3, h=8, w=8, c=3)
    aug = sa.Compose([sa.HorizontalFlip(1.0)])
    path = aug.save_grid(str(tmp_path / "grid.png"), x, versions=2, scale=2)
    img = read_png(path)
    assert img.shape[2] == 3 and img.shape[0] == 3 * 16 + 4 * 4
    # The first cell holds the first original, scaled 2x.
    np.testing.assert_array_equal(img[4:20:2, 4:20:2], x[0])
    gray = sa.save_grid(str(tmp_path / "gray.png"), images(n=2, c=1), [images(n=2, c=1)])
    assert read_png(gray).shape[2] == 1


def test_cli_augment_show_writes_png(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from seisoku.cli import main

    path = tmp_path / "digits.png"
    assert main(["augment", "--show", "--out", str(path), "--samples", "3", "--versions", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    img = read_png(str(path))
    assert img.shape[2] == 1 and img.shape[0] > 3 * 28
    assert img.min() == 0 and img.max() == 255
    assert main(["augment", "--show", "--out", str(path), "--sigma", "-1"]) == 2
    assert "sigma" in capsys.readouterr().err


# ---- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: sa.HorizontalFlip(p=1.5), ["p", "1.5"]),
        (lambda: sa.RandomRotation(10, p=-0.1), ["p", "-0.1"]),
        (lambda: sa.ElasticDistortion(34, -1.0), ["sigma", "-1.0"]),
        (lambda: sa.RandomCrop(0), ["size", "0"]),
        (lambda: sa.RandomCrop(8, padding=-2), ["padding", "-2"]),
        (lambda: sa.RandomResizedCrop(8, scale=(0.5, 0.1)), ["scale", "(0.5, 0.1)"]),
        (lambda: sa.RandomRotation(10, interpolation="cubic"), ["interpolation", "cubic"]),
        (lambda: sa.GaussianNoise(-2), ["std", "-2"]),
        (lambda: sa.Cutout(-1), ["num_holes", "-1"]),
        (lambda: sa.RandomErasing(value="noise"), ["value", "noise"]),
        (lambda: sa.Compose([sa.HorizontalFlip()], seed=-1), ["seed", "-1"]),
    ],
)
def test_bad_arguments_name_argument_and_value(make, words):
    with pytest.raises(ValueError) as e:
        make()
    for w in words:
        assert w in str(e.value)


def test_bad_inputs_raise_value_error():
    aug = sa.Compose([sa.HorizontalFlip()])
    with pytest.raises(ValueError, match=r"4-D.*\(4, 5, 3\)"):
        aug(np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="float64"):
        aug(np.zeros((2, 5, 5, 3), np.float64))
    with pytest.raises(ValueError, match=r"RandomCrop.*16x16.*14x14"):
        sa.Compose([sa.RandomCrop(16, padding=2)])(np.zeros((2, 10, 10, 1), np.uint8))
    with pytest.raises(ValueError, match="layout"):
        aug(np.zeros((2, 3, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="labels"):
        aug(np.zeros((2, 5, 5, 1), np.uint8), labels=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="out"):
        aug(np.zeros((2, 5, 5, 1), np.uint8), out=np.zeros((2, 5, 5, 1), np.float32))
    # The native layer checks on its own too (C++ users get the same messages).
    flip, elastic = sa.HorizontalFlip().step(), sa.ElasticDistortion().step()
    flip.p, elastic.sigma = 2.0, -3.0
    img = np.zeros((1, 4, 4, 1), np.uint8)
    for step, message in (
        (flip, r"HorizontalFlip \(step 0\): p must be in \[0, 1\], got 2"),
        (elastic, r"sigma must be in \[0, 1e6\], got -3"),
    ):
        with pytest.raises(ValueError, match=message):
            seisoku._core.augment(img, np.zeros_like(img), [step], "NHWC", 0, 0, None)
    with pytest.raises(ValueError, match="sigma"):
        sa.gaussian_smooth(np.zeros((1, 4, 4), np.float32), -1.0)


def test_large_batches_stream_the_same_bits():
    # Outputs of 16 MB and more are written with streaming stores: the same bits as small
    # batches with the matching sample_offset.
    x = np.random.default_rng(0).integers(0, 256, (112, 224, 224, 3), dtype=np.uint8)
    for aug in (
        sa.Compose([sa.HorizontalFlip(0.5)], seed=3),
        sa.Compose([sa.RandomCrop(224, padding=8, pad_mode="reflect")], seed=3),
        sa.Compose([sa.VerticalFlip(1.0), sa.RandomCrop(224, padding=4)], seed=5),
    ):
        big = aug(x)
        assert big.nbytes >= 16 << 20
        parts = np.concatenate([aug(x[i : i + 8], sample_offset=i) for i in range(0, 112, 8)])
        np.testing.assert_array_equal(big, parts)
